"""Reading RGB images and uint16 depth PNGs into the sample convention of depthlab datasets.

A sample is a dict: `rgb` float32 [3, H, W] in [0, 1]; `depth` float32 [1, H, W] in metres with
0 = invalid; `valid` bool [1, H, W]; `name` str.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from depthlab.errors import UserError


def read_rgb(path: Path) -> torch.Tensor:
    """RGB image -> float32 [3, H, W] in [0, 1] (EXIF orientation applied, alpha dropped)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.float32)
    except (OSError, UnidentifiedImageError) as error:
        raise UserError(f"Cannot read the image '{path}': {error}") from None
    return torch.from_numpy(array / 255.0).permute(2, 0, 1).contiguous()


def read_depth_png(path: Path, scale: float) -> torch.Tensor:
    """uint16 depth PNG -> float32 [1, H, W] metres (value / scale)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image, dtype=np.float32)
    except (OSError, UnidentifiedImageError) as error:
        raise UserError(f"Cannot read the depth map '{path}': {error}") from None
    return torch.from_numpy(array / scale)[None]


def depth_sample(rgb_path: Path, depth_path: Path, depth_scale: float, min_depth: float,
                 max_depth: float, name: str) -> dict:
    """A labelled sample with the valid range `min_depth < d < max_depth` applied."""
    rgb = read_rgb(rgb_path)
    depth = read_depth_png(depth_path, depth_scale)
    if depth.shape[-2:] != rgb.shape[-2:]:
        raise UserError(f"Sample '{name}': RGB {tuple(rgb.shape[-2:])} and depth "
                        f"{tuple(depth.shape[-2:])} differ in size.")
    valid = (depth > min_depth) & (depth < max_depth)
    return {"rgb": rgb, "depth": torch.where(valid, depth, 0.0), "valid": valid, "name": name}
