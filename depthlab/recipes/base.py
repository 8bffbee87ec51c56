"""The contract between a method and the training loop.

A recipe owns a `DepthModel` (`self.model`) and whatever heads, teachers and copies the method
needs. The loop never reaches inside it; it asks the recipe for
- `losses(batch, generator)`: the total, its named terms and TensorBoard panels (required);
- `parameter_groups()`: what trains, in groups with learning-rate scales (default: every
  trainable parameter outside frozen modules, in one group);
- `after_initialisation()`: work once `Trainer.initialise` has loaded weights into a fresh run
  (default: the EMA restarts from the initialised backbone);
- `after_optimizer_step(step)`: per-step work (default: the EMA update, if any);
- `extra_state()` / `load_extra_state()`: state beyond trained weights (default: the EMA copy);
- `enable_gradient_checkpointing()`: the UNet, plus the decoder when `uses_pixel_losses`;
- `evaluated_model()`: the model evaluation scores and inference loads (default: the EMA copy
  once updated, else `model`);
- `reference_models()`: predictors evaluated beside it, e.g. a teacher (default: none);
- `validation_scalars()`: numbers only the recipe can compute (a codec's round-trip error, a
  prior's held-out denoising loss), logged at each validation and at the end (default: none).

Pretraining recipes (the mini world's codec, prior and teacher) train something that is not a
depth model: their `evaluated_model()` is None (or a teacher-like predictor) and they report
through `validation_scalars()`.

Frozen modules (teachers, codecs, encoders, copies marked with `freeze`) stay in eval mode and
can never reach the optimizer: the trainer checks every group against them.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from depthlab.data.batch import Batch, LabelledBatch
from depthlab.errors import UserError
from depthlab.models.depth_model import DepthModel
from depthlab.models.ema import EMA
from depthlab.models.freezing import frozen_parameter_owners, is_frozen
from depthlab.models.output_kind import DepthPredictorModule, OutputKind
from depthlab.targets import Space


@dataclass
class Panel:
    """An image panel for TensorBoard: `values` [B, C, H, W] of `kind` (None: RGB in [0, 1])."""

    values: torch.Tensor
    kind: OutputKind | None = None


@dataclass
class StepOutput:
    """The weighted total to minimise, its named terms (for logging) and optional image panels."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    panels: dict[str, Panel] = field(default_factory=dict)


@dataclass
class ParameterGroup:
    """Parameters trained together; `lr_scale` multiplies the optimizer's learning rate."""

    name: str
    parameters: list[nn.Parameter]
    lr_scale: float = 1.0


EMAFactory = Callable[[nn.Module], EMA]


class Recipe(nn.Module, abc.ABC):
    """A training method: `model` (what is evaluated) plus `losses(batch, generator)`."""

    model: DepthModel
    uses_pixel_losses: bool = False  # decoder in the graph: checkpoint it too

    @abc.abstractmethod
    def losses(self, batch: Batch, generator: torch.Generator,
               with_panels: bool = False) -> StepOutput:
        """Loss terms for one batch; `generator` seeds all noise and timestep draws of the step.

        With `with_panels`, also return maps worth showing in TensorBoard, keyed by panel name.
        """

    def labelled_only(self, batch: Batch) -> LabelledBatch:
        """The labelled part of a batch, for methods that train on GT alone."""
        if batch.labelled is None:
            raise UserError(f"{type(self).__name__} trains on labelled images only, but the batch "
                            f"has none: bind MixedBatches.labelled.")
        return batch.labelled

    def check_target_space(self, space: Space) -> None:
        """Refuse a recipe that trains in one space while its model declares another."""
        declared = self.model.output_kind
        if declared is not OutputKind.from_space(space):
            raise UserError(
                f"{type(self).__name__} trains labels in the '{Space(space).value}' space "
                f"(TargetEncoder.space) but its model's inference mode declares "
                f"'{declared.value}' ({type(self.model.mode).__name__}.output_kind), so it would "
                f"train in one space and be evaluated in another. Set both with the recipe's "
                f"SPACE macro.")

    # -- what trains ---------------------------------------------------------------------------
    def parameter_groups(self) -> list[ParameterGroup]:
        """Every trainable parameter outside frozen modules, in one group."""
        frozen = frozen_parameter_owners(self)
        trainable = [p for p in self.parameters() if p.requires_grad and id(p) not in frozen]
        return [ParameterGroup("all", trainable)]

    def train(self, mode: bool = True) -> "Recipe":
        super().train(mode)
        for module in self.modules():
            if is_frozen(module):
                module.eval()
        return self

    # -- the step's lifecycle ------------------------------------------------------------------
    def use_ema(self, factory: EMAFactory | None) -> None:
        """Keep an EMA of the backbone as `self.ema` (`factory`: an uncalled `@EMA` reference)."""
        self.ema = factory(self.model.backbone) if factory is not None else None

    def averaged(self) -> EMA | None:
        """The recipe's EMA, if `use_ema` gave it one."""
        return getattr(self, "ema", None)

    def after_initialisation(self) -> None:
        """Called once a fresh run has applied `Trainer.initialise`: the EMA, copied from the
        backbone when the recipe was built, restarts from the initialised weights."""
        ema = self.averaged()
        if ema is not None:
            ema.restart_from(self.model.backbone)

    def after_optimizer_step(self, step: int) -> None:
        """Called after optimizer step `step` (counted from 1): the EMA update, if any."""
        ema = self.averaged()
        if ema is not None:
            ema.step(self.model.backbone, step)

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors beyond the trained parameters to checkpoint (the EMA copy), by name."""
        ema = self.averaged()
        if ema is None:
            return {}
        return {f"ema.{name}": tensor for name, tensor in ema.state_dict().items()}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        ema = self.averaged()
        if ema is not None:
            ema.load_state_dict({name[len("ema."):]: tensor for name, tensor in state.items()
                                 if name.startswith("ema.")})

    def enable_gradient_checkpointing(self) -> None:
        self.model.enable_gradient_checkpointing(decoder=self.uses_pixel_losses)

    # -- evaluation ----------------------------------------------------------------------------
    def evaluated_model(self) -> DepthPredictorModule | None:
        """The model evaluation scores and inference loads: the EMA copy once it has been
        updated, otherwise the trained model (None: the recipe trains no depth predictor)."""
        ema = self.averaged()
        if ema is not None and ema.updates > 0:
            return DepthModel(ema.module, self.model.codec, self.model.mode).eval()
        return self.model

    def reference_models(self) -> dict[str, DepthPredictorModule]:
        """Models to evaluate beside the trained one (a teacher, a frozen copy), by name."""
        return {}

    def validation_scalars(self) -> dict[str, float]:
        """Recipe-specific validation numbers by name (logged under `val/` and, at the end,
        written to `validation.json`); none by default."""
        return {}
