"""Details where the reference code decides a number: the float32 delta ratio and the optional
downscaled alignment fit (Marigold's `--alignment_max_res`, whose resize shrinks only the width).

Every expected value is worked out by hand in the test's docstring or comments.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from depthlab.errors import UserError
from depthlab.eval import (
    EvalSample,
    build_dataset,
    evaluate_prediction_dir,
    evaluate_predictor,
)
from depthlab.eval.alignment import FitDownscale, align, fit_downscale, nearest_indices
from depthlab.eval.metrics import depth_metrics
from depthlab.eval.runner import score_sample
from eval_fixtures import run_cli

F32 = np.float32


# ---------------------------------------------------------------- delta ratios in float32


def test_delta1_ratio_is_divided_in_float32():
    """p = float32(0.63) = 0.62999999523162841796875, g = float32(0.504) =
    0.504000008106231689453125. Their exact quotient is 1.24999997043420..., 2.96e-8 below 1.25;
    the float32 below 1.25 is 1.25 - 2**-23 = 1.2499998808, 8.96e-8 below, so float32 division
    rounds the quotient up to exactly 1.25, which is not < 1.25: the reference (float32 torch
    tensors) does not count the pixel. In float64 the ratio stays 1.2499999704 and would count.
    The pixel pair (1, 1) is a control that always counts: delta1 = 1 / 2.
    """
    assert np.float64(F32(0.63)) / np.float64(F32(0.504)) < 1.25  # float64 would count it
    valid = np.ones(2, bool)
    for pred, gt in (([0.63, 1.0], [0.504, 1.0]), ([0.504, 1.0], [0.63, 1.0])):  # p/g and g/p
        record = depth_metrics(np.array(pred, F32), np.array(gt, F32), valid, ["delta1"])
        assert record == {"delta1": 0.5}


def test_delta_ratio_in_float32_through_score_sample():
    """The runner hands float32 maps to the metrics: alignment 'none', clip [1e-3, 10] keeps
    0.63, so the only pixel has the float32 ratio 1.25 exactly and delta1 = 0."""
    sample = EvalSample("one.png", np.zeros((1, 1, 3), np.uint8), np.array([[0.504]], F32),
                        np.ones((1, 1), bool))
    record = score_sample(np.array([[0.63]], F32), sample, "none", ["delta1", "delta2"],
                          (1e-3, 10.0))
    assert record["delta1"] == 0.0 and record["delta2"] == 1.0


def test_delta_counts_match_torch_float32_at_the_thresholds():
    """200000 pixel pairs whose ratio is 1.25 ** k within a few 1e-8, either way round: the
    counts must equal the reference's float32 torch computation pixel for pixel (a float64 ratio
    changes about a tenth of them)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 10, 200_000).astype(F32)
    power = rng.choice([1, 2, 3], gt.size)
    nudge = 1 + rng.integers(-3, 4, gt.size) * 1e-8
    pred = (gt.astype(np.float64) * 1.25 ** power * nudge).astype(F32)
    swap = rng.random(gt.size) < 0.5
    pred, gt = np.where(swap, gt, pred), np.where(swap, pred, gt)
    record = depth_metrics(pred, gt, np.ones(gt.size, bool), ["delta1", "delta2", "delta3"])
    p, g = torch.from_numpy(pred), torch.from_numpy(gt)
    ratio = torch.max(p / g, g / p)
    for k in (1, 2, 3):
        assert round(record[f"delta{k}"] * gt.size) == int((ratio < 1.25 ** k).sum()), k


def test_delta_thresholds_are_strict_powers_of_1_25():
    """Ratios of exactly 1.25, 1.5625 = 1.25**2 and 1.953125 = 1.25**3 (exact in float32 and
    float64) fall outside delta1, delta2 and delta3 respectively, and inside the next one."""
    pred = np.array([1.25, 1.5625, 1.953125, 2.0], F32)
    gt = np.ones(4, F32)
    record = depth_metrics(pred, gt, np.ones(4, bool), ["delta1", "delta2", "delta3"])
    assert record == {"delta1": 0.0, "delta2": 0.25, "delta3": 0.5}


# ---------------------------------------------------------------- downscaled alignment fit


