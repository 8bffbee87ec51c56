"""FiffDepth's losses: the terms of methods.md, computed with two batched UNet passes."""
import pytest
import torch

from depthlab.data.batch import Batch, LabelledBatch, UnlabelledBatch
from depthlab.heads.fiffdepth_filter import TMinusOneFilter
from depthlab.inference.modes import DirectLatentMode
from depthlab.losses.latent import gradient_matching, latent_mae, latent_mse
from depthlab.models.backbone import small_backbone
from depthlab.models.codec import LatentCodec, small_vae
from depthlab.models.depth_model import DepthModel
from depthlab.recipes.fiffdepth import FiffDepth
from depthlab.targets import Space, latent_valid_mask
from depthlab.teachers.base import Teacher


class MeanTeacher(Teacher):
    output_space = Space.DISPARITY

    def predict(self, rgb):
        return rgb.mean(1, keepdim=True) + 0.1


def make_recipe(**kwargs) -> FiffDepth:
    torch.manual_seed(0)
    model = DepthModel(small_backbone(block_out_channels=(16, 32), cross_attention_dim=8,
                                      attention_head_dim=4, norm_num_groups=8),
                       LatentCodec(small_vae(block_out_channels=(8, 16), norm_num_groups=8)),
                       DirectLatentMode())
    return FiffDepth(model=model, teacher=kwargs.pop("teacher", MeanTeacher()), **kwargs)


def make_batch() -> Batch:
    generator = torch.Generator().manual_seed(1)
    valid = torch.rand(2, 1, 16, 16, generator=generator) > 0.1
    return Batch(LabelledBatch(torch.rand(2, 3, 16, 16, generator=generator),
                               torch.rand(2, 1, 16, 16, generator=generator) * 5 + 1, valid),
                 UnlabelledBatch(torch.rand(2, 3, 16, 16, generator=generator)))


def test_terms_match_the_paper_written_as_separate_passes():
    recipe, batch = make_recipe(), make_batch()
    out = recipe.losses(batch, torch.Generator().manual_seed(7))
    model, data = recipe.model, batch.labelled
    with torch.no_grad():
        x0 = model.encode_rgb(data.rgb)
        label = model.codec.encode_depth(recipe.target.from_depth(data.depth, data.valid))
        mask = latent_valid_mask(data.valid, model.codec.downsample_factor)
        d0 = model.backbone(x0, 0.0)
        t0 = latent_mae(d0, label, mask) + 0.5 * gradient_matching(d0, label, mask)
        generator = torch.Generator().manual_seed(7)
        blended = 0.5 * x0 + 0.5 * label
        noise = torch.randn(blended.shape, generator=generator)
        t = torch.randint(1, 1000, (2,), generator=generator)
        abar = recipe.schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = abar.sqrt() * blended + (1 - abar).sqrt() * noise
        v = abar.sqrt() * noise - (1 - abar).sqrt() * blended
        trajectory = latent_mse(model.backbone(noisy, t.float()), v, mask)
        real_x0 = model.encode_rgb(batch.unlabelled.rgb)
        pseudo = recipe.target.from_teacher(recipe.teacher(batch.unlabelled.rgb), "disparity")
        real_label = model.codec.encode_depth(pseudo)
        filtered = model.backbone(model.backbone(real_x0, 0.0), -1.0)
        t_minus_1 = latent_mae(filtered, real_label) + 0.5 * gradient_matching(filtered, real_label)
    assert torch.allclose(out.terms["t0"], t0, rtol=1e-4, atol=1e-5)
    assert torch.allclose(out.terms["trajectory"], trajectory, rtol=1e-4, atol=1e-5)
    assert torch.allclose(out.terms["t_minus_1"], t_minus_1, rtol=1e-4, atol=1e-5)
    assert torch.allclose(out.total, t0 + t_minus_1 + 0.2 * trajectory, rtol=1e-4, atol=1e-5)


def test_detached_filter_input_keeps_teacher_gradients_off_the_t0_pass():
    recipe = make_recipe(filter_head=TMinusOneFilter(detach_input=True), trajectory_weight=0.0)
    batch = Batch(None, make_batch().unlabelled)
    out = recipe.losses(batch, torch.Generator().manual_seed(0))
    assert set(out.terms) == {"t_minus_1"}
    out.total.backward()  # still reaches the UNet through the t = -1 pass
    assert any(p.grad is not None for p in recipe.model.backbone.parameters())


@pytest.mark.parametrize("kwargs, expected", [
    ({"teacher": None}, {"t0", "trajectory"}),
    ({"filter_head": TMinusOneFilter(enabled=False)}, {"t0", "trajectory", "teacher_on_t0"}),
    ({"trajectory_weight": 0.0}, {"t0", "t_minus_1"}),
])
def test_ablation_switches_change_the_terms(kwargs, expected):
    out = make_recipe(**kwargs).losses(make_batch(), torch.Generator().manual_seed(0),
                                       with_panels=True)
    assert set(out.terms) == expected
    assert all(p.min() >= 0 and p.max() <= 1 for p in out.panels.values())


def test_codec_stays_frozen_and_unet_learns():
    recipe = make_recipe()
    recipe.losses(make_batch(), torch.Generator().manual_seed(0)).total.backward()
    assert all(p.grad is None for p in recipe.model.codec.parameters())
    assert recipe.model.backbone.unet.conv_in.weight.grad.abs().sum() > 0
