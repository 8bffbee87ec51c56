"""Latent codec: a frozen diffusers `AutoencoderKL` with Stable Diffusion 2's conventions.

Encoding takes the posterior *mean* times the scaling factor; a depth map in [-1, 1] is repeated to
three channels and encoded like an image; decoding divides by the scaling factor, decodes and
averages the three channels. The decoder stays differentiable (frozen weights, gradients flow
through it) because pixel-space losses need it.
"""
from __future__ import annotations

from pathlib import Path

import gin
import torch
from diffusers import AutoencoderKL
from torch import nn

from depthlab.models.layout import require_layout


class LatentCodec(nn.Module):
    """Frozen VAE mapping images and depth maps in [-1, 1] to latents and back."""

    frozen = True  # never trained (see depthlab.models.freezing)

    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        self.scaling_factor = float(vae.config.scaling_factor)

    @property
    def downsample_factor(self) -> int:
        """Pixels per latent cell along each side (8 for SD2's VAE)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    def train(self, mode: bool = True) -> "LatentCodec":
        return super().train(False)  # the codec is frozen in every method

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> [B, C, H/f, W/f] latent (posterior mean x scaling factor)."""
        return self.vae.encode(image).latent_dist.mean * self.scaling_factor

    def encode_depth(self, depth: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] normalised depth in [-1, 1] -> latent, by repeating it to 3 channels."""
        return self.encode_image(depth.expand(-1, 3, -1, -1))

    def decode_image(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent -> [B, 3, H, W] as decoded (not clipped; gradients flow)."""
        return self.vae.decode(latent / self.scaling_factor).sample

    def decode_depth(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent -> [B, 1, H, W] normalised depth (channel mean, not clipped; gradients flow)."""
        return self.decode_image(latent).mean(dim=1, keepdim=True)

    def decode_normals(self, latent: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
        """Latent -> [B, 3, H, W] unit normals: the decoded image divided by its length (plus
        `eps`, as E2E-FT does) and clipped to [-1, 1]. Normals are encoded as an image."""
        image = self.decode_image(latent)
        return (image / (image.norm(dim=1, keepdim=True) + eps)).clamp(-1.0, 1.0)

    def decode_unit(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent -> decoded map clipped to [-1, 1] and mapped to [0, 1]."""
        return (self.decode_depth(latent).clamp(-1.0, 1.0) + 1.0) / 2.0

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the decoder's activations in the backward pass (pixel-space losses)."""
        self.vae.enable_gradient_checkpointing()


@gin.configurable
def pretrained_codec(pretrained_dir: str = gin.REQUIRED, subfolder: str = "vae") -> LatentCodec:
    """The VAE of a local diffusers checkpoint directory (e.g. Stable Diffusion 2)."""
    root = require_layout(pretrained_dir, [f"{subfolder}/config.json"], "VAE (diffusers layout)")
    return LatentCodec(AutoencoderKL.from_pretrained(root, subfolder=subfolder))


@gin.configurable
def small_vae(block_out_channels: tuple[int, ...] = (32, 64, 64), layers_per_block: int = 1,
              latent_channels: int = 4, norm_num_groups: int = 16,
              scaling_factor: float = 1.0) -> AutoencoderKL:
    """A small randomly initialised `AutoencoderKL` (same class as SD2's, smaller widths)."""
    depth = len(block_out_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels,
        down_block_types=("DownEncoderBlock2D",) * depth,
        up_block_types=("UpDecoderBlock2D",) * depth,
        block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
        norm_num_groups=norm_num_groups, scaling_factor=scaling_factor, sample_size=64)


def load_codec_dir(path: str | Path) -> LatentCodec:
    """Load a codec saved with `AutoencoderKL.save_pretrained` (no subfolder)."""
    return LatentCodec(AutoencoderKL.from_pretrained(path))
