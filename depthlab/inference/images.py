"""Turning whatever a user points the predictor at into HxWx3 float32 RGB in [0, 1].

Handles 8- and 16-bit, grayscale, palette and alpha images (alpha is composited over white, so
transparent areas read as a plain background instead of whatever colour they happen to store)
and, for files, the EXIF orientation, so outputs line up with the photo as viewers show it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageOps

from depthlab.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm",
                  ".pgm", ".jp2"}
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def composite_alpha(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite [0, 1] colour over white with [0, 1] alpha (HxW)."""
    alpha = alpha[..., None]
    return rgb * alpha + (1.0 - alpha)


def normalise_array(array: np.ndarray) -> np.ndarray:
    """An HxW, HxWx1, HxWx3 or HxWx4 uint8, uint16, bool or float array -> HxWx3 float32."""
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535.0
    elif array.dtype == bool or np.issubdtype(array.dtype, np.floating):
        values = np.clip(array.astype(np.float32), 0.0, 1.0)
    else:
        raise UserError(f"Unsupported image array type {array.dtype}: expected uint8, uint16 or "
                        f"float in [0, 1].")
    if values.ndim == 2:
        values = values[..., None]
    if values.ndim != 3 or values.shape[-1] not in (1, 3, 4):
        raise UserError(f"Unsupported image array shape {array.shape}: expected HxW, HxWx1, "
                        f"HxWx3 or HxWx4.")
    if values.shape[-1] == 4:
        values = composite_alpha(values[..., :3], values[..., 3])
    elif values.shape[-1] == 1:
        values = np.repeat(values, 3, axis=-1)
    return np.ascontiguousarray(values, dtype=np.float32)


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image in any common mode -> HxWx3 float32 in [0, 1]."""
    if image.mode in SIXTEEN_BIT_MODES:
        return normalise_array(np.clip(np.asarray(image), 0, 65535).astype(np.uint16))
    if image.mode == "F":
        return normalise_array(np.asarray(image, dtype=np.float32))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    return normalise_array(np.asarray(image.convert("RGBA" if has_alpha else "RGB")))


def to_rgb_array(image: np.ndarray | Image.Image) -> np.ndarray:
    """Predictor input (PIL image or array; numpy uint8 HxWx3 typically) -> HxWx3 float32."""
    if isinstance(image, Image.Image):
        return pil_to_array(image)
    if isinstance(image, np.ndarray):
        return normalise_array(image)
    raise UserError(f"Cannot predict on a {type(image).__name__}: pass PIL images or numpy "
                    f"arrays.")


def load_image(path: Path) -> np.ndarray:
    """Read an image file (EXIF orientation applied) -> HxWx3 float32 in [0, 1].

    Raises whatever Pillow raises for a file it cannot decode; callers report it and skip.
    """
    with Image.open(path) as image:
        image.load()
        return pil_to_array(ImageOps.exif_transpose(image))


def list_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus the image files (by suffix) directly inside named folders."""
    paths = [Path(p) for p in paths]
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"The input '{path}' does not exist: give image files or folders.")
    if not found:
        raise UserError(f"No images found in {', '.join(map(str, paths))} (looked for "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))}).")
    return found
