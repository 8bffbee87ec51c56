"""Sets with dense GT for boundary metrics: MPI Sintel and iBims-1.

Sintel: `[training/]final/<scene>/frame_NNNN.png` (or `clean/`) with
`[training/]depth/<scene>/frame_NNNN.dpt`. iBims-1: `ibims1_core_raw/` (`rgb/`, `depth/` uint16
x 50 / 65535 m, `edges/`, `mask_invalid/`, `mask_transp/`) or `ibims1_core_mat/*.mat`.
"""
from __future__ import annotations

import io
from pathlib import PurePosixPath

import numpy as np
from scipy import io as scipy_io

from depthlab.errors import UserError
from depthlab.eval.datasets.decode import (decode_dpt, decode_grey, decode_png_depth, decode_rgb,
                                           read_file)
from depthlab.eval.datasets.registry import EvalSample, SampleError, register_dataset
from depthlab.eval.datasets.source import DataSource, open_source
from depthlab.eval.datasets.splits import read_split
from depthlab.eval.metrics import PROTOCOL_METRICS

BOUNDARY_DEFAULTS = PROTOCOL_METRICS + ("boundary_f1", "dbe_acc", "dbe_comp")


@register_dataset("sintel")
class Sintel:
    """MPI Sintel training frames with `.dpt` depth (dense, synthetic)."""

    name = "sintel"
    min_depth, max_depth = 1e-3, 70.0
    processing_res = 0
    prediction_clip = None
    default_metrics = BOUNDARY_DEFAULTS

    def __init__(self, data_dir: str | None, split_file: str | None = None,
                 pass_name: str = "final"):
        self.source = open_source(data_dir, self.name)
        if split_file is not None:
            self.rows = [(r[0], r[1]) for r in read_split(split_file, "", self.name, 2)]
            return
        prefix = "training/" if self.source.list_files("training/depth") else ""
        depth = self.source.list_files(f"{prefix}depth")
        if not depth:
            raise UserError(f"no {prefix or '[training/]'}depth/<scene>/*.dpt under "
                            f"{self.source.root}: expected MPI Sintel's layout")
        self.rows = []
        for path in depth:
            if path.endswith(".dpt"):
                rel = PurePosixPath(path).relative_to(f"{prefix}depth").with_suffix(".png")
                self.rows.append((f"{prefix}{pass_name}/{rel}", path))

    def __len__(self) -> int:
        return len(self.rows)

    def sample_id(self, index: int) -> str:
        return self.rows[index][0]

    def __getitem__(self, index: int) -> EvalSample:
        rgb_path, depth_path = self.rows[index]
        rgb = read_file(self.source, rgb_path, rgb_path, decode_rgb)
        depth = read_file(self.source, rgb_path, depth_path, decode_dpt)
        _check_shape(rgb_path, rgb, depth)
        valid = np.isfinite(depth) & (depth > self.min_depth) & (depth < self.max_depth)
        return EvalSample(id=rgb_path, rgb=rgb, depth=depth, valid=valid)


@register_dataset("ibims")
class IBims1:
    """iBims-1 core (100 indoor frames, laser GT) with its shipped depth edges."""

    name = "ibims"
    min_depth, max_depth = 1e-3, 50.0
    processing_res = 0
    prediction_clip = None
    default_metrics = BOUNDARY_DEFAULTS
    DEPTH_SCALE = 65535.0 / 50.0  # stored value of one metre

    def __init__(self, data_dir: str | None, split_file: str | None = None):
        self.source = open_source(data_dir, self.name)
        self.prefix, self.use_mat = _ibims_layout(self.source)
        if split_file is not None:
            names = [r[0] for r in read_split(split_file, "", self.name)]
        elif self.use_mat:
            names = [PurePosixPath(p).stem for p in _mat_files(self.source, self.prefix)]
        else:
            names = [PurePosixPath(p).stem for p in self.source.list_files(f"{self.prefix}rgb")
                     if p.endswith(".png")]
        self.names = [PurePosixPath(n).stem for n in names]

    def __len__(self) -> int:
        return len(self.names)

    def sample_id(self, index: int) -> str:
        name = self.names[index]
        return f"{self.prefix}{name}.mat" if self.use_mat else f"{self.prefix}rgb/{name}.png"

    def __getitem__(self, index: int) -> EvalSample:
        sample_id, name = self.sample_id(index), self.names[index]
        if self.use_mat:
            rgb, depth, edges, usable = read_file(self.source, sample_id, sample_id, _decode_mat)
        else:
            def grey(folder: str) -> np.ndarray:
                return read_file(self.source, sample_id, f"{self.prefix}{folder}/{name}.png",
                                 decode_grey)
            rgb = read_file(self.source, sample_id, sample_id, decode_rgb)
            depth = read_file(self.source, sample_id, f"{self.prefix}depth/{name}.png",
                              decode_png_depth, self.DEPTH_SCALE)
            usable = (grey("mask_invalid") > 0) & (grey("mask_transp") > 0)
            edges = (grey("edges") > 0
                     if self.source.exists(f"{self.prefix}edges/{name}.png") else None)
        _check_shape(sample_id, rgb, depth)
        valid = usable & (depth > self.min_depth) & (depth < self.max_depth)
        return EvalSample(id=sample_id, rgb=rgb, depth=depth, valid=valid, edges=edges)


def _ibims_layout(source: DataSource) -> tuple[str, bool]:
    for prefix in ("", "ibims1_core_raw/"):
        if source.list_files(f"{prefix}rgb"):
            return prefix, False
    for prefix in ("", "ibims1_core_mat/"):
        if _mat_files(source, prefix):
            return prefix, True
    raise UserError(f"no iBims-1 data under {source.root}: expected ibims1_core_raw/ (rgb/, "
                    "depth/, edges/, mask_invalid/, mask_transp/) or ibims1_core_mat/*.mat")


def _mat_files(source: DataSource, prefix: str) -> list[str]:
    """`.mat` files directly in the folder `prefix` ('' = the root)."""
    folder = PurePosixPath(prefix.rstrip("/") or ".")
    return [p for p in source.list_files(prefix.rstrip("/"))
            if p.endswith(".mat") and PurePosixPath(p).parent == folder]


def _decode_mat(data: bytes):
    """An iBims-1 `.mat`: (rgb, depth, edges, usable mask)."""
    record = scipy_io.loadmat(io.BytesIO(data)).get("data")

    def field(key: str) -> np.ndarray:
        try:
            return np.asarray(record[key][0][0])
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValueError(f"no field data.{key} in the .mat file") from None

    usable = (field("mask_invalid") > 0) & (field("mask_transp") > 0)
    return (field("rgb").astype(np.uint8), field("depth").astype(np.float32),
            field("edges") > 0, usable)


def _check_shape(sample_id: str, rgb: np.ndarray, depth: np.ndarray) -> None:
    if depth.shape != rgb.shape[:2]:
        raise SampleError(sample_id, f"depth shape {depth.shape} does not match RGB "
                                     f"{rgb.shape[:2]}")
