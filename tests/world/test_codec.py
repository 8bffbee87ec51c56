"""The mini codec: the shipped weights load, keep depth through the round trip, and the
pretraining recipe trains what it should."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from depthlab.data.batch import Batch, LabelledBatch
from depthlab.errors import UserError
from depthlab.models.codec import small_vae
from depthlab.recipes.codec_pretraining import CodecPretraining
from depthlab.world.datasets import MiniWorldDataset
from depthlab.world.mini_codec import codec_round_trip_abs_rel, mini_codec, round_trip_abs_rel

# The shipped codec measures 0.035 (synthetic) and 0.036 (real) on the val split, short of the 0.02
# the mini world aims at (docs/results/mini_world.md): this bound guards against regressions.
MAX_ROUND_TRIP_ABS_REL = 0.045


@pytest.mark.parametrize("domain", ["synthetic", "real"])
def test_depth_survives_the_round_trip(default_codec, domain):
    abs_rel = codec_round_trip_abs_rel(default_codec, MiniWorldDataset(domain, "test", length=32))
    assert abs_rel < MAX_ROUND_TRIP_ABS_REL


def test_latents_are_16x16_with_unit_scale(default_codec):
    rgb = torch.stack([MiniWorldDataset("real", "val")[i]["rgb"] for i in range(8)])
    with torch.no_grad():
        latent = default_codec.encode_image(rgb * 2 - 1)
    assert latent.shape[0] == 8 and latent.shape[2:] == (16, 16)
    assert default_codec.downsample_factor == 4
    assert 0.5 < latent.std().item() < 2.0
    assert default_codec.scaling_factor != 1.0


def test_weights_of_another_file_load_with_their_scale(tmp_path):
    vae = small_vae()  # the code's default architecture (4 latent channels)
    tensors = {f"vae.{k}": v for k, v in vae.state_dict().items()}
    tensors["vae.scaling_factor"] = torch.tensor(0.25)
    save_file(tensors, str(tmp_path / "codec.safetensors"))
    codec = mini_codec(weights=str(tmp_path / "codec.safetensors"))  # no gin: small_vae's defaults
    assert codec.scaling_factor == 0.25
    torch.testing.assert_close(codec.vae.encoder.conv_in.weight, vae.encoder.conv_in.weight)


def test_weights_of_another_architecture_are_refused(tmp_path):
    tensors = {f"vae.{k}": v for k, v in small_vae(block_out_channels=(16, 32),
                                                   norm_num_groups=8).state_dict().items()}
    save_file(tensors, str(tmp_path / "codec.safetensors"))
    with pytest.raises(UserError, match="mini_vae.gin"):
        mini_codec(weights=str(tmp_path / "codec.safetensors"))


def test_a_perfect_codec_keeps_only_the_quantile_clipping_error():
    """Only the 2%/98% clipping remains for an identity codec; a codec that moves every value is
    measured as much worse."""
    data = MiniWorldDataset("synthetic", "val", length=4)
    perfect = round_trip_abs_rel(lambda x: x, lambda z: z, data)
    shifted = round_trip_abs_rel(lambda x: x, lambda z: z - 0.2, data)
    assert 0.0 <= perfect < 0.01
    assert shifted > perfect + 0.02


def test_pretraining_step_reconstructs_depth_and_rgb():
    torch.manual_seed(0)
    recipe = CodecPretraining(small_vae(block_out_channels=(16, 32), norm_num_groups=8),
                              crop=16, val_length=2)
    items = [MiniWorldDataset("synthetic", "train")[i] for i in range(3)]
    batch = Batch(LabelledBatch(torch.stack([i["rgb"] for i in items]),
                                torch.stack([i["depth"] for i in items]),
                                torch.stack([i["valid"] for i in items])))
    out = recipe.losses(batch, torch.Generator().manual_seed(0), with_panels=True)
    assert set(out.terms) == {"depth_l1", "rgb_l1", "kl"}
    assert out.total.requires_grad and torch.isfinite(out.total)
    assert out.panels["codec/depth_input"].values.shape[-1] == 16
    assert recipe.evaluated_model() is None
    scalars = recipe.validation_scalars()
    assert set(scalars) == {"codec/round_trip_abs_rel/synthetic", "codec/round_trip_abs_rel/real"}
    assert "vae.scaling_factor" in recipe.extra_state()


def test_the_shipped_weights_are_float16_and_small():
    from depthlab.world.shipped import WEIGHTS_DIR

    total = sum(f.stat().st_size for f in Path(WEIGHTS_DIR).glob("*.safetensors"))
    assert total < 16 * 2**20
