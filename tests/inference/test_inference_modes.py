"""Inference modes: the direct path is unchanged, and each method's pass does what it says."""
from __future__ import annotations

import pytest
import torch

from depthlab.errors import UserError
from depthlab.models.modes import (E2EFTMode, LotusDMode, LotusGMode, MarigoldMode, ModeInputs,
                                   per_image_noise,
                                  clean_latent, lotus_task_embedding)
from depthlab.testing.tiny_models import unet
from depthlab.models.backbone import UNetBackbone
from depthlab.models.codec import LatentCodec, small_vae
from depthlab.models.depth_model import DepthModel
from depthlab.models.schedule import ddpm_schedule
from depthlab.models.output_kind import OutputKind


def rgb(batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))


def backbone(in_channels: int, lotus: bool = False) -> UNetBackbone:
    torch.manual_seed(0)
    return UNetBackbone(unet(in_channels, lotus), torch.randn(1, 2, 32))


def inputs(net: UNetBackbone, latent: torch.Tensor) -> ModeInputs:
    """Mode inputs for a latent alone (these modes use neither the image nor the codec)."""
    return ModeInputs(rgb=torch.empty(0), rgb_latent=latent, backbone=net, codec=None)


def model_with(mode, in_channels: int = 8) -> DepthModel:
    return DepthModel(backbone(in_channels), LatentCodec(small_vae()), mode)


def test_direct_mode_predict_is_decoded_predict_latent(small_model):
    image = rgb()
    with torch.no_grad():
        latent = small_model.backbone(small_model.encode_rgb(image), 0.0)
        expected = small_model.latent_to_unit(latent)
        got = small_model.predict(image)
    torch.testing.assert_close(got, expected)
    assert small_model.output_kind is OutputKind.DEPTH


def test_predict_keeps_gradients_for_training(small_model):
    small_model.predict(rgb()).mean().backward()
    assert small_model.backbone.unet.conv_in.weight.grad is not None


def test_lotus_mode_feeds_the_task_embedding():
    net = backbone(4, lotus=True)
    latent = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        depth = LotusDMode().latent(inputs(net, latent))
        expected = net(latent, 999.0, class_labels=lotus_task_embedding((1.0, 0.0)).expand(2, -1))
        detail = LotusDMode(task=(0.0, 1.0)).latent(inputs(net, latent))
    torch.testing.assert_close(depth, expected)
    assert not torch.allclose(depth, detail)
    torch.testing.assert_close(lotus_task_embedding((1.0, 0.0)),
                               torch.tensor([[0.8414710, 0.0, 0.5403023, 1.0]]))
    assert LotusDMode().output_kind is OutputKind.DISPARITY


def test_e2eft_mode_is_clean_latent_of_v_prediction():
    net = backbone(8)
    latent = torch.randn(2, 4, 8, 8)
    alpha_bar = ddpm_schedule().alphas_cumprod[999]
    with torch.no_grad():
        v = net(torch.cat([latent, torch.zeros_like(latent)], dim=1), 999)
        got = E2EFTMode().latent(inputs(net, latent))
    torch.testing.assert_close(got, -(1 - alpha_bar).sqrt() * v)


def test_lotus_g_mode_returns_the_x0_it_predicts_from_seeded_noise():
    net = backbone(8)
    latent = torch.randn(2, 4, 8, 8)
    sample = ddpm_schedule(prediction_type="sample")
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(5)).expand(2, -1,
                                                                                        -1, -1)
    with torch.no_grad():
        expected = net(torch.cat([latent, noise], dim=1), 999)
        got = LotusGMode(scheduler=sample, seed=5).latent(inputs(net, latent))
        fresh = LotusGMode(scheduler=sample, seed=None).latent(inputs(net, latent))
    torch.testing.assert_close(got, expected)  # x0-prediction: the output is the latent
    assert not torch.allclose(fresh, got)


def test_per_image_noise_is_seeded_per_image_or_fresh():
    like = torch.zeros(3, 2, 4, 4)
    seeded = per_image_noise(like, 7)
    torch.testing.assert_close(seeded[0], seeded[2])  # each image from the same seed
    torch.testing.assert_close(seeded[:1], per_image_noise(like[:1], 7))
    members = per_image_noise(torch.zeros(4, 2, 4, 4), 7, members=2)
    torch.testing.assert_close(members[:2], members[2:])
    assert not torch.allclose(members[0], members[1])
    assert not torch.allclose(per_image_noise(like, None), per_image_noise(like, None))


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon", "sample"])
def test_clean_latent_inverts_the_forward_process(prediction_type):
    x0, noise, alpha_bar = torch.randn(4), torch.randn(4), torch.tensor(0.3)
    sample = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    output = {"v_prediction": alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0,
              "epsilon": noise, "sample": x0}[prediction_type]
    torch.testing.assert_close(clean_latent(output, sample, alpha_bar, prediction_type), x0)


def test_marigold_gaussian_noise_is_seeded_per_image():
    model = model_with(MarigoldMode(steps=2, noise="gaussian", seed=3))
    images = rgb(3)
    with torch.no_grad():
        batch = model.predict(images)
        single = model.predict(images[1:2])
    torch.testing.assert_close(batch[1:2], single, atol=1e-5, rtol=0)


def test_marigold_ensemble_merges_members_into_unit_range():
    model = model_with(MarigoldMode(steps=1, ensemble_size=3, noise="gaussian"))
    with torch.no_grad():
        unit = model.predict(rgb(2))
    assert unit.shape == (2, 1, 32, 32)
    for image in unit:  # the pipeline's ensembling renormalises each merged map to [0, 1]
        assert image.min().item() == pytest.approx(0.0, abs=1e-6)
        assert image.max().item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("kwargs", [{"noise": "pyramid"}, {"steps": 0}, {"ensemble_size": 0}])
def test_marigold_rejects_bad_settings(kwargs):
    with pytest.raises(UserError):
        MarigoldMode(**kwargs)
