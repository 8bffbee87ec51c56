"""The mini world's generative prior: the mini UNet with shipped latent-diffusion weights.

`experiments/mini/pretrain/prior.gin` trains `small_backbone()` as a latent diffusion model on
mini-world RGB (the mini world's stand-in for Stable Diffusion 2); `mini_prior()` builds the same
UNet and loads the result shipped in `depthlab/world/weights/prior.safetensors`, so depth recipes
start from a generative prior as the papers do. The empty-prompt embedding is not stored: it is
drawn from `small_backbone.seed`, which must stay at the value the prior was trained with.
"""
from __future__ import annotations

import gin

from depthlab.models.backbone import UNetBackbone, small_backbone
from depthlab.models.weights import read_weights, resolve_weights
from depthlab.world.shipped import load_into, load_shipped


@gin.configurable
def mini_prior(weights: str | None = None, prefix: str = "backbone.unet.",
               pretrained: bool = True) -> UNetBackbone:
    """`small_backbone()` with the shipped prior (`pretrained`), or the UNet of `weights` (a prior
    pretraining run, a checkpoint or a safetensors file; tensors `prefix*`). With
    `pretrained=False` the UNet keeps its random initialisation (the 'no prior' ablation)."""
    backbone = small_backbone()
    if weights is not None:
        file = resolve_weights(weights)
        load_into(backbone.unet, read_weights(file, prefix), f"prior UNet in '{file}'")
    elif pretrained:
        load_into(backbone.unet, load_shipped("prior"), "shipped mini prior")
    return backbone
