"""SharpDepth's noise-aware gating (docs/methods.md, SharpDepth).

A first pass of the network on [RGB latent, noise] gives an affine-invariant depth map. Where it
disagrees with the metric teacher's depth (both normalised per image to [-1, 1]), the metric map
is not trusted and the second pass starts from noise; where they agree, it starts from the metric
map's latent, so the diffusion model keeps the metric model's layout and adds detail:

    e = clip(|first pass - normalised metric| / scale, 0, 1)     (scale: the image's largest
                                                                   difference, by default)
    m = nearest-neighbour downsampling of e to the latent grid
    gated latent = m * noise + (1 - m) * E(normalised metric)

During training a sample's input is pure noise with probability `pure_noise_probability` (0.2),
so the model also learns the ungated task. No alignment is fitted before the difference: the
normalisation is the only one.
"""
from __future__ import annotations

from dataclasses import dataclass

import gin
import torch
import torch.nn.functional as F
from torch import nn

from depthlab.errors import UserError, check_choice

GATINGS = ("error", "uniform")
FLAT = 1e-12  # a range or largest difference below this counts as zero


def normalise_per_image(depth: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] -> each image mapped linearly from [min, max] to [-1, 1] (flat maps: 0)."""
    low = depth.amin(dim=(1, 2, 3), keepdim=True)
    span = depth.amax(dim=(1, 2, 3), keepdim=True) - low
    flat = span <= FLAT
    return torch.where(flat, 0.0, 2.0 * (depth - low) / torch.where(flat, 1.0, span) - 1.0)


def error_map(first_pass: torch.Tensor, reference: torch.Tensor,
              scale: float | None = None) -> torch.Tensor:
    """clip(|first_pass - reference| / scale, 0, 1) per pixel, [B, 1, H, W].

    `scale` None divides by each image's largest difference (an image whose two maps agree
    everywhere gets e = 0); a number divides every image by it (2: the width of [-1, 1]).
    """
    difference = (first_pass - reference).abs()
    if scale is None:
        largest = difference.amax(dim=(1, 2, 3), keepdim=True)
        scaled = torch.where(largest <= FLAT, 0.0, difference / largest.clamp_min(FLAT))
    else:
        scaled = difference / scale
    return scaled.clamp(0.0, 1.0)


def latent_mask(error: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The error map [B, 1, H, W] sampled to the latent grid `size` by nearest neighbour."""
    return F.interpolate(error, size=tuple(size), mode="nearest")


def gated_latent(mask: torch.Tensor, noise: torch.Tensor,
                 metric_latent: torch.Tensor) -> torch.Tensor:
    """mask * noise + (1 - mask) * metric latent; the mask [B, 1, h, w] broadcasts over channels."""
    return mask * noise + (1.0 - mask) * metric_latent


@dataclass
class Gate:
    """The gating of one batch: pixel error map, latent mask and the second pass's input latent."""

    error: torch.Tensor   # [B, 1, H, W] in [0, 1]
    mask: torch.Tensor    # [B, 1, h, w] in [0, 1]: 1 = noise
    latent: torch.Tensor  # [B, C, h, w]


@gin.configurable
class NoiseAwareGating(nn.Module):
    """The gating block: first-pass depth and normalised metric depth in, the second pass's input
    latent out. Owns no parameters.

    `gating`: 'error' (SharpDepth) or 'uniform' (the ablation: the second pass always starts from
    noise, as Lotus-G does; the error map is still computed for the reconstruction loss).
    `error_scale`: see `error_map` (None: each image's largest difference).
    `pure_noise_probability`: per training sample, the chance its input is pure noise.
    """

    def __init__(self, pure_noise_probability: float = 0.2, gating: str = "error",
                 error_scale: float | None = None):
        super().__init__()
        check_choice(gating, GATINGS, "NoiseAwareGating.gating")
        if not 0.0 <= pure_noise_probability <= 1.0:
            raise UserError(f"NoiseAwareGating.pure_noise_probability must lie in [0, 1]; got "
                            f"{pure_noise_probability}.")
        if error_scale is not None and error_scale <= 0:
            raise UserError(f"NoiseAwareGating.error_scale must be positive or None; got "
                            f"{error_scale}.")
        self.pure_noise_probability = float(pure_noise_probability)
        self.gating = gating
        self.error_scale = error_scale

    def forward(self, first_pass: torch.Tensor, normalised_metric: torch.Tensor,
                noise: torch.Tensor, metric_latent: torch.Tensor,
                generator: torch.Generator | None = None) -> Gate:
        """Maps in [-1, 1] ([B, 1, H, W]) and latents ([B, C, h, w]) -> `Gate`. With a
        `generator` (training), samples drawn from it with the pure-noise probability get mask 1
        everywhere; without one (inference) no sample is drawn."""
        error = error_map(first_pass, normalised_metric, self.error_scale)
        if self.gating == "uniform":
            mask = torch.ones_like(noise[:, :1])
        else:
            mask = latent_mask(error, tuple(noise.shape[-2:])).to(noise.dtype)
        if generator is not None and self.pure_noise_probability > 0:
            draws = torch.rand(len(noise), generator=generator, device=generator.device)
            pure = (draws < self.pure_noise_probability).to(noise.device).view(-1, 1, 1, 1)
            mask = torch.where(pure, 1.0, mask)
        return Gate(error, mask, gated_latent(mask, noise, metric_latent))

    def extra_repr(self) -> str:
        return (f"gating={self.gating}, pure_noise_probability={self.pure_noise_probability}, "
                f"error_scale={self.error_scale}")
