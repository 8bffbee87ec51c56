"""SharpDepth: metric depth sharpened by a diffusion prior, trained without labels.

As in docs/methods.md (SharpDepth). Per step, on unlabelled images, everything at t = 999:
  1. the metric teacher's depth is normalised per image to [-1, 1];
  2. the gating pass (the EMA student; the frozen diffusion teacher in the ablation) runs from
     noise, and the noise-aware gating builds the student's input latent from it
     (`SharpDepthMode.gate`, `depthlab.heads.noise_aware_gating`);
  3. the student predicts the clean latent z_hat from [RGB latent, gated latent];
  4. score distillation: z_hat is noised at t, the frozen diffusion teacher predicts x0_hat, and
     the student is pulled by w(t) (z_hat - x0_hat), w(t) = 1 - abar_t (`sds_x0`);
  5. reconstruction: the decoded z_hat against the normalised metric depth, L1 weighted by the
     error map e (`error_weighted_l1`; 1 - e in the ablation), weight 0.4.
The student's inference is `SharpDepthMode`: two passes and the metric fit, so the model outputs
metres. Ground truth is never read: labelled batches contribute their images only.
"""
from __future__ import annotations

import gin
import torch

from depthlab.data.batch import Batch
from depthlab.errors import UserError, check_choice
from depthlab.heads.sharpdepth_mode import SharpDepthMode
from depthlab.losses.registry import get_loss
from depthlab.models.backbone import UNetBackbone
from depthlab.models.depth_model import DepthModel
from depthlab.models.freezing import freeze
from depthlab.models.modes import InferenceMode
from depthlab.models.output_kind import DepthPredictorModule, OutputKind
from depthlab.recipes.base import EMAFactory, Panel, Recipe, StepOutput

GATING_MODELS = ("ema", "teacher")
RECONSTRUCTION_WEIGHTINGS = ("error", "inverse_error")


