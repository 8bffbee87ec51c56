"""A tiny FiffDepth and its terms re-derived in plain torch (docs/methods.md), for its tests."""
from __future__ import annotations

import pytest
import torch

from depthlab.data.batch import Batch, LabelledBatch, UnlabelledBatch
from depthlab.models.backbone import small_backbone
from depthlab.models.codec import LatentCodec, small_vae
from depthlab.models.depth_model import DepthModel
from depthlab.models.modes import DirectLatentMode
from depthlab.models.output_kind import OutputKind
from depthlab.recipes.fiffdepth import FiffDepth
from depthlab.teachers.base import Teacher


@pytest.fixture(scope="module")
def one_thread():
    """Import with `pytestmark = pytest.mark.usefixtures("one_thread")`: the tiny UNet runs
    faster on one thread, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class MeanTeacher(Teacher):
    output_kind = OutputKind.DISPARITY

    def predict(self, rgb):
        return rgb.mean(1, keepdim=True) + 0.1


def make_recipe(**kwargs) -> FiffDepth:
    torch.manual_seed(0)
    model = DepthModel(small_backbone(block_out_channels=(16, 32), cross_attention_dim=8,
                                      attention_head_dim=4, norm_num_groups=8),
                       LatentCodec(small_vae(block_out_channels=(8, 16), norm_num_groups=8)),
                       DirectLatentMode())
    return FiffDepth(model=model, teacher=kwargs.pop("teacher", MeanTeacher()), **kwargs)


def make_batch(size: int = 16, seed: int = 1) -> Batch:
    """Two synthetic images (about a third of their latent cells invalid) and two real ones."""
    generator = torch.Generator().manual_seed(seed)
    valid = torch.rand(2, 1, size, size, generator=generator) > 0.1
    return Batch(LabelledBatch(torch.rand(2, 3, size, size, generator=generator),
                               torch.rand(2, 1, size, size, generator=generator) * 5 + 1, valid),
                 UnlabelledBatch(torch.rand(2, 3, size, size, generator=generator)))


# --- the paper's formulas, written out with explicit masked sums and counts ----------------------

def cell_mask(valid: torch.Tensor, factor: int) -> torch.Tensor:
    """[B, 1, H, W] pixel validity -> [B, 1, H/f, W/f]: a cell is valid iff all its pixels are."""
    b, _, height, width = valid.shape
    cells = valid.reshape(b, 1, height // factor, factor, width // factor, factor)
    return cells.all(dim=5).all(dim=3)


def _elements(prediction: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Float 0/1 weights of shape `prediction`: a [B, 1, h, w] cell mask repeated over channels."""
    if valid is None:
        return torch.ones_like(prediction)
    return valid.expand_as(prediction).to(prediction.dtype)


def reference_mae(prediction, target, valid=None) -> torch.Tensor:
    """sum over valid elements of |p - t|, divided by the number of valid elements."""
    weights = _elements(prediction, valid)
    return ((prediction - target).abs() * weights).sum() / weights.sum().clamp_min(1.0)


def reference_mse(prediction, target, valid=None) -> torch.Tensor:
    """sum over valid elements of (p - t)^2, divided by the number of valid elements."""
    weights = _elements(prediction, valid)
    return ((prediction - target) ** 2 * weights).sum() / weights.sum().clamp_min(1.0)


def reference_gradient_matching(prediction, target, valid=None) -> torch.Tensor:
    """sum of |dx R| + |dy R| over differences whose two cells are valid, divided by the number of
    valid elements (R = p - t)."""
    weights = _elements(prediction, valid)
    residual = prediction - target
    pair_x = weights[..., :, 1:] * weights[..., :, :-1]
    pair_y = weights[..., 1:, :] * weights[..., :-1, :]
    total = ((residual[..., :, 1:] - residual[..., :, :-1]).abs() * pair_x).sum() \
        + ((residual[..., 1:, :] - residual[..., :-1, :]).abs() * pair_y).sum()
    return total / weights.sum().clamp_min(1.0)


def reference_trajectory_sample(x0, label, alphas_cumprod, gamma, generator, timestep_range):
    """(b_t, t, v_t): b0 = gamma x0 + (1 - gamma) d_gt; eps then t drawn from `generator`."""
    b0 = gamma * x0 + (1.0 - gamma) * label
    eps = torch.randn(b0.shape, generator=generator)
    t = torch.randint(timestep_range[0], timestep_range[1], (len(b0),), generator=generator)
    abar = alphas_cumprod[t].to(torch.float32).view(-1, 1, 1, 1)
    b_t = abar.sqrt() * b0 + (1.0 - abar).sqrt() * eps
    v_t = abar.sqrt() * eps - (1.0 - abar).sqrt() * b0
    return b_t, t, v_t


@torch.no_grad()
def separate_pass_terms(recipe: FiffDepth, batch: Batch, seed: int, *, gamma: float = 0.5,
                        mae_weight: float = 1.0, gradient_weight: float = 0.5,
                        trajectory_weight: float = 0.2, mask_trajectory: bool = True,
                        timestep_range: tuple[int, int] = (1, 1000)) -> dict[str, torch.Tensor]:
    """t0, trajectory, t_minus_1 and total from methods.md, one UNet pass per use, with the given
    bindings (defaults: the paper's), drawing eps and t from `seed` in the recipe's order.

    Only the recipe's frozen encoders, its teacher, its UNet and its schedule's `alphas_cumprod`
    are used; every blend, noising, mask and loss is written out here.
    """
    model, data = recipe.model, batch.labelled
    backbone = model.backbone

    def pair(prediction, label, valid):
        return (mae_weight * reference_mae(prediction, label, valid)
                + gradient_weight * reference_gradient_matching(prediction, label, valid))

    x0 = model.encode_rgb(data.rgb)
    label = model.codec.encode_depth(recipe.target.from_depth(data.depth, data.valid))
    valid = cell_mask(data.valid, data.rgb.shape[-1] // x0.shape[-1])
    t0 = pair(backbone(x0, 0.0), label, valid)
    generator = torch.Generator().manual_seed(seed)
    b_t, t, v_t = reference_trajectory_sample(x0, label, recipe.schedule.alphas_cumprod, gamma,
                                              generator, timestep_range)
    trajectory = reference_mse(backbone(b_t, t.float()), v_t,
                               valid if mask_trajectory else None)
    real = batch.unlabelled.rgb
    d0_real = backbone(model.encode_rgb(real), 0.0)
    # the pseudo-label is an input here; some label choices fit it to the student's d0
    student = {"student": model.codec.decode_depth(d0_real)} \
        if getattr(recipe.target, "needs_student", False) else {}
    real_label = model.codec.encode_depth(recipe.target.from_teacher(
        recipe.teacher(real), recipe.teacher.output_kind.space, **student))
    t_minus_1 = pair(backbone(d0_real, -1.0), real_label, None)
    return {"t0": t0, "trajectory": trajectory, "t_minus_1": t_minus_1,
            "total": t0 + t_minus_1 + trajectory_weight * trajectory}
