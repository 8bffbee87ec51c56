"""SharpDepth's losses (docs/methods.md, SharpDepth): score distillation and the error-weighted
reconstruction.

`sds_x0` (score distillation in x0 form): the student's clean latent z_hat is noised, a frozen
diffusion teacher predicts the clean latent x0_hat from it, and the student is pulled towards it
by the gradient g = w(t) (z_hat - x0_hat), w(t) = 1 - abar_t. As in DreamFusion-style code the
gradient is injected through a detached target: loss = 0.5 * MSE(z_hat, stopgrad(z_hat - g)), so
d loss / d z_hat = g / N (N: the number of elements, MSE's mean) and the teacher gets no gradient.
The loss's value is 0.5 * mean(g^2), which says how far the two disagree; only its gradient
matters.

`error_weighted_l1` (reconstruction): L1 between the decoded prediction and the normalised metric
depth, each pixel weighted by the gating's error e, divided by the sum of e over the batch; pixels
with e = 0 do not count. SharpDepth weights by e; the ablation weights by 1 - e (pass 1 - e).

Shapes: latents [B, C, h, w]; maps and weights [B, 1, H, W]; `weight` of `sds_x0` a scalar or
[B] (per-sample w(t)). Computed in float32 at least.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from depthlab.losses.registry import register_loss


def _float(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def sds_x0(student: torch.Tensor, teacher: torch.Tensor,
           weight: torch.Tensor | float = 1.0) -> torch.Tensor:
    """0.5 * MSE(student, stopgrad(student - weight * (student - teacher)))."""
    student, teacher = _float(student), _float(teacher).detach()
    weight = torch.as_tensor(weight, dtype=student.dtype, device=student.device)
    if weight.ndim == 1:
        weight = weight.view(-1, *([1] * (student.ndim - 1)))
    gradient = weight * (student.detach() - teacher)
    return 0.5 * F.mse_loss(student, (student - gradient).detach())


def error_weighted_l1(prediction: torch.Tensor, target: torch.Tensor,
                      error: torch.Tensor) -> torch.Tensor:
    """sum(e |prediction - target|) / sum(e) over the batch; 0 when e sums to 0."""
    prediction, target, error = _float(prediction), _float(target), _float(error).detach()
    total = error.sum()
    weighted = (error * (prediction - target).abs()).sum()
    return torch.where(total > 0, weighted / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)


register_loss("sds_x0")(sds_x0)
register_loss("error_weighted_l1")(error_weighted_l1)
