"""Teachers output affine-invariant maps at their own scale (Depth Anything V2's disparity runs to
tens); prediction files hold affine-invariant maps in [0, 1]. `PeakNormalised` divides each map
by its image's maximum: a positive scale, so zero stays zero (infinitely far, for disparity),
the evaluation's least-squares fit is unchanged and every image reads in [0, 1].
"""
from __future__ import annotations

import torch
from torch import nn

from depthlab.errors import UserError
from depthlab.models.output_kind import DepthPredictorModule, OutputKind

TINY = 1e-12


def needs_peak_normalising(model: DepthPredictorModule) -> bool:
    """True for affine-invariant depth-like predictors that declare no value range."""
    kind = model.output_kind
    return model.value_range is None and kind.is_depth_like and not kind.is_metric


class PeakNormalised(nn.Module):
    """`model`'s maps (non-negative: teachers clamp at 0) divided by each image's maximum;
    all-zero maps stay zero."""

    value_range = (0.0, 1.0)

    def __init__(self, model: DepthPredictorModule):
        super().__init__()
        if not needs_peak_normalising(model):
            raise UserError(f"Only affine-invariant maps without a value range can be scaled to "
                            f"[0, 1]; {type(model).__name__} predicts "
                            f"{model.output_kind.description} in {model.value_range}.")
        self.model = model

    @property
    def output_kind(self) -> OutputKind:
        return self.model.output_kind

    @property
    def input_multiple(self) -> int:
        return self.model.input_multiple

    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        maps = self.model.predict(rgb)
        peak = maps.amax(dim=tuple(range(1, maps.ndim)), keepdim=True)
        return maps / peak.clamp_min(TINY)
