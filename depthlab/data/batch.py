"""Batch types. Real (unlabelled) images travel in a type that has no field for ground truth."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass(frozen=True)
class LabelledBatch:
    """Images with metric GT: rgb [B, 3, H, W] in [0, 1], depth [B, 1, H, W] (m), valid bool.

    `names` identify the samples; `extras` carry optional further targets by field name, e.g.
    `normals` [B, 3, H, W] (unit vectors, x right, y down, z forward).
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    valid: torch.Tensor
    names: tuple[str, ...] = ()
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device: torch.device) -> "LabelledBatch":
        return replace(self, rgb=self.rgb.to(device), depth=self.depth.to(device),
                       valid=self.valid.to(device),
                       extras={k: v.to(device) for k, v in self.extras.items()})


@dataclass(frozen=True)
class UnlabelledBatch:
    """Images without labels: rgb [B, 3, H, W] in [0, 1]. There is deliberately no depth field."""

    rgb: torch.Tensor
    names: tuple[str, ...] = ()

    def to(self, device: torch.device) -> "UnlabelledBatch":
        return replace(self, rgb=self.rgb.to(device))


@dataclass(frozen=True)
class Batch:
    """One training step's data: a labelled part, an unlabelled part, or both (each part's images
    share a size; the two parts may differ)."""

    labelled: LabelledBatch | None = None
    unlabelled: UnlabelledBatch | None = None

    @property
    def size(self) -> int:
        return sum(part.rgb.shape[0] for part in (self.labelled, self.unlabelled) if part)

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.labelled.to(device) if self.labelled else None,
                     self.unlabelled.to(device) if self.unlabelled else None)
