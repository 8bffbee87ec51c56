"""The evaluation-set registry, the sample record and the protocol every set follows.

Sets register a factory `(data_dir, split_file, **options) -> EvalDataset` under a name; the CLI,
the trainer's validation and other modules (the mini worlds) build them by name.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from depthlab.errors import UserError


@dataclasses.dataclass
class EvalSample:
    """One evaluation frame, after the protocol's crop.

    `valid` already combines the valid depth range, the evaluation crop and any validity masks.
    `mask` is a matting / segmentation alpha in [0, 1] for boundary recall; `edges` are shipped
    GT depth edges (iBims-1) for the depth boundary error; `pairs` are DA-2K point pairs as rows
    (h_closer, w_closer, h_farther, w_farther).
    """

    id: str
    rgb: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    mask: np.ndarray | None = None
    edges: np.ndarray | None = None
    pairs: np.ndarray | None = None


@runtime_checkable
class EvalDataset(Protocol):
    """What the runner needs from an evaluation set."""

    name: str
    min_depth: float
    max_depth: float
    processing_res: int
    default_metrics: Sequence[str]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> EvalSample: ...

    def sample_id(self, index: int) -> str: ...


class SampleError(UserError):
    """A sample that cannot be evaluated (missing file, corrupt image, bad prediction)."""

    def __init__(self, sample_id: str, reason: str):
        super().__init__(f"sample '{sample_id}': {reason}")
        self.sample_id = sample_id
        self.reason = reason


DatasetFactory = Callable[..., EvalDataset]
_REGISTRY: dict[str, DatasetFactory] = {}


def register_dataset(name: str) -> Callable[[DatasetFactory], DatasetFactory]:
    """Decorator: register a factory `(data_dir, split_file=None, **options) -> EvalDataset`."""

    def decorate(factory: DatasetFactory) -> DatasetFactory:
        _REGISTRY[name] = factory
        return factory

    return decorate


def dataset_names() -> list[str]:
    """Names of all registered evaluation sets, sorted."""
    return sorted(_REGISTRY)


def dataset_options(name: str) -> set[str]:
    """Keyword options the factory of `name` accepts (beyond data_dir and split_file)."""
    if name not in _REGISTRY:
        return set()
    parameters = list(inspect.signature(_REGISTRY[name]).parameters.values())[2:]
    return {p.name for p in parameters
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def build_dataset(name: str, data_dir: str | None, split_file: str | None = None,
                  **options) -> EvalDataset:
    """Build the registered set `name`; an unknown name or option is a `UserError`."""
    if name not in _REGISTRY:
        raise UserError(f"unknown dataset '{name}'; known datasets: {', '.join(dataset_names())}")
    factory = _REGISTRY[name]
    try:
        inspect.signature(factory).bind(data_dir, split_file, **options)
    except TypeError as error:
        raise UserError(f"dataset '{name}' does not accept these options "
                        f"({', '.join(options) or 'none'}): {error}") from None
    return factory(data_dir, split_file, **options)
