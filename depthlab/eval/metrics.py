"""Per-image depth metrics of the affine-invariant protocol (Marigold's `metric.py`, in numpy).

Every metric is computed over one image's valid pixels; the runner averages over images (no
pooling of pixels across images). Inputs are float32 as in the reference. The delta ratios are
computed in float32 like the reference's float32 tensors, since a ratio that rounds to exactly 1.25
in float32 decides whether a pixel counts; the other metrics run in float64 (they differ from the
reference's float32 sums by rounding noise only, about 1e-7 relative).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from depthlab.errors import UserError

# The protocol's ten metrics, in the order the reference reports them.
PROTOCOL_METRICS: tuple[str, ...] = (
    "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "i_rmse",
    "silog",
)
BOUNDARY_METRICS: tuple[str, ...] = ("boundary_f1", "boundary_recall", "dbe_acc", "dbe_comp")
PAIR_METRICS: tuple[str, ...] = ("da2k_acc",)
ALL_METRICS: tuple[str, ...] = PROTOCOL_METRICS + BOUNDARY_METRICS + PAIR_METRICS
LOWER_IS_BETTER = frozenset({"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "i_rmse", "silog",
                             "dbe_acc", "dbe_comp"})

# delta_k counts max(p/g, g/p) < 1.25 ** k. The reference compares its float32 ratio with the
# Python float 1.25 ** k, which torch casts to float32; 1.25, 1.5625 and 1.953125 are exact in both.
DELTA_THRESHOLDS: dict[str, float] = {"delta1": 1.25, "delta2": 1.25 ** 2, "delta3": 1.25 ** 3}


def delta_ratio(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """max(pred / gt, gt / pred) per pixel, divided in float32 as the reference does."""
    p, g = np.asarray(pred, np.float32), np.asarray(gt, np.float32)
    return np.maximum(p / g, g / p)


def delta_accuracies(pred: np.ndarray, gt: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """The fractions of pixels whose float32 ratio is below each requested delta threshold."""
    if not names:
        return {}
    ratio = delta_ratio(pred, gt)
    return {name: float(np.mean(ratio < np.float32(DELTA_THRESHOLDS[name]))) for name in names}


def _silog(pred: np.ndarray, gt: np.ndarray) -> float:
    d = np.log(pred) - np.log(gt)
    return float(100.0 * np.sqrt(np.mean(d ** 2) - np.mean(d) ** 2))


_DEPTH_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "abs_rel": lambda p, g: float(np.mean(np.abs(p - g) / g)),
    "sq_rel": lambda p, g: float(np.mean((p - g) ** 2 / g)),
    "rmse": lambda p, g: float(np.sqrt(np.mean((p - g) ** 2))),
    "rmse_log": lambda p, g: float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
    "log10": lambda p, g: float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
    "i_rmse": lambda p, g: float(np.sqrt(np.mean((1.0 / p - 1.0 / g) ** 2))),
    "silog": _silog,
}


def depth_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray,
                  names: Sequence[str] = PROTOCOL_METRICS) -> dict[str, float]:
    """The protocol metrics `names` of one image: `pred` and `gt` are depth maps in metres."""
    p = pred[valid].astype(np.float64)
    g = gt[valid].astype(np.float64)
    deltas = delta_accuracies(pred[valid], gt[valid], [n for n in names if n in DELTA_THRESHOLDS])
    return {name: deltas[name] if name in deltas else _DEPTH_METRICS[name](p, g)
            for name in names}


def check_metric_names(names: Sequence[str]) -> list[str]:
    """Validate user-chosen metric names (order kept, duplicates dropped)."""
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}; "
                        f"known metrics: {', '.join(ALL_METRICS)}")
    return list(dict.fromkeys(names))
