"""Per-image depth metrics of the affine-invariant protocol (Marigold's `metric.py`, in numpy).

Every metric is computed over one image's valid pixels; the runner averages over images (no
pooling of pixels across images). Inputs are float32 as in the reference; sums run in float64.
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


def _delta(k: int) -> Callable[[np.ndarray, np.ndarray], float]:
    def delta(pred: np.ndarray, gt: np.ndarray) -> float:
        return float(np.mean(np.maximum(pred / gt, gt / pred) < 1.25 ** k))
    return delta


def _silog(pred: np.ndarray, gt: np.ndarray) -> float:
    d = np.log(pred) - np.log(gt)
    return float(100.0 * np.sqrt(np.mean(d ** 2) - np.mean(d) ** 2))


_DEPTH_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "abs_rel": lambda p, g: float(np.mean(np.abs(p - g) / g)),
    "sq_rel": lambda p, g: float(np.mean((p - g) ** 2 / g)),
    "rmse": lambda p, g: float(np.sqrt(np.mean((p - g) ** 2))),
    "rmse_log": lambda p, g: float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
    "log10": lambda p, g: float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
    "delta1": _delta(1),
    "delta2": _delta(2),
    "delta3": _delta(3),
    "i_rmse": lambda p, g: float(np.sqrt(np.mean((1.0 / p - 1.0 / g) ** 2))),
    "silog": _silog,
}


def depth_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray,
                  names: Sequence[str] = PROTOCOL_METRICS) -> dict[str, float]:
    """The protocol metrics `names` of one image: `pred` and `gt` are depth maps in metres."""
    p = pred[valid].astype(np.float64)
    g = gt[valid].astype(np.float64)
    return {name: _DEPTH_METRICS[name](p, g) for name in names}


def check_metric_names(names: Sequence[str]) -> list[str]:
    """Validate user-chosen metric names (order kept, duplicates dropped)."""
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}; "
                        f"known metrics: {', '.join(ALL_METRICS)}")
    return list(dict.fromkeys(names))
