"""FiffDepth's learnable filter: the same UNet run once more at timestep t = -1.

During training, real images pass through the feed-forward prediction d0 = UNet(x0, 0) and then
through this filter, d_-1 = UNet(d0, -1), which is supervised by the teacher's pseudo-label. The
teacher thereby corrects low frequencies of d_-1 without erasing the detail that d0 keeps; at
inference only d0 is used. The filter owns no parameters: it reuses the backbone.
"""
from __future__ import annotations

import gin
import torch
from torch import nn

from depthlab.models.backbone import UNetBackbone


@gin.configurable
class TMinusOneFilter(nn.Module):
    """d_-1 = backbone(d0, timestep); `detach_input` stops teacher gradients reaching d0's pass.

    Whether FiffDepth detaches d0 is not public; the default keeps it attached, so the teacher
    also shapes the feed-forward pass through the filter (a binding: `detach_input = True`).
    `enabled = False` is the paper's "teacher on d0" ablation: the teacher then supervises d0.
    """

    def __init__(self, timestep: float = -1.0, detach_input: bool = False, enabled: bool = True):
        super().__init__()
        self.timestep = timestep
        self.detach_input = detach_input
        self.enabled = enabled

    def inputs(self, d0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The UNet's (input latent, per-sample timesteps) for the filter pass on `d0`; the
        recipe batches it with its other passes (`UNetBackbone.forward_many`)."""
        latent = d0.detach() if self.detach_input else d0
        return latent, torch.full((len(d0),), float(self.timestep), device=d0.device)

    def forward(self, backbone: UNetBackbone, d0: torch.Tensor) -> torch.Tensor:
        """d_-1 = backbone(d0, timestep), as one pass on its own."""
        return backbone(*self.inputs(d0))
