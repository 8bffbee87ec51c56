"""The real domain's scenes: content the synthetic domain never shows (low and high cameras, wide
and narrow lenses, stronger pitch and roll, clutter on tables and shelves, stacked boxes, chairs,
lamps, pillars and partition walls in rooms; fences, rocks, benches, bollards and cars outdoors).

The camera keeps >= 0.45 m from the room's surfaces and every primitive >= CLEARANCE from the
camera, so even at a 100-degree FOV (corner rays 59 degrees off axis) no valid pixel is nearer
than 0.2 m.
"""
from __future__ import annotations

import numpy as np

from depthlab.world.camera import Camera, Layout, look_axes
from depthlab.world.geometry import Primitives
from depthlab.world.synthetic_layout import classic_object

REAL_FOV_RANGES = ((80.0, 100.0), (55.0, 75.0), (40.0, 52.0))  # wide, synthetic-like, narrow
REAL_FOV_SHARES = (0.6, 0.25, 0.15)
CLEARANCE = 0.5  # metres between the camera and any object primitive (real domain)


def keep_clear(prims: Primitives, eye: np.ndarray, margin: float = CLEARANCE) -> None:
    """Drop primitives whose bounding box comes within `margin` of `eye` (rare stray parts)."""
    def far(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return np.linalg.norm(eye - np.clip(eye, lo, hi), axis=1) >= margin

    s = np.asarray(prims.spheres, dtype=float).reshape(-1, 4)
    b = np.asarray(prims.boxes, dtype=float).reshape(-1, 7)
    c = np.asarray(prims.cylinders, dtype=float).reshape(-1, 5)
    cos, sin = np.abs(np.cos(b[:, 6])), np.abs(np.sin(b[:, 6]))
    extent = np.stack([cos * b[:, 3] + sin * b[:, 5], b[:, 4], sin * b[:, 3] + cos * b[:, 5]], 1)
    radius = np.stack([c[:, 3], np.zeros(len(c)), c[:, 3]], 1)
    top = c[:, :3] + np.stack([np.zeros(len(c)), c[:, 4], np.zeros(len(c))], 1)
    keep = (far(s[:, :3] - s[:, 3:], s[:, :3] + s[:, 3:]),
            far(b[:, :3] - extent, b[:, :3] + extent),
            far(c[:, :3] - radius, top + radius))
    for (items, mats), kept in zip((("spheres", "sphere_mat"), ("boxes", "box_mat"),
                                    ("cylinders", "cylinder_mat")), keep):
        if not kept.all():
            setattr(prims, items, [x for x, k in zip(getattr(prims, items), kept) if k])
            setattr(prims, mats, [m for m, k in zip(getattr(prims, mats), kept) if k])


def _real_fov(rng: np.random.Generator) -> float:
    """Mostly wide-angle lenses, some in the synthetic range, some narrow."""
    lo, hi = REAL_FOV_RANGES[int(rng.choice(len(REAL_FOV_RANGES), p=REAL_FOV_SHARES))]
    return float(rng.uniform(lo, hi))


def _local(x: float, z: float, yaw: float, lx: float, lz: float) -> tuple[float, float]:
    """World (x, z) of the point (lx, lz) in the frame of an object at (x, z) yawed by `yaw`."""
    c, s = np.cos(yaw), np.sin(yaw)
    return x + c * lx + s * lz, z - s * lx + c * lz


def _item_materials(layout: Layout) -> tuple[int, int]:
    """Two materials shared by a group's small items (a material per item is slow to shade)."""
    return layout.material("object"), layout.material("object")


def _small_item(layout: Layout, rng: np.random.Generator, x: float, z: float, y0: float,
                mats: tuple[int, int]) -> None:
    """A small box, ball or cup/bottle resting at height `y0` (clutter on tables and floors)."""
    p, mat = layout.prims, mats[int(rng.integers(2))]
    kind = int(rng.integers(3))
    if kind == 0:
        half = rng.uniform([0.03, 0.02, 0.03], [0.12, 0.1, 0.12])
        p.add_box([x, y0 + half[1], z], half, rng.uniform(0, np.pi), mat)
    elif kind == 1:
        r = rng.uniform(0.03, 0.1)
        p.add_sphere([x, y0 + r, z], r, mat)
    else:
        p.add_cylinder(x, z, rng.uniform(0.02, 0.05), rng.uniform(0.05, 0.25), mat, y0=y0)


def _clutter(layout: Layout, rng: np.random.Generator, x: float, z: float) -> None:
    """A few small things scattered on the floor within 0.4 m of (x, z)."""
    mats = _item_materials(layout)
    for _ in range(int(rng.integers(2, 7))):
        dx, dz = rng.uniform(-0.4, 0.4, 2)
        _small_item(layout, rng, x + dx, z + dz, 0.0, mats)


def _laden_table(layout: Layout, rng: np.random.Generator, x: float, z: float) -> None:
    """A table (or low cabinet) with small things standing on its top."""
    hx, hz, height = rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.5), rng.uniform(0.4, 1.0)
    yaw, mat, p = rng.uniform(0, np.pi), layout.material("object"), layout.prims
    if rng.random() < 0.3:  # a solid cabinet
        p.add_box([x, height / 2, z], [hx, height / 2, hz], yaw, mat)
    else:
        p.add_box([x, height - 0.02, z], [hx, 0.02, hz], yaw, mat)
        for sx, sz in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
            lx, lz = _local(x, z, yaw, 0.9 * sx * hx, 0.9 * sz * hz)
            p.add_cylinder(lx, lz, 0.02, height - 0.04, mat)
    mats = _item_materials(layout)
    for _ in range(int(rng.integers(1, 6))):
        ix, iz = _local(x, z, yaw, rng.uniform(-0.8, 0.8) * hx, rng.uniform(-0.8, 0.8) * hz)
        _small_item(layout, rng, ix, iz, height, mats)


