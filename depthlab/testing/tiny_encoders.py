"""Tiny randomly initialised DINOv2 encoders on disk, for tests of `depthlab.encoders`.

- `save_dinov2_dir`: a transformers `Dinov2Model` directory (2 layers, width 32, patch 14);
- `save_timm_dinov2_weights`: a safetensors state dict of a shrunken timm DINOv2 ViT; build it
  back with `timm_dinov2_encoder(model_name, path, image_size=TIMM_IMAGE_SIZE,
  model_kwargs=TINY_TIMM)` (plus the same overrides).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import save_file
from transformers import Dinov2Config, Dinov2Model

TINY_TIMM = dict(embed_dim=32, depth=2, num_heads=2)
TIMM_IMAGE_SIZE = 28


def save_dinov2_dir(path: str | Path, seed: int = 0) -> Path:
    """Write a random 2-layer DINOv2 (hidden 32, patch 14, image 28) with `save_pretrained`."""
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, patch_size=14, image_size=28)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Dinov2Model(config)
    model.save_pretrained(str(path))
    return Path(path)


def save_timm_dinov2_weights(path: str | Path, model_name: str = "vit_small_patch14_dinov2",
                             seed: int = 0, **overrides: Any) -> Path:
    """Write the state dict of a random timm `model_name` shrunk to TINY_TIMM at
    TIMM_IMAGE_SIZE (`overrides` replace any of them) to the safetensors file `path`."""
    kwargs = {**TINY_TIMM, "img_size": TIMM_IMAGE_SIZE, **overrides}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)
        # timm starts layer scales at 1e-5 and some tokens at zero: perturb every tensor so
        # the blocks matter and a test can tell whether the weights were loaded.
        state = {k: torch.randn_like(v) * 0.1 + v for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return Path(path)
