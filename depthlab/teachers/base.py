"""Teacher interface and the once-per-process cache that keeps heavy teachers singletons."""
from __future__ import annotations

import abc
import threading
from typing import Callable, Hashable

import torch
from torch import nn

from depthlab.targets import Space

_INSTANCES: dict[Hashable, nn.Module] = {}
_LOCK = threading.Lock()


class Teacher(nn.Module, abc.ABC):
    """Frozen model: RGB batch in, affine-invariant depth or disparity out (see `output_space`).

    Input: [B, 3, H, W] in [0, 1]. Output: [B, 1, H, W] at the input resolution, in the space the
    teacher declares. Teachers never receive ground truth.
    """

    output_space: Space

    @abc.abstractmethod
    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        ...

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.predict(rgb)

    def train(self, mode: bool = True) -> "Teacher":
        return super().train(False)


def shared_instance(key: Hashable, build: Callable[[], nn.Module]) -> nn.Module:
    """Return the process-wide instance for `key`, building it on first use.

    gin's called references (`@teacher()`) build a new object at every reference; heavy teachers
    go through this cache instead so that every block using the same teacher shares one copy.
    """
    with _LOCK:
        if key not in _INSTANCES:
            _INSTANCES[key] = build()
        return _INSTANCES[key]


def clear_shared_instances() -> None:
    """Forget all cached teachers (tests use this to prove a build happens once)."""
    with _LOCK:
        _INSTANCES.clear()
