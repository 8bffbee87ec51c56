"""Feature-alignment losses (DepthMaster's Feature Alignment, docs/methods.md, stage 1).

They compare projected UNet features with a frozen encoder's tokens, per spatial position, over
the channel dimension. Shapes: prediction and target [B, D, h, w]; mask [B, 1, h, w] bool
(True = valid) or None. Masked positions are never read and have no effect on value or gradient;
a batch without valid positions gives 0. Computed in float32 at least (float64 stays float64).
"""
from __future__ import annotations

import torch

from depthlab.losses.registry import register_loss

COSINE_EPS = 1e-8  # floor of |p| |g|: vanishing features count as orthogonal, not as nan


def _valid(prediction: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(prediction[:, :1], dtype=torch.bool)
    return mask.bool()


def _working(tensor: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    dtype = torch.promote_types(tensor.dtype, torch.float32)
    return torch.where(valid, tensor.to(dtype), 0.0)  # masked values may be inf or nan


def _mean_over_positions(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of per-position `values` [B, 1, h, w] over the valid positions."""
    valid = valid.expand_as(values)
    return torch.where(valid, values, 0.0).sum() / valid.sum().clamp_min(1)


def alignment_kl(prediction: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(p || q) with p = softmax(target) and q = softmax(prediction) over the channels, as the
    DepthMaster release's `F.kl_div(log_softmax(pred), softmax(target), reduction='mean')`.

    That 'mean' divides by every element, B * D * h * w, not by B ('batchmean'): the value is the
    mean over valid positions of sum_c p (log p - log q), divided by D. Both sides go through
    log_softmax, so no log of an underflowed probability is taken. Softmax ignores a constant
    added to all channels of a position, and so does the loss.
    """
    valid = _valid(prediction, mask)
    log_q = _working(prediction, valid).log_softmax(dim=1)
    log_p = _working(target, valid).log_softmax(dim=1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(dim=1, keepdim=True)
    return _mean_over_positions(per_position, valid) / prediction.shape[1]


def alignment_cosine(prediction: torch.Tensor, target: torch.Tensor,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over valid positions of 1 - cos(prediction, target) over the channels.

    Zero when the features are positive multiples of each other (the length of a feature is not
    compared), 2 when opposite; cos = p.g / max(|p| |g|, COSINE_EPS), so a zero feature scores 1.
    """
    valid = _valid(prediction, mask)
    p, g = _working(prediction, valid), _working(target, valid)
    norms = p.norm(dim=1, keepdim=True) * g.norm(dim=1, keepdim=True)
    cosine = (p * g).sum(dim=1, keepdim=True) / norms.clamp_min(COSINE_EPS)
    return _mean_over_positions(1.0 - cosine, valid)


# Registered by call rather than decorator, so that mutation testing (which skips decorated
# functions) reaches their bodies.
register_loss("alignment_kl")(alignment_kl)
register_loss("alignment_cosine")(alignment_cosine)