def staircase() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 4x8 map: pred = 1 1 2 2 3 3 4 4 in every row; GT = (2 + [column odd]) * pred + 1
    + 2 * [row odd]. For each pred value the four (row, column) parities occur equally often.

    Full-resolution fit: per pred value the GT mean is 2.5 p + 2, so scale 2.5, shift 2.
    Max res 4 gives the factor min(4/4, 4/8) = 0.5 and the columns floor(j * 2) = 0, 2, 4, 6:
    - 'reference_width_only' keeps all rows of the even columns: GT 2p + 1 and 2p + 3, mean
      2p + 2: scale 2, shift 2;
    - 'both' also keeps only the rows floor(i * 2) = 0, 2: GT 2p + 1 exactly: scale 2, shift 1.
    """
    rows, cols = np.mgrid[0:4, 0:8]
    pred = (cols // 2 + 1).astype(F32)
    gt = ((2 + cols % 2) * pred + 1 + 2 * (rows % 2)).astype(F32)
    return pred, gt, np.ones((4, 8), bool)


@pytest.mark.parametrize("downscale, scale, shift", [
    (None, 2.5, 2.0),
    (FitDownscale(4, "reference_width_only"), 2.0, 2.0),
    (FitDownscale(4, "both"), 2.0, 1.0),
    (FitDownscale(8), 2.5, 2.0),  # factor min(8/4, 8/8) = 1: not below 1, full resolution
])
def test_fit_resolution_changes_the_fitted_scale_and_shift(downscale, scale, shift):
    pred, gt, valid = staircase()
    aligned = align(pred, gt, valid, "depth", downscale)
    assert aligned.scale == pytest.approx(scale, abs=1e-5)
    assert aligned.shift == pytest.approx(shift, abs=1e-5)
    assert aligned.depth.shape == (4, 8)  # applied to the full-resolution prediction
    assert aligned.depth[1, 7] == pytest.approx(scale * 4 + shift, abs=1e-4)  # pred is 4 there


def test_downscaled_fit_in_disparity_space():
    """Disparity: pred = 1/GT on the even columns and 1/(2 GT) on the odd ones, GT = 2 m on the
    left half and 4 m on the right (all rows). The width-only fit (max res 4: columns 0, 2, 4,
    6) sees only pred = 1/GT: scale 1, shift 0, so an even column comes back at its GT."""
    gt = np.repeat(np.array([[2, 2, 2, 2, 4, 4, 4, 4]], F32), 4, axis=0)
    pred = (1 / gt / np.array([1, 2, 1, 2, 1, 2, 1, 2], F32)).astype(F32)
    aligned = align(pred, gt, np.ones_like(gt, bool), "disparity", FitDownscale(4))
    assert aligned.scale == pytest.approx(1, abs=1e-6)
    assert aligned.shift == pytest.approx(0, abs=1e-6)
    assert aligned.depth[3, 4] == pytest.approx(4.0, rel=1e-5)
    assert aligned.depth[3, 5] == pytest.approx(8.0, rel=1e-5)  # the odd column keeps its error


def test_eth3d_width_only_grid():
    """ETH3D at max res 1024: factor 1024 / 6048, 6048 * factor = 1024 columns at
    floor(j * 5.90625) (6048 / 1024 = 5.90625 exactly): 0, 5, 11, 17, ..., last
    floor(1023 * 5.90625) = floor(6042.09375) = 6042; the 4032 rows stay. 'both' shrinks the rows
    to int(4032 * 1024 / 6048) = int(682.67) = 682; a portrait 6048x4032 frame keeps its 6048
    rows and gets 682 columns in the reference's mode."""
    columns = nearest_indices(6048, 1024 / 6048)
    assert len(columns) == 1024
    assert list(columns[:4]) == [0, 5, 11, 17] and columns[-1] == 6042
    landscape = np.broadcast_to(np.arange(6048, dtype=F32), (4032, 6048))
    shrunk = FitDownscale(1024).shrink(landscape)
    assert shrunk.shape == (4032, 1024) and shrunk[0, 2] == 11.0
    assert FitDownscale(1024, "both").shrink(landscape).shape == (682, 1024)
    portrait = np.broadcast_to(np.arange(4032, dtype=F32), (6048, 4032))
    assert FitDownscale(1024).shrink(portrait).shape == (6048, 682)


