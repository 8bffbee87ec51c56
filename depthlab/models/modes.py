"""Inference modes: how a method turns an image into its output map with its UNet.

A mode is a module (anything it holds - a scheduler's constants, a metric teacher - moves with the
model) bound in gin per method. It receives `ModeInputs`: the RGB image, its latent, the backbone
and the codec, and returns the map of the `output_kind` it declares. Most modes produce one output
latent (`latent`) and let `forward` decode it; Marigold's ensemble decodes several and merges them.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import gin
import torch
from diffusers import DDIMScheduler, MarigoldDepthPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import nn

from depthlab.errors import UserError
from depthlab.models.backbone import UNetBackbone
from depthlab.models.codec import LatentCodec
from depthlab.models.output_kind import OutputKind
from depthlab.models.schedule import ddpm_schedule


@dataclass
class ModeInputs:
    """Everything a mode may use: `rgb` [B, 3, H, W] in [0, 1], its latent, backbone, codec."""

    rgb: torch.Tensor
    rgb_latent: torch.Tensor
    backbone: UNetBackbone
    codec: LatentCodec


class InferenceMode(nn.Module, abc.ABC):
    """Image -> output map; `output_kind` says what the map is."""

    output_kind: OutputKind

    def __init__(self, output_kind: OutputKind | str):
        super().__init__()
        self.output_kind = OutputKind.parse(output_kind, f"{type(self).__name__}.output_kind")

    @abc.abstractmethod
    def latent(self, inputs: ModeInputs) -> torch.Tensor:
        """The output latent for the batch."""

    def forward(self, inputs: ModeInputs) -> torch.Tensor:
        """The output map [B, C, H, W]: the latent decoded to [0, 1], or to unit normals for a
        mode that declares normals."""
        return decode_output(inputs.codec, self.latent(inputs), self.output_kind)

    def extra_repr(self) -> str:
        return f"output_kind={self.output_kind.value}"


def decode_output(codec: LatentCodec, latent: torch.Tensor, kind: OutputKind) -> torch.Tensor:
    """A mode's output latent as the map of `kind`: unit normals (3 channels) for normals, else
    the channel mean clipped to [-1, 1] and mapped to [0, 1]."""
    if kind is OutputKind.NORMALS:
        return codec.decode_normals(latent)
    return codec.decode_unit(latent)


@gin.configurable
class DirectLatentMode(InferenceMode):
    """One UNet pass on the RGB latent alone; its output is the depth latent.

    FiffDepth: t = 0, depth. DepthMaster: t = 1, sqrt-disparity.
    """

    def __init__(self, timestep: float = 0.0, output_kind: str = OutputKind.DEPTH.value):
        super().__init__(output_kind)
        self.timestep = float(timestep)

    def latent(self, inputs: ModeInputs) -> torch.Tensor:
        return inputs.backbone(inputs.rgb_latent, self.timestep)


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

    def __init__(self, timestep: float = 999.0, output_kind: str = OutputKind.DISPARITY.value,
                 task: tuple[float, ...] = (1.0, 0.0)):
        super().__init__(timestep, output_kind)
        self.register_buffer("task_embedding", lotus_task_embedding(task), persistent=False)

    def latent(self, inputs: ModeInputs) -> torch.Tensor:
        rgb_latent = inputs.rgb_latent
        labels = self.task_embedding.to(rgb_latent.dtype).expand(len(rgb_latent), -1)
        return inputs.backbone(rgb_latent, self.timestep, class_labels=labels)


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


def per_image_noise(like: torch.Tensor, seed: int | None, members: int = 1) -> torch.Tensor:
    """Gaussian noise shaped like `like`. Each group of `members` consecutive rows (an image's
    ensemble) is drawn from a generator seeded with `seed`, so an image's noise does not depend on
    the batch it came in; None draws fresh noise."""
    if seed is None:
        return torch.randn(like.shape, device=like.device)
    groups = []
    for _ in range(len(like) // members):
        generator = torch.Generator(device=like.device).manual_seed(seed)
        groups.append(torch.randn((members, *like.shape[1:]), generator=generator,
                                  device=like.device))
    return torch.cat(groups)


class OneStepMode(InferenceMode):
    """One UNet pass on [RGB latent, a starting latent] at `timestep`, its output converted to the
    clean latent x0 with the schedule's abar and prediction type (`scheduler`: SD2's DDPM
    schedule by default; only its constants are used). Subclasses choose the starting latent."""

    def __init__(self, timestep: int = 999, output_kind: str = OutputKind.DEPTH.value,
                 scheduler: SchedulerMixin | None = None):
        super().__init__(output_kind)
        self.timestep = int(timestep)
        scheduler = scheduler or ddpm_schedule()
        self.register_buffer("alpha_bar", scheduler.alphas_cumprod[self.timestep].float().clone(),
                             persistent=False)
        self.prediction_type = scheduler.config.prediction_type

    @abc.abstractmethod
    def start(self, rgb_latent: torch.Tensor) -> torch.Tensor:
        """The latent beside the RGB latent in the UNet's input."""

    def clean(self, backbone: UNetBackbone, rgb_latent: torch.Tensor,
              latent: torch.Tensor) -> torch.Tensor:
        """The clean latent the UNet predicts from [RGB latent, `latent`] at `timestep`."""
        output = backbone(torch.cat([rgb_latent, latent], dim=1), self.timestep)
        return clean_latent(output.float(), latent.float(), self.alpha_bar, self.prediction_type)

    def latent(self, inputs: ModeInputs) -> torch.Tensor:
        return self.clean(inputs.backbone, inputs.rgb_latent, self.start(inputs.rgb_latent))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, timestep={self.timestep}"


