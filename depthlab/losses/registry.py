"""The loss registry: losses are pure functions registered by name, chosen in gin by name."""
from __future__ import annotations

from typing import Callable, Protocol

import torch

from depthlab.errors import UserError


class LossFn(Protocol):
    def __call__(self, prediction: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor: ...


_LOSSES: dict[str, LossFn] = {}


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Register a loss `f(prediction, target, mask) -> scalar` under `name`."""

    def decorator(fn: LossFn) -> LossFn:
        if name in _LOSSES and _LOSSES[name] is not fn:
            raise ValueError(f"A loss named '{name}' is already registered.")
        _LOSSES[name] = fn
        return fn

    return decorator


def get_loss(name: str) -> LossFn:
    if name not in _LOSSES:
        raise UserError(f"Unknown loss '{name}' in the configuration. Registered losses: "
                        f"{', '.join(sorted(_LOSSES))}.")
    return _LOSSES[name]


def loss_names() -> list[str]:
    return sorted(_LOSSES)
