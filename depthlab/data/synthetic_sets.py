"""Hypersim and Virtual KITTI 2 in the layouts that Marigold's preprocessing writes."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import gin
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from depthlab.data.images import depth_sample
from depthlab.data.splits import read_split, shipped_split
from depthlab.errors import UserError
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


# Hypersim's camera frame (x right, y up, z backward, OpenGL) -> depthlab's (x right, y down,
# z forward, OpenCV): negate y and z.
HYPERSIM_TO_DEPTHLAB = (1.0, -1.0, -1.0)


def hypersim_normals_path(rgb_rel: str) -> str:
    """`<scene>/rgb_cam_XX_frXXXX.png` -> `<scene>/normal_cam_XX_frXXXX.npy`, the name Marigold's
    normals preprocessing (`preprocess_hypersim_normals.py`) gives the normal map of that RGB."""
    path = PurePosixPath(rgb_rel)
    if not path.name.startswith("rgb_"):
        raise UserError(f"Cannot name the Hypersim normal map of '{rgb_rel}': Marigold's layout "
                        f"names RGB files 'rgb_cam_XX_frXXXX.png'.")
    return str(path.with_name("normal_" + path.name[len("rgb_"):]).with_suffix(".npy"))


def _missing_normals(path: Path) -> UserError:
    return UserError(f"The Hypersim normal map '{path}' does not exist. hypersim.normals = True "
                     f"reads Marigold's preprocessed normals, normal_cam_XX_frXXXX.npy next to "
                     f"each RGB; preprocess them or set hypersim.normals = False.")


def read_hypersim_normals(path: Path) -> torch.Tensor:
    """A Marigold-preprocessed Hypersim normal map -> float32 [3, H, W] in depthlab's camera frame.

    The file is `np.save`d float [H, W, 3]: Hypersim's `normal_cam`, unit vectors in [-1, 1] in
    Hypersim's camera frame (x right, y up, z backward), flipped to face the camera. Returned
    with y and z negated (x right, y down, z forward; a wall facing the camera is (0, 0, -1)),
    re-normalised; non-finite normals become 0.
    """
    if not path.is_file():
        raise _missing_normals(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UserError(f"Cannot read the Hypersim normal map '{path}': {error}") from None
    if array.ndim != 3 or array.shape[-1] != 3:
        raise UserError(f"The Hypersim normal map '{path}' has shape {array.shape}; expected "
                        f"[H, W, 3].")
    normals = torch.from_numpy(np.asarray(array, dtype=np.float32)).permute(2, 0, 1)
    normals = normals * torch.tensor(HYPERSIM_TO_DEPTHLAB).view(3, 1, 1)
    normals = torch.where(normals.isfinite().all(0, keepdim=True), normals, 0.0)
    return F.normalize(normals, dim=0).contiguous()


class HypersimDataset(SplitDepthDataset):
    """Hypersim rows; with `normals`, items also carry `normals` float32 [3, H, W] (x right,
    y down, z forward, facing the camera, 0 where invalid). A pixel is valid only where both the
    depth is in range and the normal is usable (finite, non-zero)."""

    def __init__(self, root: Path, split_file: Path, normals: bool = False):
        super().__init__(root, split_file, 1000.0, 1e-5, 65.0)
        self.normals = bool(normals)
        if self.normals and self.rows:  # fail at construction, not at the first batch
            path = root / hypersim_normals_path(self.rows[0][0])
            if not path.is_file():
                raise _missing_normals(path)

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        if not self.normals:
            return sample
        path = self.root / hypersim_normals_path(self.rows[index][0])
        normals = read_hypersim_normals(path)
        if normals.shape[-2:] != sample["rgb"].shape[-2:]:
            raise UserError(f"The Hypersim normal map '{path}' is {tuple(normals.shape[-2:])}, "
                            f"its RGB {tuple(sample['rgb'].shape[-2:])}; they must match.")
        valid = sample["valid"] & (normals != 0).any(0, keepdim=True)
        return {**sample, "depth": torch.where(valid, sample["depth"], 0.0), "valid": valid,
                "normals": torch.where(valid, normals, 0.0)}


@gin.configurable
def hypersim(data_dir: str = gin.REQUIRED, split: str = "train",
             split_file: str | None = None, normals: bool = False) -> SplitDepthDataset:
    """Marigold-preprocessed Hypersim: `<data_dir>/<scene>/rgb_cam_XX_frXXXX.png` and
    `depth_plane_cam_XX_frXXXX.png` (uint16 mm), valid 1e-5 < d < 65 m, 480x640.

    `normals=True` also reads `normal_cam_XX_frXXXX.npy` next to each RGB (Marigold's normals
    preprocessing; see `read_hypersim_normals`) into an item field `normals`.
    """
    listing = Path(split_file) if split_file else \
        shipped_split(f"hypersim_depth/filename_list_{split}_filtered.txt")
    first = read_split(listing)[0][0]
    root = require_layout(data_dir, [first], f"Hypersim {split} split (Marigold layout)")
    return HypersimDataset(root, listing, normals=normals)


@gin.configurable
def vkitti(data_dir: str = gin.REQUIRED, split: str = "train",
           split_file: str | None = None) -> SplitDepthDataset:
    """Virtual KITTI 2: `<data_dir>/rgb/SceneXX/...jpg`, `<data_dir>/depth/SceneXX/...png` (cm),
    valid 1e-5 < d < 80 m (sky at 655 m is invalid), KITTI benchmark crop 352x1216."""
    listing = Path(split_file) if split_file else shipped_split(f"vkitti_depth/vkitti_{split}.txt")
    first = read_split(listing)[0][0]
    root = require_layout(data_dir, [first], f"Virtual KITTI 2 {split} split (Marigold layout)")
    return SplitDepthDataset(root, listing, 100.0, 1e-5, 80.0, crop=KITTI_CROP)