def _shelf(layout: Layout, rng: np.random.Generator, x: float, z: float) -> None:
    """Open shelving: four thin posts, 3-6 thin boards, small things on some boards."""
    half_l, half_d, height = rng.uniform(0.3, 0.8), rng.uniform(0.12, 0.2), rng.uniform(1.0, 2.2)
    yaw, mat, p = rng.uniform(0, np.pi), layout.material("object"), layout.prims
    for sx, sz in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
        px, pz = _local(x, z, yaw, sx * half_l, sz * half_d)
        p.add_cylinder(px, pz, 0.015, height, mat)
    mats = _item_materials(layout)
    for level in np.linspace(0.1, height - 0.01, int(rng.integers(3, 7))):
        p.add_box([x, level, z], [half_l, 0.012, half_d], yaw, mat)
        for _ in range(int(rng.integers(0, 3))):
            ix, iz = _local(x, z, yaw, rng.uniform(-0.8, 0.8) * half_l, 0.0)
            _small_item(layout, rng, ix, iz, level + 0.012, mats)


def _stack(layout: Layout, rng: np.random.Generator, x: float, z: float) -> None:
    """Two to five boxes stacked on each other, each turned a little differently."""
    base, half = 0.0, rng.uniform([0.15, 0.08, 0.15], [0.35, 0.3, 0.35])
    mats = _item_materials(layout)
    for level in range(int(rng.integers(2, 6))):
        dx, dz = rng.uniform(-0.08, 0.08, 2)
        layout.prims.add_box([x + dx, base + half[1], z + dz], half, rng.uniform(0, np.pi),
                             mats[level % 2])
        base += 2 * half[1]
        half = half * rng.uniform([0.6, 0.7, 0.6], [1.0, 1.1, 1.0])


def _chair(layout: Layout, rng: np.random.Generator, x: float, z: float) -> None:
    """Seat on four thin legs with a backrest (or a stool without one)."""
    half, seat, yaw = rng.uniform(0.17, 0.25), rng.uniform(0.4, 0.55), rng.uniform(-np.pi, np.pi)
    mat, p = layout.material("object"), layout.prims
    p.add_box([x, seat, z], [half, 0.02, half], yaw, mat)
    for sx, sz in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
        lx, lz = _local(x, z, yaw, 0.85 * sx * half, 0.85 * sz * half)
        p.add_cylinder(lx, lz, rng.uniform(0.012, 0.025), seat - 0.02, mat)
    if rng.random() < 0.8:
        back = rng.uniform(0.3, 0.5)
        bx, bz = _local(x, z, yaw, 0.0, -half)
        p.add_box([bx, seat + back / 2, bz], [half, back / 2, 0.015], yaw, mat)


def _lamp(layout: Layout, rng: np.random.Generator, x: float, z: float, height: float,
          cap: float) -> None:
    """A thin post with a wide, flat cap (floor lamp indoors, street lamp outdoors)."""
    p = layout.prims
    p.add_cylinder(x, z, rng.uniform(0.012, 0.03) * (1 + cap), height, layout.material("object"))
    thickness = rng.uniform(0.03, 0.15)
    p.add_cylinder(x, z, rng.uniform(0.5, 1.0) * cap, thickness, layout.material("lamp"),
                   y0=height)


