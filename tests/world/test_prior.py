"""The mini prior: the pretraining recipe's loss is SD2's v-prediction objective, its validation is
the held-out denoising loss, and `mini_prior` loads UNet weights by one binding."""
import pytest
import torch
from safetensors.torch import save_file

from depthlab.data.batch import Batch, LabelledBatch
from depthlab.errors import UserError
from depthlab.models.backbone import small_backbone
from depthlab.models.codec import LatentCodec, small_vae
from depthlab.models.schedule import ddpm_schedule
from depthlab.recipes.prior_pretraining import PriorPretraining
from depthlab.world.datasets import MiniWorldDataset
from depthlab.world.mini_prior import mini_prior

SMALL = dict(block_out_channels=(16, 32), attention_head_dim=4, norm_num_groups=8,
             cross_attention_dim=8)


def tiny_recipe(**kwargs) -> PriorPretraining:
    torch.manual_seed(0)
    codec = LatentCodec(small_vae(block_out_channels=(16, 32), norm_num_groups=8))
    return PriorPretraining(small_backbone(**SMALL), codec, ddpm_schedule(), val_length=2,
                            val_timesteps=2, sample_steps=2, **kwargs)


def batch_of(count: int) -> Batch:
    items = [MiniWorldDataset("real", "train")[i] for i in range(count)]
    return Batch(LabelledBatch(torch.stack([i["rgb"] for i in items]),
                               torch.stack([i["depth"] for i in items]),
                               torch.stack([i["valid"] for i in items])))


def test_noised_latent_and_v_target_follow_the_schedule():
    recipe = tiny_recipe()
    latent, noise = torch.full((1, 4, 2, 2), 2.0), torch.full((1, 4, 2, 2), -1.0)
    abar = float(recipe.alphas_cumprod[500])
    noisy, target = recipe._noised(latent, noise, torch.tensor([500]))
    a, s = abar ** 0.5, (1 - abar) ** 0.5
    torch.testing.assert_close(noisy, torch.full_like(latent, 2 * a - s))
    torch.testing.assert_close(target, torch.full_like(latent, -a - 2 * s))


def test_loss_trains_only_the_unet_and_panels_show_samples():
    recipe = tiny_recipe()
    out = recipe.losses(batch_of(2), torch.Generator().manual_seed(0), with_panels=True)
    out.total.backward()
    assert all(p.grad is not None for p in recipe.backbone.parameters() if p.requires_grad)
    assert all(p.grad is None for p in recipe.codec.parameters())
    samples = out.panels["prior/samples"].values
    assert samples.shape == (4, 3, 64, 64) and 0 <= samples.min() and samples.max() <= 1
    assert [g.name for g in recipe.parameter_groups()] == ["all"]


def test_heldout_loss_is_fixed_for_fixed_weights():
    recipe = tiny_recipe()
    first, second = recipe.validation_scalars(), recipe.validation_scalars()
    assert first == second and set(first) == {"prior/heldout_v_mse"}
    assert first["prior/heldout_v_mse"] > 0


def test_epsilon_prediction_schedules_are_refused():
    codec = LatentCodec(small_vae(block_out_channels=(16, 32), norm_num_groups=8))
    with pytest.raises(UserError, match="v_prediction"):
        PriorPretraining(small_backbone(**SMALL), codec, ddpm_schedule(prediction_type="epsilon"))


def test_mini_prior_loads_a_runs_unet(tmp_path):
    import gin

    trained = small_backbone(**SMALL, seed=5)
    save_file({f"backbone.unet.{k}": v.contiguous() for k, v in trained.unet.state_dict().items()},
              str(tmp_path / "prior.safetensors"))
    with gin.unlock_config():
        gin.bind_parameter("small_backbone.block_out_channels", (16, 32))
        gin.bind_parameter("small_backbone.attention_levels", None)
        gin.bind_parameter("small_backbone.attention_head_dim", 4)
        gin.bind_parameter("small_backbone.norm_num_groups", 8)
        gin.bind_parameter("small_backbone.cross_attention_dim", 8)
    try:
        loaded = mini_prior(weights=str(tmp_path / "prior.safetensors"))
        fresh = mini_prior(pretrained=False)
    finally:
        gin.clear_config()
    torch.testing.assert_close(loaded.unet.conv_in.weight, trained.unet.conv_in.weight)
    assert not torch.equal(fresh.unet.conv_in.weight, trained.unet.conv_in.weight)
