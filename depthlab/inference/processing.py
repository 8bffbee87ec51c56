"""Resolution handling around the network: resize to the processing resolution, pad to the
codec's multiple, and undo both. Conventions follow diffusers' `MarigoldImageProcessor` (longer
side floored to the processing resolution, replicate padding at the bottom and right) so that
depthlab's predictions match `MarigoldDepthPipeline`'s.
"""
from __future__ import annotations

import gin
import torch
import torch.nn.functional as F

from depthlab.errors import UserError


@gin.configurable
def default_processing_res(resolution: int = 768) -> int:
    """A recipe's processing resolution (longer side; 0 = native), used when none is given.

    768 is the default of FiffDepth, E2E-FT, DepthMaster and Marigold v1.1; the mini-world
    recipes bind 0.
    """
    return int(resolution)


def processing_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """(H, W) at which the network sees an image: native for 0, else longer side = resolution."""
    if resolution < 0:
        raise UserError(f"The processing resolution must be 0 (native) or positive; got "
                        f"{resolution}.")
    if resolution == 0:
        return height, width
    longer = max(height, width)
    return max(1, height * resolution // longer), max(1, width * resolution // longer)


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of [B, C, H, W]; the identity when the size already matches."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad [B, C, H, W] at the bottom and right so H and W are multiples."""
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
