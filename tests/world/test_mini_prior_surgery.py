"""The mini prior takes the same surgery as SD2's backbone, applied after its weights load."""
import gin
import pytest
import torch

from depthlab.config import parse_config
from depthlab.errors import UserError
from depthlab.heads.residual_adapter import ResidualAdapter
from depthlab.models.surgery import InsertAfter
from depthlab.world.mini_prior import mini_prior
from depthlab.world.shipped import load_shipped


@pytest.fixture
def mini_unet_bindings(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    parse_config(["gin/backbones/mini_unet.gin"], [])
    yield
    gin.clear_config()


def test_conv_in_is_widened_from_the_loaded_prior(mini_unet_bindings):
    shipped = load_shipped("prior")
    unet = mini_prior(conv_in_channels=32, scale_conv_in_bias=True).unet
    assert unet.conv_in.in_channels == 32
    assert torch.equal(unet.conv_in.weight[:, :16], shipped["conv_in.weight"] / 2)
    assert torch.equal(unet.conv_in.weight[:, 16:], shipped["conv_in.weight"] / 2)
    assert torch.equal(unet.conv_in.bias, shipped["conv_in.bias"] / 2)


def test_patches_are_added_to_the_loaded_prior(mini_unet_bindings):
    patch = InsertAfter(at="mid_block", module=ResidualAdapter, name="adapter")
    unet = mini_prior(patches=[patch]).unet
    shipped = load_shipped("prior")
    assert torch.equal(unet.conv_out.weight, shipped["conv_out.weight"])
    assert isinstance(unet.mid_block.adapter, ResidualAdapter)


def test_patches_bound_on_small_backbone_are_refused(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    parse_config(["gin/backbones/mini_unet.gin"], ["small_backbone.patches = []"])
    try:
        with pytest.raises(UserError, match="mini_prior.patches"):
            mini_prior()
    finally:
        gin.clear_config()
