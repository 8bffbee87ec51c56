"""Scene geometry sampled from a seed and a domain: a room or an outdoor ground plane, objects,
and a camera.

The domains differ in *content*, not only in appearance, so that ground truth from `synthetic`
alone does not cover what `real` shows. `synthetic` keeps its original distribution (results
depend on it): eye-level cameras, 55-80 degree fields of view, a few spheres, boxes, poles,
railings, tables and trees. `real` draws from its own random stream and adds what synthetic never
shows: low (0.45-0.9 m) and high cameras, wide (80-100 degree) and narrow lenses, stronger pitch
and roll, more and smaller objects, clutter on tables and shelves, stacked boxes, chairs, lamps
with wide caps, pillars and partition walls in rooms, and picket fences, rocks, benches, bollards
and cars outdoors. Materials are only *roles* here ("floor", "object", ...); textures and colours
are chosen per domain by `depthlab.world.textures`. The synthetic scenes are built in
`depthlab.world.synthetic_layout`, the real ones in `depthlab.world.real_layout`; this module
draws one of them per seed.
"""
from __future__ import annotations

import numpy as np

from depthlab.errors import UserError
from depthlab.world.camera import MAX_DEPTH, Camera, Layout, look_axes
from depthlab.world.real_layout import keep_clear, real_outdoor, real_room
from depthlab.world.synthetic_layout import synthetic_outdoor, synthetic_room

__all__ = ["MAX_DEPTH", "Camera", "Layout", "ROOM_SHARE", "look_axes", "sample_layout"]

ROOM_SHARE = {"synthetic": 0.6, "real": 0.5}


def sample_layout(seed: int, domain: str) -> Layout:
    """Geometry and camera of scene `seed` in `domain` ("synthetic" or "real").

    Each domain has its own random stream; the synthetic stream and distribution are frozen.
    """
    if domain == "synthetic":
        rng = np.random.default_rng([seed, 0x9E0])
        room = rng.random() < ROOM_SHARE["synthetic"]
        return synthetic_room(rng) if room else synthetic_outdoor(rng)
    if domain == "real":
        rng = np.random.default_rng([seed, 0x9E0, 0x4EA1])
        layout = real_room(rng) if rng.random() < ROOM_SHARE["real"] else real_outdoor(rng)
        keep_clear(layout.prims, layout.camera.position)
        return layout
    raise UserError(f"Unknown mini-world domain '{domain}'; choose 'synthetic' or 'real'.")
