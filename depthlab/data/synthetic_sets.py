"""Hypersim and Virtual KITTI 2 in the layouts that Marigold's preprocessing writes."""
from __future__ import annotations

from pathlib import Path

import gin
from torch.utils.data import Dataset

from depthlab.data.images import depth_sample
from depthlab.data.splits import read_split, shipped_split
from depthlab.models.layout import require_layout

KITTI_CROP = (352, 1216)


class SplitDepthDataset(Dataset):
    """Rows `rgb_path depth_path` of a split list, read relative to `root`."""

    def __init__(self, root: Path, split_file: Path, depth_scale: float, min_depth: float,
                 max_depth: float, crop: tuple[int, int] | None = None):
        self.root = root
        self.rows = [row[:2] for row in read_split(split_file)]
        self.depth_scale, self.min_depth, self.max_depth = depth_scale, min_depth, max_depth
        self.crop = crop

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        rgb_rel, depth_rel = self.rows[index]
        sample = depth_sample(self.root / rgb_rel, self.root / depth_rel, self.depth_scale,
                              self.min_depth, self.max_depth, name=rgb_rel)
        return kitti_benchmark_crop(sample) if self.crop else sample


def kitti_benchmark_crop(sample: dict) -> dict:
    """KITTI benchmark crop 352x1216: top = H - 352, left = (W - 1216) // 2."""
    height, width = sample["rgb"].shape[-2:]
    top, left = height - KITTI_CROP[0], (width - KITTI_CROP[1]) // 2
    window = (..., slice(top, top + KITTI_CROP[0]), slice(left, left + KITTI_CROP[1]))
    return {**sample, **{k: sample[k][window] for k in ("rgb", "depth", "valid")}}


@gin.configurable
def hypersim(data_dir: str = gin.REQUIRED, split: str = "train",
             split_file: str | None = None) -> SplitDepthDataset:
    """Marigold-preprocessed Hypersim: `<data_dir>/<scene>/rgb_cam_XX_frXXXX.png` and
    `depth_plane_cam_XX_frXXXX.png` (uint16 mm), valid 1e-5 < d < 65 m, 480x640."""
    listing = Path(split_file) if split_file else \
        shipped_split(f"hypersim_depth/filename_list_{split}_filtered.txt")
    first = read_split(listing)[0][0]
    root = require_layout(data_dir, [first], f"Hypersim {split} split (Marigold layout)")
    return SplitDepthDataset(root, listing, 1000.0, 1e-5, 65.0)


@gin.configurable
def vkitti(data_dir: str = gin.REQUIRED, split: str = "train",
           split_file: str | None = None) -> SplitDepthDataset:
    """Virtual KITTI 2: `<data_dir>/rgb/SceneXX/...jpg`, `<data_dir>/depth/SceneXX/...png` (cm),
    valid 1e-5 < d < 80 m (sky at 655 m is invalid), KITTI benchmark crop 352x1216."""
    listing = Path(split_file) if split_file else shipped_split(f"vkitti_depth/vkitti_{split}.txt")
    first = read_split(listing)[0][0]
    root = require_layout(data_dir, [first], f"Virtual KITTI 2 {split} split (Marigold layout)")
    return SplitDepthDataset(root, listing, 100.0, 1e-5, 80.0, crop=KITTI_CROP)
