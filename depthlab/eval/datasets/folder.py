"""`folder`: a generic layout for any other data.

    rgb/NAME.png|jpg    depth/NAME.png|npy    [mask/NAME.png]

matched by the path below `rgb/` without extension (sub-folders allowed). Depth is a uint16 PNG
divided by `depth_scale`, or a float `.npy` in metres; `mask` is a matting or segmentation alpha
for boundary recall (not a validity mask).
"""
from __future__ import annotations

import math
from pathlib import PurePosixPath

import numpy as np

from depthlab.errors import UserError
from depthlab.eval.datasets.decode import (decode_grey, decode_npy, decode_png_depth, decode_rgb,
                                           read_file)
from depthlab.eval.datasets.registry import EvalSample, SampleError, register_dataset
from depthlab.eval.datasets.source import open_source
from depthlab.eval.datasets.splits import read_split
from depthlab.eval.metrics import PROTOCOL_METRICS

RGB_SUFFIXES = (".png", ".jpg", ".jpeg")
DEPTH_SUFFIXES = (".npy", ".png")


@register_dataset("folder")
class FolderDataset:
    """Any RGB + depth data in the `folder` layout; depth PNGs need `depth_scale`."""

    name = "folder"
    processing_res = 0
    prediction_clip = None

    def __init__(self, data_dir: str | None, split_file: str | None = None,
                 depth_scale: float | None = None, min_depth: float | None = None,
                 max_depth: float | None = None):
        self.source = open_source(data_dir, self.name)
        self.depth_scale = depth_scale
        self.min_depth = 1e-3 if min_depth is None else float(min_depth)
        self.max_depth = math.inf if max_depth is None else float(max_depth)
        depth_files = {_key(p, "depth"): p for p in sorted(  # .npy wins over .png
            self.source.list_files("depth"), key=lambda p: p.lower().endswith(".npy"))
            if p.lower().endswith(DEPTH_SUFFIXES)}
        mask_files = {_key(p, "mask"): p for p in self.source.list_files("mask")
                      if p.lower().endswith(".png")}
        if split_file is None:
            rgb = [p for p in self.source.list_files("rgb") if p.lower().endswith(RGB_SUFFIXES)]
            if not rgb:
                raise UserError(f"no rgb/*.png or rgb/*.jpg under {self.source.root}; the folder "
                                "layout is rgb/NAME.png + depth/NAME.png|npy [+ mask/NAME.png]")
            self.rows = [(p, depth_files.get(_key(p, "rgb")), mask_files.get(_key(p, "rgb")))
                         for p in rgb]
        else:
            self.rows = [self._row_from_split(row, depth_files, mask_files)
                         for row in read_split(split_file, "", self.name)]
        if depth_scale is None and any(d and d.lower().endswith(".png") for _, d, _ in self.rows):
            raise UserError(f"depth PNGs under {self.source.root}/depth need --depth-scale (the "
                            "stored value of one metre: 1000 for millimetres, 5000 for TUM, 256 "
                            "for KITTI)")
        has_masks = any(m for _, _, m in self.rows)
        self.default_metrics = PROTOCOL_METRICS + ("boundary_f1", "dbe_acc", "dbe_comp") + (
            ("boundary_recall",) if has_masks else ())

    def _row_from_split(self, row, depth_files, mask_files):
        if len(row) >= 2:  # explicit relative paths
            return row[0], row[1], row[2] if len(row) > 2 else None
        name = row[0]
        rgb = next((f"rgb/{name}{s}" for s in RGB_SUFFIXES if self.source.exists(f"rgb/{name}{s}")),
                   f"rgb/{name}.png")
        return rgb, depth_files.get(name), mask_files.get(name)

    def __len__(self) -> int:
        return len(self.rows)

    def sample_id(self, index: int) -> str:
        return self.rows[index][0]

    def __getitem__(self, index: int) -> EvalSample:
        rgb_path, depth_path, mask_path = self.rows[index]
        sample_id = rgb_path
        rgb = read_file(self.source, sample_id, rgb_path, decode_rgb)
        if depth_path is None:
            raise SampleError(sample_id, f"missing file: no depth/<name>.png or .npy under "
                                         f"{self.source.root} matches it")
        if depth_path.lower().endswith(".npy"):
            depth = read_file(self.source, sample_id, depth_path, decode_npy).astype(np.float32)
        else:
            depth = read_file(self.source, sample_id, depth_path, decode_png_depth,
                              float(self.depth_scale))
        mask = None if mask_path is None else read_file(self.source, sample_id, mask_path,
                                                        decode_grey)
        for label, array in (("depth", depth), ("mask", mask)):
            if array is not None and array.shape != rgb.shape[:2]:
                raise SampleError(sample_id, f"{label} shape {array.shape} does not match RGB "
                                             f"{rgb.shape[:2]}")
        valid = np.isfinite(depth) & (depth > self.min_depth) & (depth < self.max_depth)
        return EvalSample(id=sample_id, rgb=rgb, depth=depth, valid=valid, mask=mask)


def _key(rel_path: str, folder: str) -> str:
    """`rgb/a/b.png` -> `a/b`: the matching key below `folder`."""
    path = PurePosixPath(rel_path).relative_to(folder)
    return str(path.with_suffix(""))