def _hanging_lamp(layout: Layout, rng: np.random.Generator, x: float, z: float,
                  ceiling: float) -> None:
    """A cord from the ceiling with a ball or a wide flat shade."""
    drop = rng.uniform(0.3, 1.0)
    layout.prims.add_cylinder(x, z, 0.008, drop, layout.material("object"), y0=ceiling - drop)
    if rng.random() < 0.5:
        r = rng.uniform(0.08, 0.2)
        layout.prims.add_sphere([x, ceiling - drop - r, z], r, layout.material("lamp"))
    else:
        layout.prims.add_cylinder(x, z, rng.uniform(0.2, 0.45), rng.uniform(0.05, 0.2),
                                  layout.material("lamp"), y0=ceiling - drop - 0.1)


def _plant(layout: Layout, rng: np.random.Generator, x: float, z: float) -> None:
    """A pot with a cluster of foliage balls."""
    pot, r = rng.uniform(0.2, 0.45), rng.uniform(0.1, 0.2)
    layout.prims.add_cylinder(x, z, r, pot, layout.material("object"))
    foliage = layout.material("foliage")
    for _ in range(int(rng.integers(1, 4))):
        size = rng.uniform(0.1, 0.25)
        dx, dz = rng.uniform(-0.1, 0.1, 2)
        layout.prims.add_sphere([x + dx, pot + size + rng.uniform(0.0, 0.3), z + dz], size,
                                foliage)


def _rocks(layout: Layout, rng: np.random.Generator, x: float, z: float) -> None:
    """A cluster of half-buried spheres."""
    mat = layout.material("ground")
    for _ in range(int(rng.integers(2, 7))):
        r = rng.uniform(0.1, 0.7)
        dx, dz = rng.uniform(-0.6, 0.6, 2)
        layout.prims.add_sphere([x + dx, r * rng.uniform(0.1, 0.7), z + dz], r, mat)


def _fence(layout: Layout, rng: np.random.Generator, x: float, z: float, angle: float) -> None:
    """Many thin pickets along a line, held by one or two rails (finer than any railing)."""
    direction = np.array([np.cos(angle), 0.0, np.sin(angle)])
    half_length, height = rng.uniform(1.0, 3.0), rng.uniform(0.6, 1.4)
    half_w, mat = rng.uniform(0.01, 0.03), layout.material("object")
    for s in np.linspace(-half_length, half_length, int(rng.integers(10, 31))):
        layout.prims.add_box([x + s * direction[0], height / 2, z + s * direction[2]],
                             [half_w, height / 2, rng.uniform(0.008, 0.02)], -angle, mat)
    for level in (0.8 * height, 0.25 * height)[: int(rng.integers(1, 3))]:
        layout.prims.add_box([x, level, z], [half_length, 0.03, 0.025], -angle, mat)


def _bench(layout: Layout, rng: np.random.Generator, x: float, z: float, angle: float) -> None:
    """A seat on two solid ends with a backrest, running along `angle`."""
    half, seat, yaw = rng.uniform(0.6, 1.0), rng.uniform(0.4, 0.5), -angle
    mat, p = layout.material("object"), layout.prims
    p.add_box([x, seat, z], [half, 0.03, 0.2], yaw, mat)
    for side in (-0.9, 0.9):
        lx, lz = _local(x, z, yaw, side * half, 0.0)
        p.add_box([lx, (seat - 0.03) / 2, lz], [0.03, (seat - 0.03) / 2, 0.18], yaw, mat)
    bx, bz = _local(x, z, yaw, 0.0, -0.2)
    p.add_box([bx, seat + 0.25, bz], [half, 0.15, 0.02], yaw, mat)


def _bollards(layout: Layout, rng: np.random.Generator, x: float, z: float, angle: float) -> None:
    """A row of short posts, some with a ball on top."""
    count, r, height = int(rng.integers(3, 8)), rng.uniform(0.05, 0.12), rng.uniform(0.5, 1.0)
    spacing, mat = min(rng.uniform(0.8, 1.5), 6.0 / count), layout.material("object")
    ball = rng.random() < 0.5
    for s in (np.arange(count) - (count - 1) / 2) * spacing:
        bx, bz = x + s * np.cos(angle), z + s * np.sin(angle)
        layout.prims.add_cylinder(bx, bz, r, height, mat)
        if ball:
            layout.prims.add_sphere([bx, height + r, bz], 1.2 * r, mat)


