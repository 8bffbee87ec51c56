"""`DepthModel`: backbone + codec + inference mode, the one object every recipe predicts with."""
from __future__ import annotations

import gin
import torch
from torch import nn

from depthlab.models.backbone import UNetBackbone
from depthlab.models.codec import LatentCodec
from depthlab.models.modes import InferenceMode, ModeInputs
from depthlab.models.output_kind import OutputKind

# What a model's decoded output may hold, per kind (affine-invariant maps come out in [0, 1]).
VALUE_RANGES: dict[OutputKind, tuple[float | None, float | None]] = {
    OutputKind.DEPTH: (0.0, 1.0), OutputKind.DISPARITY: (0.0, 1.0),
    OutputKind.SQRT_DISPARITY: (0.0, 1.0), OutputKind.METRIC_DEPTH: (0.0, None),
    OutputKind.NORMALS: (-1.0, 1.0)}


@gin.configurable
class DepthModel(nn.Module):
    """RGB in [0, 1] -> the map its inference mode declares (`output_kind`).

    Training recipes hold a `DepthModel` and add their losses around it; evaluation and the
    predict CLI call `predict`, so every recipe is evaluated through the same code.
    """

    def __init__(self, backbone: UNetBackbone = gin.REQUIRED, codec: LatentCodec = gin.REQUIRED,
                 mode: InferenceMode = gin.REQUIRED):
        super().__init__()
        self.backbone = backbone
        self.codec = codec
        self.mode = mode

    @property
    def output_kind(self) -> OutputKind:
        return self.mode.output_kind

    @property
    def input_multiple(self) -> int:
        """Input height and width must be multiples of this (the codec's downsampling)."""
        return self.codec.downsample_factor

    @property
    def value_range(self) -> tuple[float | None, float | None]:
        return VALUE_RANGES[self.output_kind]

    def encode_rgb(self, rgb: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [0, 1] -> RGB latent."""
        return self.codec.encode_image(rgb * 2.0 - 1.0)

    def latent_to_unit(self, latent: torch.Tensor) -> torch.Tensor:
        """Depth latent -> decoded map clipped to [-1, 1] and mapped to [0, 1]."""
        return self.codec.decode_unit(latent)

    def mode_inputs(self, rgb: torch.Tensor) -> ModeInputs:
        with torch.no_grad():
            rgb_latent = self.encode_rgb(rgb)
        return ModeInputs(rgb, rgb_latent, self.backbone, self.codec)

    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        """The output map [B, C, H, W] for RGB [B, 3, H, W] in [0, 1] (H, W multiples of
        `input_multiple`), as the mode computes it."""
        return self.mode(self.mode_inputs(rgb))

    def enable_gradient_checkpointing(self, decoder: bool = False) -> None:
        """Checkpoint the UNet and, for pixel-space losses, the codec's decoder."""
        self.backbone.enable_gradient_checkpointing()
        if decoder:
            self.codec.enable_gradient_checkpointing()
