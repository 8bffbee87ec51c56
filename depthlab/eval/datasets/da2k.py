"""DA-2K (Depth Anything V2): images plus `annotations.json` mapping each image path (relative
to the data directory) to point pairs `{"point1": [h, w], "point2": [h, w], "closer_point": ...}`.
"""
from __future__ import annotations

import json

import numpy as np

from depthlab.errors import UserError
from depthlab.eval.datasets.decode import decode_rgb, read_file
from depthlab.eval.datasets.registry import EvalSample, SampleError, register_dataset
from depthlab.eval.datasets.source import open_source
from depthlab.eval.datasets.splits import read_split


@register_dataset("da2k")
class DA2K:
    """Relative-depth pairs only: no dense GT, so `valid` is empty and only `da2k_acc` applies."""

    name = "da2k"
    min_depth, max_depth = 1e-3, float("inf")
    processing_res = 768  # not set by any protocol; Marigold's default
    prediction_clip = None
    default_metrics = ("da2k_acc",)

    def __init__(self, data_dir: str | None, split_file: str | None = None):
        self.source = open_source(data_dir, self.name)
        if not self.source.exists("annotations.json"):
            raise UserError(f"no annotations.json in {self.source.root}: expected DA-2K's "
                            "layout (annotations.json + images/<scene>/*.jpg)")
        try:
            self.annotations = json.loads(self.source.read_bytes("annotations.json"))
        except (ValueError, OSError) as error:
            raise UserError(f"cannot read {self.source.describe('annotations.json')}: "
                            f"{error}") from None
        self.images = sorted(self.annotations)
        if split_file is not None:
            wanted = [row[0] for row in read_split(split_file, "", self.name)]
            missing = [w for w in wanted if w not in self.annotations]
            if missing:
                raise UserError(f"split lists images without DA-2K annotations: {missing[:3]}")
            self.images = wanted

    def __len__(self) -> int:
        return len(self.images)

    def sample_id(self, index: int) -> str:
        return self.images[index]

    def __getitem__(self, index: int) -> EvalSample:
        sample_id = self.images[index]
        rgb = read_file(self.source, sample_id, sample_id, decode_rgb)
        pairs = self.pairs(sample_id)
        height, width = rgb.shape[:2]
        if pairs.size and (pairs.min() < 0 or pairs[:, [0, 2]].max() >= height
                           or pairs[:, [1, 3]].max() >= width):
            raise SampleError(sample_id, f"an annotated point lies outside the {width}x{height} "
                                         "image")
        return EvalSample(id=sample_id, rgb=rgb, depth=np.zeros((height, width), np.float32),
                          valid=np.zeros((height, width), bool), pairs=pairs)

    def pairs(self, sample_id: str) -> np.ndarray:
        """Rows (h_closer, w_closer, h_farther, w_farther)."""
        rows = []
        try:
            for item in self.annotations[sample_id]:
                first, second = list(item["point1"]), list(item["point2"])
                closer = item.get("closer_point", "point1")
                rows.append(first + second if closer == "point1" else second + first)
            return np.asarray(rows, dtype=np.int64).reshape(-1, 4)
        except (KeyError, TypeError, ValueError) as error:
            raise SampleError(sample_id, f"malformed DA-2K annotation: {error}") from None
