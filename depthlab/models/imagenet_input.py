"""ImageNet-normalised network input, shared by the teachers and the frozen feature encoders
(Depth Anything V2 and DINOv2 expect it)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_input(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """RGB [B, 3, H, W] in [0, 1] resized bicubically to `size` (if needed), clipped to [0, 1]
    (bicubic overshoots) and normalised by ImageNet's mean and standard deviation."""
    if tuple(pixels.shape[-2:]) != tuple(size):
        pixels = F.interpolate(pixels, size=tuple(size), mode="bicubic", align_corners=False)
    mean = pixels.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = pixels.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels.clamp(0, 1) - mean) / std
