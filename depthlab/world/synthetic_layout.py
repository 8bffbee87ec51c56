"""The synthetic domain's scenes (frozen: results depend on this distribution): rooms and outdoor
ground planes seen from eye-level cameras with 55-80 degree fields of view, with a few spheres,
boxes, poles, railings, tables and trees."""
from __future__ import annotations

import numpy as np

from depthlab.world.camera import Camera, Layout, look_axes
from depthlab.world.geometry import Primitives

def _railing(layout: Layout, rng: np.random.Generator, start: np.ndarray, length: float,
             angle: float, height: float, material: int) -> None:
    """Thin posts along a line plus one or two horizontal rails (fine detail)."""
    direction = np.array([np.cos(angle), 0.0, np.sin(angle)])
    posts = int(rng.integers(3, 8))
    radius = rng.uniform(0.015, 0.035)
    for s in np.linspace(0.0, length, posts):
        p = start + s * direction
        layout.prims.add_cylinder(p[0], p[2], radius, height, material)
    mid = start + 0.5 * length * direction
    for level in (height, height * 0.5)[: int(rng.integers(1, 3))]:
        layout.prims.add_box([mid[0], level, mid[2]], [length / 2, radius, radius], -angle,
                             material)


def _table(layout: Layout, rng: np.random.Generator, x: float, z: float, material: int) -> None:
    hx, hz, height = rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.5), rng.uniform(0.5, 0.9)
    yaw = rng.uniform(0, np.pi)
    layout.prims.add_box([x, height, z], [hx, 0.025, hz], yaw, material)
    c, s = np.cos(yaw), np.sin(yaw)
    for lx, lz in ((hx, hz), (-hx, hz), (hx, -hz), (-hx, -hz)):
        lx, lz = 0.9 * lx, 0.9 * lz
        layout.prims.add_cylinder(x + c * lx + s * lz, z - s * lx + c * lz, 0.025, height,
                                  material)


def classic_object(layout: Layout, rng: np.random.Generator, x: float, z: float,
                   outdoor: bool) -> None:
    """A sphere, box, pole, railing, table (rooms) or tree (outdoors): both domains use these."""
    kind = rng.choice(["sphere", "box", "pole", "railing", "table", "tree"],
                      p=[0.25, 0.25, 0.15, 0.15, 0.2 * (not outdoor), 0.2 * outdoor])
    mat = layout.material("object")
    p = layout.prims
    scale = 2.0 if outdoor else 1.0
    if kind == "sphere":
        r = rng.uniform(0.15, 0.6) * scale
        lift = r if rng.random() < 0.7 else rng.uniform(r, 2.0 * scale)
        p.add_sphere([x, lift, z], r, mat)
    elif kind == "box":
        half = rng.uniform([0.15, 0.1, 0.15], [0.8, 0.9, 0.8]) * scale
        p.add_box([x, half[1], z], half, rng.uniform(0, np.pi), mat)
    elif kind == "pole":
        height = rng.uniform(1.0, 3.0) * scale
        p.add_cylinder(x, z, rng.uniform(0.015, 0.05) * scale, height, mat)
        if rng.random() < 0.5:
            p.add_sphere([x, height, z], rng.uniform(0.08, 0.2) * scale, layout.material("lamp"))
    elif kind == "railing":
        _railing(layout, rng, np.array([x, 0.0, z]), rng.uniform(1.0, 3.0) * scale,
                 rng.uniform(0, np.pi), rng.uniform(0.8, 1.2), mat)
    elif kind == "table":
        _table(layout, rng, x, z, mat)
    else:
        height = rng.uniform(1.5, 4.0)
        p.add_cylinder(x, z, rng.uniform(0.08, 0.2), height, mat)
        p.add_sphere([x, height + 0.5, z], rng.uniform(0.8, 1.8), layout.material("foliage"))


def synthetic_room(rng: np.random.Generator) -> Layout:
    width, depth, height = rng.uniform(3.0, 8.0), rng.uniform(4.0, 14.0), rng.uniform(2.4, 3.8)
    prims = Primitives(room=np.array([[-width / 2, 0.0, 0.0], [width / 2, height, depth]]))
    eye = np.array([rng.uniform(-0.3, 0.3) * width, rng.uniform(1.0, min(1.9, height - 0.3)),
                    rng.uniform(0.2, 0.8)])
    axes = look_axes(rng.uniform(-0.35, 0.35), rng.uniform(0.0, 0.35), rng.uniform(-0.08, 0.08))
    layout = Layout("room", prims, Camera(eye, axes, rng.uniform(55.0, 75.0)))
    prims.room_mat = (layout.material("floor"), layout.material("ceiling"), layout.material("wall"))
    for _ in range(int(rng.integers(3, 9))):
        x = rng.uniform(-0.4, 0.4) * width
        z = rng.uniform(eye[2] + 1.2, depth - 0.4)
        classic_object(layout, rng, x, z, outdoor=False)
    return layout


def synthetic_outdoor(rng: np.random.Generator) -> Layout:
    eye = np.array([0.0, rng.uniform(1.2, 3.0), 0.0])
    axes = look_axes(rng.uniform(-np.pi, np.pi), rng.uniform(0.08, 0.3), rng.uniform(-0.06, 0.06))
    layout = Layout("outdoor", Primitives(), Camera(eye, axes, rng.uniform(55.0, 80.0)))
    layout.prims.ground_mat = layout.material("ground")
    forward, right = axes[2] * [1, 0, 1], axes[0]
    forward /= np.linalg.norm(forward)

    def place(near: float, far: float, spread: float) -> tuple[float, float]:
        ahead = rng.uniform(near, far)
        pos = ahead * forward + rng.uniform(-spread, spread) * ahead * right
        return float(pos[0]), float(pos[2])

    for _ in range(int(rng.integers(1, 4))):  # buildings in the distance
        x, z = place(10.0, 17.0, 0.8)
        half = rng.uniform([1.5, 2.0, 1.5], [5.0, 8.0, 5.0])
        layout.prims.add_box([x, half[1], z], half, rng.uniform(0, np.pi),
                             layout.material("building"))
    for _ in range(int(rng.integers(3, 9))):
        x, z = place(2.0, 14.0, 0.6)
        classic_object(layout, rng, x, z, outdoor=True)
    return layout