def test_nearest_index_step_is_float32():
    """Shrinking 152 columns to 50: factor 50/152, 1/factor = 3.0399999999999996 in float64 but
    float32(3.04) = 3.0399999618530273 in torch's kernel. Output 25: 25 * 3.0399999618530273 =
    75.99999904632568, which float32 rounds to 76.0 (its spacing there is 7.6e-6): column 76.
    In float64 it would be 75.99999999999999, column 75."""
    assert nearest_indices(152, 50 / 152)[24:27].tolist() == [72, 76, 79]


@pytest.mark.parametrize("height, width, max_res", [
    (4032, 6048, 1024), (6048, 4032, 1024), (352, 1216, 1024), (1000, 1501, 999), (97, 1003, 37),
    (50, 152, 50)])
def test_nearest_indices_match_torch_upsample(height, width, max_res):
    """The reference resizes with torch.nn.Upsample(scale_factor, mode='nearest') on a [1, H, W]
    tensor; reading column numbers through it must give our indices."""
    torch = pytest.importorskip("torch")
    factor = float(np.min(max_res / np.array((height, width))))
    columns = torch.arange(width, dtype=torch.float32).repeat(2, 1).unsqueeze(0)  # [1, 2, W]
    picked = torch.nn.Upsample(scale_factor=factor, mode="nearest")(columns)[0, 0]
    np.testing.assert_array_equal(picked.numpy().astype(np.int64),
                                  nearest_indices(width, factor))


@pytest.mark.parametrize("max_res, mode, message", [
    (0, "reference_width_only", "positive whole number"),
    (-3, "reference_width_only", "positive whole number"),
    (1.5, "reference_width_only", "positive whole number"),
    ("1024", "reference_width_only", "positive whole number"),
    (1024, "width", "Unknown alignment downscale"),
    (None, "both", "no alignment_max_res was given"),
])
def test_bad_fit_settings_are_user_errors(max_res, mode, message):
    with pytest.raises(UserError, match=message):
        fit_downscale(max_res, mode)


class StaircaseSet:
    """One sample: the staircase GT, valid everywhere, clip range [1e-3, 100]."""

    name, min_depth, max_depth, processing_res = "staircase", 1e-3, 100.0, 0
    default_metrics = ("abs_rel",)

    def __len__(self) -> int:
        return 1

    def sample_id(self, index: int) -> str:
        return "stairs.png"

    def __getitem__(self, index: int) -> EvalSample:
        _, gt, valid = staircase()
        return EvalSample("stairs.png", np.zeros((4, 8, 3), np.uint8), gt, valid)


def predict_staircase(rgb: np.ndarray) -> np.ndarray:
    return staircase()[0]


def test_evaluate_predictor_takes_the_setting_and_defaults_to_full_resolution():
    predict = predict_staircase
    default = evaluate_predictor(predict, StaircaseSet(), "depth", progress=False)
    row = default.per_sample[0]
    assert (row["scale"], row["shift"]) == (pytest.approx(2.5, abs=1e-5),
                                            pytest.approx(2.0, abs=1e-5))
    assert default.alignment_max_res is None and default.alignment_downscale is None
    reference = evaluate_predictor(predict, StaircaseSet(), "depth", progress=False,
                                   alignment_max_res=4)
    row = reference.per_sample[0]
    assert (row["scale"], row["shift"]) == (pytest.approx(2.0, abs=1e-5),
                                            pytest.approx(2.0, abs=1e-5))
    assert (reference.alignment_max_res, reference.alignment_downscale) == (
        4, "reference_width_only")


def test_alignment_resolution_without_a_fit_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="alignment 'none'"):
        evaluate_predictor(predict_staircase, StaircaseSet(), "none", progress=False,
                           alignment_max_res=1024)
    with pytest.raises(UserError, match="positive whole number"):
        evaluate_prediction_dir(tmp_path, StaircaseSet(), "depth", progress=False,
                                alignment_max_res=0)


# ---------------------------------------------------------------- the command line


