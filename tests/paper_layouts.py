"""Tiny stand-ins for the paper recipes' local directories: models in diffusers / transformers
layouts and data in Marigold's layouts at the datasets' real image sizes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from depthlab.testing.tiny_models import save_depth_anything_dir, save_sd2_dir

HYPERSIM_ROWS = [("ai_001_001/rgb_cam_00_fr0000.png", "ai_001_001/depth_plane_cam_00_fr0000.png"),
                 ("ai_001_001/rgb_cam_00_fr0001.png", "ai_001_001/depth_plane_cam_00_fr0001.png")]
VKITTI_ROWS = [("rgb/Scene02/clone/frames/rgb/Camera_0/rgb_00000.jpg",
                "depth/Scene02/clone/frames/depth/Camera_0/depth_00000.png")]
HYPERSIM_SIZE, VKITTI_SIZE = (480, 640), (375, 1242)


def write_frames(root: Path, rows, size: tuple[int, int], depth_value: int) -> Path:
    """RGB noise and a uint16 depth ramp for each row; returns the split list."""
    rng = np.random.default_rng(0)
    for rgb_rel, depth_rel in rows:
        for rel in (rgb_rel, depth_rel):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), np.uint8)).save(root / rgb_rel)
        ramp = np.linspace(0.2, 1.0, size[1])[None].repeat(size[0], 0) * depth_value
        Image.fromarray(ramp.astype(np.uint16)).save(root / depth_rel)
    split = root / "split.txt"
    split.write_text("".join(f"{a} {b}\n" for a, b in rows))
    return split


def labelled_paper_bindings(root: Path) -> list[str]:
    """SD2_DIR, HYPERSIM_DIR and VKITTI_DIR (with their split lists), pointing into `root`."""
    hypersim = write_frames(root / "hypersim", HYPERSIM_ROWS, HYPERSIM_SIZE, 5000)  # mm
    vkitti = write_frames(root / "vkitti", VKITTI_ROWS, VKITTI_SIZE, 3000)  # cm
    sd2 = root / "sd2"
    if not (sd2 / "unet").exists():
        save_sd2_dir(sd2)
    return [f"SD2_DIR = '{sd2}'", f"HYPERSIM_DIR = '{hypersim.parent}'",
            f"VKITTI_DIR = '{vkitti.parent}'", f"hypersim.split_file = '{hypersim}'",
            f"vkitti.split_file = '{vkitti}'"]


def fiffdepth_paper_bindings(root: Path) -> list[str]:
    """Bindings for every REQUIRED macro of experiments/fiffdepth.gin, pointing into `root`."""
    photos = root / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((600, 900, 3), 90, np.uint8)).save(photos / "a.jpg")
    da2 = root / "da2"
    if not (da2 / "config.json").exists():
        save_depth_anything_dir(da2)
    return labelled_paper_bindings(root) + [f"DA2_DIR = '{da2}'",
                                            f"REAL_IMAGES_DIR = '{photos}'"]
