"""Mixed training batches, a pure function of (seed, step), so resuming replays the same data.

Labelled images come as whole batches from one dataset chosen by weight (Marigold's Hypersim 0.9 /
Virtual KITTI 0.1); a fraction of every batch is unlabelled real images (FiffDepth: half). Item
`k` of `MixedBatches` is the batch of training step `k`; no sampler state needs checkpointing.
"""
from __future__ import annotations

from typing import Sequence

import gin
import torch
from torch.utils.data import DataLoader, Dataset

from depthlab.data.batch import Batch, LabelledBatch, UnlabelledBatch
from depthlab.errors import UserError


@gin.configurable
class MixedBatches(Dataset):
    """Batch `step` = `round(batch_size * labelled_fraction)` labelled items + the rest unlabelled."""

    def __init__(self, labelled: Sequence[Dataset] = (), labelled_weights: Sequence[float] = (),
                 unlabelled: Dataset | None = None, batch_size: int = 8,
                 labelled_fraction: float = 0.5, flip_probability: float = 0.5, seed: int = 0):
        self.labelled = list(labelled)
        self.weights = torch.tensor(list(labelled_weights) or [1.0] * len(self.labelled),
                                    dtype=torch.float64)
        if len(self.weights) != len(self.labelled):
            raise UserError("MixedBatches.labelled_weights must give one weight per labelled "
                            f"dataset ({len(self.labelled)} datasets, {len(self.weights)} weights).")
        self.unlabelled = unlabelled
        self.labelled_size = round(batch_size * labelled_fraction) if self.labelled else 0
        self.unlabelled_size = batch_size - self.labelled_size if unlabelled is not None else 0
        if self.labelled_size + self.unlabelled_size == 0:
            raise UserError("MixedBatches has no data: bind `labelled` and/or `unlabelled`.")
        self.flip_probability, self.seed = flip_probability, seed

    def __len__(self) -> int:
        return 2 ** 62

    def __getitem__(self, step: int) -> Batch:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        labelled = unlabelled = None
        if self.labelled_size:
            source = self.labelled[int(torch.multinomial(self.weights, 1, generator=generator))]
            items = self._draw(source, self.labelled_size, generator)
            labelled = LabelledBatch(*(torch.stack([i[k] for i in items])
                                       for k in ("rgb", "depth", "valid")))
        if self.unlabelled_size:
            items = self._draw(self.unlabelled, self.unlabelled_size, generator)
            unlabelled = UnlabelledBatch(torch.stack([i["rgb"] for i in items]))
        return Batch(labelled, unlabelled)

    def _draw(self, dataset: Dataset, count: int, generator: torch.Generator) -> list[dict]:
        indices = torch.randint(len(dataset), (count,), generator=generator).tolist()
        flips = (torch.rand(count, generator=generator) < self.flip_probability).tolist()
        return [_flip(dataset[i]) if flip else dataset[i] for i, flip in zip(indices, flips)]


def _flip(item: dict) -> dict:
    return {k: v.flip(-1) if isinstance(v, torch.Tensor) and v.ndim == 3 else v
            for k, v in item.items()}


@gin.configurable
def batch_loader(batches: MixedBatches, start_step: int, end_step: int,
                 num_workers: int = 0) -> DataLoader:
    """Batches for steps [start_step, end_step), optionally prepared by worker processes."""
    return DataLoader(batches, batch_size=None, sampler=range(start_step, end_step),
                      num_workers=num_workers, persistent_workers=False)
