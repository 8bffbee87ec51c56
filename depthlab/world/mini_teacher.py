"""The mini world's teacher: a small strided CNN trained on mini-world scenes, as Depth Anything V2.

What it simulates. FiffDepth distils Depth Anything V2: a network trained on a broad distribution
of images that outputs affine-invariant disparity, generalises in low frequencies and misses
detail, because its features live on a grid 14 times coarser than the image. The mini teacher is
a real network with the same character: a ResNet encoder (timm) whose last stages stay at output
stride 8, so a 64x64 image becomes an 8x8 grid of feature vectors (the "patch tokens"), and a
light decoder that upsamples them to the image without skip connections from finer levels, so
it cannot place sharp boundaries. A CNN rather than a toy ViT because it learns from this
world's few thousand training images in CPU minutes: a patch-8 DINOv2 + DPT at toy width was tried
first and learned little beyond the layout prior (docs/results/mini_world.md).

How it is made. `experiments/mini/pretrain/teacher.gin` trains `MiniTeacherNetwork()` from scratch
on both mini-world domains with ground truth (`depthlab.recipes.teacher_pretraining`), and
`depthlab.world.shipped.export_run(RUN, 'network.', 'teacher')` ships its weights in the package.

Blocks:
- `MiniTeacherNetwork`: the architecture (the shipped weights fit the default bindings only);
- `mini_teacher(weights=None)`: the frozen `DisparityTeacher` around it at `INPUT_SIZE`, with the
  shipped weights or those of a run, checkpoint or safetensors file, built once per process.

Its encoder (`teacher.model.features(pixels)`: [B, C, H/8, W/8]) is the mini world's stand-in for
DINOv2's patch tokens.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import gin
import torch
from timm.layers import GroupNorm
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

from depthlab.errors import UserError
from depthlab.models.weights import evaluated_prefixes, read_weights, resolve_weights
from depthlab.teachers.base import shared_instance
from depthlab.teachers.disparity_predictor import DisparityTeacher
from depthlab.world.shipped import load_into, load_shipped

INPUT_SIZE = 64        # the shorter side the teacher resizes images to (the mini world's size)
STRIDE = 8             # the encoder's output stride: the "patch" of the feature grid
NETWORK_CHILD = "model"  # the network's name inside a `DisparityPredictor`
NORM_GROUPS = 8


def _upsampling_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(in_channels, out_channels, 3, padding=1),
                         nn.GroupNorm(NORM_GROUPS, out_channels), nn.SiLU())


@gin.configurable
class MiniTeacherNetwork(nn.Module):
    """Normalised pixels [B, 3, H, W] (sides multiples of 8) -> disparity [B, 1, H, W] >= 0.

    `channels`: the ResNet's four stages (one basic block each; the stem has `channels[0]`);
    stages 3 and 4 are dilated instead of strided, so the features stay on the stride-8 grid.
    `decoder_channels`: the three upsampling stages (x2 each) from the grid back to the image.
    Group norm instead of batch norm: no running statistics, so a checkpoint of the parameters is
    the whole network and training and evaluation compute the same function.
    """

    input_multiple = STRIDE

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 128),
                 decoder_channels: Sequence[int] = (64, 32, 16)):
        super().__init__()
        if len(channels) != 4 or len(decoder_channels) != 3:
            raise UserError(f"MiniTeacherNetwork needs four encoder channels and three decoder "
                            f"channels (stride 8 = three x2 upsamplings); got {tuple(channels)} "
                            f"and {tuple(decoder_channels)}.")
        self.encoder = ResNet(BasicBlock, (1, 1, 1, 1), channels=tuple(channels),
                              stem_width=channels[0], output_stride=STRIDE, num_classes=0,
                              global_pool="",
                              norm_layer=functools.partial(GroupNorm, num_groups=NORM_GROUPS))
        widths = [channels[-1], *decoder_channels]
        self.decoder = nn.Sequential(*[_upsampling_stage(a, b)
                                       for a, b in zip(widths, widths[1:])])
        self.head = nn.Conv2d(widths[-1], 1, 3, padding=1)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The encoder's feature grid [B, C, H/8, W/8]."""
        return self.encoder.forward_features(pixels)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.head(self.decoder(self.features(pixels))))


def network_weights(source: str | Path) -> dict[str, torch.Tensor]:
    """The network's tensors in a run directory, a checkpoint, or a safetensors file.

    A checkpoint whose evaluated model is a disparity predictor records where its network lives
    in the recipe (`evaluated_model.json`); a plain file holds the network's own names.
    """
    file = resolve_weights(source)
    recipe_path = evaluated_prefixes(file).get(NETWORK_CHILD)
    return read_weights(file, f"{recipe_path}." if recipe_path else "")


@gin.configurable
def mini_teacher(weights: str | None = None) -> DisparityTeacher:
    """The process-wide mini teacher: the shipped weights (`depthlab/world/weights/
    teacher.safetensors`), or those in `weights` (a run directory, checkpoint or safetensors)."""
    source = "shipped" if weights is None else str(resolve_weights(weights).resolve())

    def build() -> DisparityTeacher:
        network = MiniTeacherNetwork()
        tensors = load_shipped("teacher") if weights is None else network_weights(weights)
        what = "mini teacher" + ("" if weights is None else f" ('{weights}')")
        load_into(network, {k: t.float() if t.is_floating_point() else t
                            for k, t in tensors.items()}, what)
        return DisparityTeacher(network, INPUT_SIZE, network.input_multiple)

    return shared_instance(("mini_teacher", source, _architecture_key()), build)  # type: ignore


def _architecture_key() -> str:
    """The network's gin bindings, so a changed architecture builds a new teacher."""
    return repr(sorted((k, v) for k, v in gin.get_bindings(MiniTeacherNetwork).items()))
