"""FiffDepth: feed-forward depth at t = 0, trajectory preservation, and the t = -1 filter.

As in docs/methods.md, one UNet serves three uses per step.
  1. d0 = UNet(x0, 0) on synthetic images, supervised by the GT depth latent.
  2. Trajectory term on the blended latent b0 = gamma x0 + (1 - gamma) d0_gt, noised to b_t, with
     the v-target v_t = sqrt(abar_t) eps - sqrt(1 - abar_t) b0 and L_k = || v_t - UNet(b_t, t) ||^2.
  3. The t = -1 filter on real images: d_-1 = UNet(d0, -1), supervised by the teacher's label.
L = sum over t in {0, -1} of (l_mae MAE + l_gm GM) + l_k L_k. Inference uses d0 alone.
"""
from __future__ import annotations

import gin
import torch
from diffusers import DDPMScheduler

from depthlab.data.batch import Batch, LabelledBatch, UnlabelledBatch
from depthlab.errors import UserError
from depthlab.heads.fiffdepth_filter import TMinusOneFilter
from depthlab.losses.registry import get_loss
from depthlab.models.depth_model import DepthModel
from depthlab.models.output_kind import DepthPredictorModule, OutputKind
from depthlab.models.schedule import ddpm_schedule
from depthlab.recipes.base import EMAFactory, Panel, Recipe, StepOutput
from depthlab.targets import TargetEncoder, latent_valid_mask
from depthlab.teachers.base import Teacher


