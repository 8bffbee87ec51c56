"""Scale-and-shift-invariant losses (MiDaS) for networks that predict affine-invariant maps.

Two alignments, each with an MAE and a multi-scale gradient-matching loss:
- least squares (`ssi_mae`, `ssi_gradient_matching`): the prediction is fitted to the target.
  The fitted scale may be negative, so an inverted map (near and far swapped) scores as well as a
  right one: a network can converge to it.
- median and mean absolute deviation (`ssi_mae_median`, `ssi_gradient_matching_median`): MiDaS's
  robust variant, which Depth Anything trains with: prediction and target are each normalised to
  (x - median) / mean |x - median| and then compared. The normalising scale is positive, so the
  orientation of the map counts. Images without valid pixels normalise to zero.

Shapes: prediction and target [B, 1, H, W]; mask [B, 1, H, W] bool (True = valid) or None.
For the least-squares losses, per image, the scale s and shift t minimising the squared error sum(m (s p + t - g)^2) over the
valid pixels are solved in closed form, and gradients flow through them (as in MiDaS), so the
network is never asked for a particular scale or offset. Losses then compare the aligned
prediction s p + t with the target. Masked pixels have no effect on the fit, the value or the
gradient; an image whose valid predictions are all equal gets s = 0 (t = the target's mean).
Computed in float32 at least (float64 inputs stay float64).
"""
from __future__ import annotations

import torch

from depthlab.losses.latent import gradient_matching
from depthlab.losses.registry import register_loss

GRADIENT_SCALES = 4  # MiDaS: gradient matching at full, 1/2, 1/4 and 1/8 resolution


def _weights(prediction: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(prediction)
    return mask.to(prediction.dtype).expand_as(prediction)


def _working_dtype(tensor: torch.Tensor) -> torch.dtype:
    return torch.promote_types(tensor.dtype, torch.float32)


def align_scale_shift(prediction: torch.Tensor, target: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """s p + t per image, with (s, t) the least-squares fit of `prediction` to `target` over the
    valid pixels (differentiable in `prediction`). Invalid pixels hold t (their values, which may
    be inf or nan, are never read)."""
    dtype = _working_dtype(prediction)
    weights = _weights(prediction, mask).to(dtype)
    valid = weights > 0
    p = torch.where(valid, prediction.to(dtype), 0.0)  # masked values may be inf or nan
    g = torch.where(valid, target.to(dtype), 0.0)
    dims = tuple(range(1, prediction.ndim))
    count = weights.sum(dims, keepdim=True).clamp_min(1.0)
    mean_p = (weights * p).sum(dims, keepdim=True) / count
    mean_g = (weights * g).sum(dims, keepdim=True) / count
    centred = torch.where(valid, p - mean_p, 0.0)
    variance = (weights * centred.square()).sum(dims, keepdim=True)
    covariance = (weights * centred * (g - mean_g)).sum(dims, keepdim=True)
    # Equal predictions (up to rounding, measured against the map's own energy) carry no scale.
    energy = (weights * p.square()).sum(dims, keepdim=True)
    usable = variance > torch.finfo(dtype).eps * energy
    scale = torch.where(usable, covariance / variance.clamp_min(torch.finfo(dtype).tiny), 0.0)
    return scale * (p - mean_p) + mean_g  # p, not prediction: no 0 * inf in the gradient


def scale_shift_invariant_mae(prediction: torch.Tensor, target: torch.Tensor,
                              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error of the per-image least-squares aligned prediction, over every valid
    pixel of the batch (MiDaS's scale-and-shift-invariant loss, with a least-squares fit)."""
    aligned = align_scale_shift(prediction, target, mask)
    weights = _weights(aligned, mask).to(aligned.dtype)
    error = torch.where(weights > 0, aligned - target.to(aligned.dtype), 0.0).abs()
    return (weights * error).sum() / weights.sum().clamp_min(1.0)


def scale_shift_invariant_gradient(prediction: torch.Tensor, target: torch.Tensor,
                                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """MiDaS's multi-scale gradient matching on the residual of the aligned prediction: the sum
    over 4 scales (every 2^k-th pixel) of `gradient_matching`, which sharpens edges."""
    aligned = align_scale_shift(prediction, target, mask)
    return _multiscale_gradient(aligned, target.to(aligned.dtype), mask)


def normalise_median(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per image, (x - median) / mean |x - median| over the valid pixels (the lower median for an
    even count, as torch's); 0 at invalid pixels and in images without valid pixels or spread."""
    dtype = _working_dtype(values)
    valid = _weights(values, mask) > 0
    x = torch.where(valid, values.to(dtype), float("nan")).flatten(1)
    median = x.nanmedian(dim=1).values.nan_to_num(0.0)
    shape = (-1,) + (1,) * (values.ndim - 1)
    centred = torch.where(valid, values.to(dtype) - median.view(shape), 0.0)
    count = valid.flatten(1).sum(1).clamp_min(1)
    spread = (centred.abs().flatten(1).sum(1) / count).view(shape)
    return torch.where(spread > 0, centred / spread.clamp_min(torch.finfo(dtype).tiny), 0.0)


def median_normalised_mae(prediction: torch.Tensor, target: torch.Tensor,
                          mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference of the median/MAD-normalised prediction and target over every
    valid pixel of the batch (MiDaS's robust loss, Depth Anything's affine-invariant loss)."""
    difference = normalise_median(prediction, mask) - normalise_median(target, mask)
    weights = _weights(difference, mask).to(difference.dtype)
    return (weights * difference.abs()).sum() / weights.sum().clamp_min(1.0)


def median_normalised_gradient(prediction: torch.Tensor, target: torch.Tensor,
                               mask: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-scale gradient matching of the median/MAD-normalised prediction and target."""
    normalised = normalise_median(prediction, mask)
    return _multiscale_gradient(normalised, normalise_median(target, mask), mask)


def _multiscale_gradient(aligned: torch.Tensor, target: torch.Tensor,
                         mask: torch.Tensor | None) -> torch.Tensor:
    mask = torch.ones_like(aligned, dtype=torch.bool) if mask is None else mask.expand_as(aligned)
    total = aligned.new_zeros(())
    for level in range(GRADIENT_SCALES):  # as MiDaS: every scale, a one-pixel grid adds 0
        step = 2 ** level
        total = total + gradient_matching(aligned[..., ::step, ::step],
                                          target[..., ::step, ::step], mask[..., ::step, ::step])
    return total


# Registered by call rather than decorator, so that mutation testing (which skips decorated
# functions) reaches their bodies.
register_loss("ssi_mae")(scale_shift_invariant_mae)
register_loss("ssi_gradient_matching")(scale_shift_invariant_gradient)
register_loss("ssi_mae_median")(median_normalised_mae)
register_loss("ssi_gradient_matching_median")(median_normalised_gradient)
