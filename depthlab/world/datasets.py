"""Mini-world datasets: scenes rendered on demand from disjoint seed ranges per domain and split.

`MiniWorldDataset(domain, split)` is a map-style dataset of labelled items; `UnlabelledView`
exposes only the images of a dataset, for streams that must never see ground truth (FiffDepth's
real-image stream). Splits: `train`, `val` and `test`, plus `pretrain` for pretraining the mini
world's own teacher, codec or prior on scenes no other split shows. Rendering is pure, so
DataLoader workers are fine - unless the ideal teacher (`depthlab.world.lowpass_teacher`) is
used: it looks images up in an oracle that lives in the rendering process, so use `num_workers=0`
with it.
"""
from __future__ import annotations

import gin
import torch
from torch.utils.data import Dataset

from depthlab.errors import UserError
from depthlab.world.scenes import render_scene
from depthlab.world.textures import DOMAINS

# Seeds: domain base + split base + index. Ranges are disjoint across splits and domains, and
# the codec's training scenes (900M+) lie outside all of them. `pretrain` took the top third of
# what was `train`'s range, so train/val/test seeds are unchanged.
DOMAIN_SEED_BASE = {"synthetic": 0, "real": 400_000_000}
SPLIT_SEED_BASE = {"train": 0, "pretrain": 200_000_000, "val": 300_000_000, "test": 350_000_000}
SPLIT_CAPACITY = {"train": 200_000_000, "pretrain": 100_000_000, "val": 50_000_000,
                  "test": 50_000_000}
DEFAULT_LENGTH = {"train": 100_000, "pretrain": 100_000, "val": 64, "test": 128}


def scene_seed(domain: str, split: str, index: int) -> int:
    return DOMAIN_SEED_BASE[domain] + SPLIT_SEED_BASE[split] + index


@gin.configurable
class MiniWorldDataset(Dataset):
    """Labelled mini-world scenes, rendered on demand (a few ms each) and deterministic.

    Items: `rgb` float32 [3, H, W] in [0, 1], `depth` float32 [1, H, W] planar metres (0 =
    invalid), `valid` bool [1, H, W], `intrinsics` float32 [3, 3], `name` like "real/test/000012".
    `length` defaults to 100000 (train and pretrain, virtual), 64 (val) or 128 (test).
    With `normals=True` items also carry `normals` float32 [3, H, W]: camera-space unit surface
    normals (x right, y down, z forward, facing the camera; 0 where invalid).
    """

    def __init__(self, domain: str = gin.REQUIRED, split: str = gin.REQUIRED, size: int = 64,
                 length: int | None = None, normals: bool = False):
        if domain not in DOMAINS:
            raise UserError(f"Unknown mini-world domain '{domain}'; choose one of "
                            f"{', '.join(DOMAINS)}.")
        if split not in SPLIT_SEED_BASE:
            raise UserError(f"Unknown mini-world split '{split}'; choose one of "
                            f"{', '.join(SPLIT_SEED_BASE)}.")
        length = DEFAULT_LENGTH[split] if length is None else int(length)
        if not 0 < length <= SPLIT_CAPACITY[split]:
            raise UserError(f"A mini-world '{split}' split holds between 1 and "
                            f"{SPLIT_CAPACITY[split]} scenes; {length} were asked for.")
        if size % 8 or size < 16:
            raise UserError(f"Mini-world images must be a multiple of 8 pixels wide (at least "
                            f"16) so every codec can encode them; {size} was asked for.")
        self.domain, self.split, self.size, self.length = domain, split, size, length
        self.normals = bool(normals)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes")
        index %= self.length
        scene = render_scene(scene_seed(self.domain, self.split, index), self.domain, self.size)
        item = {
            "rgb": torch.from_numpy(scene.rgb).permute(2, 0, 1).contiguous(),
            "depth": torch.from_numpy(scene.depth)[None],
            "valid": torch.from_numpy(scene.valid)[None],
            "intrinsics": torch.from_numpy(scene.intrinsics),
            "name": f"{self.domain}/{self.split}/{index:06d}",
        }
        if self.normals:
            item["normals"] = torch.from_numpy(scene.normals).permute(2, 0, 1).contiguous()
        return item

    def __repr__(self) -> str:
        extra = ", normals=True" if self.normals else ""
        return (f"MiniWorldDataset(domain={self.domain!r}, split={self.split!r}, "
                f"size={self.size}, length={self.length}{extra})")


@gin.configurable
class UnlabelledView(Dataset):
    """Images only: yields `{"rgb", "name"}` from a labelled dataset and hides everything else.

    The source is kept private and the wrapper exposes no attribute leading back to labels.
    """

    def __init__(self, dataset: Dataset = gin.REQUIRED):
        self.__source = dataset
        self._length = len(dataset)  # type: ignore[arg-type]
        self._description = f"UnlabelledView({dataset!r})"

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict:
        item = self.__source[index]
        return {"rgb": item["rgb"], "name": item["name"]}

    def __repr__(self) -> str:
        return self._description
