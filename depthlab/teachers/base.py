"""Teacher interface and the once-per-process cache that keeps heavy teachers singletons."""
from __future__ import annotations

import abc
import threading
from typing import Callable, Hashable

import torch
from torch import nn

from depthlab.models.output_kind import OutputKind

_INSTANCES: dict[Hashable, nn.Module] = {}
_LOCK = threading.Lock()


class Teacher(nn.Module, abc.ABC):
    """Frozen model: RGB batch in, a map of the kind it declares out (`output_kind`).

    Input: [B, 3, H, W] in [0, 1] of any size (`input_multiple` = 1). Output: [B, 1, H, W] at the
    input resolution, of the declared kind at the teacher's own scale (`value_range` None).
    Teachers never receive ground truth. A teacher is a `DepthPredictorModule`, so evaluation runs
    it through the same `Predictor` as a trained model.
    """

    output_kind: OutputKind
    input_multiple = 1
    value_range = None
    frozen = True  # never trained (see depthlab.models.freezing)

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
