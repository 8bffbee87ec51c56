"""UNet surgery: widened conv_in, constructor options, patches, captured features, forward_many."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from depthlab.errors import UserError
from depthlab.models.backbone import UNetBackbone, sd2_backbone, small_backbone
from depthlab.models.surgery import InsertAfter, ReplaceModule, widen_conv_in
from depthlab.models.weights import InitialiseFrom
from depthlab.testing import tiny_models
from depthlab.train.checkpoint import save_checkpoint

SMALL = {"block_out_channels": (16, 32), "attention_head_dim": 4, "norm_num_groups": 8,
         "cross_attention_dim": 8}
LOTUS_OPTIONS = {"class_embed_type": "projection", "projection_class_embeddings_input_dim": 4}


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny UNets gain nothing from threads, and spin-waiting threads are slow on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class PointwiseConv(nn.Module):
    """A randomly initialised 1x1 convolution, inserted after a UNet block."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class OffsetWrapper(nn.Module):
    """Holds the replaced module as a child and adds a learnable scalar to its output."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.offset = nn.Parameter(torch.zeros(()))

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.inner(*args, **kwargs) + self.offset


def patched_small(patch_seed: int) -> UNetBackbone:
    torch.manual_seed(patch_seed)
    return small_backbone(**SMALL,
                          patches=[InsertAfter(at="mid_block", module=PointwiseConv, name="extra")])


def latent(batch: int = 2, channels: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


# --- conv_in widening -------------------------------------------------------------------------


@torch.no_grad()
def test_widened_conv_in_reproduces_the_original_on_a_repeated_input(tiny_sd2_dir):
    original = sd2_backbone(pretrained_dir=str(tiny_sd2_dir))
    widened = sd2_backbone(pretrained_dir=str(tiny_sd2_dir), conv_in_channels=8)
    assert widened.unet.config.in_channels == 8 and widened.in_channels == 8
    assert widened.unet.conv_in.in_channels == 8
    w, b = original.unet.conv_in.weight, original.unet.conv_in.bias
    assert torch.equal(widened.unet.conv_in.weight, torch.cat([w, w], 1) / 2)
    assert torch.equal(widened.unet.conv_in.bias, b)
    x = latent(size=8)
    for t in (0.0, 999.0):
        expected = original(x, t)
        torch.testing.assert_close(widened(torch.cat([x, x], dim=1), t), expected,
                                   rtol=1e-5, atol=1e-5)
        assert not torch.allclose(widened(torch.cat([x, -x], dim=1), t), expected, atol=1e-3)


@torch.no_grad()
def test_scale_conv_in_bias_halves_the_bias(tiny_sd2_dir):
    original = sd2_backbone(pretrained_dir=str(tiny_sd2_dir))
    scaled = sd2_backbone(pretrained_dir=str(tiny_sd2_dir), conv_in_channels=8,
                          scale_conv_in_bias=True)
    w, b = original.unet.conv_in.weight, original.unet.conv_in.bias
    assert b.abs().max() > 0
    assert torch.equal(scaled.unet.conv_in.bias, b / 2)
    assert torch.equal(scaled.unet.conv_in.weight, torch.cat([w, w], 1) / 2)


@pytest.mark.parametrize("channels", [6, 2])
def test_widening_to_a_non_multiple_or_fewer_channels_is_refused(tiny_sd2_dir, channels):
    with pytest.raises(UserError, match="conv_in_channels"):
        sd2_backbone(pretrained_dir=str(tiny_sd2_dir), conv_in_channels=channels)


def test_widening_to_the_same_count_changes_nothing():
    torch.manual_seed(0)
    unet = tiny_models.unet(4)
    conv = unet.conv_in
    weight = conv.weight.detach().clone()
    widen_conv_in(unet, 4, scale_bias=True)
    assert unet.conv_in is conv and torch.equal(unet.conv_in.weight, weight)
    assert unet.config.in_channels == 4


def test_widening_three_times_divides_by_three():
    torch.manual_seed(0)
    unet = tiny_models.unet(4)
    w = unet.conv_in.weight.detach().clone()
    widen_conv_in(unet, 12)
    assert torch.equal(unet.conv_in.weight, torch.cat([w, w, w], 1) / 3)
    assert unet.config.in_channels == 12


# --- UNet constructor options -------------------------------------------------------------------


@torch.no_grad()
def test_unet_options_add_a_class_embedding_and_keep_the_pretrained_weights(tiny_sd2_dir):
    plain = sd2_backbone(pretrained_dir=str(tiny_sd2_dir))
    lotus = sd2_backbone(pretrained_dir=str(tiny_sd2_dir), unet_options=LOTUS_OPTIONS)
    assert plain.unet.class_embedding is None and lotus.unet.class_embedding is not None
    assert not any(p.is_meta for p in lotus.parameters())
    reference, loaded = plain.unet.state_dict(), lotus.unet.state_dict()
    added = {n for n in loaded if n.startswith("class_embedding.")}
    assert added and set(loaded) - added == set(reference)
    for name, tensor in reference.items():
        assert torch.equal(loaded[name], tensor), name
    x = latent(size=8)
    assert lotus(x, 0.0, class_labels=torch.randn(2, 4)).shape == x.shape


@torch.no_grad()
def test_modules_added_by_unet_options_get_pytorch_default_initialisation(tiny_sd2_dir):
    lotus = sd2_backbone(pretrained_dir=str(tiny_sd2_dir), unet_options=LOTUS_OPTIONS)
    for name, linear in lotus.unet.class_embedding.named_children():
        if not isinstance(linear, nn.Linear):
            continue
        bound = 1 / math.sqrt(linear.in_features)
        for parameter in (linear.weight, linear.bias):
            assert parameter.isfinite().all(), name
            assert parameter.abs().max() <= bound, name
            assert parameter.std() > bound / 4, name
    x = latent(size=8)
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    first, second = lotus(x, 0.0, class_labels=labels), lotus(x, 0.0, class_labels=labels.flip(0))
    assert first.isfinite().all() and not torch.allclose(first, second)


# --- InsertAfter ---------------------------------------------------------------------------------


@torch.no_grad()
def test_inserted_module_changes_the_output_and_is_a_named_parameter():
    plain = small_backbone(**SMALL)
    patched = patched_small(patch_seed=1)
    x = latent()
    assert not torch.allclose(patched(x, 0.0), plain(x, 0.0), atol=1e-4)
    names = {n for n, _ in patched.named_parameters()}
    assert {"unet.mid_block.extra.conv.weight", "unet.mid_block.extra.conv.bias"} <= names
    assert names - {n for n, _ in plain.named_parameters()} == {
        "unet.mid_block.extra.conv.weight", "unet.mid_block.extra.conv.bias"}
    assert patched.unet.mid_block.extra.conv.in_channels == SMALL["block_out_channels"][-1]


def test_inserting_twice_under_one_name_is_refused():
    patch = InsertAfter(at="mid_block", module=PointwiseConv, name="extra")
    with pytest.raises(UserError, match="extra"):
        small_backbone(**SMALL, patches=[patch, patch])


def test_inserting_after_an_unknown_module_is_refused():
    with pytest.raises(UserError, match="middle_block"):
        small_backbone(**SMALL, patches=[InsertAfter(at="middle_block", module=PointwiseConv)])


@torch.no_grad()
def test_patched_backbone_round_trips_through_a_checkpoint(tmp_path):
    saved = patched_small(patch_seed=1)
    fresh = patched_small(patch_seed=2)
    for parameter in fresh.unet.parameters():
        parameter.add_(0.1 * torch.randn_like(parameter))
    x = latent()
    assert not torch.equal(fresh.unet.mid_block.extra.conv.weight,
                           saved.unet.mid_block.extra.conv.weight)
    assert not torch.allclose(fresh(x, 0.0), saved(x, 0.0), atol=1e-4)
    run_dir = tmp_path / "run"
    save_checkpoint(run_dir, 1, {f"model.backbone.{n}": p for n, p in saved.named_parameters()}, {})
    InitialiseFrom(source=str(run_dir), target="", source_prefix="model.backbone.").apply(fresh)
    assert torch.equal(fresh.unet.mid_block.extra.conv.weight,
                       saved.unet.mid_block.extra.conv.weight)
    assert torch.equal(fresh(x, 0.0), saved(x, 0.0))
    assert torch.equal(fresh(x, 999.0), saved(x, 999.0))


@torch.no_grad()
def test_deepcopy_of_a_patched_backbone_runs_its_own_modules():
    original = patched_small(patch_seed=1)
    x = latent()
    before = original(x, 0.0)
    clone = copy.deepcopy(original)
    assert clone.unet.mid_block.extra is not original.unet.mid_block.extra
    assert len(clone.unet.mid_block._forward_hooks) == 1
    assert torch.equal(clone(x, 0.0), before)
    clone.unet.mid_block.extra.conv.weight.add_(0.5)
    assert not torch.allclose(clone(x, 0.0), before, atol=1e-4)
    assert torch.equal(original(x, 0.0), before)


# --- ReplaceModule -------------------------------------------------------------------------------


@torch.no_grad()
def test_replaced_mid_block_runs_inside_the_unet():
    plain = small_backbone(**SMALL)
    replaced = small_backbone(**SMALL,
                              patches=[ReplaceModule(at="mid_block", module=OffsetWrapper)])
    block = replaced.unet.mid_block
    assert isinstance(block, OffsetWrapper)
    assert type(block.inner).__name__ == type(plain.unet.mid_block).__name__
    assert block.has_cross_attention is block.inner.has_cross_attention
    assert block.has_cross_attention == plain.unet.mid_block.has_cross_attention
    names = {n for n, _ in replaced.named_parameters()}
    assert "unet.mid_block.offset" in names
    assert not any(n.startswith("unet.mid_block.resnets.") for n in names)
    assert len(names) == len(list(plain.named_parameters())) + 1
    x = latent()
    assert torch.equal(replaced(x, 0.0), plain(x, 0.0))
    block.offset.fill_(1.0)
    assert not torch.allclose(replaced(x, 0.0), plain(x, 0.0), atol=1e-4)
    clone = copy.deepcopy(replaced)
    assert clone.unet.mid_block.resnets is clone.unet.mid_block.inner.resnets


@torch.no_grad()
def test_replace_module_at_a_nested_path():
    plain = small_backbone(**SMALL)
    replaced = small_backbone(
        **SMALL, patches=[ReplaceModule(at="mid_block.resnets.1", module=OffsetWrapper)])
    assert isinstance(replaced.unet.mid_block.resnets[1], OffsetWrapper)
    replaced.unet.mid_block.resnets[1].offset.fill_(0.25)
    x = latent()
    assert not torch.allclose(replaced(x, 0.0), plain(x, 0.0), atol=1e-4)


# --- captured features ---------------------------------------------------------------------------


@torch.no_grad()
def test_mid_block_features_of_the_small_backbone():
    backbone = small_backbone(**SMALL)
    x = latent(size=16)
    hooks = len(backbone.unet.mid_block._forward_hooks)
    out = backbone.forward_with_features(x, 0.0, ["mid_block"])
    assert torch.equal(out.sample, backbone(x, 0.0))
    assert set(out.features) == {"mid_block"}
    assert out.features["mid_block"].shape == (2, 32, 8, 8)
    assert len(backbone.unet.mid_block._forward_hooks) == hooks


@torch.no_grad()
def test_mid_block_features_of_the_sd2_backbone(tiny_sd2_dir):
    backbone = sd2_backbone(pretrained_dir=str(tiny_sd2_dir))
    widths = backbone.unet.config.block_out_channels
    x = latent(size=8)
    hooks = len(backbone.unet.mid_block._forward_hooks)
    out = backbone.forward_with_features(x, 999.0, ["mid_block"])
    torch.testing.assert_close(out.sample, backbone(x, 999.0), rtol=0, atol=0)
    scale = 2 ** (len(widths) - 1)
    assert out.features["mid_block"].shape == (2, widths[-1], 8 // scale, 8 // scale)
    assert len(backbone.unet.mid_block._forward_hooks) == hooks


@torch.no_grad()
def test_captured_mid_block_includes_an_inserted_patch():
    plain = small_backbone(**SMALL)
    patched = patched_small(patch_seed=1)
    assert len(patched.unet.mid_block._forward_hooks) == 1
    x = latent()
    before = plain.forward_with_features(x, 0.0, ["mid_block"]).features["mid_block"]
    after = patched.forward_with_features(x, 0.0, ["mid_block"]).features["mid_block"]
    torch.testing.assert_close(after, patched.unet.mid_block.extra(before), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(after, before, atol=1e-4)
    assert len(patched.unet.mid_block._forward_hooks) == 1


def test_capture_hooks_are_removed_when_the_forward_fails():
    backbone = small_backbone(**SMALL)
    with pytest.raises(RuntimeError):
        backbone.forward_with_features(latent(channels=3), 0.0, ["mid_block", "conv_in"])
    assert len(backbone.unet.mid_block._forward_hooks) == 0
    assert len(backbone.unet.conv_in._forward_hooks) == 0


def test_capturing_an_unknown_module_is_refused():
    backbone = small_backbone(**SMALL)
    with pytest.raises(UserError, match="mid_blok"):
        backbone.forward_with_features(latent(), 0.0, ["mid_blok"])


# --- forward_many --------------------------------------------------------------------------------


@torch.no_grad()
def test_forward_many_runs_each_size_on_its_own():
    backbone = small_backbone(**SMALL)
    pairs = [(latent(1, size=8, seed=1), torch.tensor([10.0])),
             (latent(2, size=16, seed=2), torch.tensor([0.0, 500.0])),
             (latent(2, size=8, seed=3), torch.tensor([999.0, 250.0]))]
    outputs = backbone.forward_many(pairs)
    assert [o.shape for o in outputs] == [p[0].shape for p in pairs]
    for (x, t), output in zip(pairs, outputs):
        torch.testing.assert_close(output, backbone(x, t), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(outputs[2][0], backbone(pairs[2][0][:1], 250.0)[0], atol=1e-4)


@torch.no_grad()
def test_forward_many_batches_equal_shapes_like_one_call():
    backbone = small_backbone(**SMALL)
    a, b = latent(1, seed=1), latent(3, seed=2)
    ta, tb = torch.tensor([100.0]), torch.tensor([0.0, 400.0, 999.0])
    outputs = backbone.forward_many([(a, ta), (b, tb)])
    joint = backbone(torch.cat([a, b]), torch.cat([ta, tb]))
    assert torch.equal(torch.cat(outputs), joint)
    assert [o.shape[0] for o in outputs] == [1, 3]


def test_inserting_after_a_block_that_returns_skips_is_refused_when_run():
    patch = InsertAfter(at="down_blocks.0", module=PointwiseConv, name="extra")
    backbone = small_backbone(**SMALL, patches=[patch])
    with pytest.raises(UserError, match="returns a tuple"):
        backbone(latent(), 0.0)


@torch.no_grad()
def test_capturing_a_down_block_gives_its_hidden_states():
    backbone = small_backbone(**SMALL)
    _, features = backbone.forward_with_features(latent(), 0.0, ["down_blocks.0"])
    assert isinstance(features["down_blocks.0"], torch.Tensor)
    assert features["down_blocks.0"].shape == (2, SMALL["block_out_channels"][0], 8, 8)


def test_small_backbone_attention_levels_choose_the_block_types():
    default = small_backbone(**SMALL).unet.config
    assert default.down_block_types == ("CrossAttnDownBlock2D", "DownBlock2D")  # SD2's layout
    assert default.up_block_types == ("UpBlock2D", "CrossAttnUpBlock2D")
    coarse = small_backbone(**{**SMALL, "block_out_channels": (16, 32, 32)},
                            attention_levels=(False, True, False)).unet.config
    assert coarse.down_block_types == ("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
    assert coarse.up_block_types == ("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    with pytest.raises(UserError, match="one entry per level"):
        small_backbone(**SMALL, attention_levels=(True,))
