"""E2E-FT's task losses: an affine-invariant L1 on depth and an angular loss on surface normals.

`affine_invariant_l1` (depth): per image, the ground truth in metres is clamped to its 2% and 98%
quantiles over the valid pixels; the decoded prediction is fitted to it by a closed-form least
squares scale and shift (gradients flow through the fit); the loss is the L1 between fitted
prediction and clamped GT, averaged over every valid pixel of the batch (E2E-FT's
`l1_loss(fitted[mask], target[mask])`), so images with more valid pixels weigh more.

`angular_normals` (normals): the mean angle, in radians, between the L2-normalised predicted and
target normals over every valid pixel of the batch.

Shapes: depth prediction and target [B, 1, H, W]; normals [B, 3, H, W]; mask [B, 1, H, W] bool
(True = valid) or None (all valid). Masked pixels are replaced by torch.where before they enter any
sum, so NaN or inf there changes neither value nor gradient (their gradient is 0). A batch
without valid pixels has loss 0. Both losses compute in float64 (float32 cancels in the fit's
determinant and rounds identical normals to angles of ~5e-4 rad) and return the prediction's
dtype (at least float32).
"""
from __future__ import annotations

import torch

from depthlab.losses.registry import register_loss
from depthlab.targets import masked_quantiles

# arccos is clamped to [-1 + eps, 1 - eps]: the dot product of two identical unit vectors is 1 up
# to a few float64 ulps (~1e-16), so it lands on the clamp and its gradient is exactly 0 instead
# of arccos'(1) = -inf. The price is a floor of arccos(1 - 1e-12) = 1.41e-6 rad on the loss.
ANGULAR_EPS = 1e-12
NORM_FLOOR = 1e-12  # as F.normalize: shorter vectors are divided by this instead of their length


def _valid(like: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The mask as bool [B, 1, H, W] (all True when None)."""
    if mask is None:
        return torch.ones_like(like[:, :1], dtype=torch.bool)
    return mask.to(torch.bool)


def _output_dtype(prediction: torch.Tensor) -> torch.dtype:
    return torch.promote_types(prediction.dtype, torch.float32)


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] vectors scaled to unit length along dim 1 (zero vectors stay zero)."""
    return vectors / torch.linalg.vector_norm(vectors, dim=1, keepdim=True).clamp_min(NORM_FLOOR)


def _fit(prediction: torch.Tensor, target: torch.Tensor,
         valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float64 least-squares fit; returns (scale [B], shift [B], masked prediction)."""
    p = torch.where(valid, prediction.to(torch.float64), 0.0)
    t = torch.where(valid, target.to(torch.float64), 0.0)
    dims = tuple(range(1, p.ndim))
    n = valid.sum(dims)
    count = n.clamp_min(1)  # a divisor that is never 0
    sum_p, sum_t, sum_pp = p.sum(dims), t.sum(dims), p.square().sum(dims)
    # Normal equations [[sum p^2, sum p], [sum p, n]] [scale, shift] = [sum p t, sum t], solved
    # by Cramer's rule. det = n sum p^2 - (sum p)^2 and the scale's numerator n sum p t - sum p
    # sum t are evaluated in the equal, cancellation-free forms n sum (p - mean p)^2 and
    # n sum (p - mean p) t.
    centred = torch.where(valid, p - (sum_p / count).view(-1, 1, 1, 1), 0.0)
    det = n * centred.square().sum(dims)
    # det <= 0 up to rounding (all valid predictions equal, one valid pixel, none): no fit.
    usable = det > torch.finfo(torch.float64).eps * sum_pp * n
    safe_det = torch.where(usable, det, 1.0)  # no 0/0 in the unused branch's gradient
    scale = torch.where(usable, n * (centred * t).sum(dims) / safe_det, 0.0)
    shift = torch.where(usable, (sum_t - scale * sum_p) / count, 0.0)
    return scale, shift, p


def least_squares_scale_shift(prediction: torch.Tensor, target: torch.Tensor,
                              mask: torch.Tensor | None = None
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, (scale [B], shift [B]) minimising sum over valid pixels of
    (scale * prediction + shift - target)^2, differentiable in `prediction`.

    The 2x2 normal equations are solved in closed form in float64 (float32 loses the
    determinant n sum p^2 - (sum p)^2 to cancellation on large, nearly flat maps). As in E2E-FT,
    a determinant <= 0 gives scale = shift = 0; here "0" includes rounding noise (det at most
    float64 eps * n * sum p^2), so a constant prediction or a single valid pixel always gives 0.
    Returned in the prediction's dtype (at least float32).
    """
    valid = _valid(prediction, mask)
    scale, shift, _ = _fit(prediction, target, valid)
    dtype = _output_dtype(prediction)
    return scale.to(dtype), shift.to(dtype)


def quantile_clamp(target: torch.Tensor, mask: torch.Tensor | None = None, low: float = 0.02,
                   high: float = 0.98) -> torch.Tensor:
    """`target` [B, 1, H, W] clamped per image to its `low` and `high` quantiles over the valid
    pixels (E2E-FT's outlier removal); invalid pixels keep their values. The quantiles come from
    `masked_quantiles` in float32, so a float64 target meets float32-rounded bounds."""
    valid = _valid(target, mask)
    q_low, q_high = masked_quantiles(target, valid, low, high)
    shape = (-1,) + (1,) * (target.ndim - 1)
    q_low, q_high = q_low.to(target.dtype).view(shape), q_high.to(target.dtype).view(shape)
    return torch.where(valid, torch.minimum(torch.maximum(target, q_low), q_high), target)


def affine_invariant_l1(prediction: torch.Tensor, target: torch.Tensor,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """E2E-FT's depth loss: L1 between the least-squares scaled and shifted prediction and the
    2/98%-quantile-clamped GT (metres), averaged over every valid pixel of the batch."""
    valid = _valid(prediction, mask)
    clamped = quantile_clamp(target, valid)
    scale, shift, p = _fit(prediction, clamped, valid)
    fitted = scale.view(-1, 1, 1, 1) * p + shift.view(-1, 1, 1, 1)  # float64
    error = torch.where(valid, fitted - clamped, 0.0).abs()
    loss = error.sum() / valid.sum().clamp_min(1)
    return loss.to(_output_dtype(prediction))


def angular_normals(prediction: torch.Tensor, target: torch.Tensor,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """E2E-FT's normals loss: mean over valid pixels of arccos(clamp(<n, n*>, -1 + eps, 1 - eps))
    with n, n* the L2-normalised prediction and target [B, 3, H, W] (radians; eps =
    `ANGULAR_EPS`). A valid pixel whose prediction or target is the zero vector counts pi / 2."""
    valid = _valid(prediction, mask)
    n = _unit(torch.where(valid, prediction.to(torch.float64), 0.0))
    n_star = _unit(torch.where(valid, target.to(torch.float64), 0.0))
    cosine = (n * n_star).sum(1, keepdim=True).clamp(-1.0 + ANGULAR_EPS, 1.0 - ANGULAR_EPS)
    angle = torch.where(valid, torch.arccos(cosine), 0.0)
    loss = angle.sum() / valid.sum().clamp_min(1)
    return loss.to(_output_dtype(prediction))


# Registered by call rather than decorator, so that mutation testing (which skips decorated
# functions) reaches their bodies.
register_loss("affine_invariant_l1")(affine_invariant_l1)
register_loss("angular_normals")(angular_normals)