@gin.configurable
class SharpDepth(Recipe):
    """The SharpDepth training recipe.

    `model`: the student, a `DepthModel` whose mode is `SharpDepthMode` (it holds the metric
    teacher and the gating block). `diffusion_teacher`: a backbone of the student's architecture,
    frozen here, holding the x0-predicting depth model (initialise it from a run with
    `InitialiseFrom(target='diffusion_teacher')`, or build it from a Lotus-G directory).
    `diffusion_mode`: how the diffusion teacher predicts on its own, evaluated beside the
    student (None: not evaluated). `ema`: an uncalled `@EMA` reference (decay 0.9999, after 100
    updates, every 10 steps). `gating_model`: 'ema' (SharpDepth) or 'teacher' (the ablation:
    the frozen teacher runs the gating pass). `reconstruction_weighting`: 'error' (SharpDepth)
    or 'inverse_error' (the ablation: 1 - e). `evaluate_ema`: evaluate and export the EMA
    student instead of the student (the paper predicts with the student).
    """

    uses_pixel_losses = True

    def __init__(self, model: DepthModel = gin.REQUIRED,
                 diffusion_teacher: UNetBackbone = gin.REQUIRED,
                 diffusion_mode: InferenceMode | None = None, ema: EMAFactory | None = None,
                 gating_model: str = "ema", reconstruction_weight: float = 0.4,
                 reconstruction_weighting: str = "error", sds_loss: str = "sds_x0",
                 reconstruction_loss: str = "error_weighted_l1", evaluate_ema: bool = False):
        super().__init__()
        if not isinstance(model.mode, SharpDepthMode):
            raise UserError(f"SharpDepth trains the gated two-pass model of SharpDepthMode, but "
                            f"the model's mode is {type(model.mode).__name__}; include "
                            f"gin/inference/sharpdepth.gin.")
        check_choice(gating_model, GATING_MODELS, "SharpDepth.gating_model")
        check_choice(reconstruction_weighting, RECONSTRUCTION_WEIGHTINGS,
                     "SharpDepth.reconstruction_weighting")
        if gating_model == "ema" and ema is None:
            raise UserError("SharpDepth.gating_model = 'ema' runs the gating pass with the EMA "
                            "student: bind SharpDepth.ema = @EMA (or gating_model = 'teacher').")
        if diffusion_teacher.in_channels != model.backbone.in_channels:
            raise UserError(f"SharpDepth's diffusion teacher takes {diffusion_teacher.in_channels}"
                            f" input channels and the student {model.backbone.in_channels}; both "
                            f"must be the same architecture ([RGB latent, depth latent]).")
        self.model = model
        self.diffusion_teacher = freeze(diffusion_teacher)
        self.diffusion_mode = diffusion_mode
        self.gating_model, self.reconstruction_weighting = gating_model, reconstruction_weighting
        self.reconstruction_weight = float(reconstruction_weight)
        self.sds, self.reconstruction = get_loss(sds_loss), get_loss(reconstruction_loss)
        self.evaluate_ema = evaluate_ema
        self.use_ema(ema)

    @property
    def mode(self) -> SharpDepthMode:
        return self.model.mode  # type: ignore[return-value]

    def gating_backbone(self) -> UNetBackbone:
        """The network of the gating pass: the EMA student, or the frozen teacher."""
        ema = self.averaged()
        if self.gating_model == "ema" and ema is not None:
            return ema.module  # type: ignore[return-value]
        return self.diffusion_teacher

    @staticmethod
    def images(batch: Batch) -> torch.Tensor:
        """Every image of the batch; labels are never read."""
        parts = [part.rgb for part in (batch.unlabelled, batch.labelled) if part is not None]
        if not parts:
            raise UserError("SharpDepth needs images: bind MixedBatches.unlabelled.")
        if len(parts) > 1 and parts[0].shape[-2:] != parts[1].shape[-2:]:
            raise UserError(f"SharpDepth trains on the labelled and unlabelled images of a batch "
                            f"together, but they differ in size ({tuple(parts[0].shape[-2:])} "
                            f"and {tuple(parts[1].shape[-2:])}); give both the same resolution.")
        return torch.cat(parts)

    def losses(self, batch: Batch, generator: torch.Generator,
               with_panels: bool = False) -> StepOutput:
        rgb = self.images(batch)
        mode, codec = self.mode, self.model.codec
        with torch.no_grad():
            rgb_latent = self.model.encode_rgb(rgb)
        _, normalised = mode.normalised_metric(rgb)
        noise = self._randn(rgb_latent, generator)
        gate = mode.gate(self.gating_backbone(), codec, rgb_latent, normalised, noise, generator)
        student = mode.clean(self.model.backbone, rgb_latent, gate.latent)

        alpha_bar = mode.alpha_bar
        noisy = alpha_bar.sqrt() * student.detach() + (1 - alpha_bar).sqrt() * self._randn(
            student, generator)
        with torch.no_grad():
            teacher = mode.clean(self.diffusion_teacher, rgb_latent, noisy)
        sds = self.sds(student, teacher, 1.0 - alpha_bar)

        decoded = codec.decode_depth(student).float()
        weight = gate.error if self.reconstruction_weighting == "error" else 1.0 - gate.error
        reconstruction = self.reconstruction(decoded, normalised, weight)
        total = sds + self.reconstruction_weight * reconstruction
        terms = {"sds": sds, "reconstruction": reconstruction,
                 "gated_fraction": gate.mask.mean().detach()}
        panels = self._panels(decoded, normalised, gate.error) if with_panels else {}
        return StepOutput(total=total, terms=terms, panels=panels)

    @staticmethod
    def _randn(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(like.shape, generator=generator, device=generator.device).to(
            like.device, torch.float32)

    @staticmethod
    def _panels(decoded: torch.Tensor, normalised: torch.Tensor,
                error: torch.Tensor) -> dict[str, Panel]:
        unit = lambda x: (x.detach().clamp(-1, 1) + 1) / 2  # noqa: E731
        return {"real/prediction": Panel(unit(decoded), OutputKind.DEPTH),
                "real/metric_teacher": Panel(unit(normalised), OutputKind.DEPTH),
                "real/gating_error": Panel(error.detach().expand(-1, 3, -1, -1))}

    def evaluated_model(self) -> DepthPredictorModule:
        """The student (the paper predicts with it), or its EMA with `evaluate_ema`."""
        return super().evaluated_model() if self.evaluate_ema else self.model

    def reference_models(self) -> dict[str, DepthPredictorModule]:
        """The metric teacher alone and, with a `diffusion_mode`, the diffusion teacher alone."""
        references: dict[str, DepthPredictorModule] = {"metric_teacher": self.mode.metric_teacher}
        if self.diffusion_mode is not None:
            references["diffusion_model"] = DepthModel(self.diffusion_teacher, self.model.codec,
                                                       self.diffusion_mode).eval()
        return references
