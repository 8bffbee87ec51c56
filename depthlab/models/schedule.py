"""Noise schedules and samplers: diffusers' `DDPMScheduler` (1000 steps, v-prediction) for
trajectory terms, and the sampler saved with a released checkpoint."""
from __future__ import annotations

import json

import diffusers
import gin
from diffusers import DDPMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from depthlab.errors import UserError
from depthlab.models.layout import require_layout


@gin.configurable
def ddpm_schedule(pretrained_dir: str | None = None, num_train_timesteps: int = 1000,
                  beta_schedule: str = "scaled_linear", beta_start: float = 0.00085,
                  beta_end: float = 0.012, prediction_type: str = "v_prediction") -> DDPMScheduler:
    """SD2's training schedule: from `<pretrained_dir>/scheduler` when given, else SD2's values."""
    if pretrained_dir is not None:
        root = require_layout(pretrained_dir, ["scheduler/scheduler_config.json"],
                              "noise scheduler (diffusers layout)")
        return DDPMScheduler.from_pretrained(root, subfolder="scheduler",
                                             prediction_type=prediction_type)
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                         beta_start=beta_start, beta_end=beta_end, prediction_type=prediction_type)


@gin.configurable
def diffusers_scheduler(pretrained_dir: str = gin.REQUIRED, subfolder: str = "scheduler",
                        timestep_spacing: str | None = None) -> SchedulerMixin:
    """The sampler saved with a released checkpoint (Marigold, E2E-FT, Lotus), of the class its
    config names (DDIM, LCM, ...).

    `timestep_spacing` overrides the saved spacing ('trailing' is E2E-FT's fix); None keeps it.
    """
    config_file = f"{subfolder}/scheduler_config.json"
    root = require_layout(pretrained_dir, [config_file], "scheduler (diffusers layout)")
    class_name = json.loads((root / config_file).read_text()).get("_class_name", "")
    scheduler_class = getattr(diffusers, class_name, None)
    if scheduler_class is None or not hasattr(scheduler_class, "set_timesteps"):
        raise UserError(f"'{root / config_file}' names the scheduler class '{class_name}', which "
                        f"this version of diffusers does not provide.")
    overrides = {} if timestep_spacing is None else {"timestep_spacing": timestep_spacing}
    return scheduler_class.from_pretrained(root, subfolder=subfolder, **overrides)
