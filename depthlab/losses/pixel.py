"""Pixel-space losses on decoded maps (DepthMaster, docs/methods.md, stage 2).

Shapes: prediction and target [B, 1, H, W]; mask [B, 1, H, W] bool (True = valid) or None.
Masked pixels are never read (their values may be inf or nan) and get no gradient. Computed in
float32 at least (float64 stays float64).
"""
from __future__ import annotations

from typing import Callable

import torch

from depthlab.losses.registry import register_loss

RELEASE_HUBER_DELTA = 0.2

# The 4 directions as (first, second) index pairs of [..., rows, cols]; d = R[first] - R[second].
_ALL, _TAIL, _HEAD = slice(None), slice(1, None), slice(None, -1)
DIRECTIONS = {
    "x": ((_ALL, _TAIL), (_ALL, _HEAD)),        # R[i, j+1] - R[i, j]
    "y": ((_TAIL, _ALL), (_HEAD, _ALL)),        # R[i+1, j] - R[i, j]
    "45": ((_HEAD, _TAIL), (_TAIL, _HEAD)),     # R[i, j+1] - R[i+1, j] (up and right)
    "135": ((_TAIL, _TAIL), (_HEAD, _HEAD)),    # R[i+1, j+1] - R[i, j] (down and right)
}


def _valid(prediction: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(prediction, dtype=torch.bool)
    return mask.bool().expand_as(prediction)


def _residual(prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    dtype = torch.promote_types(prediction.dtype, torch.float32)
    return torch.where(valid, prediction.to(dtype) - target.to(dtype), 0.0)


def pixel_mse(prediction: torch.Tensor, target: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the valid pixels of the batch."""
    valid = _valid(prediction, mask)
    return _residual(prediction, target, valid).square().sum() / valid.sum().clamp_min(1)


def release_huber(d: torch.Tensor, delta: float = RELEASE_HUBER_DELTA) -> torch.Tensor:
    """delta |d| for |d| <= delta, (d^2 + delta^2) / 2 above: the release's inverted "Huber"
    (linear below delta, quadratic above), made continuous.

    The release computes delta |d| + delta^2 / 2 below and d^2 / 2 above, which jumps down by
    delta^2 at |d| = delta and is delta^2 / 2 at d = 0. Both branches here differ from it by a
    constant, so the gradient (delta sign(d) below, d above) is exactly the release's.
    """
    size = d.abs()
    return torch.where(size <= delta, delta * size, 0.5 * (d.square() + delta ** 2))


def _four_direction(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
                    penalty: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Mean over the 4 directions of the mean of `penalty(d)` over that direction's valid pairs,
    d the difference of the residual R = prediction - target between the pair's two pixels."""
    valid = _valid(prediction, mask)
    residual = _residual(prediction, target, valid)
    total = residual.new_zeros(())
    for first, second in DIRECTIONS.values():
        pair_valid = valid[..., first[0], first[1]] & valid[..., second[0], second[1]]
        d = residual[..., first[0], first[1]] - residual[..., second[0], second[1]]
        total = total + torch.where(pair_valid, penalty(d), 0.0).sum() / \
            pair_valid.sum().clamp_min(1)
    return total / len(DIRECTIONS)


def four_direction_gradient(prediction: torch.Tensor, target: torch.Tensor,
                            mask: torch.Tensor | None = None) -> torch.Tensor:
    """DepthMaster's gradient loss: |d| for finite differences d of the residual in 4 directions
    (x, y, 45 and 135 degrees), each pair counted only if both pixels are valid.

    Normalisation (the paper gives only "4 directions"): per direction, the mean over its valid
    pairs in the whole batch; then the plain mean of the 4 directions, a direction without valid
    pairs counting as 0. Adding a constant to the prediction leaves it unchanged.
    """
    return _four_direction(prediction, target, mask, torch.abs)


def four_direction_gradient_release_huber(prediction: torch.Tensor, target: torch.Tensor,
                                          mask: torch.Tensor | None = None) -> torch.Tensor:
    """`four_direction_gradient` with `release_huber` (delta 0.2) in place of |d|: the release's
    quirk (quadratic above delta, linear below), kept as a named option, not the default."""
    return _four_direction(prediction, target, mask, release_huber)


# Registered by call rather than decorator, so that mutation testing (which skips decorated
# functions) reaches their bodies.
register_loss("pixel_mse")(pixel_mse)
register_loss("four_direction_gradient")(four_direction_gradient)
register_loss("four_direction_gradient_release_huber")(four_direction_gradient_release_huber)
