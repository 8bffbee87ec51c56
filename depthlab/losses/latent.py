"""Latent-space losses of FiffDepth and the diffusion trajectory term (all pure functions).

Shapes: prediction and target [B, C, h, w]; mask [B, 1, h, w] bool (True = valid) or None.
Every loss is a mean over valid elements, so masked-out cells have no effect on value or gradient.
"""
from __future__ import annotations

import torch

from depthlab.losses.registry import register_loss


def _weights(prediction: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(prediction[:, :1])
    return mask.to(prediction.dtype)


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    weights = weights.expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def latent_mae(prediction: torch.Tensor, target: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error over valid latent cells."""
    weights = _weights(prediction, mask)
    diff = torch.where(weights.bool(), prediction - target, 0.0)
    return _masked_mean(diff.abs(), weights)


def latent_mse(prediction: torch.Tensor, target: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over valid latent cells (also the v-prediction trajectory loss)."""
    weights = _weights(prediction, mask)
    diff = torch.where(weights.bool(), prediction - target, 0.0)  # mask first: no inf * 0
    return _masked_mean(diff.square(), weights)


def gradient_matching(prediction: torch.Tensor, target: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """MiDaS gradient matching on the residual R = prediction - target.

    mean(|grad_x R| + |grad_y R|), where a finite difference counts only if both of its cells are
    valid, normalised by the number of valid cells (as in MiDaS). Adding a constant to the
    prediction leaves it unchanged.
    """
    weights = _weights(prediction, mask)
    residual = torch.where(weights.bool(), prediction - target, 0.0)
    grad_x = (residual[..., :, 1:] - residual[..., :, :-1]).abs()
    grad_y = (residual[..., 1:, :] - residual[..., :-1, :]).abs()
    valid_x = (weights[..., :, 1:] * weights[..., :, :-1]).expand_as(grad_x)
    valid_y = (weights[..., 1:, :] * weights[..., :-1, :]).expand_as(grad_y)
    total = (grad_x * valid_x).sum() + (grad_y * valid_y).sum()
    return total / weights.expand_as(prediction).sum().clamp_min(1.0)


def v_prediction_mse(prediction: torch.Tensor, target: torch.Tensor,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """|| v_t - UNet(b_t, t) ||^2, the trajectory-preservation loss (mean over valid cells)."""
    return latent_mse(prediction, target, mask)


# Registered by call rather than decorator, so that mutation testing (which skips decorated
# functions) reaches their bodies.
register_loss("latent_mae")(latent_mae)
register_loss("latent_mse")(latent_mse)
register_loss("gradient_matching")(gradient_matching)
register_loss("v_prediction_mse")(v_prediction_mse)
