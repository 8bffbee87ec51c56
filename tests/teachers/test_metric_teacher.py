"""The transformers metric teacher: metric Depth Anything V2 and Depth Pro directories load back
as frozen teachers of depth in metres at the input's size (Depth Pro exactly as its own image
processor pre- and post-processes), once per process; relative or unsupported directories are
refused; the gin file and the experiment run it through the normal inference path."""
from __future__ import annotations

import json
from pathlib import Path

import gin
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForDepthEstimation, GLPNConfig

from depthlab.errors import UserError
from depthlab.evaluate import main as evaluate_main
from depthlab.inference.api import load_predictor
from depthlab.models.imagenet_input import imagenet_input
from depthlab.models.output_kind import OutputKind
from depthlab.predict import main as predict_main
from depthlab.teachers.disparity_predictor import network_size
from depthlab.teachers.metric import (DepthAnythingMetricTeacher, DepthProTeacher,
                                      transformers_metric_teacher)
from depthlab.testing.tiny_models import save_depth_pro_dir, save_metric_depth_anything_dir

from teacher_helpers import one_thread_fresh_teachers  # noqa: F401  (autouse fixture)

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = str(REPO / "experiments" / "metric_teacher.gin")


@pytest.fixture(scope="module")
def metric_da2_dir(tmp_path_factory) -> Path:
    return save_metric_depth_anything_dir(tmp_path_factory.mktemp("metric_da2"))


@pytest.fixture(scope="module")
def depth_pro_dir(tmp_path_factory) -> Path:
    return save_depth_pro_dir(tmp_path_factory.mktemp("depth_pro"))


def _rgb(seed: int = 0, count: int = 2) -> torch.Tensor:
    """Odd-sized RGB (45 x 61): neither side a multiple of any network's grid."""
    return torch.rand(count, 3, 45, 61, generator=torch.Generator().manual_seed(seed))


def _check_frozen(teacher) -> None:
    assert teacher.output_kind is OutputKind.METRIC_DEPTH and teacher.frozen
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not teacher.model.training


def test_metric_depth_anything_round_trips_to_metres_at_the_input_size(metric_da2_dir):
    teacher = transformers_metric_teacher(str(metric_da2_dir), input_size=28)
    assert type(teacher) is DepthAnythingMetricTeacher
    assert teacher.multiple == 14 and teacher.input_size == 28
    _check_frozen(teacher)
    rgb = _rgb()
    depth = teacher(rgb)
    assert depth.shape == (2, 1, 45, 61) and not depth.requires_grad
    # The saved model's own head: metres in (0, max_depth = 20), from a 28 x 42 network input.
    model = AutoModelForDepthEstimation.from_pretrained(str(metric_da2_dir)).eval()
    assert model.config.depth_estimation_type == "metric" and model.config.max_depth == 20
    pixels = imagenet_input(rgb, network_size(45, 61, 28, 14))
    assert pixels.shape[-2:] == (28, 42)
    with torch.no_grad():
        raw = model(pixel_values=pixels).predicted_depth[:, None]
    expected = F.interpolate(raw, size=(45, 61), mode="bilinear", align_corners=False)
    torch.testing.assert_close(depth, expected, rtol=1e-5, atol=1e-5)
    assert 0.0 < float(depth.min()) and float(depth.max()) < 20.0
    assert float(depth.std()) > 0.1  # a map, not a constant


def test_depth_pro_follows_its_own_image_processor(depth_pro_dir):
    teacher = transformers_metric_teacher(str(depth_pro_dir))
    assert type(teacher) is DepthProTeacher and teacher.size == (64, 64)
    _check_frozen(teacher)
    rgb = _rgb(1)
    depth = teacher(rgb)
    assert depth.shape == (2, 1, 45, 61)
    # transformers' own pipeline: the processor's preprocessing, the model, and its
    # post_process_depth_estimation (FoV scaling, resize, inversion) into metres.
    processor = AutoImageProcessor.from_pretrained(str(depth_pro_dir))
    model = AutoModelForDepthEstimation.from_pretrained(str(depth_pro_dir)).eval()
    inputs = processor(images=list(rgb), do_rescale=False, return_tensors="pt")
    torch.testing.assert_close(teacher.normalised_input(rgb), inputs["pixel_values"])
    with torch.no_grad():
        outputs = model(**inputs)
    results = processor.post_process_depth_estimation(outputs, target_sizes=[(45, 61)] * 2)
    expected = torch.stack([r["predicted_depth"] for r in results])[:, None]
    torch.testing.assert_close(depth, expected, rtol=1e-4, atol=1e-5)
    # The tiny model's FoV head is near 60 degrees and its inverse depth near 1: about a metre.
    assert 0.3 < float(depth.median()) < 3.0


