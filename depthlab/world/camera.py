"""The pieces every mini-world layout is made of: a pinhole camera and a layout (primitives, a
camera and the material role of each primitive)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depthlab.world.geometry import Primitives, View

MAX_DEPTH = 20.0  # metres; farther surfaces (outdoor ground near the horizon) are invalid


@dataclass
class Camera:
    """Pinhole camera: world position, orthonormal right/down/forward axes, horizontal FOV."""

    position: np.ndarray
    axes: np.ndarray  # [3, 3] rows: right, down, forward (world coordinates)
    fov_deg: float

    def intrinsics(self, size: int) -> np.ndarray:
        """OpenCV convention: pixel centres at integer coordinates, principal point centred."""
        f, c = (size / 2.0) / np.tan(np.radians(self.fov_deg) / 2.0), (size - 1) / 2.0
        return np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]], np.float32)

    def view(self, size: int) -> View:
        return View(self.position, self.axes, self.intrinsics(size), size)


@dataclass
class Layout:
    kind: str  # "room" or "outdoor"
    prims: Primitives
    camera: Camera
    roles: list[str] = field(default_factory=list)  # material index -> role

    def material(self, role: str) -> int:
        self.roles.append(role)
        return len(self.roles) - 1


def look_axes(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Right/down/forward rows for a camera yawed about y, pitched down, rolled about forward."""
    forward = np.array([np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    right = np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
    down = np.cross(forward, right)
    if down[1] > 0:
        down = -down
    c, s = np.cos(roll), np.sin(roll)
    return np.stack([c * right + s * down, -s * right + c * down, forward])

