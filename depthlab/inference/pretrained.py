"""Blocks that read a released checkpoint in diffusers layout (Marigold, E2E-FT, Lotus).

A `MarigoldDepthPipeline` directory holds unet/, vae/, scheduler/, text_encoder/ and tokenizer/;
the UNet comes from `sd2_backbone`, the codec from `pretrained_codec`, the sampler from here.
"""
from __future__ import annotations

import json

import diffusers
import gin
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from depthlab.errors import UserError
from depthlab.models.layout import require_layout


@gin.configurable
def diffusers_scheduler(pretrained_dir: str = gin.REQUIRED, subfolder: str = "scheduler",
                        timestep_spacing: str | None = None) -> SchedulerMixin:
    """The sampler saved with a checkpoint, of the class its config names (DDIM, LCM, ...).

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
