"""Frozen image feature encoders: the targets of DepthMaster's Feature Alignment.

- `base`: the `FeatureEncoder` interface (RGB in [0, 1] -> normalised patch tokens on their grid);
- `dinov2`: DINOv2 from a transformers directory (`dinov2_encoder`) or a timm weights file
  (`timm_dinov2_encoder`), built once per process.

The mini world's stand-in (`mini_teacher_encoder`) lives in `depthlab.world.mini_encoder`.
"""
from __future__ import annotations

from depthlab.encoders.base import FeatureEncoder, grid_input_size, tokens_to_grid
from depthlab.encoders.dinov2 import (TimmDinov2Encoder, TransformersDinov2Encoder,
                                      dinov2_encoder, timm_dinov2_encoder)

__all__ = ["FeatureEncoder", "TimmDinov2Encoder", "TransformersDinov2Encoder", "dinov2_encoder",
           "grid_input_size", "timm_dinov2_encoder", "tokens_to_grid"]
