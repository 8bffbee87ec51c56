"""The frozen image feature encoder interface (DepthMaster's Feature Alignment target).

A `FeatureEncoder` maps RGB in [0, 1] to the final layer's normalised patch tokens laid out on
their grid, [B, D, H/patch, W/patch], without class or register tokens. Encoders are frozen by
nature: marked with `depthlab.models.freezing.freeze` (no gradients, eval mode, and the trainer
refuses an optimizer that would receive their parameters), kept in eval mode by `train()`, and
run without autograd. Heavy encoders are built once per process through the teachers' cache
(`depthlab.teachers.base.shared_instance`).

Preprocessing: each side is resized (bicubic, as DINOv2's and Depth Anything V2's preprocessing
resize) to the nearest multiple of the patch, at least one patch, so no pixel is cropped away and
the grid covers the whole image; then ImageNet mean/std normalisation. The change of scale is
under half a patch per side, so no antialiasing is needed.
"""
from __future__ import annotations

import abc

import torch
from torch import nn

from depthlab.models.freezing import freeze
from depthlab.models.imagenet_input import imagenet_input



def grid_input_size(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """(H, W) rounded to the nearest multiples of `patch_size` (at least one patch each)."""
    return (max(patch_size, round(height / patch_size) * patch_size),
            max(patch_size, round(width / patch_size) * patch_size))


def tokens_to_grid(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Patch tokens [B, h*w, D] in row-major order -> [B, D, h, w]."""
    batch, count, channels = tokens.shape
    if count != height * width:
        raise ValueError(f"{count} patch tokens do not fill a {height}x{width} grid")
    return tokens.transpose(1, 2).reshape(batch, channels, height, width)


class FeatureEncoder(nn.Module, abc.ABC):
    """Frozen encoder: RGB [B, 3, H, W] in [0, 1] of any size -> patch tokens [B, D, h, w].

    (h, w) is the input size rounded to multiples of `patch_size`, divided by it (see the module
    docstring). Subclasses implement `encode` on ImageNet-normalised pixels whose sides are
    multiples of the patch, and call `freeze(self)` once their modules are set.
    """

    frozen = True  # never trained (see depthlab.models.freezing)

    def __init__(self, channels: int, patch_size: int):
        super().__init__()
        self._channels = int(channels)
        self._patch_size = int(patch_size)

    @property
    def channels(self) -> int:
        """Token width D."""
        return self._channels

    @property
    def patch_size(self) -> int:
        """Pixels per token along each side."""
        return self._patch_size

    @abc.abstractmethod
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels [B, 3, h*p, w*p] -> tokens [B, D, h, w]."""

    def normalised_input(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB resized to the patch grid and ImageNet-normalised, on the encoder's device and
        in its dtype."""
        parameter = next(self.parameters(), None)
        pixels = rgb.float() if parameter is None else \
            rgb.to(device=parameter.device, dtype=parameter.dtype)
        return imagenet_input(pixels, grid_input_size(*pixels.shape[-2:], self.patch_size))

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.encode(self.normalised_input(rgb))

    def train(self, mode: bool = True) -> "FeatureEncoder":
        return super().train(False)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, patch_size={self.patch_size}"

