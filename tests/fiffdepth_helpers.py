"""A tiny FiffDepth and its terms written as separate UNet passes, shared by the recipe's tests."""
from __future__ import annotations

import torch

from depthlab.data.batch import Batch
from depthlab.losses.latent import gradient_matching, latent_mae, latent_mse
from depthlab.models.backbone import small_backbone
from depthlab.models.codec import LatentCodec, small_vae
from depthlab.models.depth_model import DepthModel
from depthlab.models.modes import DirectLatentMode
from depthlab.models.output_kind import OutputKind
from depthlab.recipes.fiffdepth import FiffDepth
from depthlab.targets import latent_valid_mask
from depthlab.teachers.base import Teacher


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


@torch.no_grad()
def separate_pass_terms(recipe: FiffDepth, batch: Batch, seed: int) -> dict[str, torch.Tensor]:
    """t0, trajectory and t_minus_1 at the paper's weights (gamma 0.5, l_gm 0.5), one UNet pass
    per use, drawing noise and timesteps as the recipe does from `seed`."""
    model, data = recipe.model, batch.labelled
    backbone = model.backbone
    x0 = model.encode_rgb(data.rgb)
    label = model.codec.encode_depth(recipe.target.from_depth(data.depth, data.valid))
    mask = latent_valid_mask(data.valid, model.codec.downsample_factor)
    d0 = backbone(x0, 0.0)
    t0 = latent_mae(d0, label, mask) + 0.5 * gradient_matching(d0, label, mask)
    generator = torch.Generator().manual_seed(seed)
    blended = 0.5 * x0 + 0.5 * label
    noise = torch.randn(blended.shape, generator=generator)
    t = torch.randint(1, 1000, (len(blended),), generator=generator)
    abar = recipe.schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    noisy = abar.sqrt() * blended + (1 - abar).sqrt() * noise
    v = abar.sqrt() * noise - (1 - abar).sqrt() * blended
    trajectory = latent_mse(backbone(noisy, t.float()), v, mask)
    real_x0 = model.encode_rgb(batch.unlabelled.rgb)
    pseudo = recipe.target.from_teacher(recipe.teacher(batch.unlabelled.rgb), "disparity")
    real_label = model.codec.encode_depth(pseudo)
    filtered = backbone(backbone(real_x0, 0.0), -1.0)
    t_minus_1 = latent_mae(filtered, real_label) + 0.5 * gradient_matching(filtered, real_label)
    return {"t0": t0, "trajectory": trajectory, "t_minus_1": t_minus_1}
