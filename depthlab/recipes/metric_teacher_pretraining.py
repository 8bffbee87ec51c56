"""Supervised pretraining of a metric-depth teacher on labelled images, as Depth Anything V2's
metric variants are fine-tuned.

The recipe behind the mini world's metric teacher (`experiments/mini/pretrain/metric_teacher.gin`):
the network predicts depth in metres and learns it from ground truth (valid pixels deeper than
`MIN_DEPTH` and, when `max_depth` is set, no deeper than it) with a scale-aware loss, by default
Depth Anything V2's metric loss, SILog with lambda 0.5 (`depthlab.losses.metric.silog`), which
charges a wrong global scale. No target normalisation: the scale is what is learned.

Its sibling `TeacherPretraining` trains affine-invariant disparity; both evaluate the network
through the teacher's own preprocessing (`depthlab.teachers.disparity_predictor`), here as a
`MetricDepthPredictor`, so training's evaluation is metric (no alignment) and the same computation
as the frozen teacher built from the exported weights (`depthlab.world.mini_metric_teacher`).
"""
from __future__ import annotations

import gin
import torch
from torch import nn
from transformers import DepthAnythingForDepthEstimation

from depthlab.data.batch import Batch
from depthlab.errors import UserError
from depthlab.losses.registry import get_loss
from depthlab.models.output_kind import OutputKind
from depthlab.recipes.base import Panel, Recipe, StepOutput
from depthlab.recipes.teacher_pretraining import (MIN_DEPTH, enable_network_checkpointing,
                                                   ground_truth_only)
from depthlab.targets import Space
from depthlab.teachers.metric import DepthAnythingMetricPredictor, MetricDepthPredictor


def metric_predictor(network: nn.Module, input_size: int) -> MetricDepthPredictor:
    """The predictor around `network`: a metric transformers Depth Anything model, or a network
    mapping normalised pixels to metres with an `input_multiple` (its grid; 1 when absent)."""
    if isinstance(network, DepthAnythingForDepthEstimation):
        if network.config.depth_estimation_type != "metric":
            raise UserError(f"MetricTeacherPretraining.network is a Depth Anything model with a "
                            f"'{network.config.depth_estimation_type}' head, which predicts "
                            f"disparity, not metres: load a metric variant "
                            f"(depth_estimation_type 'metric', with max_depth), or train it with "
                            f"TeacherPretraining.")
        return DepthAnythingMetricPredictor(network, input_size)
    return MetricDepthPredictor(network, input_size, getattr(network, "input_multiple", 1))


def metric_mask(depth: torch.Tensor, valid: torch.Tensor,
               max_depth: float | None = None) -> torch.Tensor:
    """The mask of GT depths to learn: valid, deeper than `MIN_DEPTH`, at most `max_depth`."""
    mask = valid.bool() & (depth > MIN_DEPTH)
    return mask if max_depth is None else mask & (depth <= max_depth)


@gin.configurable
class MetricTeacherPretraining(Recipe):
    """Trains `network` (a metric `DepthAnythingForDepthEstimation`, or any network of normalised
    pixels to metres, such as the mini metric teacher's) on GT depth in metres.

    `input_size`: the shorter side images are resized to (the teacher's own preprocessing).
    `loss`: a name in the loss registry, called as loss(prediction, GT depth, mask).
    `max_depth`: GT deeper than this is left out (None: none is), as Depth Anything V2 leaves out
    depths beyond its head's range.
    """

    def __init__(self, network: nn.Module = gin.REQUIRED, input_size: int = 518,
                 loss: str = "silog", max_depth: float | None = None):
        super().__init__()
        self.network = network.train()
        self.predictor = metric_predictor(network, input_size)  # shares `network`
        self.loss = get_loss(loss)
        self.max_depth = max_depth

    def check_target_space(self, space: Space) -> None:
        """The network is trained and evaluated on depth in metres; refuse any other space."""
        if Space(space) is not Space.DEPTH:
            raise UserError(f"MetricTeacherPretraining trains its network on depth in metres, so "
                            f"it cannot train in the '{Space(space).value}' space.")

    def losses(self, batch: Batch, generator: torch.Generator,
               with_panels: bool = False) -> StepOutput:
        data = ground_truth_only(batch, type(self).__name__)
        prediction = self.predictor.predict(data.rgb)
        mask = metric_mask(data.depth, data.valid, self.max_depth)
        terms = {"metric": self.loss(prediction, data.depth, mask)}
        panels = {"synthetic/prediction": Panel(prediction.detach(), OutputKind.METRIC_DEPTH),
                  "synthetic/gt": Panel(torch.where(mask, data.depth, 0.0),
                                        OutputKind.METRIC_DEPTH)} if with_panels else {}
        return StepOutput(total=terms["metric"], terms=terms, panels=panels)

    def enable_gradient_checkpointing(self) -> None:
        enable_network_checkpointing(self.network)

    def evaluated_model(self) -> MetricDepthPredictor:
        """The network as a metric predictor; its child `model` is the recipe's `network`."""
        return self.predictor
