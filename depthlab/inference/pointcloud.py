"""Coloured point clouds from a prediction, written as binary PLY.

Metric depth is back-projected as it is, so the cloud is in metres. An affine-invariant prediction
fixes depth only up to scale and shift, so it is first mapped to a *relative* depth in
[1, depth_ratio]: a depth-space map linearly (0 = near -> 1), a disparity map by inversion
(disparities below 1 / depth_ratio, e.g. the sky, land on the far plane), a sqrt-disparity map by
squaring then inverting; that cloud's scale is arbitrary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthlab.errors import UserError
from depthlab.models.output_kind import OutputKind
from depthlab.targets import Space


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels of the input image (principal point in continuous pixel
    coordinates: the top-left corner is (0, 0), the first pixel's centre (0.5, 0.5))."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, fov_degrees: float) -> "Intrinsics":
        """Square pixels, centred principal point, `fov_degrees` across the image's width."""
        if not 0.0 < fov_degrees < 180.0:
            raise UserError(f"The field of view must be between 0 and 180 degrees; got "
                            f"{fov_degrees}.")
        focal = (width / 2.0) / math.tan(math.radians(fov_degrees) / 2.0)
        return cls(focal, focal, width / 2.0, height / 2.0)

    @classmethod
    def parse(cls, text: str) -> "Intrinsics":
        """'fx,fy,cx,cy' -> Intrinsics."""
        try:
            fx, fy, cx, cy = (float(v) for v in text.split(","))
        except ValueError:
            raise UserError(f"Intrinsics must be four numbers 'fx,fy,cx,cy' in pixels; got "
                            f"'{text}'.") from None
        return cls(fx, fy, cx, cy)


def relative_depth(unit: np.ndarray, space: Space | str, depth_ratio: float = 10.0) -> np.ndarray:
    """A [0, 1] map in `space` -> relative depth in [1, depth_ratio] (see the module docstring)."""
    if depth_ratio <= 1.0:
        raise UserError(f"The depth ratio (far / near) must exceed 1; got {depth_ratio}.")
    unit = np.clip(unit.astype(np.float32), 0.0, 1.0)
    space = Space(space)
    if space is Space.DEPTH:
        return 1.0 + (depth_ratio - 1.0) * unit
    if space is Space.DISPARITY:
        return 1.0 / np.maximum(unit, 1.0 / depth_ratio)
    if space is Space.SQRT_DISPARITY:
        return 1.0 / np.maximum(unit ** 2, 1.0 / depth_ratio)
    raise UserError(f"No relative depth is defined for the space '{space}'.")


def camera_depth(values: np.ndarray, kind: OutputKind | str,
                 depth_ratio: float = 10.0) -> np.ndarray:
    """The depth to back-project: metres for metric output, else the relative depth."""
    kind = OutputKind.parse(kind)
    if kind.is_metric:
        return np.maximum(values.astype(np.float32), 0.0)
    if kind.is_depth_like:
        return relative_depth(values, kind.space, depth_ratio)
    raise UserError(f"A point cloud needs depth; the model outputs {kind.description}.")


def backproject(depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """HxW depth -> [H*W, 3] camera-frame points (x right, y down, z forward), row-major."""
    height, width = depth.shape
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x = (u - intrinsics.cx) / intrinsics.fx * depth
    y = (v - intrinsics.cy) / intrinsics.fy * depth
    return np.stack([x, y, depth], axis=-1).reshape(-1, 3).astype(np.float32)


def write_ply(path: Path, points: np.ndarray, colors: np.ndarray) -> None:
    """Binary little-endian PLY with float xyz and uchar rgb per vertex."""
    vertex = np.empty(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                          ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, axis in enumerate("xyz"):
        vertex[axis] = points[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        vertex[channel] = colors[:, i]
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(points)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    with open(path, "wb") as file:
        file.write(header.encode("ascii"))
        file.write(vertex.tobytes())


def save_point_cloud(path: Path, values: np.ndarray, rgb: np.ndarray, kind: OutputKind | str,
                     intrinsics: Intrinsics | None = None, fov_degrees: float = 60.0,
                     depth_ratio: float = 10.0) -> None:
    """Back-project a prediction with the image's colours (HxWx3 float in [0, 1])."""
    height, width = values.shape
    intrinsics = intrinsics or Intrinsics.from_fov(width, height, fov_degrees)
    points = backproject(camera_depth(values, kind, depth_ratio), intrinsics)
    colors = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(-1, 3)
    write_ply(path, points, colors)
