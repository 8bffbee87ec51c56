"""Procedural solid textures and colour palettes, one family set per appearance domain.

Textures are *solid* (evaluated at the 3-D hit point), so no surface parameterisation is needed.
`synthetic` looks like clean CG: saturated palettes, checkers, stripes, tiles, flat colours.
`real` uses other families and muted, earthy palettes: noise-based plaster, wood, marble, bricks
and speckle. Geometry never depends on these choices.
"""
from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

DOMAINS = ("synthetic", "real")
NOISE_TILE = 64  # voxels per side of the shared noise volumes


@dataclass
class Material:
    family: str
    colours: np.ndarray  # [2, 3] base and secondary albedo
    scale: float  # feature size in metres
    axis: np.ndarray  # unit vector for stripes, wood and marble


@functools.lru_cache(maxsize=1)
def noise_tiles() -> np.ndarray:
    """Two periodic noise volumes in [0, 1], [2, T, T, T]: smooth fBm and fine grain.

    Built once per process from a fixed seed; scenes sample them at their own scale and offset,
    which makes noise a single gather per point.
    """
    white = np.random.default_rng(1234).random((NOISE_TILE,) * 3)
    smooth = sum(w * gaussian_filter(white, sigma, mode="wrap")
                 for w, sigma in ((1.0, 6.0), (0.5, 3.0), (0.25, 1.5)))
    fine = gaussian_filter(white, 1.0, mode="wrap")
    tiles = [(x - x.min()) / (x.max() - x.min()) for x in (smooth, fine)]
    return np.stack([np.clip((x - 0.5) * 2.0 + 0.5, 0.0, 1.0) for x in tiles]).astype(np.float32)


def sample_noise(points: np.ndarray) -> np.ndarray:
    """[P, 3] points in feature units (1 = one noise feature) -> [P, 2] (smooth, fine) noise."""
    index = np.floor(points * (NOISE_TILE / 8.0)).astype(np.int64) & (NOISE_TILE - 1)
    flat = (index[:, 0] * NOISE_TILE + index[:, 1]) * NOISE_TILE + index[:, 2]
    return noise_tiles().reshape(2, -1)[:, flat].T


def _mix(material: Material, t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)[:, None]
    return (1.0 - t) * material.colours[0] + t * material.colours[1]


def _hash01(cells: np.ndarray) -> np.ndarray:
    """Pseudo-random value in [0, 1) per integer lattice cell ([P, 2])."""
    return np.modf(np.abs(np.sin(cells @ np.array([12.9898, 78.233])) * 43758.5453))[0]


# Each family maps (material, points [P, 3], normals [P, 3], noise [P, 2]) to albedo [P, 3];
# noise[:, 0] is smooth fBm and noise[:, 1] finer value noise, both at the material's scale.

def _checker(m: Material, p: np.ndarray, n: np.ndarray, noise: np.ndarray) -> np.ndarray:
    cells = np.floor(p / m.scale + 1e-3).astype(np.int64).sum(axis=1)
    return _mix(m, (cells % 2).astype(float))


