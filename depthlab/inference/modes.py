"""Inference modes: how a method turns an RGB latent into a depth latent with its UNet.

One mode per method; each is a gin block bound in that method's recipe. They all end in the same
place (`DepthModel` decodes the latent), so evaluation and the predict CLI share one path. A mode
that needs more than one decoded latent per image (Marigold's ensemble) overrides `predict_unit`.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

import gin
import torch
from diffusers import DDIMScheduler, MarigoldDepthPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from depthlab.errors import UserError
from depthlab.models.backbone import UNetBackbone
from depthlab.models.schedule import ddpm_schedule
from depthlab.targets import Space

if TYPE_CHECKING:
    from depthlab.models.depth_model import DepthModel


class InferenceMode(abc.ABC):
    """Maps an RGB latent to a depth latent; `space` is what the decoded map represents."""

    space: Space

    @abc.abstractmethod
    def __call__(self, backbone: UNetBackbone, rgb_latent: torch.Tensor) -> torch.Tensor:
        ...

    def predict_unit(self, model: DepthModel, rgb_latent: torch.Tensor) -> torch.Tensor:
        """RGB latent -> map [B, 1, H, W] in [0, 1]: one latent, decoded."""
        return model.latent_to_unit(self(model.backbone, rgb_latent))


@gin.configurable
class DirectLatentMode(InferenceMode):
    """One UNet pass on the RGB latent alone; its output is the depth latent.

    FiffDepth: t = 0, depth. DepthMaster: t = 1, sqrt-disparity.
    """

    def __init__(self, timestep: float = 0.0, space: str = Space.DEPTH.value):
        self.timestep = float(timestep)
        self.space = Space(space)

    def __call__(self, backbone: UNetBackbone, rgb_latent: torch.Tensor) -> torch.Tensor:
        return backbone(rgb_latent, self.timestep)


def lotus_task_embedding(task: tuple[float, ...]) -> torch.Tensor:
    """Lotus's task switcher: [sin(one-hot), cos(one-hot)], e.g. (1, 0) -> [1, 4] for depth."""
    onehot = torch.tensor([task], dtype=torch.float32)
    return torch.cat([torch.sin(onehot), torch.cos(onehot)], dim=-1)


@gin.configurable
class LotusDMode(DirectLatentMode):
    """Lotus-D: the RGB latent alone at t = 999 with the task embedding as `class_labels`.

    The UNet needs a projection class embedding (`class_embed_type='projection'`, input dim 4);
    task (1, 0) is depth, (0, 1) the detail preserver's RGB reconstruction.
    """

    def __init__(self, timestep: float = 999.0, space: str = Space.DISPARITY.value,
                 task: tuple[float, ...] = (1.0, 0.0)):
        super().__init__(timestep, space)
        self.task_embedding = lotus_task_embedding(task)

    def __call__(self, backbone: UNetBackbone, rgb_latent: torch.Tensor) -> torch.Tensor:
        labels = self.task_embedding.to(rgb_latent.device, rgb_latent.dtype)
        return backbone(rgb_latent, self.timestep, class_labels=labels.expand(len(rgb_latent), -1))


def sd2_ddim_scheduler(timestep_spacing: str = "trailing") -> DDIMScheduler:
    """DDIM over SD2's schedule with Marigold's settings; trailing spacing is E2E-FT's fix."""
    return DDIMScheduler.from_config(ddpm_schedule().config, clip_sample=False,
                                     set_alpha_to_one=False, steps_offset=1,
                                     timestep_spacing=timestep_spacing)


def clean_latent(output: torch.Tensor, sample: torch.Tensor, alpha_bar: torch.Tensor,
                 prediction_type: str) -> torch.Tensor:
    """The model's estimate of the clean latent x0 from its output at noisy `sample`."""
    a, s = alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()
    if prediction_type == "v_prediction":
        return a * sample - s * output
    if prediction_type == "epsilon":
        return (sample - s * output) / a
    if prediction_type == "sample":
        return output
    raise UserError(f"Unknown prediction type '{prediction_type}': expected 'v_prediction', "
                    f"'epsilon' or 'sample'.")


