"""Metric-depth losses: the scale-invariant logarithmic loss Depth Anything V2's metric models are
fine-tuned with.

Shapes: prediction and target [B, 1, H, W] in metres; mask [B, 1, H, W] bool (True = valid) or
None. Masked pixels are never read (their values may be 0, inf or nan) and get no gradient.
Computed in float32 at least (float64 stays float64).
"""
from __future__ import annotations

import torch

from depthlab.losses.registry import register_loss

# Depth Anything V2, metric_depth/util/loss.py: `SiLogLoss(lambd=0.5)`, the value its metric
# fine-tuning (metric_depth/train.py) trains with.
SILOG_LAMBDA = 0.5
MIN_PREDICTION = 1e-6  # metres; a prediction of 0 has an infinite log, so it is clamped here


def silog(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
          lambd: float = SILOG_LAMBDA) -> torch.Tensor:
    """sqrt(mean(d^2) - lambd * mean(d)^2), d = log(prediction) - log(target), the means taken
    over the valid pixels of the whole batch (as Depth Anything V2 pools them).

    With `lambd` = 1 it is the standard deviation of the log ratio, blind to a global scale of
    the prediction; with `lambd` < 1 a wrong scale costs sqrt(1 - lambd) |mean(d)| or more, so
    the prediction must be metric. 0 when no pixel is valid. Its gradient is finite everywhere
    (0 where the loss is 0).
    """
    dtype = torch.promote_types(prediction.dtype, torch.float32)
    valid = (torch.ones_like(prediction, dtype=torch.bool) if mask is None
             else mask.bool().expand_as(prediction))
    count = valid.sum()
    safe_prediction = torch.where(valid, prediction.to(dtype), 1.0).clamp_min(MIN_PREDICTION)
    safe_target = torch.where(valid, target.to(dtype), 1.0)
    d = torch.where(valid, safe_prediction.log() - safe_target.log(), 0.0)
    mean = d.sum() / count.clamp_min(1)
    inner = (d.square().sum() / count.clamp_min(1) - lambd * mean.square()).clamp_min(0.0)
    positive = inner > 0
    return torch.where(positive, torch.where(positive, inner, 1.0).sqrt(), 0.0)


register_loss("silog")(silog)
