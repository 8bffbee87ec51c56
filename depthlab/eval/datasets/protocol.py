"""The protocol's five sets (Marigold's distribution): NYUv2, KITTI Eigen, ETH3D, ScanNet, DIODE.

Each reads `rgb_path depth_path [extra]` rows of the shipped split list (or `--split`) from the
set's tar or extracted folder, and decodes, crops and masks exactly as `eval-protocol.md` states.
"""
from __future__ import annotations

import math

import numpy as np

from depthlab.errors import UserError
from depthlab.eval.datasets.decode import (decode_npy, decode_png_depth, decode_raw_float32,
                                           decode_rgb, read_file)
from depthlab.eval.datasets.registry import EvalSample, SampleError, register_dataset
from depthlab.eval.datasets.source import open_source
from depthlab.eval.datasets.splits import read_split
from depthlab.eval.metrics import PROTOCOL_METRICS


class SplitListDataset:
    """A set described by a split list of relative paths; subclasses decode and mask."""

    name = ""
    archive = ""  # the protocol's tar, relative to the base data directory
    shipped_split = ""
    min_depth = 0.0
    max_depth = math.inf
    processing_res = 0
    default_metrics: tuple[str, ...] = PROTOCOL_METRICS
    prediction_clip: tuple[float, float] | None = None

    def __init__(self, data_dir: str | None, split_file: str | None = None):
        self.rows = [row for row in read_split(split_file, self.shipped_split, self.name, 2)
                     if self.keep_row(row)]
        self.source = open_source(data_dir, self.name, self.archive, probe=self.rows[0][0])

    def keep_row(self, row: list[str]) -> bool:
        return True

    def __len__(self) -> int:
        return len(self.rows)

    def sample_id(self, index: int) -> str:
        return self.rows[index][0]

    def __getitem__(self, index: int) -> EvalSample:
        row = self.rows[index]
        sample_id = row[0]
        rgb = read_file(self.source, sample_id, row[0], decode_rgb)
        depth = self.read_depth(sample_id, row, rgb.shape[:2])
        if depth.shape != rgb.shape[:2]:
            raise SampleError(sample_id, f"depth {depth.shape[1]}x{depth.shape[0]} does not "
                                         f"match RGB {rgb.shape[1]}x{rgb.shape[0]}")
        rgb, depth = self.crop(sample_id, rgb), self.crop(sample_id, depth)
        valid = self.valid_mask(sample_id, row, depth)
        return EvalSample(id=sample_id, rgb=rgb, depth=depth, valid=valid)

    def read_depth(self, sample_id: str, row: list[str], shape: tuple[int, int]) -> np.ndarray:
        """Decode the GT depth of a row in metres; every protocol set defines its own."""
        raise TypeError(f"{type(self).__name__} does not say how to read its depth maps")

    def crop(self, sample_id: str, image: np.ndarray) -> np.ndarray:
        return image

    def valid_mask(self, sample_id: str, row: list[str], depth: np.ndarray) -> np.ndarray:
        # float32 compared with Python floats, as the reference's float32 tensors
        return (depth > self.min_depth) & (depth < self.max_depth)


@register_dataset("nyu")
class NYUv2(SplitListDataset):
    """NYUv2 labeled test split: raw (not filled) depth / 1000, Eigen crop as a mask."""

    name = "nyu"
    archive = "nyuv2/nyu_labeled_extracted.tar"
    shipped_split = "nyu_depth/labeled/filename_list_test.txt"
    min_depth, max_depth = 1e-3, 10.0
    EIGEN_CROP = (slice(45, 471), slice(41, 601))

    def read_depth(self, sample_id, row, shape):
        return read_file(self.source, sample_id, row[1], decode_png_depth, 1000.0)

    def valid_mask(self, sample_id, row, depth):
        crop = np.zeros(depth.shape, dtype=bool)
        crop[self.EIGEN_CROP] = True
        return super().valid_mask(sample_id, row, depth) & crop


