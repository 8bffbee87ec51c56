"""`DepthModel`: backbone + codec + inference mode, the one object every recipe predicts with."""
from __future__ import annotations

import gin
import torch
from torch import nn

from depthlab.inference.modes import InferenceMode
from depthlab.models.backbone import UNetBackbone
from depthlab.models.codec import LatentCodec
from depthlab.targets import Space


@gin.configurable
class DepthModel(nn.Module):
    """RGB in [0, 1] -> affine-invariant map in [0, 1] in `space`, via one inference mode.

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
    def space(self) -> Space:
        return self.mode.space

    def encode_rgb(self, rgb: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [0, 1] -> RGB latent."""
        return self.codec.encode_image(rgb * 2.0 - 1.0)

    def latent_to_unit(self, latent: torch.Tensor) -> torch.Tensor:
        """Depth latent -> decoded map clipped to [-1, 1] and mapped to [0, 1]."""
        return (self.codec.decode_depth(latent).clamp(-1.0, 1.0) + 1.0) / 2.0

    def predict_latent(self, rgb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            rgb_latent = self.encode_rgb(rgb)
        return self.mode(self.backbone, rgb_latent)

    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        """Affine-invariant prediction [B, 1, H, W] in [0, 1]; H, W multiples of the codec factor.

        The mode decodes (`InferenceMode.predict_unit`): one latent for most methods, several
        aligned and merged ones for Marigold's ensemble.
        """
        with torch.no_grad():
            rgb_latent = self.encode_rgb(rgb)
        return self.mode.predict_unit(self, rgb_latent)