@gin.configurable
class E2EFTMode(OneStepMode):
    """E2E-FT: UNet on [RGB latent, zeros] at t = 999, output converted to the clean latent.

    With v-prediction and a zero noisy latent, x0 = -sqrt(1 - abar_t) v (about -0.998 v).
    """

    def start(self, rgb_latent: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(rgb_latent)


@gin.configurable
class LotusGMode(OneStepMode):
    """Lotus-G: UNet on [RGB latent, Gaussian noise] at t = 999; Lotus-G predicts x0 directly
    (bind the scheduler's prediction type 'sample'). The noise is seeded per image with `seed`
    (None: fresh noise at every call), so predictions are reproducible."""

    def __init__(self, timestep: int = 999, output_kind: str = OutputKind.DEPTH.value,
                 scheduler: SchedulerMixin | None = None, seed: int | None = 0):
        super().__init__(timestep, output_kind, scheduler)
        self.seed = seed

    def start(self, rgb_latent: torch.Tensor) -> torch.Tensor:
        return per_image_noise(rgb_latent.float(), self.seed)


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
                 output_kind: str = OutputKind.DEPTH.value,
                 ensembling: dict[str, Any] | None = None):
        super().__init__(output_kind)
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
        self.ensembling = dict(ensembling or {})

    def initial_latent(self, rgb_latent: torch.Tensor, members: int) -> torch.Tensor:
        """Starting latents; each image's `members` rows come from a freshly seeded generator
        (`per_image_noise`), so an image's prediction does not depend on its batch."""
        if self.noise == "zeros":
            return torch.zeros(rgb_latent.shape, device=rgb_latent.device)
        return per_image_noise(rgb_latent, self.seed, members)

    def denoise(self, backbone: UNetBackbone, rgb_latent: torch.Tensor,
                members: int = 1) -> torch.Tensor:
        """Denoise from the initial latent; consecutive groups of `members` rows share an image."""
        rgb_latent = rgb_latent.float()
        latent = self.initial_latent(rgb_latent, members)
        self.scheduler.set_timesteps(self.steps, device=rgb_latent.device)
        for t in self.scheduler.timesteps:
            output = backbone(torch.cat([rgb_latent, latent], dim=1), t).float()
            latent = self.scheduler.step(output, t, latent).prev_sample
        return latent

    def latent(self, inputs: ModeInputs) -> torch.Tensor:
        return self.denoise(inputs.backbone, inputs.rgb_latent)

    def forward(self, inputs: ModeInputs) -> torch.Tensor:
        """Decode every member and merge each image's members. Unlike the pipeline, which crops
        its padding first, members are aligned on the padded map (a few replicated pixels)."""
        if self.ensemble_size == 1:
            return super().forward(inputs)
        members = inputs.rgb_latent.repeat_interleave(self.ensemble_size, dim=0)
        decoded = inputs.codec.decode_unit(self.denoise(inputs.backbone, members,
                                                        self.ensemble_size)).float()
        decoded = decoded.unflatten(0, (len(inputs.rgb_latent), self.ensemble_size))
        merged = [MarigoldDepthPipeline.ensemble_depth(group, True, True, **self.ensembling)[0]
                  for group in decoded]
        return torch.cat(merged, dim=0)
