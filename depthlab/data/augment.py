"""Horizontal flips of training samples, with a rule per field so every target flips correctly.

A sample is a dict of fields. Images and masks flip along the width; surface normals flip and
negate their x component (a mirrored surface faces the other way); OpenCV intrinsics move their
principal point. A tensor field without a rule is an error rather than a silently wrong label.
"""
from __future__ import annotations

from typing import Callable

import torch

from depthlab.errors import UserError

FlipRule = Callable[[torch.Tensor], torch.Tensor]


def flip_width(image: torch.Tensor) -> torch.Tensor:
    """[..., H, W] mirrored left-right."""
    return image.flip(-1)


def flip_normals(normals: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] normals (x right, y down, z forward) of the mirrored image: x changes sign."""
    flipped = normals.flip(-1).clone()
    flipped[..., 0, :, :] = -flipped[..., 0, :, :]
    return flipped


def _flip_intrinsics_for(width: int) -> FlipRule:
    def flip(intrinsics: torch.Tensor) -> torch.Tensor:
        """OpenCV [3, 3] (pixel centres at integers): cx -> (W - 1) - cx."""
        flipped = intrinsics.clone()
        flipped[0, 2] = (width - 1) - intrinsics[0, 2]
        return flipped
    return flip


FLIP_RULES: dict[str, FlipRule] = {"rgb": flip_width, "depth": flip_width, "valid": flip_width,
                                   "normals": flip_normals}


def register_flip(field: str, rule: FlipRule) -> None:
    """Declare how a new sample field flips (e.g. a segmentation map: `flip_width`)."""
    FLIP_RULES[field] = rule


def hflip(sample: dict) -> dict:
    """The sample mirrored left-right; non-tensor fields (names) are kept."""
    width = sample["rgb"].shape[-1]
    rules = {**FLIP_RULES, "intrinsics": _flip_intrinsics_for(width)}
    flipped = {}
    for field, value in sample.items():
        if not isinstance(value, torch.Tensor):
            flipped[field] = value
        elif field in rules:
            flipped[field] = rules[field](value)
        else:
            raise UserError(f"Cannot flip the sample field '{field}' of '{sample.get('name', '?')}'"
                            f": no flip rule is registered for it (depthlab.data.augment."
                            f"register_flip), or set MixedBatches.flip_probability = 0.")
    return flipped
