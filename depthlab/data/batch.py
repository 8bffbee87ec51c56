"""Batch types. Real (unlabelled) images travel in a type that has no field for ground truth."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class LabelledBatch:
    """Images with metric GT: rgb [B, 3, H, W] in [0, 1], depth [B, 1, H, W] (m), valid bool."""

    rgb: torch.Tensor
    depth: torch.Tensor
    valid: torch.Tensor

    def to(self, device: torch.device) -> "LabelledBatch":
        return replace(self, rgb=self.rgb.to(device), depth=self.depth.to(device),
                       valid=self.valid.to(device))


@dataclass(frozen=True)
class UnlabelledBatch:
    """Images without labels: rgb [B, 3, H, W] in [0, 1]. There is deliberately no depth field."""

    rgb: torch.Tensor

    def to(self, device: torch.device) -> "UnlabelledBatch":
        return UnlabelledBatch(self.rgb.to(device))


@dataclass(frozen=True)
class Batch:
    """One training step's data: a labelled part, an unlabelled part, or both."""

    labelled: LabelledBatch | None = None
    unlabelled: UnlabelledBatch | None = None

    @property
    def size(self) -> int:
        return sum(part.rgb.shape[0] for part in (self.labelled, self.unlabelled) if part)

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.labelled.to(device) if self.labelled else None,
                     self.unlabelled.to(device) if self.unlabelled else None)
