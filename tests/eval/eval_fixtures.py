"""Builders of small evaluation sets in the protocol's layouts, from the real frames in
`../shared/data/rgbd/` (read at test time; non-commercial frames never enter the repository)."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from depthlab.eval.datasets.splits import shipped_split
from depthlab.eval.predictions import prediction_candidates

# ../shared beside the checkout; DEPTHLAB_SHARED points elsewhere (e.g. from mutmut's copy).
SHARED = Path(os.environ.get("DEPTHLAB_SHARED",
                             Path(__file__).resolve().parents[2] / ".." / "shared"))
RGBD = SHARED / "data" / "rgbd"
NYU_DEMO = RGBD / "metric3d" / "nyu_demo"
KITTI_DEMO = RGBD / "metric3d" / "kitti_demo"
OPEN3D = RGBD / "open3d"

requires_shared = pytest.mark.skipif(not RGBD.is_dir(),
                                     reason="../shared/data/rgbd is absent")

NYU_FRAMES = ("00050", "00000", "00100")  # the reference case (00050) is the first sample
KITTI_FRAMES = ("0000000005", "0000000050", "0000000100")


def shipped_rows(rel_path: str, count: int, keep=lambda row: True) -> list[list[str]]:
    rows = [line.split() for line in shipped_split(rel_path).splitlines() if line.strip()]
    return [row for row in rows if keep(row)][:count]


def write_split(path: Path, rows) -> Path:
    path.write_text("".join(" ".join(row) + "\n" for row in rows))
    return path


def put(root: Path, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def rgb_png(path: Path) -> bytes:
    return png_bytes(np.asarray(Image.open(path).convert("RGB")))


def make_tar(folder: Path, tar_path: Path) -> Path:
    """A tar whose members are `./<relative path>`, as the protocol's archives."""
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname="./" + path.relative_to(folder).as_posix())
    return tar_path


def build_nyu(root: Path) -> tuple[Path, Path]:
    """The three NYU demo frames under the names of the shipped split's first three rows."""
    rows = shipped_rows("nyu_depth/labeled/filename_list_test.txt", 3)
    data = root / "nyu"
    for row, frame in zip(rows, NYU_FRAMES):
        put(data, row[0], rgb_png(NYU_DEMO / "rgb" / f"rgb_{frame}.jpg"))
        depth = (NYU_DEMO / "depth" / f"sync_depth_{frame}.png").read_bytes()
        put(data, row[1], depth)
        put(data, row[2], depth)
    return data, write_split(root / "nyu_split.txt", rows)


def build_kitti(root: Path) -> tuple[Path, Path]:
    """The three KITTI demo frames (1242x375) under the shipped Eigen split's first GT rows."""
    rows = shipped_rows("kitti_depth/eigen_test_files_with_gt.txt", 3, lambda r: r[1] != "None")
    data = root / "kitti"
    for row, frame in zip(rows, KITTI_FRAMES):
        put(data, row[0], (KITTI_DEMO / "rgb" / f"{frame}.png").read_bytes())
        put(data, row[1], (KITTI_DEMO / "depth" / f"{frame}.png").read_bytes())
    return data, write_split(root / "kitti_split.txt", rows)


def foreground_mask(depth_png: Path) -> np.ndarray:
    """A segmentation-like alpha: the valid pixels nearer than the median depth."""
    depth = np.asarray(Image.open(depth_png)).astype(np.float64)
    near = (depth > 0) & (depth < np.median(depth[depth > 0]))
    return (near * 255).astype(np.uint8)


def build_folder_tum(root: Path) -> Path:
    data = root / "tum"
    src = OPEN3D / "other_formats"
    put(data, "rgb/TUM.png", rgb_png(src / "TUM_color.png"))
    put(data, "depth/TUM.png", (src / "TUM_depth.png").read_bytes())
    put(data, "mask/TUM.png", png_bytes(foreground_mask(src / "TUM_depth.png")))
    return data


def build_folder_redwood(root: Path, count: int = 3) -> Path:
    data = root / "redwood"
    for index in range(count):
        name = f"{index:05d}"
        put(data, f"rgb/{name}.jpg", (OPEN3D / "color" / f"{name}.jpg").read_bytes())
        put(data, f"depth/{name}.png", (OPEN3D / "depth" / f"{name}.png").read_bytes())
        put(data, f"mask/{name}.png", png_bytes(foreground_mask(OPEN3D / "depth" / f"{name}.png")))
    return data


def noisy_affine(sample, scale: float = 0.5, shift: float = 0.2, noise: float = 0.02,
                 seed: int = 0) -> np.ndarray:
    """An affine-invariant 'depth' prediction: GT (holes filled) x scale + shift, with noise."""
    rng = np.random.default_rng(seed)
    depth = sample.depth.astype(np.float64)
    filled = np.where(sample.valid, depth, np.median(depth[sample.valid]))
    noisy = filled * (1 + noise * rng.standard_normal(filled.shape))
    return (scale * noisy + shift).astype(np.float32)


def write_predictions(pred_dir: Path, dataset, predict: Callable = noisy_affine,
                      size: tuple[int, int] | None = None) -> Path:
    """Predictions named after each RGB path; `size` (h, w) resizes them to test resampling."""
    for index in range(len(dataset)):
        pred = predict(dataset[index])
        if size is not None:
            pred = np.asarray(Image.fromarray(pred).resize(size[::-1], Image.BILINEAR))
        path = pred_dir / prediction_candidates(dataset.sample_id(index))[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, pred)
    return pred_dir


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """Run `python -m depthlab.evaluate` in-process: (exit code, stdout, stderr on one line)."""
    from depthlab.evaluate import main

    try:
        code = main([str(a) for a in argv] + ["--no-progress"])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())  # error paragraphs are wrapped
