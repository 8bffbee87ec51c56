"""The mini world's generative prior: the mini UNet with shipped latent-diffusion weights.

`experiments/mini/pretrain/prior.gin` trains `small_backbone()` as a latent diffusion model on
mini-world RGB (the mini world's stand-in for Stable Diffusion 2); `mini_prior()` builds the same
UNet and loads the result shipped in `depthlab/world/weights/prior.safetensors`, so depth recipes
start from a generative prior as the papers do. The empty-prompt embedding is not stored: it is
drawn from `small_backbone.seed`, which must stay at the value the prior was trained with.
"""
from __future__ import annotations

from typing import Sequence

import gin

from depthlab.errors import UserError
from depthlab.models.backbone import UNetBackbone, small_backbone
from depthlab.models.surgery import BackbonePatch, widen_conv_in
from depthlab.models.weights import read_weights, resolve_weights
from depthlab.world.shipped import load_into, load_shipped


@gin.configurable
def mini_prior(weights: str | None = None, prefix: str = "backbone.unet.",
               pretrained: bool = True, conv_in_channels: int | None = None,
               scale_conv_in_bias: bool = False,
               patches: Sequence[BackbonePatch] = ()) -> UNetBackbone:
    """`small_backbone()` with the shipped prior (`pretrained`), or the UNet of `weights` (a prior
    pretraining run, a checkpoint or a safetensors file; tensors `prefix*`). With
    `pretrained=False` the UNet keeps its random initialisation (the 'no prior' ablation).

    The same surgery as `sd2_backbone`, applied after the prior is loaded: `conv_in_channels`
    widens conv_in (E2E-FT, Marigold: 2x the latent channels), `patches` add modules (DepthMaster's
    Fourier Enhancement), which start from their own initialisation."""
    if _bound("small_backbone.patches"):
        raise UserError("small_backbone.patches is bound, but the mini prior loads its weights "
                        "into an unpatched UNet and applies patches afterwards: bind "
                        "mini_prior.patches instead.")
    backbone = small_backbone(patches=())
    if weights is not None:
        file = resolve_weights(weights)
        load_into(backbone.unet, read_weights(file, prefix), f"prior UNet in '{file}'")
    elif pretrained:
        load_into(backbone.unet, load_shipped("prior"), "shipped mini prior")
    if conv_in_channels is not None:
        widen_conv_in(backbone.unet, int(conv_in_channels), scale_conv_in_bias)
    backbone.apply_patches(patches)
    return backbone


def _bound(parameter: str) -> bool:
    try:
        gin.query_parameter(parameter)
    except ValueError:
        return False
    return True
