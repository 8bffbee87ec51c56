"""A residual adapter to insert into a UNet: x + Conv1x1(SiLU(Conv3x3(GroupNorm(x)))).

The last convolution starts at zero, so inserting the adapter (`InsertAfter`) leaves a pretrained
UNet's predictions unchanged until it trains - the usual way to add capacity at a named place.
"""
from __future__ import annotations

import gin
import torch
from torch import nn


@gin.configurable
class ResidualAdapter(nn.Module):
    """Identity at initialisation; `hidden` channels (default: `channels`) in the branch."""

    def __init__(self, channels: int, hidden: int | None = None, groups: int = 8):
        super().__init__()
        hidden = hidden or channels
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.conv = nn.Conv2d(channels, hidden, 3, padding=1)
        self.act = nn.SiLU()
        self.out = nn.Conv2d(hidden, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(self.act(self.conv(self.norm(x))))
