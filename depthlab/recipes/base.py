"""The contract between a method and the training loop.

A recipe owns a `DepthModel` and whatever heads and teachers the method needs. The loop asks it
for the losses of a batch and nothing else; evaluation calls `recipe.model.predict`. A new method
is a new recipe class plus a gin file; the loop never changes.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

import torch
from torch import nn

from depthlab.data.batch import Batch
from depthlab.models.depth_model import DepthModel
from depthlab.teachers.base import Teacher


@dataclass
class StepOutput:
    """The weighted total to minimise, its named terms (for logging) and optional image panels."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    panels: dict[str, torch.Tensor] = field(default_factory=dict)


class Recipe(nn.Module, abc.ABC):
    """A training method: `model` (what is evaluated) plus `losses(batch, generator)`."""

    model: DepthModel

    @abc.abstractmethod
    def losses(self, batch: Batch, generator: torch.Generator, with_panels: bool = False) -> StepOutput:
        """Loss terms for one batch; `generator` seeds all noise and timestep draws of the step.

        With `with_panels`, also return [B, 1, H, W] maps in [0, 1] (or RGB) worth showing in
        TensorBoard, keyed by panel name.
        """

    def reference_models(self) -> dict[str, Teacher]:
        """Frozen models to evaluate beside the trained one (e.g. the teacher)."""
        return {}

    def checkpoint_modules(self) -> nn.Module:
        """The module whose trainable parameters are checkpointed (the recipe by default)."""
        return self
