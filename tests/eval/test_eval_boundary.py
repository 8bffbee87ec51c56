"""Boundary F1 / recall (Depth Pro) and depth boundary error (iBims-1)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from depthlab.eval.boundary import (boundary_f1, boundary_recall, canny_edges,
                                    depth_boundary_error, thin_rows)

LEVELS = 1.5 ** np.arange(-4, 5)  # neighbouring ratios are 1 or >= 1.5: far from 1.05..1.25


@st.composite
def layered_depth(draw):
    """A dense depth map of rectangles at levels whose ratios avoid the thresholds, with the
    nearest level on a rectangle strictly inside, drawn last: edges in all four directions."""
    height, width = draw(st.integers(6, 40)), draw(st.integers(6, 40))
    depth = np.full((height, width), LEVELS[draw(st.integers(1, len(LEVELS) - 1))])
    for _ in range(draw(st.integers(0, 3))):
        r0, c0 = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        r1, c1 = draw(st.integers(r0, height - 1)), draw(st.integers(c0, width - 1))
        depth[r0:r1 + 1, c0:c1 + 1] = LEVELS[draw(st.integers(1, len(LEVELS) - 1))]
    top, left = draw(st.integers(1, height - 2)), draw(st.integers(1, width - 2))
    bottom, right = draw(st.integers(top, height - 2)), draw(st.integers(left, width - 2))
    depth[top:bottom + 1, left:right + 1] = LEVELS[0]
    return depth


@settings(max_examples=80, deadline=None)
@given(layered_depth(), st.floats(-6, 6))
def test_f1_is_one_for_a_perfect_prediction_and_scale_invariant(depth, log_scale):
    assert boundary_f1(depth, depth) == pytest.approx(1.0)
    assert boundary_f1(depth * np.exp(log_scale), depth) == pytest.approx(1.0)
    assert boundary_f1(depth, depth * np.exp(log_scale)) == pytest.approx(1.0)
    noisy = depth.copy()
    noisy[::3] *= 1.6
    assert boundary_f1(noisy * np.exp(log_scale), depth) == pytest.approx(boundary_f1(noisy, depth))


def test_f1_of_a_perfect_single_vertical_step_is_a_quarter():
    depth = np.ones((8, 8))
    depth[:, 4:] = 2.0
    assert boundary_f1(depth, depth) == pytest.approx(0.25)


def test_f1_ignores_pairs_without_ground_truth():
    depth = np.ones((10, 10))
    depth[3:7, 3:7] = 0.5
    holes = depth.copy()
    holes[0, :] = 0.0  # no GT: 1 / 1e-6 would be an edge everywhere along the row
    valid = holes > 0
    assert boundary_f1(depth, holes, valid) == pytest.approx(1.0)
    assert boundary_f1(depth, holes) < 1.0


def naive_thin_rows(ratio: np.ndarray, threshold: float) -> np.ndarray:
    keep = np.zeros(ratio.shape, bool)
    for r, row in enumerate(ratio):
        c = 0
        while c < len(row):
            if row[c] > threshold:
                end = c
                while end + 1 < len(row) and row[end + 1] > threshold:
                    end += 1
                keep[r, c + int(np.argmax(row[c:end + 1]))] = True
                c = end + 1
            else:
                c += 1
    return keep


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(1, 12))
def test_thinning_keeps_the_largest_of_each_run(seed, height, width):
    rng = np.random.default_rng(seed)
    ratio = rng.choice([0.5, 1.0, 1.1, 1.2, 1.3, 2.0], size=(height, width))  # with ties
    for t in (1.05, 1.15):
        np.testing.assert_array_equal(thin_rows(ratio, t), naive_thin_rows(ratio, t))


def test_recall_is_one_when_the_prediction_follows_the_mask():
    alpha = np.zeros((20, 20))
    alpha[5:15, 6:12] = 1.0
    depth = np.where(alpha > 0.1, 1.0, 3.0)
    assert boundary_recall(depth, alpha) == pytest.approx(1.0)
    assert boundary_recall(np.ones_like(depth), alpha) == 0.0


def test_dbe_is_zero_for_a_perfect_prediction():
    depth = np.full((40, 40), 4.0, np.float32)
    depth[10:30, 12:28] = 1.0
    edges = canny_edges(depth)
    assert edges.any()
    assert depth_boundary_error(depth, edges) == (0.0, 0.0)


def test_dbe_without_predicted_edges_is_the_maximum_and_nan_without_gt_edges():
    edges = np.zeros((30, 30), bool)
    edges[10, 5:25] = True
    flat = np.ones((30, 30), np.float32)
    assert depth_boundary_error(flat, edges) == (10.0, 10.0)
    acc, comp = depth_boundary_error(flat, np.zeros_like(edges))
    assert np.isnan(acc) and np.isnan(comp)


def test_dbe_grows_with_the_edge_offset():
    gt = np.full((50, 50), 4.0, np.float32)
    gt[:, 25:] = 1.0
    edges = canny_edges(gt)
    shifted = np.full_like(gt, 4.0)
    shifted[:, 28:] = 1.0
    acc, comp = depth_boundary_error(shifted, edges)
    assert 2.0 <= acc <= 4.0 and 2.0 <= comp <= 4.0
