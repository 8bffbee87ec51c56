"""Per-image least-squares alignment of an affine-invariant prediction, then the protocol's clip.

The fit runs in float32 like the reference (`np.linalg.lstsq` on float32 arrays) and without its
alignment downsampling (whose bug downsampled only the width). Alignment 'none' scores metric
predictions (metres) as they are.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from depthlab.errors import UserError
from depthlab.targets import Space

NO_ALIGNMENT = "none"
ALIGNMENTS = tuple(s.value for s in Space) + (NO_ALIGNMENT,)
MIN_DISPARITY = 1e-3  # the reference clips aligned disparity here before inverting
MIN_DEPTH = 1e-6  # and every depth here before the metrics


@dataclasses.dataclass
class Alignment:
    """An aligned prediction as metric depth, with the fitted `target ~= scale * pred + shift`."""

    depth: np.ndarray
    scale: float
    shift: float


def fit_scale_shift(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Least squares `scale * pred + shift ~= target` over `mask`, solved in float32."""
    p = pred[mask].astype(np.float32).reshape(-1, 1)
    t = target[mask].astype(np.float32).reshape(-1, 1)
    if p.size == 0:
        raise ValueError("no pixel to fit the scale and shift on")
    design = np.concatenate([p, np.ones_like(p)], axis=-1)
    solution = np.linalg.lstsq(design, t, rcond=None)[0]
    return solution[0, 0], solution[1, 0]


def inverse(values: np.ndarray) -> np.ndarray:
    """1 / values where values > 0, else 0 (the reference's depth <-> disparity conversion)."""
    out = np.zeros_like(values)
    positive = values > 0
    out[positive] = 1.0 / values[positive]
    return out


def check_alignment(alignment: str) -> str:
    if alignment not in ALIGNMENTS:
        raise UserError(f"Unknown alignment '{alignment}'; use one of {', '.join(ALIGNMENTS)}.")
    return alignment


def closer_is_smaller(alignment: str) -> bool:
    """Whether nearer points have smaller raw values under `alignment` (depth and metres)."""
    return check_alignment(alignment) in (Space.DEPTH.value, NO_ALIGNMENT)


def align(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, alignment: Space | str) -> Alignment:
    """Fit `pred` (affine-invariant in the space `alignment`) to GT depth on `valid` pixels and
    return depth; alignment 'none' takes `pred` as metres.

    Disparity fits on pixels where GT and prediction are positive (as the reference); the
    sqrt-disparity fit uses every valid pixel, as DepthMaster's evaluation does.
    """
    alignment = check_alignment(getattr(alignment, "value", alignment))
    pred = pred.astype(np.float32, copy=False)
    if alignment == NO_ALIGNMENT:
        return Alignment(pred, 1.0, 0.0)
    space = Space(alignment)
    gt = gt.astype(np.float32, copy=False)
    if space is Space.DEPTH:
        scale, shift = fit_scale_shift(pred, gt, valid)
        return Alignment(pred * scale + shift, float(scale), float(shift))
    gt_disparity = inverse(gt)
    if space is Space.DISPARITY:
        mask = valid & (gt > 0) & (pred > 0)
        scale, shift = fit_scale_shift(pred, gt_disparity, mask)
        disparity = pred * scale + shift
    elif space is Space.SQRT_DISPARITY:
        mask = valid & (gt > 0)
        scale, shift = fit_scale_shift(pred, np.sqrt(gt_disparity), mask)
        disparity = (pred * scale + shift) ** 2
    else:
        raise UserError(f"No alignment is defined for the space '{space}'.")
    disparity = np.clip(disparity, MIN_DISPARITY, None)
    return Alignment(inverse(disparity), float(scale), float(shift))


def clip_prediction(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """The protocol's clip: to the dataset's [min, max] depth, then below at 1e-6."""
    return np.clip(np.clip(depth, float(min_depth), float(max_depth)), MIN_DEPTH, None)
