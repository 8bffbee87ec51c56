"""AdamW with a linear warm-up then exponential decay, the schedule E2E-FT and DepthMaster use."""
from __future__ import annotations

from typing import Iterable

import gin
import torch


@gin.configurable
def adamw(parameters: Iterable[torch.nn.Parameter], learning_rate: float = 3e-5,
          weight_decay: float = 0.01, betas: tuple[float, float] = (0.9, 0.999),
          eps: float = 1e-8) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay,
                             betas=tuple(betas), eps=eps)


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
    """Warm-up then decay to `final_fraction` x the base rate at `decay_steps` (default: the run's
    remaining steps), held there afterwards."""
    decay = decay_steps if decay_steps is not None else max(total_steps - warmup_steps, 1)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_exponential_factor(step, warmup_steps, decay,
                                                          final_fraction))
