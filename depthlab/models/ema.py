"""An exponential moving average of a module's weights (SharpDepth's EMA student).

Built on `torch.optim.swa_utils.AveragedModel` with its EMA averaging function. The average is a
frozen deep copy: it never reaches the optimizer, and recipes checkpoint it as extra state.
"""
from __future__ import annotations

import gin
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from depthlab.errors import UserError
from depthlab.models.freezing import freeze


@gin.configurable
class EMA(nn.Module):
    """EMA of `module`, updated at optimizer steps `start_after`, `start_after + every`, ...

    The first update copies the weights; each later one does w_ema <- decay w_ema + (1 - decay) w.
    SharpDepth: decay 0.9999, after 100 updates, every 10 steps. Recipes take this block as an
    uncalled gin reference (`FiffDepth.ema = @EMA`) and call it with the module to average.
    """

    def __init__(self, module: nn.Module, decay: float = 0.9999, start_after: int = 100,
                 every: int = 10):
        super().__init__()
        if not 0.0 <= decay < 1.0 or every < 1 or start_after < 0:
            raise UserError(f"EMA needs 0 <= decay < 1, every >= 1 and start_after >= 0; got "
                            f"decay={decay}, every={every}, start_after={start_after}.")
        self.decay, self.start_after, self.every = float(decay), int(start_after), int(every)
        self.averaged = freeze(AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay)))

    @property
    def module(self) -> nn.Module:
        """The averaged copy of the module."""
        return self.averaged.module

    @property
    def updates(self) -> int:
        """How many times the average has been updated (0: it still holds the initial copy)."""
        return int(self.averaged.n_averaged)

    def due(self, step: int) -> bool:
        """Whether optimizer step `step` (counted from 1) updates the average."""
        return step >= self.start_after and (step - self.start_after) % self.every == 0

    @torch.no_grad()
    def restart_from(self, module: nn.Module) -> None:
        """Make the average a fresh copy of `module` (e.g. once the module has been initialised
        from a run): its weights copied, its update count back to 0."""
        self.averaged.module.load_state_dict(module.state_dict())
        self.averaged.n_averaged.zero_()

    @torch.no_grad()
    def step(self, module: nn.Module, step: int) -> bool:
        """Update from `module` if `step` is due; returns whether it did."""
        if not self.due(step):
            return False
        self.averaged.update_parameters(module)
        return True

    def extra_repr(self) -> str:
        return f"decay={self.decay}, start_after={self.start_after}, every={self.every}"
