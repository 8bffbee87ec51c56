"""Depth Anything V2 (transformers layout) as a predictor and as a teacher.

Outputs affine-invariant *disparity* (the relative-depth head predicts inverse depth, ReLU'd),
with the model card's preprocessing (`depthlab.teachers.disparity_predictor`): the shorter side
resized to `input_size` and each side rounded to a multiple of the ViT patch, read from the
model's config (14 for DINOv2).
"""
from __future__ import annotations

from pathlib import Path

import gin
import torch
from transformers import DepthAnythingForDepthEstimation

from depthlab.models.layout import require_layout
from depthlab.teachers.base import Teacher, shared_instance
from depthlab.teachers.disparity_predictor import DisparityPredictor, DisparityTeacher


def patch_size(model: DepthAnythingForDepthEstimation) -> int:
    """The ViT patch of the model's backbone (DINOv2: 14)."""
    return int(model.config.backbone_config.patch_size)


def depth_anything_map(model: DepthAnythingForDepthEstimation,
                       pixels: torch.Tensor) -> torch.Tensor:
    """The model's `predicted_depth` [B, 1, h, w]: disparity for the relative head, metres for
    the metric one."""
    return model(pixel_values=pixels).predicted_depth[:, None]


class DepthAnythingPredictor(DisparityPredictor):
    """A `DepthAnythingForDepthEstimation` as a disparity predictor (see `DisparityPredictor`)."""

    def __init__(self, model: DepthAnythingForDepthEstimation, input_size: int = 518):
        super().__init__(model, input_size, patch_size(model))

    @property
    def patch(self) -> int:
        return self.multiple

    def network_map(self, pixels: torch.Tensor) -> torch.Tensor:
        return depth_anything_map(self.model, pixels)


class DepthAnythingTeacher(DepthAnythingPredictor, DisparityTeacher):
    """Depth Anything V2 as a frozen teacher."""

    def __init__(self, model: DepthAnythingForDepthEstimation, input_size: int = 518):
        DisparityTeacher.__init__(self, model, input_size, patch_size(model))


@gin.configurable
def depth_anything_v2(pretrained_dir: str = gin.REQUIRED, input_size: int = 518) -> Teacher:
    """The process-wide Depth Anything V2 teacher for `pretrained_dir` (built once)."""
    root = require_layout(pretrained_dir, ["config.json"],
                          "Depth Anything V2 (transformers layout)")

    def build() -> Teacher:
        return DepthAnythingTeacher(DepthAnythingForDepthEstimation.from_pretrained(root),
                                    input_size)

    return shared_instance(("depth_anything_v2", str(Path(root).resolve()), input_size), build)
