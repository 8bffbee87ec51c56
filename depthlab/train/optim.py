"""Optimizers and learning-rate schedules, each a gin block a recipe file picks:

    Trainer.optimizer = @adam                  # or @adamw
    Trainer.lr_schedule = @warmup_cosine       # or @warmup_exponential_decay, @constant_lr

An optimizer block takes the recipe's parameter groups (each group's `lr_scale` multiplies the
learning rate); a schedule block takes the optimizer and the run's total number of steps.
"""
from __future__ import annotations

from typing import Callable, Sequence

import gin
import torch
from diffusers.optimization import (get_constant_schedule_with_warmup,
                                    get_cosine_schedule_with_warmup)

from depthlab.recipes.base import ParameterGroup

OptimizerFactory = Callable[[Sequence[ParameterGroup]], torch.optim.Optimizer]
ScheduleFactory = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]


def torch_groups(groups: Sequence[ParameterGroup], learning_rate: float) -> list[dict]:
    """torch's param-group dicts, each with its scaled learning rate."""
    return [{"params": list(g.parameters), "lr": learning_rate * g.lr_scale, "name": g.name}
            for g in groups]


@gin.configurable
def adamw(groups: Sequence[ParameterGroup], learning_rate: float = 3e-5,
          weight_decay: float = 0.01, betas: tuple[float, float] = (0.9, 0.999),
          eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW (E2E-FT, Lotus, SharpDepth; FiffDepth by default)."""
    return torch.optim.AdamW(torch_groups(groups, learning_rate), lr=learning_rate,
                             weight_decay=weight_decay, betas=tuple(betas), eps=eps)


@gin.configurable
def adam(groups: Sequence[ParameterGroup], learning_rate: float = 3e-5,
         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam (Marigold, DepthMaster)."""
    return torch.optim.Adam(torch_groups(groups, learning_rate), lr=learning_rate,
                            betas=tuple(betas), eps=eps, weight_decay=weight_decay)


def warmup_exponential_factor(step: int, warmup_steps: int, decay_steps: int,
                              final_fraction: float) -> float:
    """lr multiplier: linear ramp over `warmup_steps`, then final_fraction ** (t / decay_steps)."""
    warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    decayed = max(step - warmup_steps, 0) / max(decay_steps, 1)
    return warmup * final_fraction ** min(decayed, 1.0)


@gin.configurable
def warmup_exponential_decay(optimizer: torch.optim.Optimizer, total_steps: int,
                             warmup_steps: int = 100, decay_steps: int | None = None,
                             final_fraction: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up then exponential decay to `final_fraction` x the base rate at `decay_steps` (default:
    the run's remaining steps), held there afterwards (Marigold, E2E-FT, DepthMaster)."""
    decay = decay_steps if decay_steps is not None else max(total_steps - warmup_steps, 1)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_exponential_factor(step, warmup_steps, decay,
                                                          final_fraction))


@gin.configurable
def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                  cycles: float = 0.5) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0, then cosine decay to 0 at `total_steps` (SharpDepth: 200 warm-up
    steps); diffusers' `get_cosine_schedule_with_warmup`."""
    return get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps, cycles)


@gin.configurable
def constant_lr(optimizer: torch.optim.Optimizer, total_steps: int,
                warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """The base rate throughout, after an optional linear warm-up from 0 (Lotus)."""
    return get_constant_schedule_with_warmup(optimizer, warmup_steps)
