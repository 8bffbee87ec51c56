"""Vectorised analytic ray casting: nearest hit of one camera's pixel rays over a few primitives.

Ray directions have a forward component of 1, so the hit parameter `t` *is* the planar depth.
Objects are culled per pixel: each primitive is only tested against the pixels inside the
screen rectangle of its bounding box, as flat (ray, primitive) pair arrays; the enclosing room or
ground plane is tested against every ray. The nearest hit per ray wins.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

EPS = 1e-4
UP = np.array([0.0, 1.0, 0.0])


@dataclass
class View:
    """A pinhole view: world origin, rows right/down/forward, intrinsics, square image size."""

    origin: np.ndarray
    axes: np.ndarray
    intrinsics: np.ndarray
    size: int

    def directions(self) -> np.ndarray:
        """[size*size, 3] world directions through pixel centres (row-major), forward part 1."""
        k, centres = self.intrinsics.astype(float), np.arange(self.size)
        uu, vv = np.meshgrid((centres - k[0, 2]) / k[0, 0], (centres - k[1, 2]) / k[1, 1])
        return np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], 1) @ self.axes

    def candidates(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ray, primitive) index pairs whose pixel lies in the primitive's screen rectangle.

        `lo`, `hi` are [K, 3] world bounding boxes. The perspective image of a box is the convex
        hull of its projected corners, so the rectangle around them is conservative.
        """
        corners = np.stack(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij"), -1).reshape(8, 3)
        points = np.where(corners[None], hi[:, None], lo[:, None])  # [K, 8, 3]
        cam = (points - self.origin) @ self.axes.T
        z = cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.intrinsics[0, 0] * cam[..., 0] / z + self.intrinsics[0, 2]
            v = self.intrinsics[1, 1] * cam[..., 1] / z + self.intrinsics[1, 2]
        behind = (z <= 1e-3).any(axis=1)  # straddles the camera plane: keep all pixels
        full = np.array([-1.0, self.size])
        u_range = np.where(behind[:, None], full, np.stack([u.min(1) - 1, u.max(1) + 1], 1))
        v_range = np.where(behind[:, None], full, np.stack([v.min(1) - 1, v.max(1) + 1], 1))
        pixels = np.arange(self.size)[:, None]
        cols = (pixels >= u_range[:, 0]) & (pixels <= u_range[:, 1])  # [W, K]
        rows = (pixels >= v_range[:, 0]) & (pixels <= v_range[:, 1])  # [H, K]
        h, w, k = np.nonzero(rows[:, None, :] & cols[None, :, :])
        return h * self.size + w, k


@dataclass
class Primitives:
    """Scene geometry in world coordinates (y up). Each primitive carries a material index."""

    spheres: list[list[float]] = field(default_factory=list)  # cx, cy, cz, r
    sphere_mat: list[int] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)  # centre, half sizes, yaw
    box_mat: list[int] = field(default_factory=list)
    cylinders: list[list[float]] = field(default_factory=list)  # x, y0, z, r, height
    cylinder_mat: list[int] = field(default_factory=list)
    room: np.ndarray | None = None  # [2, 3] lo/hi corners of the enclosing room, seen from inside
    room_mat: tuple[int, int, int] = (0, 1, 2)  # floor, ceiling, walls
    ground_mat: int | None = None  # infinite ground plane y = 0 (outdoor scenes)

    def add_sphere(self, centre, radius: float, material: int) -> None:
        self.spheres.append([*centre, radius])
        self.sphere_mat.append(material)

    def add_box(self, centre, half, yaw: float, material: int) -> None:
        self.boxes.append([*centre, *half, yaw])
        self.box_mat.append(material)

    def add_cylinder(self, x: float, z: float, radius: float, height: float, material: int,
                     y0: float = 0.0) -> None:
        self.cylinders.append([x, y0, z, radius, height])
        self.cylinder_mat.append(material)


