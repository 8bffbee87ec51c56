"""The mini world's metric teacher: the mini teacher's network with a metric head, trained on depth
in metres, as Depth Anything V2's metric variants are (the stand-in for SharpDepth's metric
teacher, UniDepth).

What it simulates. A metric monocular network outputs depth in metres with the right scale on
average but, being trained on a few datasets with coarse features, little fine detail: SharpDepth
takes its scale and a diffusion model's detail. The mini metric teacher has the mini teacher's
character (`depthlab.world.mini_teacher`: a ResNet encoder on a stride-8 grid, a light decoder
without skip connections, so coarse detail) and Depth Anything V2's metric head: `max_depth *
sigmoid(x)`, so its output lies in (0, `max_depth`) metres. `max_depth` defaults to the mini
world's farthest valid depth (`depthlab.world.layout.MAX_DEPTH`, 20 m), as Depth Anything V2
uses 20 m for its indoor (Hypersim) and 80 m for its outdoor (Virtual KITTI) model.

How it is made. `experiments/mini/pretrain/metric_teacher.gin` trains
`MiniMetricTeacherNetwork()` from scratch on both mini-world domains with the SILog loss on ground
truth in metres (`depthlab.recipes.metric_teacher_pretraining`), and `python -m
depthlab.world.regenerate --only metric_teacher` ships its weights
(`depthlab/world/weights/metric_teacher.safetensors`).

Blocks:
- `MiniMetricTeacherNetwork`: the architecture (the shipped weights fit the default bindings only);
- `mini_metric_teacher(weights=None)`: the frozen `MetricDepthTeacher` around it at `INPUT_SIZE`,
  with the shipped weights or those of a run, checkpoint or safetensors file, built once per
  process.
"""
from __future__ import annotations

from typing import Sequence

import gin
import torch

from depthlab.models.weights import resolve_weights
from depthlab.teachers.base import shared_instance
from depthlab.teachers.metric import MetricDepthTeacher
from depthlab.world.layout import MAX_DEPTH
from depthlab.world.mini_teacher import INPUT_SIZE, MiniTeacherNetwork, network_weights
from depthlab.world.shipped import load_into, load_shipped

SHIPPED_NAME = "metric_teacher"


@gin.configurable
class MiniMetricTeacherNetwork(MiniTeacherNetwork):
    """Normalised pixels [B, 3, H, W] (sides multiples of 8) -> depth in metres [B, 1, H, W] in
    (0, `max_depth`).

    `channels` and `decoder_channels` as `MiniTeacherNetwork` (same defaults); the head's output
    goes through `max_depth * sigmoid` instead of a softplus.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 128),
                 decoder_channels: Sequence[int] = (64, 32, 16), max_depth: float = MAX_DEPTH):
        super().__init__(channels, decoder_channels)
        self.max_depth = float(max_depth)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.max_depth * torch.sigmoid(self.head(self.decoder(self.features(pixels))))


@gin.configurable
def mini_metric_teacher(weights: str | None = None) -> MetricDepthTeacher:
    """The process-wide mini metric teacher: the shipped weights (`depthlab/world/weights/
    metric_teacher.safetensors`), or those in `weights` (a run directory, checkpoint or
    safetensors)."""
    source = "shipped" if weights is None else str(resolve_weights(weights).resolve())

    def build() -> MetricDepthTeacher:
        network = MiniMetricTeacherNetwork()
        tensors = load_shipped(SHIPPED_NAME) if weights is None else network_weights(weights)
        what = "mini metric teacher" + ("" if weights is None else f" ('{weights}')")
        load_into(network, {k: t.float() if t.is_floating_point() else t
                            for k, t in tensors.items()}, what)
        return MetricDepthTeacher(network, INPUT_SIZE, network.input_multiple)

    key = ("mini_metric_teacher", source,
           repr(sorted(gin.get_bindings(MiniMetricTeacherNetwork).items())))
    return shared_instance(key, build)  # type: ignore[return-value]