@register_dataset("kitti")
class KITTIEigen(SplitListDataset):
    """KITTI Eigen test split with GT: depth / 256, KITTI benchmark crop, Eigen crop as a mask."""

    name = "kitti"
    archive = "kitti/kitti_eigen_split_test.tar"
    shipped_split = "kitti_depth/eigen_test_files_with_gt.txt"
    min_depth, max_depth = 1e-5, 80.0
    CROP_HEIGHT, CROP_WIDTH = 352, 1216

    def keep_row(self, row):
        return row[1] != "None"

    def read_depth(self, sample_id, row, shape):
        return read_file(self.source, sample_id, row[1], decode_png_depth, 256.0)

    def crop(self, sample_id, image):
        height, width = image.shape[:2]
        if height < self.CROP_HEIGHT or width < self.CROP_WIDTH:
            raise SampleError(sample_id, f"image {width}x{height} is smaller than the KITTI "
                                         f"benchmark crop {self.CROP_WIDTH}x{self.CROP_HEIGHT}")
        top = int(height - self.CROP_HEIGHT)
        left = int((width - self.CROP_WIDTH) / 2)
        return image[top:top + self.CROP_HEIGHT, left:left + self.CROP_WIDTH]

    def valid_mask(self, sample_id, row, depth):
        height, width = depth.shape
        crop = np.zeros(depth.shape, dtype=bool)
        crop[int(0.3324324 * height):int(0.91351351 * height),
             int(0.0359477 * width):int(0.96405229 * width)] = True
        return super().valid_mask(sample_id, row, depth) & crop


@register_dataset("eth3d")
class ETH3D(SplitListDataset):
    """ETH3D: the 'JPG' depth is raw float32 (4032x6048, or the RGB's size); inf -> 0."""

    name = "eth3d"
    archive = "eth3d/eth3d.tar"
    shipped_split = "eth3d_depth/eth3d_filename_list.txt"
    min_depth, max_depth = 1e-5, math.inf
    processing_res = 756
    SHAPE = (4032, 6048)

    def read_depth(self, sample_id, row, shape):
        return read_file(self.source, sample_id, row[1], decode_raw_float32,
                         (tuple(shape), self.SHAPE))


@register_dataset("scannet")
class ScanNet(SplitListDataset):
    """ScanNet validation sample of 800 frames: depth / 1000."""

    name = "scannet"
    archive = "scannet/scannet_val_sampled_800_1.tar"
    shipped_split = "scannet_depth/scannet_val_sampled_list_800_1.txt"
    min_depth, max_depth = 1e-3, 10.0

    def read_depth(self, sample_id, row, shape):
        return read_file(self.source, sample_id, row[1], decode_png_depth, 1000.0)


@register_dataset("diode")
class DIODE(SplitListDataset):
    """DIODE validation (indoor and outdoor): float32 metres, validity from the mask file;
    predictions are clipped to [0.6, 350]."""

    name = "diode"
    archive = "diode/diode_val.tar"
    shipped_split = "diode_depth/diode_val_all_filename_list.txt"
    min_depth, max_depth = 0.6, 350.0
    processing_res = 640
    prediction_clip = (0.6, 350.0)

    def __init__(self, data_dir: str | None, split_file: str | None = None):
        super().__init__(data_dir, split_file)
        short = [row for row in self.rows if len(row) < 3]
        if short:
            raise UserError(f"DIODE split rows need a third column (the mask .npy); row for "
                            f"'{short[0][0]}' has {len(short[0])}")

    def read_depth(self, sample_id, row, shape):
        return read_file(self.source, sample_id, row[1], decode_npy).astype(np.float32)

    def valid_mask(self, sample_id, row, depth):
        mask = read_file(self.source, sample_id, row[2], decode_npy)
        if mask.shape != depth.shape:
            raise SampleError(sample_id, f"mask {row[2]} has shape {mask.shape}, depth has "
                                         f"{depth.shape}")
        # `depth > 0` is a guard: on the real data every masked pixel already has depth
        return mask.astype(bool) & (depth > 0)
