"""Per-image least-squares alignment of an affine-invariant prediction, then the protocol's clip.

The fit takes float32 inputs like the reference (`np.linalg.lstsq` on float32 arrays), by
default over every valid pixel at full resolution. `FitDownscale` optionally fits on a
nearest-neighbour copy instead, to reproduce tables made with the reference's
`--alignment_max_res` (Marigold's ETH3D), whose resize shrinks only the width. Alignment 'none'
scores metric predictions (metres) as they are.
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
WIDTH_ONLY = "reference_width_only"  # the reference's resize: nearest, on the last axis only
BOTH_SIDES = "both"  # nearest on both axes by the same factor, as the reference meant to
DOWNSCALE_MODES = (WIDTH_ONLY, BOTH_SIDES)


@dataclasses.dataclass
class Alignment:
    """An aligned prediction as metric depth, with the fitted `target ~= scale * pred + shift`."""

    depth: np.ndarray
    scale: float
    shift: float


@dataclasses.dataclass(frozen=True)
class FitDownscale:
    """Fit on a nearest-neighbour copy of the maps whose longer side is at most `max_res`, then
    apply the scale and shift to the full-resolution prediction (the reference's
    `--alignment_max_res`).

    The factor is min(max_res / H, max_res / W), used only when below 1. Mode
    'reference_width_only' shrinks the width alone by it, as the reference does (it hands torch's
    'nearest' Upsample a [1, H, W] tensor, which resizes the last axis only: ETH3D's 4032x6048
    becomes 4032x1024); 'both' shrinks both sides.
    """

    max_res: int
    mode: str = WIDTH_ONLY

    def __post_init__(self) -> None:
        if self.mode not in DOWNSCALE_MODES:
            raise UserError(f"Unknown alignment downscale '{self.mode}'; use one of "
                            f"{', '.join(DOWNSCALE_MODES)}.")
        if (isinstance(self.max_res, bool) or not isinstance(self.max_res, (int, np.integer))
                or self.max_res < 1):
            raise UserError(f"The alignment resolution must be a positive whole number of "
                            f"pixels, got {self.max_res!r}; leave it unset to fit at full "
                            "resolution.")

    def factor(self, shape: tuple[int, int]) -> float:
        """The reference's factor in float64: min(max_res / H, max_res / W)."""
        return min(self.max_res / shape[0], self.max_res / shape[1])

    def shrink(self, values: np.ndarray) -> np.ndarray:
        """The nearest-neighbour copy of a 2-D map the fit runs on (the map itself when the
        factor is at least 1)."""
        factor = self.factor(values.shape)
        if factor >= 1:
            return values
        columns = nearest_indices(values.shape[1], factor)
        if self.mode == WIDTH_ONLY:
            return values[:, columns]
        return values[np.ix_(nearest_indices(values.shape[0], factor), columns)]


def nearest_indices(size: int, factor: float) -> np.ndarray:
    """Source indices of torch's 'nearest' resize of one axis by `factor`: int(size * factor)
    outputs, output j reading floor(float32(j) * float32(1 / factor)), at most size - 1."""
    count = int(size * factor)
    if count < 1:
        raise ValueError(f"downscaling {size} pixels by {factor:.4g} leaves none to fit on")
    step = np.float32(1.0 / factor)
    source = np.floor(np.arange(count, dtype=np.float32) * step).astype(np.int64)
    return np.minimum(source, size - 1)


def fit_downscale(max_res: int | None, mode: str | None = None) -> FitDownscale | None:
    """The checked fit resolution of a user's settings: None fits at full resolution (the
    default); `mode` defaults to the reference's width-only resize."""
    if max_res is None:
        if mode is not None:
            raise UserError(f"The alignment downscale '{mode}' says how alignment_max_res "
                            "shrinks the maps for the fit, but no alignment_max_res was given; "
                            "set it too (1024 for Marigold's ETH3D tables), or drop the "
                            "downscale to fit at full resolution.")
        return None
    return FitDownscale(max_res, WIDTH_ONLY if mode is None else mode)


def check_fit_settings(alignment: str, downscale: FitDownscale | None) -> None:
    """An alignment resolution only means something when there is a fit."""
    if downscale is not None and alignment == NO_ALIGNMENT:
        raise UserError("An alignment resolution (alignment_max_res / --alignment-max-res) was "
                        "given with alignment 'none', which scores metric predictions without "
                        "any fit; drop the resolution, or choose the space of a least-squares "
                        "fit (depth, disparity or sqrt_disparity).")


def fit_scale_shift(pred: np.ndarray, target: np.ndarray, mask: np.ndarray,
                    downscale: FitDownscale | None = None) -> tuple[float, float]:
    """Least squares `scale * pred + shift ~= target` over `mask` on float32 inputs (as the
    reference; numpy solves in float64, the result is float32); with `downscale`, over the
    nearest-neighbour copies of the three maps."""
    if downscale is not None:
        pred, target, mask = (downscale.shrink(a) for a in (pred, target, mask))
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


def align(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, alignment: Space | str,
          downscale: FitDownscale | None = None) -> Alignment:
    """Fit `pred` (affine-invariant in the space `alignment`) to GT depth on `valid` pixels and
    return depth; alignment 'none' takes `pred` as metres.

    Disparity fits on pixels where GT and prediction are positive (as the reference); the
    sqrt-disparity fit uses every valid pixel, as DepthMaster's evaluation does. `downscale`
    fits on a smaller copy (see `FitDownscale`); the result is always full resolution.
    """
    alignment = check_alignment(getattr(alignment, "value", alignment))
    check_fit_settings(alignment, downscale)
    pred = pred.astype(np.float32, copy=False)
    if alignment == NO_ALIGNMENT:
        return Alignment(pred, 1.0, 0.0)
    space = Space(alignment)
    gt = gt.astype(np.float32, copy=False)
    if space is Space.DEPTH:
        scale, shift = fit_scale_shift(pred, gt, valid, downscale)
        return Alignment(pred * scale + shift, float(scale), float(shift))
    gt_disparity = inverse(gt)
    if space is Space.DISPARITY:
        mask = valid & (gt > 0) & (pred > 0)
        scale, shift = fit_scale_shift(pred, gt_disparity, mask, downscale)
        disparity = pred * scale + shift
    elif space is Space.SQRT_DISPARITY:
        mask = valid & (gt > 0)
        scale, shift = fit_scale_shift(pred, np.sqrt(gt_disparity), mask, downscale)
        disparity = (pred * scale + shift) ** 2
    else:
        raise UserError(f"No alignment is defined for the space '{space}'.")
    disparity = np.clip(disparity, MIN_DISPARITY, None)
    return Alignment(inverse(disparity), float(scale), float(shift))


def clip_prediction(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """The protocol's clip: to the dataset's [min, max] depth, then below at 1e-6."""
    return np.clip(np.clip(depth, float(min_depth), float(max_depth)), MIN_DEPTH, None)