def test_built_once_per_process_per_directory_and_size(metric_da2_dir):
    teacher = transformers_metric_teacher(str(metric_da2_dir), input_size=28)
    assert transformers_metric_teacher(str(metric_da2_dir) + "/", input_size=28) is teacher
    assert transformers_metric_teacher(str(metric_da2_dir), input_size=42) is not teacher


def test_a_relative_depth_anything_directory_is_refused(tiny_depth_anything_dir):
    with pytest.raises(UserError, match="relative Depth Anything V2") as refused:
        transformers_metric_teacher(str(tiny_depth_anything_dir))
    message = str(refused.value)
    assert str(tiny_depth_anything_dir) in message and "metric variants" in message
    assert "gin/teachers/depth_anything_v2.gin" in message


def test_depth_pro_without_its_field_of_view_head_is_refused(depth_pro_dir, tmp_path):
    no_fov = tmp_path / "no_fov"
    no_fov.mkdir()
    for file in depth_pro_dir.iterdir():
        (no_fov / file.name).write_bytes(file.read_bytes())
    config = json.loads((no_fov / "config.json").read_text())
    (no_fov / "config.json").write_text(json.dumps({**config, "use_fov_model": False}))
    with pytest.raises(UserError, match="field-of-view head"):
        transformers_metric_teacher(str(no_fov))


def test_depth_pro_needs_its_image_processor_config(depth_pro_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for file in depth_pro_dir.iterdir():
        if file.name != "preprocessor_config.json":
            (bare / file.name).write_bytes(file.read_bytes())
    with pytest.raises(UserError, match="preprocessor_config.json"):
        transformers_metric_teacher(str(bare))


def test_missing_and_unsupported_directories_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        transformers_metric_teacher(str(tmp_path / "nowhere"))
    GLPNConfig().save_pretrained(str(tmp_path / "glpn"))
    with pytest.raises(UserError, match="'glpn' model.*Depth Pro"):
        transformers_metric_teacher(str(tmp_path / "glpn"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{}")
    with pytest.raises(UserError, match="config.json"):
        transformers_metric_teacher(str(tmp_path / "junk"))


def test_gin_file_builds_one_shared_teacher(metric_da2_dir):
    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings(
            [str(REPO / "gin/teachers/transformers_metric.gin")],
            [f"METRIC_DIR = '{metric_da2_dir}'"])
        first, second = (gin.query_parameter("%METRIC_TEACHER"),
                         gin.query_parameter("%METRIC_TEACHER"))
        teacher = first.scoped_configurable_fn()
        assert teacher is second.scoped_configurable_fn()
        assert type(teacher) is DepthAnythingMetricTeacher and teacher.input_size == 518
    finally:
        gin.clear_config()


def test_the_experiment_predicts_and_evaluates_in_metres(metric_da2_dir, tmp_path, capsys):
    bind = f"METRIC_DIR = '{metric_da2_dir}'"
    small = "transformers_metric_teacher.input_size = 28"
    predictor = load_predictor([EXPERIMENT], None, [bind, small], device="cpu")
    assert type(predictor.model) is DepthAnythingMetricTeacher  # metres: no peak normalising
    assert predictor.output_kind is OutputKind.METRIC_DEPTH and predictor.processing_res == 0
    photo = tmp_path / "odd.png"
    pixels = np.random.default_rng(0).integers(0, 256, (45, 61, 3), np.uint8)
    Image.fromarray(pixels).save(photo)
    out = tmp_path / "out"
    assert predict_main(["--gin", EXPERIMENT, "--bind", bind, "--bind", small, "--input",
                         str(photo), "--output", str(out), "--device", "cpu",
                         "--save", "npy"]) == 0
    assert "metric depth in metres" in capsys.readouterr().err
    rgb = torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)[None]
    np.testing.assert_allclose(np.load(out / "odd.npy"), predictor.model(rgb)[0, 0].numpy(),
                               rtol=1e-5, atol=1e-5)
    data = tmp_path / "set"
    for sub in ("rgb", "depth"):
        (data / sub).mkdir(parents=True)
    Image.fromarray(pixels).save(data / "rgb" / "0.png")
    Image.fromarray(np.full((45, 61), 5000, np.uint16)).save(data / "depth" / "0.png")
    result = tmp_path / "result.json"
    assert evaluate_main(["--gin", EXPERIMENT, "--bind", bind, "--bind", small, "--dataset",
                          "folder", "--data-dir", str(data), "--depth-scale", "1000",
                          "--metrics", "abs_rel", "--output", str(result),
                          "--no-progress"]) == 0
    assert '"alignment": "none"' in result.read_text()
