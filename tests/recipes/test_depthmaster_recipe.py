"""DepthMaster's recipe on tiny blocks: which terms each stage computes, how they are weighted,
what trains, and the Fourier block as a patch saved with the model."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from depthlab.data.batch import Batch, LabelledBatch
from depthlab.errors import UserError
from depthlab.heads.feature_alignment import FeatureAlignment
from depthlab.heads.fourier_enhancement import FourierEnhancement
from depthlab.models.backbone import small_backbone
from depthlab.models.codec import LatentCodec, small_vae
from depthlab.models.depth_model import DepthModel
from depthlab.models.freezing import freeze
from depthlab.models.modes import DirectLatentMode, E2EFTMode
from depthlab.models.surgery import InsertAfter
from depthlab.recipes.depthmaster import DepthMaster
from depthlab.targets import TargetEncoder
from depthlab.train.loop import check_parameter_groups

from fiffdepth_helpers import cell_mask, one_thread, reference_mse  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


class PooledEncoder(nn.Module):
    """A frozen stand-in for DINOv2: 6 channels of average-pooled colour features on a 4-px grid."""

    channels, patch_size = 6, 4

    def __init__(self):
        super().__init__()
        self.mix = nn.Conv2d(3, 6, 1)
        freeze(self)

    def forward(self, rgb):
        with torch.no_grad():
            return self.mix(F.avg_pool2d(rgb, 4))


def make_model(space: str = "sqrt_disparity", patches=()) -> DepthModel:
    torch.manual_seed(0)
    backbone = small_backbone(block_out_channels=(16, 32), cross_attention_dim=8,
                              attention_head_dim=4, norm_num_groups=8, patches=patches)
    codec = LatentCodec(small_vae(block_out_channels=(8, 16), norm_num_groups=8))
    return DepthModel(backbone, codec, DirectLatentMode(timestep=1.0, output_kind=space))


def stage1(**kwargs) -> DepthMaster:
    return DepthMaster(model=make_model(), target=TargetEncoder(space="sqrt_disparity"),
                       encoder=PooledEncoder(), alignment=FeatureAlignment, **kwargs)


def stage2(**kwargs) -> DepthMaster:
    fourier = InsertAfter(at="mid_block", module=FourierEnhancement, name="fourier")
    return DepthMaster(model=make_model(patches=[fourier]),
                       target=TargetEncoder(space="sqrt_disparity"), latent_weight=0.0,
                       alignment=None, pixel_weight=1.0, gradient_weight=1e-3, **kwargs)


def make_batch(size: int = 16) -> Batch:
    generator = torch.Generator().manual_seed(1)
    valid = torch.rand(2, 1, size, size, generator=generator) > 0.05
    return Batch(LabelledBatch(torch.rand(2, 3, size, size, generator=generator),
                               torch.rand(2, 1, size, size, generator=generator) * 5 + 1, valid))


def test_stage1_terms_are_the_masked_latent_mse_and_the_alignment():
    recipe, batch = stage1(alignment_weight=0.5), make_batch()
    output = recipe.losses(batch, torch.Generator().manual_seed(0))
    assert set(output.terms) == {"latent", "alignment"}
    data = batch.labelled
    with torch.no_grad():
        pixels = recipe.target.from_depth(data.depth, data.valid)
        label = recipe.model.codec.encode_depth(pixels)
        prediction = recipe.model.backbone(recipe.model.encode_rgb(data.rgb), 1.0)
    expected = reference_mse(prediction, label, cell_mask(data.valid, 2))
    assert torch.allclose(output.terms["latent"], expected, atol=1e-6)
    assert torch.allclose(output.total, output.terms["latent"] + 0.5 * output.terms["alignment"])


def test_the_projector_is_sized_from_the_mid_block_and_the_encoder():
    recipe = stage1()
    layers = [m for m in recipe.alignment.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in layers] == [(32, 6), (6, 6), (6, 6)]


def test_the_encoder_is_frozen_and_the_projector_trains():
    recipe = stage1()
    groups = recipe.parameter_groups()
    trained = {id(p) for g in groups for p in g.parameters}
    assert not any(id(p) in trained for p in recipe.encoder.parameters())
    assert all(id(p) in trained for p in recipe.alignment.parameters())
    check_parameter_groups(recipe, groups)
    recipe.losses(make_batch(), torch.Generator().manual_seed(0)).total.backward()
    assert all(p.grad is None for p in recipe.encoder.parameters())
    assert all(p.grad is not None for p in recipe.alignment.parameters())
    assert recipe.model.backbone.unet.mid_block.resnets[0].conv1.weight.grad is not None


def test_alignment_without_encoder_is_refused():
    with pytest.raises(UserError, match="DepthMaster.encoder"):
        DepthMaster(model=make_model(), target=TargetEncoder(space="sqrt_disparity"),
                    alignment=FeatureAlignment)


def test_a_recipe_without_terms_is_refused():
    with pytest.raises(UserError, match="no loss term"):
        DepthMaster(model=make_model(), target=TargetEncoder(space="sqrt_disparity"),
                    latent_weight=0.0)


def test_another_inference_mode_is_refused():
    model = make_model()
    model.mode = E2EFTMode()
    with pytest.raises(UserError, match="DirectLatentMode"):
        DepthMaster(model=model)


def test_the_timestep_is_the_modes():
    recipe = stage1()
    assert recipe.timestep == 1.0


def test_stage2_terms_are_pixel_mse_and_a_thousandth_of_the_gradient_loss():
    recipe, batch = stage2(), make_batch()
    assert recipe.uses_pixel_losses
    output = recipe.losses(batch, torch.Generator().manual_seed(0))
    assert set(output.terms) == {"pixel", "gradient"}
    data = batch.labelled
    with torch.no_grad():
        pixels = recipe.target.from_depth(data.depth, data.valid)
        latent = recipe.model.backbone(recipe.model.encode_rgb(data.rgb), 1.0)
        decoded = recipe.model.codec.decode_depth(latent)
    valid = data.valid.float()
    expected = ((decoded - pixels) ** 2 * valid).sum() / valid.sum()
    assert torch.allclose(output.terms["pixel"], expected, atol=1e-6)
    assert torch.allclose(output.total,
                          output.terms["pixel"] + 1e-3 * output.terms["gradient"])


def test_stage2_trains_through_the_decoder_into_the_fourier_block():
    recipe = stage2()
    assert not recipe.model.codec.vae.decoder.conv_out.weight.requires_grad
    recipe.losses(make_batch(), torch.Generator().manual_seed(0)).total.backward()
    fourier = recipe.model.backbone.unet.mid_block.fourier
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fourier.parameters())
    names = [n for n, _ in recipe.named_parameters()]
    assert any(n.startswith("model.backbone.unet.mid_block.fourier.") for n in names)


def test_stage1_has_no_pixel_terms():
    assert not stage1().uses_pixel_losses


def test_the_default_alignment_weight_is_one():
    output = stage1().losses(make_batch(), torch.Generator().manual_seed(0))
    assert torch.allclose(output.total, output.terms["latent"] + output.terms["alignment"])


def test_a_zero_alignment_weight_builds_no_alignment_head():
    assert stage1(alignment_weight=0.0).alignment is None


@pytest.mark.parametrize("pixel, gradient, terms", [(0.5, 0.0, {"pixel"}),
                                                    (0.0, 0.5, {"gradient"})])
def test_each_pixel_term_alone_puts_the_decoder_in_the_graph(pixel, gradient, terms):
    recipe = DepthMaster(model=make_model(), target=TargetEncoder(space="sqrt_disparity"),
                         latent_weight=0.0, pixel_weight=pixel, gradient_weight=gradient)
    assert recipe.uses_pixel_losses
    output = recipe.losses(make_batch(), torch.Generator().manual_seed(0))
    assert set(output.terms) == terms
    assert torch.allclose(output.total, (pixel + gradient) * next(iter(output.terms.values())))


def test_the_pixel_losses_see_the_decoded_prediction_the_normalised_gt_and_the_mask():
    recipe, batch = stage2(), make_batch()
    seen = []
    recipe.pixel_loss = recipe.gradient_loss = lambda p, t, m: seen.append((p, t, m)) or p.mean()
    recipe.losses(batch, torch.Generator().manual_seed(0))
    data = batch.labelled
    pixels = recipe.target.from_depth(data.depth, data.valid)
    assert len(seen) == 2
    for prediction, target, mask in seen:
        assert prediction.shape == (2, 1, 16, 16)
        assert torch.equal(target, pixels)
        assert torch.equal(mask, data.valid)


def test_panels_show_the_decoded_prediction_and_the_label():
    recipe, batch = stage1(), make_batch()
    assert recipe.losses(batch, torch.Generator().manual_seed(0)).panels == {}
    panels = recipe.losses(batch, torch.Generator().manual_seed(0), with_panels=True).panels
    assert set(panels) == {"synthetic/prediction", "synthetic/label"}
    data = batch.labelled
    with torch.no_grad():
        pixels = recipe.target.from_depth(data.depth, data.valid)
        prediction = recipe.model.backbone(recipe.model.encode_rgb(data.rgb), 1.0)
        unit = recipe.model.latent_to_unit(prediction)
    assert torch.allclose(panels["synthetic/label"].values, (pixels + 1.0) / 2.0)
    assert torch.allclose(panels["synthetic/prediction"].values, unit, atol=1e-6)
    assert all(p.kind.value == "sqrt_disparity" for p in panels.values())


def test_messages_name_the_bindings_exactly():
    with pytest.raises(UserError) as error:
        DepthMaster(model=make_model(), target=TargetEncoder(space="sqrt_disparity"),
                    alignment=FeatureAlignment)
    assert str(error.value).startswith(
        "DepthMaster.alignment (Feature Alignment) needs an external encoder to align to: bind "
        "DepthMaster.encoder (e.g. @dinov2_encoder() or @mini_teacher_encoder()).")
    with pytest.raises(UserError) as error:
        DepthMaster(model=make_model(), target=TargetEncoder(space="sqrt_disparity"),
                    latent_weight=0.0)
    assert str(error.value).startswith("DepthMaster has no loss term with a positive weight; set "
                                "latent_weight (stage 1) or pixel_weight (stage 2).")
    model = make_model()
    model.mode = E2EFTMode()
    with pytest.raises(UserError) as error:
        DepthMaster(model=model)
    assert "the model's mode is E2EFTMode;" in str(error.value)
    with pytest.raises(UserError) as error:
        stage1().losses(Batch(), torch.Generator().manual_seed(0))
    assert str(error.value).startswith("DepthMaster trains on labelled images only, but the batch has "
                                "none: bind MixedBatches.labelled.")
