"""E2E-FT: end-to-end fine-tuning of the one-step prediction through the frozen decoder.

As in docs/methods.md (E2E-FT): the UNet sees [RGB latent, zeros] at t = 999; its output is
converted to the clean latent exactly as at inference (`E2EFTMode`; with `LotusGMode` the same
training sees Lotus-G's noise input instead, which makes an x0-predicting depth diffusion model), decoded through the frozen
decoder (which stays in the autograd graph), and compared with the GT in pixel space:
- depth (the default task): channel mean clipped to [-1, 1], then per image a least-squares scale
  and shift to the GT in metres (clamped to its 2/98% quantiles) and L1 (`affine_invariant_l1`);
- normals (`task = 'normals'`, a separate run on data that provides them): the decoded image
  normalised to unit length, angular loss (`angular_normals`).
"""
from __future__ import annotations

import gin
import torch

from depthlab.data.batch import Batch
from depthlab.errors import UserError, check_choice
from depthlab.losses.registry import get_loss
from depthlab.models.depth_model import DepthModel
from depthlab.models.modes import ModeInputs, OneStepMode
from depthlab.models.output_kind import OutputKind
from depthlab.recipes.base import Panel, Recipe, StepOutput

TASKS = ("depth", "normals")


@gin.configurable
class E2EFT(Recipe):
    """The E2E-FT training recipe. `task` picks what the model learns ('depth' or 'normals'); the
    model's inference mode must declare the matching output (affine-invariant depth or normals).
    Normals are read from `LabelledBatch.extras['normals']` (MixedBatches.extra_targets)."""

    uses_pixel_losses = True

    def __init__(self, model: DepthModel = gin.REQUIRED, task: str = "depth",
                 depth_loss: str = "affine_invariant_l1",
                 normals_loss: str = "angular_normals"):
        super().__init__()
        if not isinstance(model.mode, OneStepMode):
            raise UserError(f"E2EFT trains a one-step prediction (E2EFTMode, or LotusGMode for "
                            f"Lotus-G's noise input), but the model's mode is "
                            f"{type(model.mode).__name__}; include gin/inference/e2eft.gin.")
        check_choice(task, TASKS, "E2EFT.task")
        expected = OutputKind.NORMALS if task == "normals" else OutputKind.DEPTH
        if model.output_kind is not expected:
            raise UserError(f"E2EFT.task = '{task}' trains {expected.value}, but the model's "
                            f"mode declares '{model.output_kind.value}' (E2EFTMode.output_kind).")
        self.model, self.task = model, task
        self.loss = get_loss(normals_loss if task == "normals" else depth_loss)

    def losses(self, batch: Batch, generator: torch.Generator,
               with_panels: bool = False) -> StepOutput:
        data = self.labelled_only(batch)
        with torch.no_grad():
            rgb_latent = self.model.encode_rgb(data.rgb)
        inputs = ModeInputs(data.rgb, rgb_latent, self.model.backbone, self.model.codec)
        latent = self.model.mode.latent(inputs).float()
        if self.task == "normals":
            if "normals" not in data.extras:
                raise UserError("E2EFT.task = 'normals' needs normals in the batch: set "
                                "MixedBatches.extra_targets = ['normals'] and data that provides "
                                "them (e.g. MiniWorldDataset.normals = True).")
            prediction = self.model.codec.decode_normals(latent).float()
            loss = self.loss(prediction, data.extras["normals"].float(), data.valid)
        else:
            prediction = self.model.codec.decode_depth(latent).float().clamp(-1.0, 1.0)
            loss = self.loss(prediction, data.depth.float(), data.valid)
        panels = self._panels(prediction) if with_panels else {}
        return StepOutput(total=loss, terms={self.task: loss}, panels=panels)

    def _panels(self, prediction: torch.Tensor) -> dict[str, Panel]:
        with torch.no_grad():
            if self.task == "normals":
                return {"synthetic/normals": Panel((prediction + 1.0) / 2.0)}
            return {"synthetic/prediction": Panel((prediction + 1.0) / 2.0, OutputKind.DEPTH)}
