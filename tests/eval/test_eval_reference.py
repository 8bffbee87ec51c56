"""The reference case of eval-protocol.md: NYU frame 00050, prediction 0.3 g^0.8 + 0.05."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from eval_fixtures import NYU_DEMO, build_nyu, requires_shared, write_predictions
from depthlab.eval import build_dataset, evaluate_prediction_dir
from depthlab.eval.alignment import align, clip_prediction
from depthlab.eval.metrics import PROTOCOL_METRICS, depth_metrics

REFERENCE = {
    "abs_rel": 0.0192638393, "sq_rel": 0.00192500954, "rmse": 0.0730933547,
    "rmse_log": 0.035566356, "log10": 0.00858245138, "delta1": 0.993813932, "delta2": 1.0,
    "delta3": 1.0, "i_rmse": 0.0310430154, "silog": 3.52415824,
}
SCALE, SHIFT, VALID_PIXELS = 5.47319221, -1.18810344, 225022


def reference_prediction(gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return (0.3 * np.where(valid, gt, 3.0).astype(np.float64) ** 0.8 + 0.05).astype(np.float32)


def assert_reference(record: dict) -> None:
    for name, expected in REFERENCE.items():
        assert record[name] == pytest.approx(expected, rel=1e-6, abs=0), name
    assert record["scale"] == pytest.approx(SCALE, rel=1e-6)
    assert record["shift"] == pytest.approx(SHIFT, rel=1e-6)


@requires_shared
def test_reference_case_by_hand():
    gt = (np.asarray(Image.open(NYU_DEMO / "depth" / "sync_depth_00050.png")) / 1000).astype(
        np.float32)
    valid = (gt > 1e-3) & (gt < 10)
    crop = np.zeros_like(valid)
    crop[45:471, 41:601] = True
    valid &= crop
    assert valid.sum() == VALID_PIXELS
    aligned = align(reference_prediction(gt, valid), gt, valid, "depth")
    depth = clip_prediction(aligned.depth, 1e-3, 10.0)
    record = depth_metrics(depth, gt, valid, PROTOCOL_METRICS)
    assert_reference({**record, "scale": aligned.scale, "shift": aligned.shift})


@requires_shared
def test_reference_case_through_the_nyu_loader(tmp_path):
    data, split = build_nyu(tmp_path)
    dataset = build_dataset("nyu", str(data), str(split))
    sample = dataset[0]
    assert sample.valid.sum() == VALID_PIXELS
    preds = write_predictions(tmp_path / "pred", dataset,
                              lambda s: reference_prediction(s.depth, s.valid))
    result = evaluate_prediction_dir(preds, dataset, "depth", progress=False)
    assert result.count == 3
    assert_reference(result.per_sample[0])
    for name in PROTOCOL_METRICS:  # the mean is over images
        assert result.means[name] == pytest.approx(
            np.mean([r[name] for r in result.per_sample]), rel=1e-12)