def eth3d_like(root) -> tuple:
    """An ETH3D-layout folder with one 4x8 frame (depth the RGB's size, raw float32): the
    staircase GT, and its staircase prediction."""
    rgb_rel = "rgb/stairs/images/dslr_images/DSC_0001.JPG"
    depth_rel = "depth/stairs_dslr_depth/stairs/ground_truth_depth/dslr_images/DSC_0001.JPG"
    pred, gt, _ = staircase()
    data = root / "eth3d"
    for rel, payload in ((rgb_rel, None), (depth_rel, gt.tobytes())):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        if payload is None:
            buffer = io.BytesIO()
            Image.fromarray(np.zeros((4, 8, 3), np.uint8)).save(buffer, format="JPEG")
            payload = buffer.getvalue()
        (data / rel).write_bytes(payload)
    split = root / "split.txt"
    split.write_text(f"{rgb_rel} {depth_rel}\n")
    preds = root / "pred"
    (preds / rgb_rel).parent.mkdir(parents=True)
    np.save(preds / rgb_rel.replace(".JPG", ".npy"), pred)
    return data, split, preds




def test_cli_alignment_max_res_on_eth3d(tmp_path, capsys):
    data, split, preds = eth3d_like(tmp_path)
    assert build_dataset("eth3d", str(data), str(split))[0].depth.shape == (4, 8)
    base = ["--predictions", preds, "--dataset", "eth3d", "--data-dir", data, "--split", split]
    runs = {"default": [], "reference": ["--alignment-max-res", 4],
            "both": ["--alignment-max-res", 4, "--alignment-downscale", "both"]}
    expected = {"default": (2.5, 2.0), "reference": (2.0, 2.0), "both": (2.0, 1.0)}
    for name, extra in runs.items():
        output = tmp_path / f"{name}.json"
        code, out, err = run_cli(base + extra + ["--output", output], capsys)
        assert code == 0, err
        row = (tmp_path / f"{name}.csv").read_text().splitlines()
        values = dict(zip(row[0].split(","), row[1].split(",")))
        assert (float(values["scale"]), float(values["shift"])) == (
            pytest.approx(expected[name][0], abs=1e-5), pytest.approx(expected[name][1], abs=1e-5))
        body = json.loads(output.read_text())
        if name == "default":
            assert "alignment_max_res" not in body and "| ETH3D | depth | 1 |" in out
        else:
            assert body["alignment_max_res"] == 4
            mode = "both" if name == "both" else "reference_width_only"
            assert body["alignment_downscale"] == mode
            assert f"| ETH3D | depth (fit ≤4, {mode}) | 1 |" in out


@pytest.mark.parametrize("extra, message", [
    (["--alignment-downscale", "both"], "give --alignment-max-res too"),
    (["--alignment-max-res", "1k"], "expects a positive whole number"),
    (["--alignment-max-res", "0"], "expects a positive whole number"),
    (["--alignment-max-res", "4", "--alignment", "none"], "alignment 'none'"),
])
def test_cli_alignment_max_res_mistakes(tmp_path, capsys, extra, message):
    data, split, preds = eth3d_like(tmp_path)
    code, out, err = run_cli(["--predictions", preds, "--dataset", "eth3d", "--data-dir", data,
                              "--split", split] + extra, capsys)
    assert code == 2 and message in err and out == "", err


def test_cli_alignment_max_res_is_given_per_dataset(tmp_path, capsys):
    """One value for two datasets is refused (a 1024 meant for ETH3D would shrink KITTI's 1216
    columns too); '-' leaves a dataset at the full-resolution fit."""
    data, split, preds = eth3d_like(tmp_path)
    two = ["--predictions", preds, preds, "--dataset", "eth3d", "eth3d", "--data-dir", data, data,
           "--split", split, split, "--output", tmp_path / "two.json"]
    code, out, err = run_cli(two + ["--alignment-max-res", 4], capsys)
    assert code == 2 and out == "" and "--alignment-max-res got 1 value(s) for 2 dataset(s)" in err
    code, _, err = run_cli(two + ["--alignment-max-res", "-", 4], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "two.json").read_text())["datasets"]
    assert [r.get("alignment_max_res") for r in results] == [None, 4]
