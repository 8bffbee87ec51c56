"""What a model's output map means, declared once by the model and followed everywhere.

Inference, output files, point clouds, TensorBoard colours and evaluation all branch on the
`OutputKind` a model (or teacher) declares. Every property is a table with one entry per kind, so
a new kind that a table forgets fails loudly (and `tests/models/test_output_kind.py` checks the
tables are complete) instead of being read as depth.
"""
from __future__ import annotations

import enum
from typing import Mapping, Protocol, TypeVar, runtime_checkable

import gin
import torch

from depthlab.errors import UserError
from depthlab.targets import Space

T = TypeVar("T")


class OutputKind(str, enum.Enum):
    """The meaning of a predicted map."""

    DEPTH = "depth"                    # affine-invariant depth; small = near
    DISPARITY = "disparity"            # affine-invariant 1 / depth; large = near
    SQRT_DISPARITY = "sqrt_disparity"  # affine-invariant sqrt(1 / depth); large = near
    METRIC_DEPTH = "metric_depth"      # depth in metres
    NORMALS = "normals"                # unit normals, 3 channels (x right, y down, z forward)

    @classmethod
    def parse(cls, value: "OutputKind | str", where: str = "") -> "OutputKind":
        """`value` as a kind, or a `UserError` naming `where` it came from and the valid kinds."""
        try:
            return cls(value)
        except ValueError:
            place = f" ({where})" if where else ""
            raise UserError(f"Unknown output kind '{value}'{place}: choose one of "
                            f"{', '.join(k.value for k in cls)}.") from None

    @classmethod
    def from_space(cls, space: Space | str) -> "OutputKind":
        """The affine-invariant kind of a target space."""
        return _lookup(_FROM_SPACE, Space(space), "an output kind")

    @property
    def channels(self) -> int:
        return _lookup(_CHANNELS, self, "a channel count")

    @property
    def is_metric(self) -> bool:
        return self is OutputKind.METRIC_DEPTH

    @property
    def is_depth_like(self) -> bool:
        """True for maps that encode depth (affine-invariant or metric); False for normals."""
        return _lookup(_NEAR_IS_LOW, self, "a depth ordering") is not None

    @property
    def near_is_low(self) -> bool:
        """Whether nearer points have smaller values (depth) or larger ones (disparities)."""
        value = _lookup(_NEAR_IS_LOW, self, "a depth ordering")
        if value is None:
            raise UserError(f"A '{self.value}' map does not encode depth, so it has no near/far "
                            f"ordering.")
        return value

    @property
    def space(self) -> Space:
        """The space the map's values live in (metric depth is depth)."""
        value = _lookup(_SPACE, self, "a depth space")
        if value is None:
            raise UserError(f"A '{self.value}' map is not depth, disparity or sqrt-disparity.")
        return value

    @property
    def alignment(self) -> str:
        """The evaluation's alignment for this kind: a space's least-squares fit, or 'none'."""
        value = _lookup(_ALIGNMENT, self, "an evaluation alignment")
        if value is None:
            raise UserError(f"A '{self.value}' map cannot be scored by the depth protocol.")
        return value

    @property
    def description(self) -> str:
        return _lookup(_DESCRIPTION, self, "a description")


def _lookup(table: Mapping, key, what: str):
    if key not in table:
        raise UserError(f"No {what} is defined for '{getattr(key, 'value', key)}'; depthlab does "
                        f"not know how to handle this output kind here.")
    return table[key]


_FROM_SPACE = {Space.DEPTH: OutputKind.DEPTH, Space.DISPARITY: OutputKind.DISPARITY,
               Space.SQRT_DISPARITY: OutputKind.SQRT_DISPARITY}
_CHANNELS = {OutputKind.DEPTH: 1, OutputKind.DISPARITY: 1, OutputKind.SQRT_DISPARITY: 1,
             OutputKind.METRIC_DEPTH: 1, OutputKind.NORMALS: 3}
_NEAR_IS_LOW = {OutputKind.DEPTH: True, OutputKind.DISPARITY: False,
                OutputKind.SQRT_DISPARITY: False, OutputKind.METRIC_DEPTH: True,
                OutputKind.NORMALS: None}
_SPACE = {OutputKind.DEPTH: Space.DEPTH, OutputKind.DISPARITY: Space.DISPARITY,
          OutputKind.SQRT_DISPARITY: Space.SQRT_DISPARITY, OutputKind.METRIC_DEPTH: Space.DEPTH,
          OutputKind.NORMALS: None}
_ALIGNMENT = {OutputKind.DEPTH: "depth", OutputKind.DISPARITY: "disparity",
              OutputKind.SQRT_DISPARITY: "sqrt_disparity", OutputKind.METRIC_DEPTH: "none",
              OutputKind.NORMALS: None}
_DESCRIPTION = {
    OutputKind.DEPTH: "affine-invariant depth in [0, 1] (small = near)",
    OutputKind.DISPARITY: "affine-invariant disparity in [0, 1] (large = near)",
    OutputKind.SQRT_DISPARITY: "affine-invariant sqrt-disparity in [0, 1] (large = near)",
    OutputKind.METRIC_DEPTH: "metric depth in metres",
    OutputKind.NORMALS: "unit surface normals (x right, y down, z forward)",
}
KIND_TABLES = (_CHANNELS, _NEAR_IS_LOW, _SPACE, _ALIGNMENT, _DESCRIPTION)

# depthlab.DEPTH, depthlab.DISPARITY and depthlab.SQRT_DISPARITY are registered with `Space`.
gin.constant("depthlab.METRIC_DEPTH", OutputKind.METRIC_DEPTH.value)
gin.constant("depthlab.NORMALS", OutputKind.NORMALS.value)


@runtime_checkable
class DepthPredictorModule(Protocol):
    """What `Predictor` and evaluation need from a model, a teacher or any reference predictor.

    `predict` maps RGB [B, 3, H, W] in [0, 1] (H, W multiples of `input_multiple`) to maps
    [B, C, H, W] of `output_kind`; `value_range` is (low, high) to clamp to after resizing, or None.
    """

    output_kind: OutputKind
    input_multiple: int
    value_range: tuple[float | None, float | None] | None

    def predict(self, rgb: torch.Tensor) -> torch.Tensor: ...
