"""The mini world's stand-in for DINOv2 in Feature Alignment: the mini teacher's encoder.

The mini teacher (`depthlab.world.mini_teacher`) plays Depth Anything V2, whose encoder is DINOv2;
its ResNet encoder's stride-8 feature grid (128 channels) plays DINOv2's patch tokens. DINOv2's
final tokens come out of a LayerNorm, so each token (the channel vector at one grid cell) is
normalised here the same way, without the affine part (the CNN has none to borrow): mean 0 and
variance 1 over channels. That gives the alignment target the same per-token scale whatever the
CNN's activations, as with the real encoder.

`mini_teacher_encoder` wraps the very network of the process-wide `mini_teacher` for the same
weights, so a recipe using both holds one copy.
"""
from __future__ import annotations

import gin
import torch
import torch.nn.functional as F

from depthlab.encoders.base import FeatureEncoder
from depthlab.models.freezing import freeze
from depthlab.teachers.base import shared_instance
from depthlab.world.mini_teacher import STRIDE, MiniTeacherNetwork, mini_teacher

TOKEN_NORM_EPS = 1e-6  # DINOv2's LayerNorm epsilon


class MiniTeacherEncoder(FeatureEncoder):
    """A `MiniTeacherNetwork`'s feature grid, LayerNorm-normalised per token (no affine)."""

    def __init__(self, network: MiniTeacherNetwork):
        super().__init__(network.encoder.num_features, STRIDE)
        self.network = network
        freeze(self)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.network.features(pixels).permute(0, 2, 3, 1)
        tokens = F.layer_norm(features, features.shape[-1:], eps=TOKEN_NORM_EPS)
        return tokens.permute(0, 3, 1, 2)


@gin.configurable
def mini_teacher_encoder(weights: str | None = None) -> FeatureEncoder:
    """The process-wide encoder of `mini_teacher(weights)` (the shipped weights by default, or
    those of a run directory, checkpoint or safetensors file), sharing its network."""
    network = mini_teacher(weights).model
    # The cached encoder keeps `network` alive, so its id cannot be reused by another network.
    return shared_instance(("mini_teacher_encoder", id(network)),  # type: ignore
                           lambda: MiniTeacherEncoder(network))
