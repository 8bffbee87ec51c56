"""The mini world's teacher: a tiny Depth Anything V2 trained on mini-world scenes.

What it simulates. FiffDepth distils Depth Anything V2, a DINOv2 ViT (patch 14) with a DPT head
that outputs affine-invariant disparity. Its predictions get the layout right but miss detail:
the features live on a grid 14 times coarser than the image. The mini teacher is the same
transformers model at toy width with 8-pixel patches, so a 64x64 image becomes an 8x8 grid of
tokens and the output misses thin structures and sharp boundaries the same way.

How it is made. `experiments/mini/pretrain/teacher.gin` trains `mini_teacher_network()` from
scratch on both mini-world domains with ground truth (`depthlab.recipes.teacher_pretraining`), and
`depthlab.world.shipped.export_run(RUN, 'network.', 'teacher')` ships its weights in the package.

Blocks:
- `mini_teacher_config` / `mini_teacher_network()`: the architecture and an untrained network
  (the shipped weights fit the default bindings only);
- `mini_teacher(weights=None)`: the frozen `DepthAnythingTeacher` around it at `INPUT_SIZE`, with
  the shipped weights or those of a run, checkpoint or safetensors file, built once per process.

Its encoder, `teacher.model.backbone`, is a transformers `Dinov2Backbone`: the mini world's
DINOv2. `dinov2_model(network)` copies it into a plain `Dinov2Model` (the same parameter names).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import gin
import torch
from torch import nn
from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config,
                          Dinov2Model)

from depthlab.models.weights import evaluated_prefixes, read_weights, resolve_weights
from depthlab.teachers.base import shared_instance
from depthlab.teachers.depth_anything import DepthAnythingTeacher
from depthlab.world.shipped import load_into, load_shipped

INPUT_SIZE = 64        # the shorter side the teacher resizes images to (the mini world's size)
HEAD_BIAS = 1.0        # final conv's initial bias: a ReLU'd output that starts alive
NETWORK_CHILD = "model"  # the network's name inside a `DepthAnythingPredictor`


@gin.configurable
def mini_teacher_config(hidden_size: int = 64, layers: int = 4, heads: int = 4,
                        patch_size: int = 8,
                        neck_hidden_sizes: Sequence[int] = (32, 64, 64, 64),
                        fusion_hidden_size: int = 32, head_hidden_size: int = 16,
                        reassemble_factors: Sequence[float] = (2, 1, 0.5, 0.25)
                        ) -> DepthAnythingConfig:
    """Depth Anything V2's architecture at toy width: a `layers`-deep DINOv2 with `patch_size`
    patches whose four stages feed a DPT neck and the relative-depth (disparity) head.

    `reassemble_factors` resize the four stages' token grids for the neck. DA2's (4, 2, 1, 0.5)
    on its 37x37 grid fuse at 296 pixels for a 518 input (0.57 of it); on the 8x8 grid of a
    64-pixel image the same factors would fuse at full resolution, so the mini teacher halves them
    (fusion at 32 pixels, half the input), which also halves the training time.
    """
    backbone = Dinov2Config(hidden_size=hidden_size, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=4 * hidden_size,
                            patch_size=patch_size, image_size=INPUT_SIZE,
                            out_features=[f"stage{i}" for i in range(1, 5)],
                            reshape_hidden_states=False)
    return DepthAnythingConfig(backbone_config=backbone, patch_size=patch_size,
                               neck_hidden_sizes=list(neck_hidden_sizes),
                               fusion_hidden_size=fusion_hidden_size,
                               head_hidden_size=head_hidden_size,
                               reassemble_hidden_size=hidden_size,
                               reassemble_factors=list(reassemble_factors),
                               depth_estimation_type="relative")


@gin.configurable
def mini_teacher_network() -> DepthAnythingForDepthEstimation:
    """The untrained network of `mini_teacher_config()`, initialised from torch's global RNG
    (the trainer seeds it).

    transformers initialises every convolution with N(0, 0.02), made for loading pretrained
    weights: through the DPT neck and head the signal shrinks to a millionth and the final ReLU
    outputs zeros, which pass no gradient. The neck's and head's convolutions take torch's own
    (variance-preserving) initialisation instead, and the last bias starts positive.
    """
    network = DepthAnythingForDepthEstimation(mini_teacher_config())
    for module in [*network.neck.modules(), *network.head.modules()]:
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            module.reset_parameters()
    with torch.no_grad():
        network.head.conv3.bias.fill_(HEAD_BIAS)
    return network


def network_weights(source: str | Path) -> dict[str, torch.Tensor]:
    """The network's tensors in a run directory, a checkpoint, or a safetensors file.

    A checkpoint whose evaluated model is a Depth Anything predictor records where its network
    lives in the recipe (`evaluated_model.json`); a plain file holds the network's own names.
    """
    file = resolve_weights(source)
    recipe_path = evaluated_prefixes(file).get(NETWORK_CHILD)
    return read_weights(file, f"{recipe_path}." if recipe_path else "")


@gin.configurable
def mini_teacher(weights: str | None = None) -> DepthAnythingTeacher:
    """The process-wide mini teacher: the shipped weights (`depthlab/world/weights/
    teacher.safetensors`), or those in `weights` (a run directory, checkpoint or safetensors)."""
    config = mini_teacher_config()
    source = "shipped" if weights is None else str(resolve_weights(weights).resolve())

    def build() -> DepthAnythingTeacher:
        network = DepthAnythingForDepthEstimation(config)
        tensors = load_shipped("teacher") if weights is None else network_weights(weights)
        what = "mini teacher" + ("" if weights is None else f" ('{weights}')")
        load_into(network, {k: t.float() if t.is_floating_point() else t
                            for k, t in tensors.items()}, what)
        return DepthAnythingTeacher(network, INPUT_SIZE)

    key = ("mini_teacher", source, config.to_json_string())
    return shared_instance(key, build)  # type: ignore[return-value]


def dinov2_model(network: DepthAnythingForDepthEstimation) -> Dinov2Model:
    """A `Dinov2Model` holding a copy of the network's encoder weights (no pooling head)."""
    encoder = Dinov2Model(network.config.backbone_config)
    encoder.load_state_dict(network.backbone.state_dict())
    return encoder.eval()
