"""Output kinds end to end: metric depth in metres, normals, modes using the image, evaluation."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from inference_helpers import read_ply
from PIL import Image
from torch import nn

import depthlab.predict
from depthlab.errors import UserError
from depthlab.eval.alignment import ALIGNMENTS
from depthlab.eval.cli import build_parser
from depthlab.eval.da2k import pair_hits
from depthlab.eval.datasets.registry import EvalSample
from depthlab.eval.runner import evaluate_predictor, score_sample
from depthlab.inference.api import Predictor
from depthlab.inference.images import load_image
from depthlab.inference.outputs import OutputWriter, colorize, nearness, to_uint16
from depthlab.inference.pointcloud import camera_depth
from depthlab.models.depth_model import DepthModel
from depthlab.models.modes import E2EFTMode, InferenceMode, ModeInputs
from depthlab.models.output_kind import OutputKind
from depthlab.models.schedule import ddpm_schedule


class MetricMode(InferenceMode):
    """Metres in [1, 10]: one UNet pass at t = 0, decoded to [0, 1], stretched."""

    def __init__(self):
        super().__init__("metric_depth")

    def latent(self, inputs: ModeInputs) -> torch.Tensor:
        return inputs.backbone(inputs.rgb_latent, 0.0)

    def forward(self, inputs: ModeInputs) -> torch.Tensor:
        return 1.0 + 9.0 * inputs.codec.decode_unit(self.latent(inputs))


class ImageConvMode(InferenceMode):
    """The decoded latent plus a 1x1 convolution of the image itself."""

    def __init__(self):
        super().__init__(OutputKind.DEPTH)
        self.conv = nn.Conv2d(3, 1, 1)

    def latent(self, inputs: ModeInputs) -> torch.Tensor:
        return inputs.backbone(inputs.rgb_latent, 0.0)

    def forward(self, inputs: ModeInputs) -> torch.Tensor:
        return inputs.codec.decode_unit(self.latent(inputs)) + self.conv(inputs.rgb)


@pytest.fixture
def metric_model(small_model) -> DepthModel:
    return DepthModel(small_model.backbone, small_model.codec, MetricMode()).eval()


def image(height: int = 32, width: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def read_png(path) -> np.ndarray:
    with Image.open(path) as png:
        return np.asarray(png)


# --- metric depth ------------------------------------------------------------------------------

def test_metric_model_declares_its_kind_and_an_open_range(metric_model):
    assert metric_model.output_kind is OutputKind.METRIC_DEPTH
    assert metric_model.value_range == (0.0, None)
    assert metric_model.output_kind.description == "metric depth in metres"


def test_predictor_returns_metres_unclamped(metric_model):
    rgb = image()
    predictor = Predictor(metric_model, processing_res=0)
    assert predictor.output_kind is OutputKind.METRIC_DEPTH
    (metres,) = predictor.predict([rgb])
    assert metres.shape == (32, 24) and metres.dtype == np.float32
    with torch.no_grad():
        tensor = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        expected = metric_model.predict(tensor)[0, 0].numpy()
    np.testing.assert_allclose(metres, expected, rtol=1e-5, atol=1e-5)
    assert metres.min() >= 1.0 - 1e-6 and metres.max() <= 10.0 + 1e-5
    assert metres.max() > 2.0  # not clamped to [0, 1]
    assert (metres > 1.0).mean() > 0.5


def test_uint16_of_metric_depth_is_millimetres():
    metres = np.array([[1.2346, 2.0], [65.6, 0.5]], np.float32)
    expected = np.array([[1235, 2000], [65535, 500]], np.uint16)
    np.testing.assert_array_equal(to_uint16(metres, OutputKind.METRIC_DEPTH), expected)
    # affine-invariant maps keep value x 65535
    unit = np.array([[0.0, 0.5], [1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(to_uint16(unit, OutputKind.DEPTH),
                                  np.array([[0, 32768], [65535, 65535]], np.uint16))
    with pytest.raises(UserError, match="16-bit"):
        to_uint16(np.zeros((1, 1, 3), np.float32), OutputKind.NORMALS)


def test_output_writer_writes_metres_millimetres_and_a_metric_cloud(tmp_path):
    metres = np.array([[1.2346, 2.0], [65.6, 0.5]], np.float32)
    rgb = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0], [0.5, 0.5, 0.5]]],
                   np.float32)
    writer = OutputWriter(tmp_path, ["npy", "png16", "color", "ply"], OutputKind.METRIC_DEPTH)
    written = writer.write("photo", metres, rgb)
    assert [p.name for p in written] == ["photo.npy", "photo_16bit.png", "photo_color.png",
                                         "photo.ply"]
    np.testing.assert_array_equal(np.load(tmp_path / "photo.npy"), metres)
    np.testing.assert_array_equal(read_png(tmp_path / "photo_16bit.png"),
                                  [[1235, 2000], [65535, 500]])
    # colours stretch over the image's own range: 0.5 m (nearest) takes the colormap's low end
    colors = read_png(tmp_path / "photo_color.png")
    spectral = matplotlib.colormaps["Spectral"]
    np.testing.assert_array_equal(colors[1, 1], spectral(0.0, bytes=True)[:3])
    np.testing.assert_array_equal(colors[1, 0], spectral(1.0, bytes=True)[:3])
    header, vertices = read_ply(tmp_path / "photo.ply")
    assert "element vertex 4" in header
    np.testing.assert_array_equal(vertices["z"], metres.ravel())
    # 60 degrees across 2 pixels: f = 1 / tan(30 deg), principal point (1, 1)
    focal = 1.0 / math.tan(math.radians(30.0))
    np.testing.assert_allclose(vertices["x"][0], (0.5 - 1.0) / focal * 1.2346, rtol=1e-6)
    np.testing.assert_allclose(vertices["y"][2], (1.5 - 1.0) / focal * 65.6, rtol=1e-6)
    np.testing.assert_array_equal(vertices["red"], [255, 0, 0, 128])


def test_camera_depth_and_nearness_by_kind():
    values = np.array([[-1.0, 2.5], [0.25, 6.0]], np.float32)
    np.testing.assert_array_equal(camera_depth(values, "metric_depth"), [[0.0, 2.5], [0.25, 6.0]])
    unit = np.array([[0.0, 0.5]], np.float32)
    np.testing.assert_allclose(camera_depth(unit, "depth", depth_ratio=10.0), [[1.0, 5.5]])
    with pytest.raises(UserError, match="point cloud"):
        camera_depth(np.zeros((1, 1, 3), np.float32), "normals")
    metric = np.array([[2.0, 4.0], [0.0, 6.0]], np.float32)
    np.testing.assert_allclose(nearness(metric, "metric_depth"), [[0.0, 0.5], [1.0, 1.0]])
    np.testing.assert_allclose(nearness(np.array([[0.2, 0.9]]), "disparity"), [[0.8, 0.1]])


def test_predict_cli_writes_metres_and_millimetres(metric_model, tmp_path, monkeypatch, capsys):
    photo = tmp_path / "street.png"
    Image.fromarray(image(30, 22, seed=3)).save(photo)  # padded to 32x24, cropped back
    predictor = Predictor(metric_model, processing_res=0)
    requested = {}

    def fake_load_predictor(gin_files, weights, bindings, processing_res, **kwargs):
        requested.update(gin=list(gin_files), processing_res=processing_res)
        return predictor

    monkeypatch.setattr(depthlab.predict, "load_predictor", fake_load_predictor)
    out = tmp_path / "out"
    code = depthlab.predict.main(["--gin", "metric.gin", "--input", str(photo), "--output",
                                  str(out), "--processing-res", "0", "--save",
                                  "npy,png16,color,ply"])
    assert code == 0 and requested == {"gin": ["metric.gin"], "processing_res": 0}
    assert sorted(p.name for p in out.iterdir()) == ["street.npy", "street.ply",
                                                     "street_16bit.png", "street_color.png"]
    metres = np.load(out / "street.npy")
    expected = predictor.predict([load_image(photo)])[0]
    assert metres.shape == (30, 22)
    np.testing.assert_allclose(metres, expected, rtol=1e-6, atol=1e-6)
    assert metres.min() >= 1.0 - 1e-6 and metres.max() > 2.0  # metres, not [0, 1]
    millimetres = read_png(out / "street_16bit.png").astype(np.int64)
    np.testing.assert_array_equal(millimetres, np.round(metres.astype(np.float64) * 1000.0))
    assert millimetres.min() >= 1000
    _, vertices = read_ply(out / "street.ply")
    np.testing.assert_array_equal(vertices["z"], metres.ravel())
    err = " ".join(capsys.readouterr().err.split())
    assert "wrote 1 prediction(s) (metric depth in metres)" in err


# --- normals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["png16", "ply"])
def test_normals_writer_refuses_depth_only_files(tmp_path, kind):
    with pytest.raises(UserError, match=kind):
        OutputWriter(tmp_path, ["npy", kind], OutputKind.NORMALS)


def test_normals_colour_is_half_n_plus_one(tmp_path):
    normals = np.array([[[0.48, -0.6, 0.64], [-0.48, 0.6, -0.64]]], np.float32)  # 1x2x3
    expected = np.array([[[189, 51, 209], [66, 204, 46]]], np.uint8)
    np.testing.assert_array_equal(colorize(normals, OutputKind.NORMALS), expected)
    writer = OutputWriter(tmp_path, ["npy", "color"], OutputKind.NORMALS)
    writer.write("n", normals, np.zeros((1, 2, 3), np.float32))
    np.testing.assert_array_equal(np.load(tmp_path / "n.npy"), normals)
    np.testing.assert_array_equal(read_png(tmp_path / "n_color.png"), expected)


# --- a mode that uses the image and is a module ------------------------------------------------

@pytest.fixture
def conv_model(small_model) -> DepthModel:
    return DepthModel(small_model.backbone, small_model.codec, ImageConvMode()).eval()


def test_image_using_mode_reads_the_image(conv_model):
    rgb = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    conv = conv_model.mode.conv
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        base = conv_model.predict(rgb)
        conv.weight.copy_(torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1))
        conv.bias.fill_(0.05)
        changed = conv_model.predict(rgb)
    by_hand = 0.1 * rgb[:, 0:1] + 0.2 * rgb[:, 1:2] + 0.3 * rgb[:, 2:3] + 0.05
    assert not torch.allclose(changed, base)
    torch.testing.assert_close(changed - base, by_hand, rtol=1e-5, atol=1e-5)


def test_mode_module_follows_the_model_to_another_dtype(conv_model):
    parameters = dict(conv_model.named_parameters())
    assert "mode.conv.weight" in parameters and "mode.conv.bias" in parameters
    conv_model.to(torch.float64)
    assert conv_model.mode.conv.weight.dtype == torch.float64
    assert conv_model.backbone.unet.conv_in.weight.dtype == torch.float64
    with torch.no_grad():
        output = conv_model.predict(torch.rand(1, 3, 16, 16, dtype=torch.float64,
                                               generator=torch.Generator().manual_seed(6)))
    assert output.dtype == torch.float64 and output.shape == (1, 1, 16, 16)


def test_builtin_mode_buffer_follows_to(small_model):
    mode = E2EFTMode()
    alpha_bar = float(ddpm_schedule().alphas_cumprod[999])
    assert mode.alpha_bar.dtype == torch.float32
    assert math.isclose(float(mode.alpha_bar), alpha_bar, rel_tol=1e-6)
    model = DepthModel(small_model.backbone, small_model.codec, mode).to(torch.float64)
    assert model.mode.alpha_bar.dtype == torch.float64
    assert math.isclose(float(model.mode.alpha_bar), alpha_bar, rel_tol=1e-6)
    assert "mode.alpha_bar" in dict(model.named_buffers())


# --- evaluation of metric predictions ----------------------------------------------------------

def metric_sample() -> EvalSample:
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 20.0, (12, 16)).astype(np.float32)
    valid = np.ones((12, 16), bool)
    valid[:2] = False
    return EvalSample(id="room/rgb_0001.png", rgb=np.zeros((12, 16, 3), np.uint8), depth=depth,
                      valid=valid)


def metric_prediction(sample: EvalSample) -> np.ndarray:
    pred = (1.1 * sample.depth).astype(np.float32)
    pred[~sample.valid] = 500.0  # far off where there is no GT: must not count
    return pred


def test_alignment_none_scores_metres_as_they_are():
    sample = metric_sample()
    pred = metric_prediction(sample)
    record = score_sample(pred, sample, "none", ["abs_rel", "delta1"], (1e-3, 80.0))
    assert record["id"] == "room/rgb_0001.png"
    assert abs(record["abs_rel"] - 0.1) < 1e-6
    assert record["delta1"] == 1.0  # 1.1 < 1.25 everywhere
    assert record["scale"] == 1.0 and record["shift"] == 0.0
    aligned = score_sample(pred, sample, "depth", ["abs_rel", "delta1"], (1e-3, 80.0))
    assert aligned["abs_rel"] < 1e-4
    assert abs(aligned["scale"] - 1.0 / 1.1) < 1e-4 and abs(aligned["shift"]) < 1e-3


def test_alignment_none_clips_to_the_datasets_range():
    sample = metric_sample()
    pred = np.full(sample.depth.shape, 200.0, np.float32)
    record = score_sample(pred, sample, "none", ["abs_rel"], (1e-3, 80.0))
    valid = sample.valid
    expected = float(np.mean(np.abs(80.0 - sample.depth[valid].astype(np.float64))
                             / sample.depth[valid]))
    assert abs(record["abs_rel"] - expected) < 1e-5


class OneSampleSet:
    name, min_depth, max_depth, processing_res = "tiny_metric", 1e-3, 80.0, 0
    default_metrics = ("abs_rel", "delta1")

    def __init__(self, sample: EvalSample):
        self.sample = sample

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return self.sample

    def sample_id(self, index):
        return self.sample.id


def test_evaluate_predictor_with_alignment_none():
    sample = metric_sample()
    result = evaluate_predictor(lambda rgb: metric_prediction(sample), OneSampleSet(sample),
                                "none", progress=False)
    assert result.alignment == "none" and result.count == 1
    assert abs(result.means["abs_rel"] - 0.1) < 1e-6 and result.means["delta1"] == 1.0


def test_da2k_pairs_in_metres_count_smaller_as_closer():
    pred = np.array([[1.0, 5.0], [3.0, 2.0]], np.float32)
    pairs = np.array([[0, 0, 0, 1],    # 1 m closer than 5 m: right
                      [1, 1, 1, 0],    # 2 m closer than 3 m: right
                      [0, 1, 1, 0]])   # 5 m "closer" than 3 m: wrong
    assert pair_hits(pred, pairs, "none") == (2, 3)
    assert pair_hits(pred, pairs, "disparity") == (1, 3)


def test_evaluate_cli_offers_alignment_none():
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "alignment"]
    assert "none" in action.choices and "depth" in action.choices
    assert tuple(action.choices) == ALIGNMENTS
    args = parser.parse_args(["--predictions", "preds", "--dataset", "nyu_v2", "--alignment",
                              "none"])
    assert args.alignment == "none"
    assert OutputKind.METRIC_DEPTH.alignment == "none"
