"""The mini world's latent codec: a small `AutoencoderKL` with shipped pretrained weights.

The mini world has no Stable Diffusion VAE, so `experiments/mini/pretrain/codec.gin` trains
`small_vae()` on mini-world RGB (both domains) and depth maps normalised the Marigold way in all
three target spaces (so any `SPACE` works), repeated to three channels. `mini_codec()` loads the
result shipped in `depthlab/world/weights/codec.safetensors` (or the weights of another run).
The depth round trip of the shipped codec is measured in `docs/results/mini_world.md`.
"""
from __future__ import annotations

from typing import Callable

import gin
import numpy as np
import torch
from diffusers import AutoencoderKL

from depthlab.models.codec import LatentCodec, small_vae
from depthlab.models.weights import read_weights, resolve_weights
from depthlab.targets import Space, depth_to_space, masked_quantiles, quantile_normalise
from depthlab.world.shipped import load_into, load_shipped

SCALING_KEY = "scaling_factor"  # the latent scale, stored beside the VAE's tensors


def relative_error_weights(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-pixel loss weights that turn L1 on a normalised map into relative depth error.

    A normalised-label error e at a pixel of value x (in any target space) is a relative error of
    about e * (q98 - q2) / (2 x) in that space, and so in depth. Weights are clipped and
    normalised to mean 1 per image; invalid pixels get weight 1.
    """
    low, high = (q.view(-1, 1, 1, 1) for q in masked_quantiles(values, valid, 0.02, 0.98))
    weight = (high - low) / (2.0 * values.clamp_min(1e-6))
    weight = torch.where(valid, weight, torch.ones_like(weight))
    weight = weight / weight.mean(dim=(1, 2, 3), keepdim=True)
    return weight.clamp(0.1, 10.0)


def normalised_depth_maps(depth: torch.Tensor, valid: torch.Tensor,
                          spaces: list[Space]) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth [B, 1, H, W] -> normalised labels in `spaces[i]` per image, and loss weights."""
    labels, weights = [], []
    for d, v, space in zip(depth, valid, spaces):
        values = depth_to_space(d[None], space)
        labels.append(quantile_normalise(values, v[None], 0.02, 0.98))
        weights.append(relative_error_weights(values, v[None]))
    return torch.cat(labels), torch.cat(weights)


def round_trip_abs_rel(encode: Callable[[torch.Tensor], torch.Tensor],
                       decode: Callable[[torch.Tensor], torch.Tensor], dataset,
                       batch_size: int = 16) -> float:
    """Mean per-image AbsRel of depth after normalise -> encode -> decode -> clip -> de-normalise.

    `encode`/`decode` map [B, 1, H, W] maps in [-1, 1] to latents and back; `dataset` yields
    items with `depth` and `valid` [1, H, W] (e.g. `MiniWorldDataset`). The quantiles used to
    de-normalise are those used to normalise, so only the codec's loss (and the 2%/98% clipping)
    remain.
    """
    errors = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        depth = torch.stack([item["depth"] for item in items])
        valid = torch.stack([item["valid"] for item in items])
        low, high = (q.view(-1, 1, 1, 1) for q in masked_quantiles(depth, valid, 0.02, 0.98))
        with torch.no_grad():
            decoded = decode(encode(quantile_normalise(depth, valid, 0.02, 0.98)))
        restored = (decoded.clamp(-1.0, 1.0) + 1.0) / 2.0 * (high - low) + low
        for d, r, v in zip(depth, restored, valid):
            errors.append(((r[v] - d[v]).abs() / d[v]).mean().item())
    return float(np.mean(errors))


def codec_round_trip_abs_rel(codec: LatentCodec, dataset, batch_size: int = 16) -> float:
    """`round_trip_abs_rel` of a built codec."""
    return round_trip_abs_rel(codec.encode_depth, codec.decode_depth, dataset, batch_size)


def load_vae_weights(vae: AutoencoderKL, weights: dict[str, torch.Tensor], what: str) -> None:
    """Load VAE tensors and the latent scale saved beside them."""
    weights = dict(weights)
    scale = weights.pop(SCALING_KEY, None)
    load_into(vae, weights, what)
    if scale is not None:
        vae.register_to_config(scaling_factor=float(scale))


@gin.configurable
def mini_codec(weights: str | None = None, prefix: str = "vae.") -> LatentCodec:
    """The mini world's codec: `small_vae()` with the shipped pretrained weights, or with those of
    `weights` (a codec pretraining run, a checkpoint or a safetensors file; tensors `prefix*`)."""
    vae = small_vae()
    if weights is None:
        load_vae_weights(vae, load_shipped("codec"), "shipped mini codec")
    else:
        file = resolve_weights(weights)
        load_vae_weights(vae, read_weights(file, prefix), f"codec in '{file}'")
    return LatentCodec(vae)
