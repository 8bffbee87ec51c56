"""Boundary metrics: Depth Pro's scale-invariant boundary F1 (depth GT) and recall (mask GT),
and iBims-1's depth boundary error (DBE accuracy / completeness).

F1 and recall compare neighbour relations on inverse depth at ratio thresholds 1.05..1.25 and
weight each threshold by itself. DBE uses scikit-image's Canny and scipy's distance transform.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import feature

THRESHOLDS = np.linspace(1.05, 1.25, 10)
ALPHA_THRESHOLD = 0.1
DBE_MAX_DISTANCE = 10.0
CANNY_SIGMA = np.sqrt(2.0)
CANNY_LOW, CANNY_HIGH = 0.1, 0.2


def inverse_depth(depth: np.ndarray) -> np.ndarray:
    """1 / depth clipped below at 1e-6, in the input's float type (as Depth Pro)."""
    depth = depth if np.issubdtype(depth.dtype, np.floating) else depth.astype(np.float64)
    return 1.0 / np.clip(depth, 1e-6, None)


def _ratios(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour ratios for the left, top, right and bottom relations."""
    return (d[:, :-1] / d[:, 1:], d[:-1, :] / d[1:, :], d[:, 1:] / d[:, :-1], d[1:, :] / d[:-1, :])


def _pair_masks(valid: np.ndarray) -> tuple[np.ndarray, ...]:
    horizontal = valid[:, :-1] & valid[:, 1:]
    vertical = valid[:-1, :] & valid[1:, :]
    return horizontal, vertical, horizontal, vertical


def _weighted(scores: list[float]) -> float:
    return float(np.sum(np.asarray(scores) * THRESHOLDS / THRESHOLDS.sum()))


def boundary_f1(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Scale-invariant boundary F1 of depth `pred` against dense depth `gt`.

    `valid` (optional) drops neighbour pairs that touch a pixel without GT; with a dense GT and
    `valid=None` this is exactly Depth Pro's `SI_boundary_F1`.
    """
    pred_ratios, gt_ratios = _ratios(inverse_depth(pred)), _ratios(inverse_depth(gt))
    pairs = _pair_masks(valid) if valid is not None else (None,) * 4
    scores = []
    for t in THRESHOLDS:
        recall = precision = 0.0
        for rp, rg, keep in zip(pred_ratios, gt_ratios, pairs):
            p, g = rp > t, rg > t
            if keep is not None:
                p, g = p & keep, g & keep
            hits = np.count_nonzero(p & g)
            recall += hits / max(np.count_nonzero(g), 1) / 4
            precision += hits / max(np.count_nonzero(p), 1) / 4
        scores.append(0.0 if recall + precision == 0 else
                      2 * recall * precision / (recall + precision))
    return _weighted(scores)


def thin_rows(ratio: np.ndarray, threshold: float) -> np.ndarray:
    """Non-maximum suppression along rows: of each run of consecutive pixels above `threshold`,
    keep only the one with the largest ratio (the first on ties)."""
    above = np.pad(ratio > threshold, ((0, 0), (0, 1))).ravel()  # the pad column ends each row
    keep = np.zeros(above.shape, dtype=bool)
    index = np.flatnonzero(above)
    if index.size:
        starts = above & ~np.concatenate([[False], above[:-1]])
        run = np.cumsum(starts)[index]
        values = np.pad(ratio, ((0, 0), (0, 1))).ravel()[index]
        order = np.lexsort((index, -values, run))  # by run, then largest value, then position
        first = np.concatenate([[True], run[order][1:] != run[order][:-1]])
        keep[index[order[first]]] = True
    return keep.reshape(ratio.shape[0], ratio.shape[1] + 1)[:, :-1]


def boundary_recall(pred: np.ndarray, alpha: np.ndarray) -> float:
    """Scale-invariant boundary recall of depth `pred` against a matting / segmentation alpha."""
    mask = alpha > ALPHA_THRESHOLD
    gt_edges = (mask[:, :-1] & ~mask[:, 1:], mask[:-1, :] & ~mask[1:, :],
                mask[:, 1:] & ~mask[:, :-1], mask[1:, :] & ~mask[:-1, :])
    left, top, right, bottom = _ratios(inverse_depth(pred))
    scores = []
    for t in THRESHOLDS:
        thinned = (thin_rows(left, t), thin_rows(top.T, t).T,
                   thin_rows(right, t), thin_rows(bottom.T, t).T)
        scores.append(sum(np.count_nonzero(p & g) / max(np.count_nonzero(g), 1)
                          for p, g in zip(thinned, gt_edges)) / 4)
    return _weighted(scores)


def canny_edges(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Canny (sigma sqrt 2, thresholds 0.1 / 0.2) on `values` min-max normalised to [0, 1]."""
    values = values.astype(np.float32)
    region = values if mask is None else values[mask]
    if region.size == 0:
        return np.zeros(values.shape, dtype=bool)
    low, high = float(region.min()), float(region.max())
    if high <= low:
        return np.zeros(values.shape, dtype=bool)
    normalised = (values - low) / (high - low)
    if mask is not None:
        normalised = np.where(mask, normalised, 0.0).astype(np.float32)
    return feature.canny(normalised, sigma=CANNY_SIGMA, low_threshold=CANNY_LOW,
                         high_threshold=CANNY_HIGH, mask=mask)


def gt_depth_edges(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """GT edges where none ship (SharpDepth): Canny on depth OR on inverse depth, within GT."""
    return canny_edges(depth, valid) | canny_edges(inverse_depth(depth), valid)


def depth_boundary_error(pred: np.ndarray, gt_edges: np.ndarray) -> tuple[float, float]:
    """iBims-1 DBE (accuracy, completeness) in pixels; NaN for both when GT has no edge."""
    gt_edges = gt_edges.astype(bool)
    if not gt_edges.any():
        return float("nan"), float("nan")
    pred_edges = canny_edges(pred)
    dist_to_gt = ndimage.distance_transform_edt(~gt_edges)
    near = pred_edges & (dist_to_gt < DBE_MAX_DISTANCE)
    if not near.any():
        return DBE_MAX_DISTANCE, DBE_MAX_DISTANCE
    dist_to_pred = ndimage.distance_transform_edt(~pred_edges)
    return float(dist_to_gt[near].mean()), float(dist_to_pred[gt_edges].mean())
