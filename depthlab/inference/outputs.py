"""Writing one prediction to disk: raw float32 .npy, 16-bit PNG, colour PNG and point cloud.

All three image outputs hold the raw prediction in [0, 1] without any per-image stretching, so
they stay comparable across images and the PNG can be read back exactly (value / 65535).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

from depthlab.errors import UserError
from depthlab.inference.pointcloud import Intrinsics, save_point_cloud
from depthlab.targets import Space

OUTPUT_KINDS = ("npy", "png16", "color", "ply")


def parse_kinds(text: str) -> list[str]:
    """'npy,png16' -> ['npy', 'png16'], rejecting unknown kinds."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise UserError(f"Unknown output kind(s) {', '.join(unknown) or '(none given)'} in "
                        f"--save: choose from {', '.join(OUTPUT_KINDS)}.")
    return kinds


def to_uint16(unit: np.ndarray) -> np.ndarray:
    return np.round(np.clip(unit, 0.0, 1.0) * 65535.0).astype(np.uint16)


def nearness(unit: np.ndarray, space: Space | str) -> np.ndarray:
    """0 at the nearest point, 1 at the farthest, whichever way the space runs."""
    return unit if Space(space) is Space.DEPTH else 1.0 - unit


def colorize(unit: np.ndarray, space: Space | str, colormap: str = "Spectral") -> np.ndarray:
    """HxW prediction -> HxWx3 uint8; near points take the colormap's low end (warm for
    Spectral; append '_r' to a name to flip it)."""
    if colormap not in matplotlib.colormaps:
        raise UserError(f"Unknown matplotlib colormap '{colormap}' (e.g. Spectral, magma, "
                        f"viridis, turbo).")
    colors = matplotlib.colormaps[colormap](np.clip(nearness(unit, space), 0.0, 1.0), bytes=True)
    return np.ascontiguousarray(colors[..., :3])


@dataclass
class OutputWriter:
    """Writes the chosen kinds for each prediction into `directory` as NAME.npy,
    NAME_16bit.png, NAME_color.png and NAME.ply."""

    directory: Path
    kinds: list[str]
    space: Space
    colormap: str = "Spectral"
    intrinsics: Intrinsics | None = None
    fov_degrees: float = 60.0
    depth_ratio: float = 10.0

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if "color" in self.kinds:
            colorize(np.zeros((1, 1), np.float32), self.space, self.colormap)  # fail early

    def write(self, name: str, unit: np.ndarray, rgb: np.ndarray) -> list[Path]:
        """Write `unit` (HxW in [0, 1]) for the image `rgb` (HxWx3 in [0, 1]); returns paths."""
        written = []
        if "npy" in self.kinds:
            written.append(self.directory / f"{name}.npy")
            np.save(written[-1], unit.astype(np.float32))
        if "png16" in self.kinds:
            written.append(self.directory / f"{name}_16bit.png")
            Image.fromarray(to_uint16(unit)).save(written[-1])
        if "color" in self.kinds:
            written.append(self.directory / f"{name}_color.png")
            Image.fromarray(colorize(unit, self.space, self.colormap)).save(written[-1])
        if "ply" in self.kinds:
            written.append(self.directory / f"{name}.ply")
            save_point_cloud(written[-1], unit, rgb, self.space, self.intrinsics,
                             self.fov_degrees, self.depth_ratio)
        return written