@gin.configurable
class E2EFTMode(InferenceMode):
    """E2E-FT: UNet on [RGB latent, zeros] at t = 999, output converted to the clean latent.

    With v-prediction and a zero noisy latent, x0 = -sqrt(1 - abar_t) v (about -0.998 v).
    `scheduler` only supplies the noise schedule (abar) and the prediction type.
    """

    def __init__(self, timestep: int = 999, space: str = Space.DEPTH.value,
                 scheduler: SchedulerMixin | None = None):
        self.timestep = int(timestep)
        self.space = Space(space)
        scheduler = scheduler or ddpm_schedule()
        self.alpha_bar = scheduler.alphas_cumprod[self.timestep].float()
        self.prediction_type = scheduler.config.prediction_type

    def __call__(self, backbone: UNetBackbone, rgb_latent: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros_like(rgb_latent)
        output = backbone(torch.cat([rgb_latent, zeros], dim=1), self.timestep)
        return clean_latent(output.float(), zeros.float(), self.alpha_bar.to(rgb_latent.device),
                            self.prediction_type)


NOISE_KINDS = ("gaussian", "zeros")


@gin.configurable
class MarigoldMode(InferenceMode):
    """Marigold: `steps` of the scheduler on [RGB latent, depth latent], `ensemble_size` members.

    The loop is diffusers' own (`scheduler.set_timesteps`, `scheduler.step`), so any scheduler in
    a Marigold checkpoint (DDIM with leading or trailing spacing, LCM) behaves as in
    `MarigoldDepthPipeline`. `noise` starts each member from Gaussian noise (Marigold; seeded per
    call with `seed`, so predictions are reproducible; None draws fresh noise) or from zeros
    (E2E-FT). Members are aligned and merged with the pipeline's `ensemble_depth`
    (`ensembling` passes its keyword arguments).
    """

    def __init__(self, steps: int = 4, ensemble_size: int = 1, noise: str = "gaussian",
                 scheduler: SchedulerMixin | None = None, seed: int | None = 0,
                 space: str = Space.DEPTH.value, ensembling: dict[str, Any] | None = None):
        if steps < 1 or ensemble_size < 1:
            raise UserError(f"Marigold needs steps >= 1 and ensemble_size >= 1; got steps={steps},"
                            f" ensemble_size={ensemble_size} (DENOISING_STEPS, ENSEMBLE_SIZE).")
        if noise not in NOISE_KINDS:
            raise UserError(f"Unknown Marigold noise '{noise}' (the NOISE macro): expected one of "
                            f"{', '.join(NOISE_KINDS)}.")
        self.steps = int(steps)
        self.ensemble_size = int(ensemble_size)
        self.noise = noise
        self.scheduler = scheduler or sd2_ddim_scheduler()
        self.seed = seed
        self.space = Space(space)
        self.ensembling = dict(ensembling or {})

    def initial_latent(self, rgb_latent: torch.Tensor, members: int) -> torch.Tensor:
        """Starting latents; each image's `members` rows are drawn from a freshly seeded
        generator, so an image's prediction does not depend on the batch it came in."""
        if self.noise == "zeros":
            return torch.zeros(rgb_latent.shape, device=rgb_latent.device)
        groups = []
        for _ in range(len(rgb_latent) // members):
            generator = None
            if self.seed is not None:
                generator = torch.Generator(device=rgb_latent.device).manual_seed(self.seed)
            groups.append(torch.randn((members, *rgb_latent.shape[1:]), generator=generator,
                                      device=rgb_latent.device))
        return torch.cat(groups)

    def __call__(self, backbone: UNetBackbone, rgb_latent: torch.Tensor,
                 members: int = 1) -> torch.Tensor:
        """Denoise from the initial latent; consecutive groups of `members` rows share an image."""
        rgb_latent = rgb_latent.float()
        latent = self.initial_latent(rgb_latent, members)
        self.scheduler.set_timesteps(self.steps, device=rgb_latent.device)
        for t in self.scheduler.timesteps:
            output = backbone(torch.cat([rgb_latent, latent], dim=1), t).float()
            latent = self.scheduler.step(output, t, latent).prev_sample
        return latent

    def predict_unit(self, model: DepthModel, rgb_latent: torch.Tensor) -> torch.Tensor:
        """Decode every member and merge each image's members. Unlike the pipeline, which crops
        its padding first, members are aligned on the padded map (a few replicated pixels)."""
        if self.ensemble_size == 1:
            return super().predict_unit(model, rgb_latent)
        members = rgb_latent.repeat_interleave(self.ensemble_size, dim=0)
        unit = model.latent_to_unit(self(model.backbone, members, self.ensemble_size)).float()
        unit = unit.unflatten(0, (len(rgb_latent), self.ensemble_size))
        merged = [MarigoldDepthPipeline.ensemble_depth(group, True, True, **self.ensembling)[0]
                  for group in unit]
        return torch.cat(merged, dim=0)