def _car(layout: Layout, rng: np.random.Generator, x: float, z: float) -> None:
    """A body box lifted off the ground (no wheels) under a smaller cabin box."""
    yaw, p = rng.uniform(0, np.pi), layout.prims
    half = rng.uniform([0.8, 0.3, 1.8], [1.0, 0.45, 2.3])
    mat = layout.material("object")
    p.add_box([x, 0.25 + half[1], z], half, yaw, mat)
    cx, cz = _local(x, z, yaw, 0.0, rng.uniform(-0.3, 0.2) * half[2])
    cabin = half * [0.9, rng.uniform(0.6, 1.0), rng.uniform(0.45, 0.6)]
    p.add_box([cx, 0.25 + 2 * half[1] + cabin[1], cz], cabin, yaw, mat)


def _conifer(layout: Layout, rng: np.random.Generator, x: float, z: float) -> None:
    """A trunk under a tapering column of foliage balls."""
    height = rng.uniform(0.8, 2.0)
    layout.prims.add_cylinder(x, z, rng.uniform(0.05, 0.15), height, layout.material("object"))
    foliage, r, y = layout.material("foliage"), rng.uniform(0.6, 1.2), height
    for _ in range(int(rng.integers(3, 6))):
        layout.prims.add_sphere([x, y + 0.6 * r, z], r, foliage)
        y, r = y + 0.9 * r, r * rng.uniform(0.6, 0.8)


def _signpost(layout: Layout, rng: np.random.Generator, x: float, z: float, angle: float) -> None:
    """A pole carrying a thin panel that faces along the view."""
    height = rng.uniform(1.8, 3.0)
    mat = layout.material("object")
    layout.prims.add_cylinder(x, z, rng.uniform(0.02, 0.05), height, mat)
    half = rng.uniform([0.2, 0.15], [0.6, 0.4])
    layout.prims.add_box([x, height - half[1], z], [half[0], half[1], 0.015], -angle, mat)


def real_room(rng: np.random.Generator) -> Layout:
    """A room seen from low, eye-level or high cameras, with structure and clutter."""
    view = int(rng.choice(3, p=[0.4, 0.25, 0.35]))  # low, eye level, high
    width, depth = rng.uniform(3.0, 10.0), rng.uniform(4.0, 14.0)
    height = rng.uniform(2.9, 4.2) if view == 2 else rng.uniform(2.3, 3.8)
    prims = Primitives(room=np.array([[-width / 2, 0.0, 0.0], [width / 2, height, depth]]))
    low, high = ((0.45, 0.9), (1.0, min(1.9, height - 0.5)), (2.2, min(3.0, height - 0.5)))[view]
    eye_y = rng.uniform(low, high)
    eye = np.array([rng.uniform(-1.0, 1.0) * (width / 2 - 0.6), eye_y, rng.uniform(0.6, 1.2)])
    pitch = rng.uniform(*((-0.15, 0.25), (0.0, 0.5), (0.35, 0.8))[view])
    axes = look_axes(rng.uniform(-0.5, 0.5), pitch, rng.uniform(-0.2, 0.2))
    layout = Layout("room", prims, Camera(eye, axes, _real_fov(rng)))
    prims.room_mat = (layout.material("floor"), layout.material("ceiling"), layout.material("wall"))
    near = eye[2] + 1.7  # objects reach <= 1.2 m from their anchor
    if rng.random() < 0.4 and depth - 0.6 > near:  # a partition wall from one side
        length, z = rng.uniform(0.3, 0.7) * width, rng.uniform(near, depth - 0.6)
        side, top = rng.choice([-1.0, 1.0]), rng.choice([height, rng.uniform(1.0, 2.0)])
        prims.add_box([side * (width - length) / 2, top / 2, z],
                      [length / 2, top / 2, rng.uniform(0.04, 0.1)], 0.0, layout.material("wall"))
    for _ in range(int(rng.integers(0, 3))):  # pillars
        x, z = rng.uniform(-0.4, 0.4) * width, rng.uniform(near, depth - 0.3)
        if rng.random() < 0.5:
            half = rng.uniform(0.12, 0.35)
            prims.add_box([x, height / 2, z], [half, height / 2, half], 0.0,
                          layout.material("wall"))
        else:
            prims.add_cylinder(x, z, rng.uniform(0.1, 0.3), height, layout.material("wall"))
    kinds = ("classic", "shelf", "stack", "chair", "table", "lamp", "hanging", "plant", "clutter")
    shares = (0.25, 0.1, 0.1, 0.12, 0.12, 0.06, 0.06, 0.07, 0.12)
    for _ in range(int(rng.integers(5, 12))):
        kind = kinds[int(rng.choice(len(kinds), p=shares))]
        x = rng.uniform(-0.45, 0.45) * width
        z = rng.uniform(eye[2] + 1.0 if kind == "clutter" else near, max(near, depth - 0.3))
        if kind == "classic":
            classic_object(layout, rng, x, z, outdoor=False)
        elif kind == "shelf":
            _shelf(layout, rng, x, z)
        elif kind == "stack":
            _stack(layout, rng, x, z)
        elif kind == "chair":
            _chair(layout, rng, x, z)
        elif kind == "table":
            _laden_table(layout, rng, x, z)
        elif kind == "lamp":
            _lamp(layout, rng, x, z, rng.uniform(1.2, min(1.9, height - 0.3)), 0.4)
        elif kind == "hanging":
            _hanging_lamp(layout, rng, x, z, height)
        elif kind == "plant":
            _plant(layout, rng, x, z)
        else:
            _clutter(layout, rng, x, z)
    return layout