@gin.configurable
class FiffDepth(Recipe):
    """The FiffDepth training recipe; every weight and undocumented choice is a binding.

    `timestep_range` is the half-open range of diffusers timestep indices for the trajectory term
    (DDPM, 1000 steps); it starts at 1 so that no trajectory sample shares t = 0 with the
    feed-forward pass. `mask_trajectory`: the paper writes L_k without a mask; masking it by depth
    validity (the default) keeps the latent cells whose GT is invalid (sky, holes: the label
    holds a fabricated value there) out of the trajectory target, as they are out of the t = 0
    term. `ema` (an uncalled `@EMA` reference) keeps an EMA of the UNet, which is then the model
    evaluated and saved for inference. Noise-schedule arithmetic and every loss run in float32,
    also under bf16 autocast (in bf16, abar at the first timesteps rounds to 1: no noise).
    """

    def __init__(self, model: DepthModel = gin.REQUIRED, teacher: Teacher | None = gin.REQUIRED,
                 target: TargetEncoder | None = None, schedule: DDPMScheduler | None = None,
                 filter_head: TMinusOneFilter | None = None, gamma: float = 0.5,
                 mae_weight: float = 1.0, gradient_weight: float = 0.5,
                 trajectory_weight: float = 0.2, mae_loss: str = "latent_mae",
                 gradient_loss: str = "gradient_matching",
                 trajectory_loss: str = "v_prediction_mse",
                 timestep_range: tuple[int, int] = (1, 1000), mask_trajectory: bool = True,
                 ema: EMAFactory | None = None):
        super().__init__()
        self.model = model
        self.teacher = teacher
        self.target = target or TargetEncoder()
        self.schedule = schedule or ddpm_schedule()
        self.filter_head = filter_head or TMinusOneFilter()
        self.gamma = gamma
        self.weights = {"mae": mae_weight, "gradient": gradient_weight,
                        "trajectory": trajectory_weight}
        self.mae, self.gradient = get_loss(mae_loss), get_loss(gradient_loss)
        self.trajectory = get_loss(trajectory_loss)
        self.timestep_range = timestep_range
        self.mask_trajectory = mask_trajectory
        self.use_ema(ema)
        self.check_target_space(self.target.space)

    def reference_models(self) -> dict[str, DepthPredictorModule]:
        return {"teacher": self.teacher} if self.teacher is not None else {}

    def _pair_loss(self, prediction: torch.Tensor, label: torch.Tensor,
                   mask: torch.Tensor | None) -> torch.Tensor:
        prediction, label = prediction.float(), label.float()
        return (self.weights["mae"] * self.mae(prediction, label, mask)
                + self.weights["gradient"] * self.gradient(prediction, label, mask))

    def losses(self, batch: Batch, generator: torch.Generator,
               with_panels: bool = False) -> StepOutput:
        """Two rounds of UNet passes per step: t = 0 on all images, then the trajectory samples and
        the t = -1 filter together (per-sample timesteps), which is the same maths as four passes.
        Images of equal size share a pass; synthetic and real images of different sizes do not."""
        synthetic = self._synthetic_inputs(batch.labelled) if batch.labelled else None
        real = self._real_inputs(batch.unlabelled) \
            if batch.unlabelled is not None and self.teacher is not None else None
        backbone = self.model.backbone
        first = {name: (part["x0"], zero_timesteps(part["x0"]))
                 for name, part in (("synthetic", synthetic), ("real", real)) if part is not None}
        d0 = dict(zip(first, backbone.forward_many(list(first.values()))))
        if real is not None:
            self._add_teacher_label(real, d0["real"])
        terms: dict[str, torch.Tensor] = {}
        second: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        trajectory_target = None
        if synthetic is not None:
            terms["t0"] = self._pair_loss(d0["synthetic"], synthetic["label"], synthetic["mask"])
            if self.weights["trajectory"] > 0:
                noisy, timesteps, trajectory_target = self._trajectory_sample(synthetic, generator)
                second["trajectory"] = (noisy, timesteps.float())
        filter_on = real is not None and self.filter_head.enabled
        if filter_on:
            second["filter"] = self.filter_head.inputs(d0["real"])
        outputs = dict(zip(second, backbone.forward_many(list(second.values()))))
        if "trajectory" in outputs:
            terms["trajectory"] = self.trajectory(
                outputs["trajectory"].float(), trajectory_target,
                synthetic["mask"] if self.mask_trajectory else None)
        if filter_on:
            terms["t_minus_1"] = self._pair_loss(outputs["filter"], real["label"], None)
        elif real is not None:
            terms["teacher_on_t0"] = self._pair_loss(d0["real"], real["label"], None)
        if not terms:
            raise UserError("FiffDepth got a batch with nothing to learn from: unlabelled images "
                            "need a teacher (FiffDepth.teacher), or bind labelled data "
                            "(MixedBatches.labelled).")
        total = sum(terms[name] for name in ("t0", "t_minus_1", "teacher_on_t0") if name in terms)
        if "trajectory" in terms:
            total = total + self.weights["trajectory"] * terms["trajectory"]
        panels = self._panels(synthetic, real, d0, outputs.get("filter")) if with_panels else {}
        return StepOutput(total=total, terms=terms, panels=panels)

    def _synthetic_inputs(self, data: LabelledBatch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"x0": self.model.encode_rgb(data.rgb),
                    "label": self.model.codec.encode_depth(
                        self.target.from_depth(data.depth, data.valid)),
                    "mask": latent_valid_mask(data.valid, self.model.codec.downsample_factor)}

    def _real_inputs(self, data: UnlabelledBatch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"x0": self.model.encode_rgb(data.rgb), "teacher": self.teacher(data.rgb)}

    @torch.no_grad()
    def _add_teacher_label(self, real: dict[str, torch.Tensor], d0_real: torch.Tensor) -> None:
        """The teacher's pseudo-label in the target space (fitted to the student's d0 when the
        label choice needs it) and its latent."""
        student = self.model.codec.decode_depth(d0_real) if self.target.needs_student else None
        real["pseudo"] = self.target.from_teacher(real["teacher"], self.teacher.output_kind.space,
                                                  student=student)
        real["label"] = self.model.codec.encode_depth(real["pseudo"])

    def _trajectory_sample(self, synthetic: dict, generator: torch.Generator):
        """(b_t, t, v_t) for the blended latent b0 = gamma x0 + (1 - gamma) d0_gt, in float32."""
        x0, label = synthetic["x0"].float(), synthetic["label"].float()
        blended = self.gamma * x0 + (1.0 - self.gamma) * label
        noise = torch.randn(blended.shape, generator=generator).to(blended)
        low, high = self.timestep_range
        timesteps = torch.randint(low, high, (len(blended),), generator=generator)
        timesteps = timesteps.to(blended.device)
        return (self.schedule.add_noise(blended, noise, timesteps), timesteps,
                self.schedule.get_velocity(blended, noise, timesteps))

    def _panels(self, synthetic, real, d0: dict, filtered) -> dict[str, Panel]:
        unit, kind = self.model.latent_to_unit, OutputKind.from_space(self.target.space)
        panels = {}
        with torch.no_grad():
            if synthetic is not None:
                panels["synthetic/prediction_t0"] = Panel(unit(d0["synthetic"]), kind)
                panels["synthetic/label"] = Panel(unit(synthetic["label"]), kind)
            if real is not None:
                panels["real/prediction_t0"] = Panel(unit(d0["real"]), kind)
                if filtered is not None:
                    panels["real/filtered_t_minus_1"] = Panel(unit(filtered), kind)
                panels["real/teacher_label"] = Panel((real["pseudo"] + 1.0) / 2.0, kind)
        return panels


def zero_timesteps(latent: torch.Tensor) -> torch.Tensor:
    return torch.zeros(len(latent), device=latent.device)
