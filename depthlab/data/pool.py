"""A fixed pool of a dataset's items, kept in memory once loaded.

Pretraining runs that sweep many epochs over expensive items (the mini world renders each scene by
ray casting) draw from a pool instead: the first `size` items of `dataset`, each loaded on first
use and served from memory afterwards. Deterministic: the pool is the same items in every run.
"""
from __future__ import annotations

import gin
from torch.utils.data import Dataset

from depthlab.errors import UserError


@gin.configurable
class Pooled(Dataset):
    """The first `size` items of `dataset`, cached in memory on first access."""

    def __init__(self, dataset: Dataset = gin.REQUIRED, size: int = gin.REQUIRED):
        available = len(dataset)  # type: ignore[arg-type]
        if not 0 < size <= available:
            raise UserError(f"Pooled.size must be between 1 and the dataset's {available} items; "
                            f"{size} was asked for ({dataset!r}).")
        self.dataset, self.size = dataset, int(size)
        self._items: dict[int, dict] = {}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for a pool of {self.size}")
        index %= self.size
        if index not in self._items:
            self._items[index] = self.dataset[index]
        return self._items[index]

    def __repr__(self) -> str:
        return f"Pooled({self.dataset!r}, size={self.size})"