def real_outdoor(rng: np.random.Generator) -> Layout:
    """An outdoor view from near the ground, eye level or an elevated spot, with street things."""
    view = int(rng.choice(3, p=[0.35, 0.3, 0.35]))  # low, eye level, elevated
    eye = np.array([0.0, rng.uniform(*((0.4, 1.0), (1.2, 3.0), (3.5, 6.0))[view]), 0.0])
    pitch = rng.uniform(*((-0.05, 0.2), (0.05, 0.4), (0.3, 0.7))[view])
    axes = look_axes(rng.uniform(-np.pi, np.pi), pitch, rng.uniform(-0.2, 0.2))
    layout = Layout("outdoor", Primitives(), Camera(eye, axes, _real_fov(rng)))
    layout.prims.ground_mat = layout.material("ground")
    forward, right = axes[2] * [1, 0, 1], axes[0] * [1, 0, 1]
    forward, right = forward / np.linalg.norm(forward), right / np.linalg.norm(right)
    across = float(np.arctan2(right[2], right[0]))  # world angle of the image's horizontal

    def place(near: float, far: float, spread: float) -> tuple[float, float]:
        ahead = rng.uniform(near, far)
        pos = ahead * forward + rng.uniform(-spread, spread) * ahead * right
        return float(pos[0]), float(pos[2])

    for _ in range(int(rng.integers(1, 6))):  # buildings
        x, z = place(8.0, 17.0, 0.9)
        half = rng.uniform([1.0, 1.5, 1.0], [5.0, 9.0, 5.0])
        layout.prims.add_box([x, half[1], z], half, rng.uniform(0, np.pi),
                             layout.material("building"))
    kinds = ("classic", "rocks", "fence", "lamp", "bench", "bollards", "car", "conifer", "sign",
             "clutter")
    shares = (0.25, 0.15, 0.12, 0.1, 0.08, 0.08, 0.07, 0.07, 0.04, 0.04)
    for _ in range(int(rng.integers(5, 13))):
        kind = kinds[int(rng.choice(len(kinds), p=shares))]
        near = {"clutter": 1.2, "rocks": 2.0, "lamp": 2.0, "sign": 2.0}.get(kind, 3.0)
        x, z = place(near, 14.0, 0.7)
        angle = across + rng.uniform(-0.6, 0.6)  # lines of things run roughly across the view
        if kind == "classic":
            classic_object(layout, rng, x, z, outdoor=True)
        elif kind == "rocks":
            _rocks(layout, rng, x, z)
        elif kind == "fence":
            _fence(layout, rng, x, z, angle)
        elif kind == "lamp":
            _lamp(layout, rng, x, z, rng.uniform(2.5, 5.5), 0.8)
        elif kind == "bench":
            _bench(layout, rng, x, z, angle)
        elif kind == "bollards":
            _bollards(layout, rng, x, z, angle)
        elif kind == "car":
            _car(layout, rng, x, z)
        elif kind == "conifer":
            _conifer(layout, rng, x, z)
        elif kind == "sign":
            _signpost(layout, rng, x, z, angle)
        else:
            _clutter(layout, rng, x, z)
    return layout
