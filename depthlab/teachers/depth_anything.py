"""Depth Anything V2 as a teacher, through transformers, from a local directory.

Outputs affine-invariant *disparity* (the model's relative-depth head predicts inverse depth).
Preprocessing follows the model card: resize so the shorter side is `input_size` (a multiple of
the ViT patch, 14), bicubic, ImageNet normalisation; the output is resized back bilinearly.
"""
from __future__ import annotations

from pathlib import Path

import gin
import torch
import torch.nn.functional as F
from transformers import DepthAnythingForDepthEstimation

from depthlab.models.layout import require_layout
from depthlab.models.output_kind import OutputKind
from depthlab.teachers.base import Teacher, shared_instance

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PATCH = 14


class DepthAnythingTeacher(Teacher):
    output_kind = OutputKind.DISPARITY

    def __init__(self, model: DepthAnythingForDepthEstimation, input_size: int = 518):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        height, width = rgb.shape[-2:]
        scale = self.input_size / min(height, width)
        size = (max(PATCH, round(height * scale / PATCH) * PATCH),
                max(PATCH, round(width * scale / PATCH) * PATCH))
        pixels = F.interpolate(rgb.float(), size=size, mode="bicubic", align_corners=False)
        pixels = (pixels.clamp(0, 1) - self.mean) / self.std
        disparity = self.model(pixel_values=pixels).predicted_depth[:, None]
        disparity = F.interpolate(disparity, size=(height, width), mode="bilinear",
                                  align_corners=False)
        return disparity.clamp_min(0.0)


@gin.configurable
def depth_anything_v2(pretrained_dir: str = gin.REQUIRED, input_size: int = 518) -> Teacher:
    """The process-wide Depth Anything V2 teacher for `pretrained_dir` (built once)."""
    root = require_layout(pretrained_dir, ["config.json"],
                          "Depth Anything V2 (transformers layout)")

    def build() -> Teacher:
        return DepthAnythingTeacher(DepthAnythingForDepthEstimation.from_pretrained(root),
                                    input_size)

    return shared_instance(("depth_anything_v2", str(Path(root).resolve()), input_size), build)
