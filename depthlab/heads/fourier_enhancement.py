"""DepthMaster's Fourier Enhancement block (docs/methods.md, DepthMaster, stage 2).

Inserted after the UNet's mid block (`InsertAfter(at='mid_block', module=@FourierEnhancement)`),
it replaces the mid output h. Next to a spatial branch (3x3 convolutions, local), a frequency
branch convolves the amplitude and phase of the features' spectrum, where every position depends
on the whole map: the paper's aim is a one-step model that balances low-frequency structure with
high-frequency detail (edges, thin structures):

    x0 = GroupNorm(min(groups, C))(h)
    frequency: a = SiLU(Conv3x3(x0)), F = rfft2(a, ortho), A = SiLU(Conv3x3(|F|)),
               P = SiLU(Conv3x3(angle F)), a' = irfft2(A exp(iP), size of a, ortho) + a,
               xf = Conv1x1(a')
    spatial:   xs = Conv3x3(SiLU(Conv3x3(x0))) + x0
    output:    Conv1x1(concat(xs, xf))   (2C -> C)

The release has no explicit low/high-frequency split and no gate: the convolutions over the
amplitude and phase learn which frequencies to change. The transforms run in float32 at least
(torch.fft has no bfloat16) and the result is cast back to the features' dtype. About 79M
parameters at SD2's mid width (C = 1280).
"""
from __future__ import annotations

import gin
import torch
from torch import nn


@gin.configurable
class FourierEnhancement(nn.Module):
    """Maps [B, C, h, w] to [B, C, h, w], on odd and even grids alike."""

    def __init__(self, channels: int, groups: int = 8):
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.act = nn.SiLU()
        self.frequency_in = nn.Conv2d(channels, channels, 3, padding=1)
        self.amplitude = nn.Conv2d(channels, channels, 3, padding=1)
        self.phase = nn.Conv2d(channels, channels, 3, padding=1)
        self.frequency_out = nn.Conv2d(channels, channels, 1)
        self.spatial_in = nn.Conv2d(channels, channels, 3, padding=1)
        self.spatial_out = nn.Conv2d(channels, channels, 3, padding=1)
        self.fuse = nn.Conv2d(2 * channels, channels, 1)

    def frequency(self, x0: torch.Tensor) -> torch.Tensor:
        """xf, the frequency branch on the normalised features x0."""
        a = self.act(self.frequency_in(x0))
        spectrum = torch.fft.rfft2(a.to(torch.promote_types(a.dtype, torch.float32)), norm="ortho")
        real = spectrum.real.dtype
        amplitude = self.act(self.amplitude(spectrum.abs().to(a.dtype))).to(real)
        phase = self.act(self.phase(spectrum.angle().to(a.dtype))).to(real)
        # A exp(iP) written out: torch.polar leaves a negative A (SiLU's dip) undefined.
        modulated = torch.complex(amplitude * phase.cos(), amplitude * phase.sin())
        restored = torch.fft.irfft2(modulated, s=a.shape[-2:], norm="ortho").to(a.dtype)
        return self.frequency_out(restored + a)

    def spatial(self, x0: torch.Tensor) -> torch.Tensor:
        """xs, the spatial branch on the normalised features x0."""
        return self.spatial_out(self.act(self.spatial_in(x0))) + x0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x0 = self.norm(h)
        return self.fuse(torch.cat([self.spatial(x0), self.frequency(x0)], dim=1))