@dataclass
class Hits:
    """Nearest hit per ray: t (inf = miss), unit normal facing the ray, material (-1 = miss)."""

    t: np.ndarray
    normal: np.ndarray
    material: np.ndarray

    def update(self, ray: np.ndarray | None, t: np.ndarray,
               normal_fn: Callable[[np.ndarray], np.ndarray], material: np.ndarray) -> None:
        """Offer hits (`ray` index, `t`) for pairs; `normal_fn(selected pairs)` gives normals.

        `ray=None` means one candidate for every ray, in ray order.
        """
        if ray is None:
            pair = np.flatnonzero(t < self.t)
            self.t[pair], self.normal[pair] = t[pair], normal_fn(pair)
            self.material[pair] = material[pair]
            return
        if ray.size == 0:
            return
        best = np.full(self.t.shape, np.inf)
        np.minimum.at(best, ray, t)
        winner = (t == best[ray]) & (t < self.t[ray])
        pair = np.flatnonzero(winner)
        pair = pair[np.unique(ray[pair], return_index=True)[1]]  # one winner per ray on ties
        target = ray[pair]
        self.t[target] = t[pair]
        self.normal[target] = normal_fn(pair)
        self.material[target] = material[pair]


def _spheres(o, d, view: View, prims: Primitives, hits: Hits) -> None:
    s = np.asarray(prims.spheres, dtype=float).reshape(-1, 4)
    ray, k = view.candidates(s[:, :3] - s[:, 3:], s[:, :3] + s[:, 3:])
    dr, oc, r = d[ray], o - s[k, :3], s[k, 3]
    a, b = np.einsum("pc,pc->p", dr, dr), np.einsum("pc,pc->p", dr, oc)
    disc = b * b - a * (np.einsum("pc,pc->p", oc, oc) - r**2)
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    t = np.where((disc > 0) & (t > EPS), t, np.inf)
    hits.update(ray, t, lambda p: (o + t[p, None] * dr[p] - s[k[p], :3]) / r[p, None],
                np.asarray(prims.sphere_mat)[k])


def _boxes(o, d, view: View, prims: Primitives, hits: Hits) -> None:
    """Boxes rotated by `yaw` about the vertical axis (slab test in the box frame)."""
    b = np.asarray(prims.boxes, dtype=float).reshape(-1, 7)
    cos, sin = np.cos(b[:, 6]), np.sin(b[:, 6])
    extent = np.stack([np.abs(cos) * b[:, 3] + np.abs(sin) * b[:, 5], b[:, 4],
                       np.abs(sin) * b[:, 3] + np.abs(cos) * b[:, 5]], 1)
    ray, k = view.candidates(b[:, :3] - extent, b[:, :3] + extent)
    c, s, half, rel, dr = cos[k], sin[k], b[k, 3:6], o - b[k, :3], d[ray]
    # World -> box frame: rotate (x, z) by -yaw.
    def to_box(v: np.ndarray) -> np.ndarray:
        return np.stack([c * v[:, 0] - s * v[:, 2], v[:, 1], s * v[:, 0] + c * v[:, 2]], 1)

    local_o, local_d = to_box(rel), to_box(dr)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-half - local_o) / local_d, (half - local_o) / local_d
    near, far = np.fmin(t1, t2), np.fmax(t1, t2)
    axis = np.argmax(near, axis=1)
    t_near, t_far = near.max(axis=1), far.min(axis=1)
    t = np.where((t_near <= t_far) & (t_near > EPS), t_near, np.inf)

    def normals(p: np.ndarray) -> np.ndarray:
        n = np.zeros((p.size, 3))
        n[np.arange(p.size), axis[p]] = -np.sign(local_d[p, axis[p]])
        cp, sp = c[p], s[p]  # box frame -> world: rotate by +yaw
        return np.stack([cp * n[:, 0] + sp * n[:, 2], n[:, 1], -sp * n[:, 0] + cp * n[:, 2]], 1)

    hits.update(ray, t, normals, np.asarray(prims.box_mat)[k])


