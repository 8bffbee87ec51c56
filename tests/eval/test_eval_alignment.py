"""Properties of least-squares alignment and the depth metrics."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from depthlab.eval.alignment import align, clip_prediction, fit_scale_shift
from depthlab.eval.da2k import pair_hits
from depthlab.eval.metrics import PROTOCOL_METRICS, depth_metrics
from depthlab.targets import Space

SPACES = [s.value for s in Space]
MIN_DEPTH, MAX_DEPTH = 1e-3, 10.0


def scene(seed: int, shape=(24, 32)):
    """Random GT depth in [0.5, 8] m with about 20 % invalid pixels."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 8.0, shape).astype(np.float32)
    valid = rng.random(shape) > 0.2
    gt[~valid] = 0.0
    return rng, gt, valid


def in_space(depth: np.ndarray, space: str) -> np.ndarray:
    safe = np.where(depth > 0, depth, 1.0).astype(np.float64)
    values = {"depth": safe, "disparity": 1 / safe, "sqrt_disparity": np.sqrt(1 / safe)}[space]
    return values.astype(np.float32)


def evaluate(pred, gt, valid, space):
    aligned = align(pred, gt, valid, space)
    return depth_metrics(clip_prediction(aligned.depth, MIN_DEPTH, MAX_DEPTH), gt, valid)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), space=st.sampled_from(SPACES),
       log_scale=st.floats(-3, 3), shift_fraction=st.floats(-0.9, 5.0))
def test_metrics_invariant_to_positive_affine_change(seed, space, log_scale, shift_fraction):
    rng, gt, valid = scene(seed)
    # a noisy prediction in the aligned space, strictly positive
    pred = in_space(gt, space) * rng.uniform(0.7, 1.3, gt.shape).astype(np.float32)
    scale = float(np.exp(log_scale))
    shift = shift_fraction * scale * float(pred.min())  # keeps the changed map positive
    changed = (scale * pred.astype(np.float64) + shift).astype(np.float32)
    before, after = evaluate(pred, gt, valid, space), evaluate(changed, gt, valid, space)
    one_pixel = 1.0 / valid.sum()
    for name in PROTOCOL_METRICS:
        tolerance = 1.5 * one_pixel if name.startswith("delta") else 1e-6
        assert after[name] == pytest.approx(before[name], rel=1e-3, abs=tolerance), name


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), space=st.sampled_from(SPACES),
       log_scale=st.floats(-3, 3), shift_fraction=st.floats(0, 5))
def test_perfect_prediction_scores_zero_error(seed, space, log_scale, shift_fraction):
    _, gt, valid = scene(seed)
    exact = np.exp(log_scale) * in_space(gt, space).astype(np.float64)
    # a shift of the same order as the values: float32 keeps ~1e-7 of the map's variation
    pred = (exact + shift_fraction * exact.max()).astype(np.float32)
    metrics = evaluate(pred, gt, valid, space)
    assert metrics["abs_rel"] == pytest.approx(0.0, abs=1e-5)
    assert metrics["delta1"] == 1.0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), log_scale=st.floats(-3, 3), shift=st.floats(-5, 5))
def test_da2k_pair_order_is_affine_invariant(seed, log_scale, shift):
    rng = np.random.default_rng(seed)
    pred = rng.uniform(0.1, 1.0, (20, 30)).astype(np.float32)
    pairs = np.stack([rng.integers(0, 20, 50), rng.integers(0, 30, 50),
                      rng.integers(0, 20, 50), rng.integers(0, 30, 50)], axis=1)
    changed = (np.exp(log_scale) * pred.astype(np.float64) + shift)
    for space in SPACES:
        assert pair_hits(changed, pairs, space) == pair_hits(pred, pairs, space)


def test_da2k_orientation_follows_the_space():
    depth = np.array([[1.0, 2.0]])
    closer_first = np.array([[0, 0, 0, 1]])
    assert pair_hits(depth, closer_first, "depth") == (1, 1)
    assert pair_hits(1 / depth, closer_first, "disparity") == (1, 1)
    assert pair_hits(depth, closer_first, "disparity") == (0, 1)


def test_fit_recovers_an_exact_affine_map():
    pred = np.linspace(0.1, 1.0, 100, dtype=np.float32).reshape(10, 10)
    target = 3.0 * pred - 0.5
    scale, shift = fit_scale_shift(pred, target, np.ones_like(pred, bool))
    assert (scale, shift) == (pytest.approx(3.0, rel=1e-5), pytest.approx(-0.5, abs=1e-5))


def test_disparity_alignment_clips_and_inverts():
    gt = np.full((4, 4), 2.0, np.float32)
    valid = np.ones_like(gt, bool)
    pred = np.full_like(gt, 0.5)
    pred[0, 0] = -10.0  # excluded from the fit (pred <= 0), then clipped at disparity 1e-3
    aligned = align(pred, gt, valid, "disparity")
    assert aligned.depth[1, 1] == pytest.approx(2.0, rel=1e-5)
    assert aligned.depth[0, 0] == pytest.approx(1e3)


def test_inverted_predictions_are_counted_and_reported(capsys):
    from depthlab.eval.datasets.registry import build_dataset
    from depthlab.eval.report import result_dict
    from depthlab.eval.runner import _evaluate

    dataset = build_dataset("mini_synthetic", None, length=3)

    def score(prediction):
        return _evaluate(dataset, prediction, "disparity", ["abs_rel"], False, False, None)

    # GT depth under a disparity fit: the best affine map of depth to disparity has a negative
    # slope in every image with depth variation, so all three are inverted.
    inverted = score(lambda index, sample: sample.depth.astype(np.float32) + 1.0)
    assert inverted.inverted == 3 and result_dict(inverted)["inverted"] == 3
    assert "3 of 3 predictions were fitted with a negative scale" in capsys.readouterr().err
    right = score(lambda index, sample: 1.0 / np.maximum(sample.depth, 1e-3).astype(np.float32))
    assert right.inverted == 0 and "negative scale" not in capsys.readouterr().err