def _stripes(m: Material, p: np.ndarray, n: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return _mix(m, (np.sin(p @ m.axis * np.pi / m.scale) > 0).astype(float))


def _tiles(m: Material, p: np.ndarray, n: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Square tiles with grout lines along the axes lying in the surface."""
    frac = np.abs(p / m.scale - np.round(p / m.scale))
    return _mix(m, ((frac < 0.06) & (np.abs(n) < 0.7)).any(axis=1).astype(float))


def _flat(m: Material, p: np.ndarray, n: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return np.broadcast_to(m.colours[0], p.shape).copy()


def _plaster(m: Material, p: np.ndarray, n: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return _mix(m, noise[:, 0] * 1.6 - 0.3)


def _wood(m: Material, p: np.ndarray, n: np.ndarray, noise: np.ndarray) -> np.ndarray:
    radial = np.linalg.norm(np.cross(p, m.axis), axis=1)
    return _mix(m, 0.5 + 0.5 * np.sin((radial / m.scale + 2.0 * noise[:, 0]) * 2 * np.pi))


def _marble(m: Material, p: np.ndarray, n: np.ndarray, noise: np.ndarray) -> np.ndarray:
    veins = np.abs(np.sin((p @ m.axis) / m.scale + 6.0 * noise[:, 0]))
    return _mix(m, 1.0 - veins**0.3)


def _bricks(m: Material, p: np.ndarray, n: np.ndarray, noise: np.ndarray) -> np.ndarray:
    row = p[:, 1] / (0.5 * m.scale)
    along = (p[:, 0] + p[:, 2]) / m.scale + 0.5 * (np.floor(row) % 2)
    mortar = (np.abs(row - np.round(row)) < 0.08) | (np.abs(along - np.round(along)) < 0.05)
    shade = 0.35 * _hash01(np.stack([np.floor(along), np.floor(row)], 1)) + 0.2 * noise[:, 1]
    return np.where(mortar[:, None], m.colours[1], _mix(m, shade))


def _speckle(m: Material, p: np.ndarray, n: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return _mix(m, (noise[:, 1] > 0.6) * 0.8 + 0.2 * noise[:, 0])


FAMILIES: dict[str, dict[str, Callable]] = {
    "synthetic": {"checker": _checker, "stripes": _stripes, "tiles": _tiles, "flat": _flat},
    "real": {"plaster": _plaster, "wood": _wood, "marble": _marble, "bricks": _bricks,
             "speckle": _speckle},
}


def _palette(domain: str, role: str, rng: np.random.Generator) -> np.ndarray:
    """Two albedos: saturated CG colours (synthetic) or muted, earthy ones (real)."""
    if domain == "synthetic":
        hue = rng.random()
        hsv = [(hue, rng.uniform(0.55, 1.0), rng.uniform(0.6, 1.0)),
               ((hue + rng.uniform(0.2, 0.5)) % 1.0, rng.uniform(0.4, 1.0), rng.uniform(0.3, 1.0))]
    else:
        hue = {"foliage": rng.uniform(0.2, 0.35), "ground": rng.uniform(0.05, 0.3)}.get(
            role, rng.choice([rng.uniform(0.02, 0.12), rng.uniform(0.5, 0.65), rng.random()]))
        sat, val = rng.uniform(0.05, 0.45), rng.uniform(0.25, 0.8)
        second = ((hue + rng.uniform(-0.05, 0.05)) % 1.0, sat * rng.uniform(0.5, 1.2),
                  val * rng.uniform(0.4, 0.8))
        hsv = [(hue, sat, val), second]
    return np.array([colorsys.hsv_to_rgb(*c) for c in hsv])


def sample_materials(domain: str, roles: list[str], rng: np.random.Generator) -> list[Material]:
    """One material per role: a texture family of `domain`, two colours, a scale and an axis."""
    families = list(FAMILIES[domain])
    materials = []
    for role in roles:
        axis = rng.normal(size=3)
        family = families[int(rng.integers(len(families)))]
        if role in ("lamp", "foliage") and domain == "synthetic":
            family = "flat"
        materials.append(Material(family, _palette(domain, role, rng), rng.uniform(0.25, 0.8),
                                  axis / np.linalg.norm(axis)))
    return materials


def albedo(domain: str, materials: list[Material], material_index: np.ndarray,
           points: np.ndarray, normals: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """[N, 3] albedo at hit `points` ([N, 3]) with material indices [N].

    `offset` ([3], feature units) shifts the shared noise volume so every scene differs.
    """
    noise = np.zeros((len(points), 2))
    if domain == "real" and len(points):  # one batched noise lookup for every material
        scale = np.array([m.scale for m in materials])[material_index, None]
        noise = sample_noise(points / scale + offset)
    out = np.zeros((len(points), 3))
    for index in np.unique(material_index):
        sel = material_index == index
        m = materials[index]
        out[sel] = FAMILIES[domain][m.family](m, points[sel], normals[sel], noise[sel])
    return out