def _cylinders(o, d, view: View, prims: Primitives, hits: Hits) -> None:
    """Vertical cylinders (poles, posts, trunks) with a top cap."""
    cyl = np.asarray(prims.cylinders, dtype=float).reshape(-1, 5)
    lo = np.stack([cyl[:, 0] - cyl[:, 3], cyl[:, 1], cyl[:, 2] - cyl[:, 3]], 1)
    hi = np.stack([cyl[:, 0] + cyl[:, 3], cyl[:, 1] + cyl[:, 4], cyl[:, 2] + cyl[:, 3]], 1)
    ray, k = view.candidates(lo, hi)
    x, y0, z, r, h = cyl[k].T
    dr = d[ray]
    ox, oz = o[0] - x, o[2] - z
    a = dr[:, 0] ** 2 + dr[:, 2] ** 2
    b = dr[:, 0] * ox + dr[:, 2] * oz
    disc = b * b - a * (ox**2 + oz**2 - r**2)
    t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / np.maximum(a, 1e-12)
    y_side = o[1] + t_side * dr[:, 1]
    side_ok = (disc > 0) & (t_side > EPS) & (y_side >= y0) & (y_side <= y0 + h)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_cap = (y0 + h - o[1]) / dr[:, 1]
    cap_ok = (t_cap > EPS) & ((ox + t_cap * dr[:, 0]) ** 2 + (oz + t_cap * dr[:, 2]) ** 2 <= r**2)
    t_side, t_cap = np.where(side_ok, t_side, np.inf), np.where(cap_ok, t_cap, np.inf)
    t = np.fmin(t_side, t_cap)

    def normals(p: np.ndarray) -> np.ndarray:
        hit = o + t[p, None] * dr[p]
        side = np.stack([hit[:, 0] - x[p], np.zeros(p.size), hit[:, 2] - z[p]], 1) / r[p, None]
        return np.where((t_cap[p] < t_side[p])[:, None], UP, side)

    hits.update(ray, t, normals, np.asarray(prims.cylinder_mat)[k])


def _room(o, d, prims: Primitives, hits: Hits) -> None:
    """Inside of an axis-aligned box: the exit point of every ray."""
    lo, hi = prims.room
    with np.errstate(divide="ignore", invalid="ignore"):
        t_axis = np.where(d != 0, (np.where(d > 0, hi, lo) - o) / d, np.inf)
    rays = np.arange(len(d))
    axis = np.argmin(t_axis, axis=1)
    positive = d[rays, axis] > 0
    floor, ceiling, walls = prims.room_mat
    mats = np.where(axis == 1, np.where(positive, ceiling, floor), walls)

    def normals(p: np.ndarray) -> np.ndarray:
        n = np.zeros((p.size, 3))
        n[np.arange(p.size), axis[p]] = np.where(positive[p], -1.0, 1.0)
        return n

    hits.update(None, t_axis[rays, axis], normals, mats)


def _ground(o, d, prims: Primitives, hits: Hits) -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[:, 1] < 0, -o[1] / d[:, 1], np.inf)
    hits.update(None, t, lambda p: np.tile(UP, (p.size, 1)),
                np.full(len(d), prims.ground_mat))


def cast(view: View, prims: Primitives) -> tuple[Hits, np.ndarray]:
    """Nearest hit for every pixel ray of `view`; returns the hits and the ray directions."""
    d, o = view.directions(), np.asarray(view.origin, dtype=float)
    n = len(d)
    hits = Hits(np.full(n, np.inf), np.zeros((n, 3)), np.full(n, -1, dtype=np.int64))
    if prims.room is not None:
        _room(o, d, prims, hits)
    if prims.ground_mat is not None:
        _ground(o, d, prims, hits)
    for kind, items in ((_spheres, prims.spheres), (_boxes, prims.boxes),
                        (_cylinders, prims.cylinders)):
        if items:
            kind(o, d, view, prims, hits)
    flip = np.einsum("nc,nc->n", hits.normal, d) > 0
    hits.normal[flip] *= -1.0
    return hits, d
