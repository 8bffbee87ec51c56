"""Depth Anything V2 (and the mini world's tiny copy of it) as a predictor and as a teacher.

Outputs affine-invariant *disparity* (the model's relative-depth head predicts inverse depth,
ReLU'd). Preprocessing follows the model card: resize so the shorter side is `input_size`,
rounded to a multiple of the ViT patch (read from the model's config: 14 for DINOv2, 8 for the
mini teacher), bicubic, ImageNet normalisation; the output is resized back bilinearly.

`DepthAnythingPredictor` wraps a network without touching it, so a recipe can train the network
(`depthlab.recipes.teacher_pretraining`) and evaluate it through the same code;
`DepthAnythingTeacher` is the same computation as a frozen `Teacher`.
"""
from __future__ import annotations

from pathlib import Path

import gin
import torch
import torch.nn.functional as F
from torch import nn
from transformers import DepthAnythingForDepthEstimation

from depthlab.models.layout import require_layout
from depthlab.models.output_kind import OutputKind
from depthlab.teachers.base import Teacher, shared_instance

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def patch_size(model: DepthAnythingForDepthEstimation) -> int:
    """The ViT patch of the model's backbone (DINOv2: 14)."""
    return int(model.config.backbone_config.patch_size)


def network_size(height: int, width: int, input_size: int, patch: int) -> tuple[int, int]:
    """(H, W) the network sees: shorter side `input_size`, each side a multiple of `patch`."""
    scale = input_size / min(height, width)
    return (max(patch, round(height * scale / patch) * patch),
            max(patch, round(width * scale / patch) * patch))


class DepthAnythingPredictor(nn.Module):
    """RGB [B, 3, H, W] in [0, 1] of any size -> disparity [B, 1, H, W] at the model's own scale.

    Differentiable and leaves the wrapped network's mode and gradients alone (a recipe may train
    it); a `DepthPredictorModule`, so `Predictor` and evaluation run it like any model.
    """

    output_kind = OutputKind.DISPARITY
    input_multiple = 1
    value_range = None

    def __init__(self, model: DepthAnythingForDepthEstimation, input_size: int = 518):
        super().__init__()
        self.model = model
        self.input_size = int(input_size)
        self.patch = patch_size(model)

    def normalised_input(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB at the network's size, ImageNet-normalised."""
        size = network_size(*rgb.shape[-2:], self.input_size, self.patch)
        pixels = rgb.float()
        if tuple(pixels.shape[-2:]) != size:
            pixels = F.interpolate(pixels, size=size, mode="bicubic", align_corners=False)
        mean = pixels.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = pixels.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (pixels.clamp(0, 1) - mean) / std

    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        height, width = rgb.shape[-2:]
        disparity = self.model(pixel_values=self.normalised_input(rgb)).predicted_depth[:, None]
        if tuple(disparity.shape[-2:]) != (height, width):
            disparity = F.interpolate(disparity, size=(height, width), mode="bilinear",
                                      align_corners=False)
        return disparity.clamp_min(0.0)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.predict(rgb)

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, patch={self.patch}"


class DepthAnythingTeacher(DepthAnythingPredictor, Teacher):
    """The predictor as a frozen teacher: no gradients, always in eval mode, outputs computed
    without autograd (Depth Anything V2, or the mini world's `mini_teacher`)."""

    def __init__(self, model: DepthAnythingForDepthEstimation, input_size: int = 518):
        super().__init__(model.eval().requires_grad_(False), input_size)

    forward = Teacher.forward


@gin.configurable
def depth_anything_v2(pretrained_dir: str = gin.REQUIRED, input_size: int = 518) -> Teacher:
    """The process-wide Depth Anything V2 teacher for `pretrained_dir` (built once)."""
    root = require_layout(pretrained_dir, ["config.json"],
                          "Depth Anything V2 (transformers layout)")

    def build() -> Teacher:
        return DepthAnythingTeacher(DepthAnythingForDepthEstimation.from_pretrained(root),
                                    input_size)

    return shared_instance(("depth_anything_v2", str(Path(root).resolve()), input_size), build)
