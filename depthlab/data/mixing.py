"""Mixed training batches, a pure function of (seed, step), so resuming replays the same data.

Labelled images come as whole batches from one dataset chosen by weight (Marigold's Hypersim 0.9 /
Virtual KITTI 0.1); with an unlabelled stream too, a fraction of every batch is unlabelled real
images (FiffDepth: half). Item `k` of `MixedBatches` is the batch of training step `k`; no sampler
state needs checkpointing.
"""
from __future__ import annotations

import math
import signal
from typing import Sequence

import gin
import torch
from torch.utils.data import DataLoader, Dataset

from depthlab.data.augment import hflip
from depthlab.data.batch import Batch, LabelledBatch, UnlabelledBatch
from depthlab.errors import UserError


def split_batch(batch_size: int, has_labelled: bool, has_unlabelled: bool,
                labelled_fraction: float | None) -> tuple[int, int]:
    """(labelled, unlabelled) images per batch. One stream fills the whole batch; with both,
    `labelled_fraction` (required then) splits it."""
    if not has_labelled and not has_unlabelled:
        raise UserError("MixedBatches has no data: bind `labelled` and/or `unlabelled`.")
    if has_labelled and has_unlabelled:
        if labelled_fraction is None:
            raise UserError("MixedBatches has labelled and unlabelled data: set "
                            "MixedBatches.labelled_fraction (FiffDepth uses 0.5).")
        if not 0.0 <= labelled_fraction <= 1.0:
            raise UserError(f"MixedBatches.labelled_fraction must lie in [0, 1]; got "
                            f"{labelled_fraction}.")
        labelled = math.floor(batch_size * labelled_fraction + 0.5)
        if 0.0 < labelled_fraction < 1.0 and labelled in (0, batch_size):
            raise UserError(f"MixedBatches: a batch of {batch_size} with labelled_fraction = "
                            f"{labelled_fraction} leaves one stream without images; raise "
                            f"batch_size or change labelled_fraction.")
        return labelled, batch_size - labelled
    only = "labelled" if has_labelled else "unlabelled"
    whole = 1.0 if has_labelled else 0.0
    if labelled_fraction is not None and labelled_fraction != whole:
        raise UserError(f"MixedBatches.labelled_fraction = {labelled_fraction}, but only "
                        f"{only} data is bound, so every image of the batch is {only}; remove the "
                        f"binding (or set it to None) to train at the full batch size.")
    return (batch_size, 0) if has_labelled else (0, batch_size)


@gin.configurable
class MixedBatches(Dataset):
    """Batch `step`: `labelled_fraction` of `batch_size` labelled items, the rest unlabelled.

    `extra_targets` names further fields every labelled sample must provide (e.g. 'normals');
    they travel in `LabelledBatch.extras` and are flipped with the image (`depthlab.data.augment`).
    """

    def __init__(self, labelled: Sequence[Dataset] = (), labelled_weights: Sequence[float] = (),
                 unlabelled: Dataset | None = None, batch_size: int = 8,
                 labelled_fraction: float | None = None, flip_probability: float = 0.5,
                 extra_targets: Sequence[str] = (), seed: int = 0):
        self.labelled = list(labelled)
        self.weights = torch.tensor(list(labelled_weights) or [1.0] * len(self.labelled),
                                    dtype=torch.float64)
        if len(self.weights) != len(self.labelled):
            raise UserError(f"MixedBatches.labelled_weights must give one weight per labelled "
                            f"dataset ({len(self.labelled)} datasets, {len(self.weights)} "
                            f"weights).")
        self.unlabelled = unlabelled
        self.labelled_size, self.unlabelled_size = split_batch(
            batch_size, bool(self.labelled), unlabelled is not None, labelled_fraction)
        self.flip_probability, self.seed = flip_probability, seed
        self.extra_targets = tuple(extra_targets)

    def __len__(self) -> int:
        return 2 ** 62

    def __getitem__(self, step: int) -> Batch:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        labelled = unlabelled = None
        if self.labelled_size:
            source = self.labelled[int(torch.multinomial(self.weights, 1, generator=generator))]
            items = self._draw(source, self.labelled_size, generator)
            labelled = LabelledBatch(*(torch.stack([i[k] for i in items])
                                       for k in ("rgb", "depth", "valid")),
                                     names=tuple(i["name"] for i in items),
                                     extras={k: self._stack_extra(items, k, source)
                                             for k in self.extra_targets})
        if self.unlabelled_size:
            items = self._draw(self.unlabelled, self.unlabelled_size, generator)
            unlabelled = UnlabelledBatch(torch.stack([i["rgb"] for i in items]),
                                         names=tuple(i["name"] for i in items))
        return Batch(labelled, unlabelled)

    def _draw(self, dataset: Dataset, count: int, generator: torch.Generator) -> list[dict]:
        indices = torch.randint(len(dataset), (count,), generator=generator).tolist()
        flips = (torch.rand(count, generator=generator) < self.flip_probability).tolist()
        items = []
        for index, flip in zip(indices, flips):
            item = dataset[index]
            item.setdefault("name", f"{type(dataset).__name__}[{index}]")
            items.append(hflip(item) if flip else item)
        return items

    @staticmethod
    def _stack_extra(items: list[dict], field: str, source: Dataset) -> torch.Tensor:
        lacking = [i["name"] for i in items if field not in i]
        if lacking:
            raise UserError(f"MixedBatches.extra_targets asks for '{field}', but the sample "
                            f"'{lacking[0]}' of {source!r} has none; use data that provides it or "
                            f"remove it from extra_targets.")
        return torch.stack([i[field] for i in items])


def _ignore_preemption_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGTERM / SIGUSR1 to the main process, which checkpoints."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


@gin.configurable
def batch_loader(batches: MixedBatches, start_step: int, end_step: int,
                 num_workers: int = 0) -> DataLoader:
    """Batches for steps [start_step, end_step), optionally prepared by worker processes."""
    return DataLoader(batches, batch_size=None, sampler=range(start_step, end_step),
                      num_workers=num_workers, persistent_workers=False,
                      worker_init_fn=_ignore_preemption_signals if num_workers else None)
