"""The mini world's renderer: `render_scene(seed, domain, size)` -> RGB, planar depth, intrinsics
and camera-space surface normals.

Small procedural scenes (rooms, or outdoor ground planes with sky) ray cast analytically in numpy
and shaded Lambertian under a directional light. The domain changes content *and* appearance, so
a model trained on synthetic ground truth alone meets a real gap on `real`:

- `synthetic`: clean CG (saturated palettes, checkers/stripes/tiles, plain gamma) over the
  original scene distribution (eye-level cameras, a few spheres, boxes, poles, railings, tables
  and trees) - the domain with ground truth for training.
- `real`: photo-like appearance (other texture families, muted palettes, haze, exposure and
  white-balance errors, blur, vignetting, tone curve, sensor noise) over scenes synthetic never
  shows (low/high cameras, wide lenses, clutter, shelves, chairs, fences, rocks, ...; see
  `depthlab.world.layout`) - its ground truth is used only for evaluation and by teacher
  pretraining.

Rendered images are registered with `depthlab.world.oracle` only once it is enabled (by the
ideal-teacher ablation, `depthlab.world.lowpass_teacher`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depthlab.errors import UserError
from depthlab.world import oracle
from depthlab.world.geometry import cast
from depthlab.world.layout import MAX_DEPTH, Layout, sample_layout
from depthlab.world.sensor import develop_clean, develop_real
from depthlab.world.textures import DOMAINS, albedo, sample_materials, sample_noise


@dataclass
class Scene:
    rgb: np.ndarray  # float32 [H, W, 3] in [0, 1] (multiples of 1/255)
    depth: np.ndarray  # float32 [H, W] planar depth in metres, 0 = invalid
    valid: np.ndarray  # bool [H, W]
    intrinsics: np.ndarray  # float32 [3, 3]
    normals: np.ndarray  # float32 [H, W, 3] camera-space unit normals (see `camera_normals`)


def _sky(directions: np.ndarray, domain: str,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sky colour per ray (elevation gradient, hazy clouds for `real`) and the horizon colour."""
    unit = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    up = np.clip(unit[:, 1], 0.0, 1.0)[:, None]
    if domain == "synthetic":
        horizon, zenith = np.array([0.75, 0.85, 1.0]), np.array([0.15, 0.35, 0.9])
        return (1 - up) * horizon + up * zenith, horizon
    horizon = np.array([0.8, 0.8, 0.78]) * rng.uniform(0.7, 1.0)
    zenith = np.array([0.45, 0.55, 0.7]) * rng.uniform(0.6, 1.0)
    clouds = sample_noise(unit * [3.0, 8.0, 3.0] + rng.uniform(0, 8, 3))[:, 0]
    clouds = np.clip(clouds * 2.0 - 0.8, 0.0, 1.0)
    sky = (1 - up) * horizon + up * zenith
    return sky + clouds[:, None] * (0.9 - sky) * rng.uniform(0.0, 0.8), horizon


def _shade(layout: Layout, domain: str, t: np.ndarray, normal: np.ndarray,
           material: np.ndarray, directions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Linear radiance per ray: Lambertian surfaces, sky where nothing was hit, distance fog."""
    offset = rng.uniform(0.0, 8.0, size=3)
    materials = sample_materials(domain, layout.roles, rng)
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.3)
    light = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(elevation),
                      np.sin(azimuth) * np.cos(elevation)])
    light_colour = np.ones(3) if domain == "synthetic" else rng.uniform([0.9, 0.8, 0.65], 1.0)
    ambient = rng.uniform(0.25, 0.4) if domain == "synthetic" else rng.uniform(0.1, 0.5)
    radiance, horizon = _sky(directions, domain, rng)
    hit = np.isfinite(t)
    points = layout.camera.position + t[hit, None] * directions[hit]
    base = albedo(domain, materials, material[hit], points, normal[hit], offset)
    lambert = np.clip(normal[hit] @ light, 0.0, None)[:, None]
    colour = base * light_colour * (ambient + (1.0 - ambient) * lambert)
    if layout.kind == "outdoor":
        fog = np.clip((t[hit] - 0.6 * MAX_DEPTH) / (0.5 * MAX_DEPTH), 0.0, 1.0)
        if domain == "real":
            fog = np.maximum(fog, 1.0 - np.exp(-t[hit] / rng.uniform(25.0, 80.0)))
        colour = (1 - fog[:, None]) * colour + fog[:, None] * horizon
    radiance[hit] = colour
    return radiance


def camera_normals(world: np.ndarray, axes: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """World-space normals [N, 3] -> camera-space unit normals, 0 where `valid` [N] is False.

    The camera frame is depthlab's (OpenCV's): x right, y down, z forward, so a camera-facing
    wall straight ahead is (0, 0, -1) and a floor is (0, -cos pitch, -sin pitch). `cast` turns
    normals to face the ray (n . ray <= 0). `axes` holds the camera's right/down/forward rows in
    world coordinates, so camera coordinates are `axes @ n`.
    """
    camera = world @ np.asarray(axes, dtype=float).T
    length = np.linalg.norm(camera, axis=1, keepdims=True)
    usable = valid[:, None] & (length > 0)
    return np.where(usable, camera / np.where(usable, length, 1.0), 0.0).astype(np.float32)


def render_scene(seed: int, domain: str = "synthetic", size: int = 64) -> Scene:
    """Render scene `seed` in `domain` at `size` x `size` (deterministic; registered with the
    oracle when it is enabled)."""
    if domain not in DOMAINS:
        raise UserError(f"Unknown mini-world domain '{domain}'; choose one of "
                        f"{', '.join(DOMAINS)}.")
    if size < 8:
        raise UserError(f"Mini-world images must be at least 8 pixels wide, not {size}.")
    if seed < 0:
        raise UserError(f"Mini-world scene seeds are non-negative integers, not {seed}.")
    layout = sample_layout(int(seed), domain)
    hits, directions = cast(layout.camera.view(size), layout.prims)
    valid = np.isfinite(hits.t) & (hits.t <= MAX_DEPTH)
    depth = np.where(valid, hits.t, 0.0).reshape(size, size).astype(np.float32)
    rng = np.random.default_rng([int(seed), 0xA99, DOMAINS.index(domain)])
    linear = _shade(layout, domain, hits.t, hits.normal, hits.material, directions, rng)
    linear = linear.reshape(size, size, 3)
    image = develop_clean(linear) if domain == "synthetic" else develop_real(linear, rng)
    normals = camera_normals(hits.normal, layout.camera.axes, valid).reshape(size, size, 3)
    scene = Scene(image.astype(np.float32) / 255.0, depth, valid.reshape(size, size),
                  layout.camera.intrinsics(size), normals)
    oracle.register(image, scene.depth, scene.valid)
    return scene
