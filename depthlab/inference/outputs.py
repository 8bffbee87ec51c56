"""Writing one prediction to disk: raw float32 .npy, 16-bit PNG, colour PNG and point cloud.

What each file holds follows the model's declared `OutputKind`:
- affine-invariant maps (depth, disparity, sqrt-disparity): `.npy` the map in [0, 1], `_16bit.png`
  round(value x 65535), `_color.png` the raw map (near = the colormap's low end), `.ply` a
  relative depth in [1, depth ratio];
- metric depth: `.npy` metres, `_16bit.png` millimetres (clipped at 65.535 m), `_color.png` the
  image's own depth range, `.ply` metres;
- normals: `.npy` HxWx3 unit vectors, `_color.png` (n + 1) / 2 as RGB; no PNG16 or PLY.

Affine-invariant images carry no per-image stretching, so they stay comparable across images and
the PNG reads back exactly (value / 65535).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

from depthlab.errors import UserError
from depthlab.inference.pointcloud import Intrinsics, save_point_cloud
from depthlab.models.output_kind import OutputKind

OUTPUT_KINDS = ("npy", "png16", "color", "ply")
UNSUPPORTED = {OutputKind.NORMALS: ("png16", "ply")}
MILLIMETRES_PER_METRE = 1000.0


def parse_kinds(text: str) -> list[str]:
    """'npy,png16' -> ['npy', 'png16'], rejecting unknown kinds."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise UserError(f"Unknown output kind(s) {', '.join(unknown) or '(none given)'} in "
                        f"--save: choose from {', '.join(OUTPUT_KINDS)}.")
    return kinds


def to_uint16(values: np.ndarray, kind: OutputKind = OutputKind.DEPTH) -> np.ndarray:
    """The 16-bit PNG encoding: metric depth in millimetres, affine maps as value x 65535."""
    if kind.is_metric:
        # float64: a float32 product can land on the wrong side of a half millimetre.
        millimetres = np.asarray(values, np.float64) * MILLIMETRES_PER_METRE
        return np.round(np.clip(millimetres, 0.0, 65535.0)).astype(np.uint16)
    if kind.is_depth_like:
        return np.round(np.clip(values, 0.0, 1.0) * 65535.0).astype(np.uint16)
    raise UserError(f"A 16-bit PNG is not defined for {kind.description}; save npy or color.")


def nearness(values: np.ndarray, kind: OutputKind | str) -> np.ndarray:
    """0 at the nearest point, 1 at the farthest: affine maps as they are (or flipped for the
    disparities), metric depth stretched over the image's own range of positive depths."""
    kind = OutputKind.parse(kind)
    if kind.is_metric:
        positive = values[values > 0]
        if positive.size == 0:
            return np.ones_like(values)
        low, high = float(positive.min()), float(positive.max())
        return np.where(values > 0, (values - low) / max(high - low, 1e-12), 1.0)
    return values if kind.near_is_low else 1.0 - values


def colorize(values: np.ndarray, kind: OutputKind | str, colormap: str = "Spectral") -> np.ndarray:
    """HxW map (HxWx3 for normals) -> HxWx3 uint8; near points take the colormap's low end (warm
    for Spectral; append '_r' to a name to flip it); normals are shown as (n + 1) / 2."""
    kind = OutputKind.parse(kind)
    if colormap not in matplotlib.colormaps:
        raise UserError(f"Unknown matplotlib colormap '{colormap}' (e.g. Spectral, magma, "
                        f"viridis, turbo).")
    if not kind.is_depth_like:
        return np.round(np.clip((values + 1.0) / 2.0, 0.0, 1.0) * 255.0).astype(np.uint8)
    colors = matplotlib.colormaps[colormap](np.clip(nearness(values, kind), 0.0, 1.0), bytes=True)
    return np.ascontiguousarray(colors[..., :3])


@dataclass
class OutputWriter:
    """Writes the chosen kinds for each prediction into `directory` as NAME.npy,
    NAME_16bit.png, NAME_color.png and NAME.ply."""

    directory: Path
    kinds: list[str]
    output_kind: OutputKind
    colormap: str = "Spectral"
    intrinsics: Intrinsics | None = None
    fov_degrees: float = 60.0
    depth_ratio: float = 10.0

    def __post_init__(self) -> None:
        self.output_kind = OutputKind.parse(self.output_kind)
        refused = [k for k in self.kinds if k in UNSUPPORTED.get(self.output_kind, ())]
        if refused:
            raise UserError(f"--save {', '.join(refused)} is not defined for "
                            f"{self.output_kind.description}; choose from npy, color.")
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if "color" in self.kinds:
            colorize(np.zeros((1, 1), np.float32), self.output_kind, self.colormap)  # fail early

    def write(self, name: str, values: np.ndarray, rgb: np.ndarray) -> list[Path]:
        """Write `values` (HxW, or HxWxC) for the image `rgb` (HxWx3 in [0, 1]); returns paths."""
        written = []
        if "npy" in self.kinds:
            written.append(self.directory / f"{name}.npy")
            np.save(written[-1], values.astype(np.float32))
        if "png16" in self.kinds:
            written.append(self.directory / f"{name}_16bit.png")
            Image.fromarray(to_uint16(values, self.output_kind)).save(written[-1])
        if "color" in self.kinds:
            written.append(self.directory / f"{name}_color.png")
            Image.fromarray(colorize(values, self.output_kind, self.colormap)).save(written[-1])
        if "ply" in self.kinds:
            written.append(self.directory / f"{name}.ply")
            save_point_cloud(written[-1], values, rgb, self.output_kind, self.intrinsics,
                             self.fov_degrees, self.depth_ratio)
        return written
