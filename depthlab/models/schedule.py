"""Noise schedule: diffusers' `DDPMScheduler` (1000 steps, v-prediction) for trajectory terms."""
from __future__ import annotations

import gin
from diffusers import DDPMScheduler

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
