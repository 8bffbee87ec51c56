"""Supervised pretraining of a relative-depth teacher (Depth Anything-style) on labelled images.

The recipe behind the mini world's teacher (`experiments/mini/pretrain/teacher.gin`): the network
predicts affine-invariant disparity, as Depth Anything V2 does, and learns it from ground truth
(1 / depth on valid pixels; sky and holes left out) with the affine-invariant losses Depth Anything
trains with: prediction and GT each normalised per image by its median and mean absolute
deviation, then the mean absolute error (`ssi_mae_median`) plus multi-scale gradient matching
(`ssi_gradient_matching_median`). The least-squares variants (`ssi_mae`, `ssi_gradient_matching`)
are a binding away, but not the default: their fitted scale may be negative, and the mini teacher
trained with them converged to inverted disparity (correlation -0.94 with the truth) while
scoring well under the equally sign-blind least-squares evaluation.

The recipe owns the trainable network (`network`, the path its weights have in checkpoints) and
evaluates it through `disparity_predictor` (Depth Anything's preprocessing), the same computation
as the frozen teacher built from the exported weights (`depthlab.world.mini_teacher`).
"""
from __future__ import annotations

import gin
import torch
from torch import nn
from transformers import DepthAnythingForDepthEstimation

from depthlab.data.batch import Batch, LabelledBatch
from depthlab.errors import UserError
from depthlab.losses.registry import get_loss
from depthlab.models.output_kind import OutputKind
from depthlab.recipes.base import Panel, Recipe, StepOutput
from depthlab.targets import Space
from depthlab.teachers.depth_anything import DepthAnythingPredictor
from depthlab.teachers.disparity_predictor import DisparityPredictor

MIN_DEPTH = 1e-3  # metres; GT depths below count as invalid


def disparity_target(depth: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(GT disparity, its mask): 1 / depth where valid and positive, 0 elsewhere."""
    mask = valid.bool() & (depth > MIN_DEPTH)
    return torch.where(mask, 1.0 / depth.clamp_min(MIN_DEPTH), 0.0), mask


def per_image_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, 1, 1, 1] mean of `values` over each image's masked pixels (1 where none)."""
    weights = mask.to(values.dtype)
    count = weights.sum(dim=(1, 2, 3), keepdim=True)
    mean = (values * weights).sum(dim=(1, 2, 3), keepdim=True) / count.clamp_min(1.0)
    return torch.where(count > 0, mean, 1.0)


def unit_panel(disparity: torch.Tensor) -> Panel:
    """Disparity divided by each image's maximum, for TensorBoard's [0, 1] colouring."""
    peak = disparity.detach().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    return Panel(disparity.detach() / peak, OutputKind.DISPARITY)


def ground_truth_only(batch: Batch, recipe: str) -> LabelledBatch:
    """The labelled part of a batch that must have no unlabelled stream (a teacher's
    pretraining learns from ground truth only)."""
    if batch.labelled is None or batch.unlabelled is not None:
        raise UserError(f"{recipe} learns from ground truth only: bind labelled datasets "
                        f"(MixedBatches.labelled) and no unlabelled stream "
                        f"(MixedBatches.unlabelled = None).")
    return batch.labelled


def enable_network_checkpointing(network: nn.Module) -> None:
    """Gradient checkpointing of a transformers network; a `UserError` for one without it."""
    enable = (getattr(network, "activation_checkpointing_enable", None)  # transformers 5
              or getattr(network, "gradient_checkpointing_enable", None))
    if enable is None:
        raise UserError(f"Trainer.gradient_checkpointing: the teacher's network "
                        f"({type(network).__name__}) has no gradient checkpointing; leave it "
                        f"off for this recipe.")
    enable()


def disparity_predictor(network: nn.Module, input_size: int) -> DisparityPredictor:
    """The predictor around `network`: a transformers Depth Anything model, or a network mapping
    normalised pixels to disparity with an `input_multiple` (its grid; 1 when absent)."""
    if isinstance(network, DepthAnythingForDepthEstimation):
        return DepthAnythingPredictor(network, input_size)
    return DisparityPredictor(network, input_size, getattr(network, "input_multiple", 1))


@gin.configurable
class TeacherPretraining(Recipe):
    """Trains `network` (a `DepthAnythingForDepthEstimation`, or any network of normalised pixels
    to disparity, such as the mini teacher's) on labelled batches.

    `input_size`: the shorter side images are resized to (the teacher's own preprocessing).
    `loss` and `gradient_loss` are names in the loss registry; `gradient_weight` = 0 drops the
    gradient term. `normalise_target` divides each image's GT disparity by its mean over valid
    pixels (as MiDaS normalises its targets), so a near indoor scene and a far outdoor one weigh
    the same in the batch's loss; the losses are invariant to the prediction's scale, not the
    target's.
    """

    def __init__(self, network: nn.Module = gin.REQUIRED,
                 input_size: int = 518, loss: str = "ssi_mae_median",
                 gradient_loss: str = "ssi_gradient_matching_median",
                 gradient_weight: float = 0.5,
                 normalise_target: bool = True):
        super().__init__()
        self.network = network.train()
        self.predictor = disparity_predictor(network, input_size)  # shares `network`
        self.loss, self.gradient_loss = get_loss(loss), get_loss(gradient_loss)
        self.gradient_weight = float(gradient_weight)
        self.normalise_target = normalise_target

    def check_target_space(self, space: Space) -> None:
        """The network is trained and evaluated in disparity; refuse any other space."""
        if Space(space) is not Space.DISPARITY:
            raise UserError(f"TeacherPretraining trains its network on disparity (Depth Anything "
                            f"V2's output), so it cannot train in the '{Space(space).value}' "
                            f"space.")

    def losses(self, batch: Batch, generator: torch.Generator,
               with_panels: bool = False) -> StepOutput:
        data = ground_truth_only(batch, type(self).__name__)
        prediction = self.predictor.predict(data.rgb)
        target, mask = disparity_target(data.depth, data.valid)
        if self.normalise_target:
            target = target / per_image_mean(target, mask)
        terms = {"ssi": self.loss(prediction, target, mask)}
        total = terms["ssi"]
        if self.gradient_weight > 0:
            terms["gradient"] = self.gradient_loss(prediction, target, mask)
            total = total + self.gradient_weight * terms["gradient"]
        panels = {"synthetic/prediction": unit_panel(prediction),
                  "synthetic/gt": unit_panel(target)} if with_panels else {}
        return StepOutput(total=total, terms=terms, panels=panels)

    def enable_gradient_checkpointing(self) -> None:
        enable_network_checkpointing(self.network)

    def evaluated_model(self) -> DisparityPredictor:
        """The network as a disparity predictor; its child `model` is the recipe's `network`."""
        return self.predictor
