"""A network as a predictor and as a frozen teacher, with Depth Anything's preprocessing.

Relative-depth networks (Depth Anything V2, the mini world's teacher) output affine-invariant
*disparity* at their own scale; metric ones (Depth Anything V2's metric variants, the mini metric
teacher: `depthlab.teachers.metric`) output depth in metres. Their preprocessing, from Depth
Anything V2's model card: resize so the shorter side is `input_size`, each side rounded to a
multiple of the network's grid (the ViT patch, or a CNN's stride), bicubic, ImageNet
normalisation; the output is resized back bilinearly and clamped at 0.

`NetworkPredictor` is that computation for a map of the kind its class declares
(`output_kind`); `DisparityPredictor` declares disparity. A predictor wraps a network without
touching it (differentiable, the network's mode and gradients left alone), so a recipe can train
the network (`depthlab.recipes.teacher_pretraining`) and evaluate it through the same code;
`DisparityTeacher` is the same computation as a frozen `Teacher`. A network maps
ImageNet-normalised pixels [B, 3, h, w] to its map [B, 1, h, w] (`network_map`);
`depthlab.teachers.depth_anything` adapts transformers' Depth Anything output to that.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.models.imagenet_input import imagenet_input
from depthlab.models.output_kind import OutputKind
from depthlab.teachers.base import Teacher


def network_size(height: int, width: int, input_size: int, multiple: int) -> tuple[int, int]:
    """(H, W) the network sees: shorter side `input_size`, each side a multiple of `multiple`."""
    scale = input_size / min(height, width)
    return (max(multiple, round(height * scale / multiple) * multiple),
            max(multiple, round(width * scale / multiple) * multiple))


class NetworkPredictor(nn.Module):
    """RGB [B, 3, H, W] in [0, 1] of any size -> the network's map [B, 1, H, W] (>= 0) of the
    kind the class declares, at the network's scale.

    A `DepthPredictorModule`, so `Predictor` and evaluation run it like any model. `multiple`: the
    network's grid (its input sides must be multiples of it).
    """

    output_kind: OutputKind
    input_multiple = 1
    value_range = None

    def __init__(self, model: nn.Module, input_size: int, multiple: int):
        super().__init__()
        self.model = model
        self.input_size = int(input_size)
        self.multiple = int(multiple)

    def normalised_input(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB at the network's size, ImageNet-normalised."""
        size = network_size(*rgb.shape[-2:], self.input_size, self.multiple)
        return imagenet_input(rgb.float(), size)

    def network_map(self, pixels: torch.Tensor) -> torch.Tensor:
        """The network's map [B, 1, h, w] for normalised pixels."""
        return self.model(pixels)

    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        height, width = rgb.shape[-2:]
        output = self.network_map(self.normalised_input(rgb))
        if tuple(output.shape[-2:]) != (height, width):
            output = F.interpolate(output, size=(height, width), mode="bilinear",
                                   align_corners=False)
        return output.clamp_min(0.0)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.predict(rgb)

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, multiple={self.multiple}"


def frozen(model: nn.Module) -> nn.Module:
    """`model` in eval mode without gradients, as a teacher holds its network."""
    return model.eval().requires_grad_(False)


class DisparityPredictor(NetworkPredictor):
    """A network of normalised pixels to disparity as a predictor (see `NetworkPredictor`)."""

    output_kind = OutputKind.DISPARITY


class DisparityTeacher(DisparityPredictor, Teacher):
    """The predictor as a frozen teacher: no gradients, always in eval mode, outputs computed
    without autograd."""

    def __init__(self, model: nn.Module, input_size: int, multiple: int):
        super().__init__(frozen(model), input_size, multiple)

    forward = Teacher.forward
