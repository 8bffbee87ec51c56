"""DepthMaster's Feature Alignment head (docs/methods.md, DepthMaster, stage 1).

The UNet's mid-block features are projected per position by an MLP into a frozen external
encoder's token space (DINOv2) and compared with its tokens, resized bicubically to the mid-block
grid: this injects the encoder's semantics into the denoiser's features. The loss is chosen by
name in the loss registry (`alignment_kl`, the release's, or `alignment_cosine`).
"""
from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import nn

from depthlab.errors import UserError
from depthlab.losses import alignment  # noqa: F401  (registers the alignment losses)
from depthlab.losses.registry import get_loss


def resize_tokens(tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Encoder tokens [B, D, H', W'] resized bicubically to `size` (unchanged if already so)."""
    if tuple(tokens.shape[-2:]) == tuple(size):
        return tokens
    return F.interpolate(tokens, size=tuple(size), mode="bicubic", align_corners=False)


@gin.configurable
class FeatureAlignment(nn.Module):
    """Projector Linear(Cu, hidden) - SiLU - Linear(hidden, hidden) - SiLU - Linear(hidden, D),
    `hidden` defaulting to D (SD2 with DINOv2 ViT-g: 1280 -> 1536 -> 1536 -> 1536), and the
    registered loss `loss` between the projected features and the detached, resized tokens."""

    def __init__(self, unet_channels: int, encoder_channels: int, hidden: int | None = None,
                 loss: str = "alignment_kl"):
        super().__init__()
        hidden = hidden or encoder_channels
        self.encoder_channels = encoder_channels
        self.projector = nn.Sequential(
            nn.Linear(unet_channels, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, encoder_channels))
        self.loss_name = loss
        self.loss_fn = get_loss(loss)  # an unknown name fails here, at construction

    def project(self, unet_features: torch.Tensor) -> torch.Tensor:
        """[B, Cu, h, w] -> [B, D, h, w], the MLP applied at every position."""
        return self.projector(unet_features.movedim(1, -1)).movedim(-1, 1)

    def forward(self, unet_features: torch.Tensor, encoder_tokens: torch.Tensor) -> torch.Tensor:
        """The alignment loss (a scalar); no gradient reaches the encoder tokens."""
        if encoder_tokens.shape[1] != self.encoder_channels:
            raise UserError(f"The encoder tokens have {encoder_tokens.shape[1]} channels but the "
                            f"Feature Alignment projector outputs {self.encoder_channels}; bind "
                            f"FeatureAlignment.encoder_channels to the encoder's width.")
        projected = self.project(unet_features)
        target = resize_tokens(encoder_tokens.detach(), tuple(projected.shape[-2:]))
        return self.loss_fn(projected, target)
