"""The mini world's latent codec: a small `AutoencoderKL` trained once on mini-world images, cached.

The mini world has no pretrained Stable Diffusion VAE, so `mini_codec()` trains `small_vae()` on
mini-world RGB (both domains) and depth maps normalised to [-1, 1] the Marigold way in all three
target spaces (so any `target_space` binding works), repeated to three channels. The loss is L1
reconstruction on random crops (the VAE is convolutional; crops are 4x cheaper), with depth errors
weighted as relative depth errors, plus a small KL term; the decoder is trained on the posterior
mean, the only thing the codec ever encodes. The result is saved with `save_pretrained` under a
directory named by a hash of the configuration and reloaded afterwards; `scaling_factor` is set
to 1 / std of the latents.

Measured with the defaults (600 steps of 16 crops, about 2 minutes on 2 idle CPU cores): depth
round-trip AbsRel 0.047 (synthetic) and 0.046 (real) on the 128 test scenes of each domain,
short of a 0.02 target; the codec blurs depth edges. Training converges slowly: 32 crops per step
(about 4 minutes) gave 0.043, and a 3000-step schedule of 16 crops (about 10 minutes) was at
0.032 after 2500 steps (0.026 with `small_vae.latent_channels = 16`). `steps` is the binding to
raise when accuracy matters more than the first run's time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import gin
import numpy as np
import torch
from diffusers import AutoencoderKL
from tqdm import tqdm

from depthlab.models.codec import LatentCodec, load_codec_dir, small_vae
from depthlab.targets import Space, depth_to_space, masked_quantiles, quantile_normalise
from depthlab.world.scenes import render_scene

log = logging.getLogger(__name__)

CODEC_VERSION = 1  # bump when the training procedure changes, so old caches are not reused
TRAIN_SEED_BASE = 900_000_000  # scene seeds reserved for codec training (disjoint from datasets)


@dataclasses.dataclass(frozen=True)
class CodecTraining:
    """Everything that determines the trained codec (hashed into the cache directory name)."""

    steps: int = 600
    batch_size: int = 16
    crop: int = 32
    learning_rate: float = 2e-3
    kl_weight: float = 1e-6
    depth_fraction: float = 0.6
    scenes_per_domain: int = 256
    image_size: int = 64
    relative_weighting: bool = True
    seed: int = 0


def default_cache_root() -> Path:
    root = os.environ.get("DEPTHLAB_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "depthlab"


def config_hash(vae: AutoencoderKL, training: CodecTraining) -> str:
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    config.pop("scaling_factor", None)
    text = json.dumps({"version": CODEC_VERSION, "vae": config,
                       "training": dataclasses.asdict(training)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def training_pool(training: CodecTraining) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rendered training data: RGB in [-1, 1] [N, 3, H, W] (both domains), normalised depth maps
    [3N, 1, H, W] (all three target spaces) and their loss weights [3N, 1, H, W]."""
    rgbs, depths, valids = [], [], []
    for d_index, domain in enumerate(("synthetic", "real")):
        for i in range(training.scenes_per_domain):
            seed = TRAIN_SEED_BASE + d_index * 10_000_000 + training.seed * 100_000 + i
            scene = render_scene(seed, domain, training.image_size)
            rgbs.append(torch.from_numpy(scene.rgb).permute(2, 0, 1))
            depths.append(torch.from_numpy(scene.depth)[None])
            valids.append(torch.from_numpy(scene.valid)[None])
    depth, valid = torch.stack(depths), torch.stack(valids)
    labels, weights = [], []
    for space in Space:
        values = depth_to_space(depth, space)
        labels.append(quantile_normalise(values, valid, 0.02, 0.98))
        weights.append(relative_error_weights(values, valid) if training.relative_weighting
                       else torch.ones_like(values))
    return torch.stack(rgbs) * 2.0 - 1.0, torch.cat(labels), torch.cat(weights)


def _batch(rgb: torch.Tensor, depth: torch.Tensor, weight: torch.Tensor, training: CodecTraining,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops (and flips) of depth maps (as 3 channels) and RGB images, with loss weights."""
    n_depth = int(round(training.batch_size * training.depth_fraction))
    pick_d = torch.randint(len(depth), (n_depth,), generator=generator)
    pick_r = torch.randint(len(rgb), (training.batch_size - n_depth,), generator=generator)
    images = torch.cat([depth[pick_d].expand(-1, 3, -1, -1), rgb[pick_r]])
    weights = torch.cat([weight[pick_d], torch.ones(len(pick_r), 1, *rgb.shape[2:])])
    size, crop = images.shape[-1], training.crop
    y, x = torch.randint(size - crop + 1, (2,), generator=generator).tolist()
    images, weights = images[:, :, y:y + crop, x:x + crop], weights[:, :, y:y + crop, x:x + crop]
    if torch.rand(1, generator=generator).item() < 0.5:
        images, weights = images.flip(-1), weights.flip(-1)
    return images, weights


def train_vae(vae: AutoencoderKL, training: CodecTraining) -> AutoencoderKL:
    """Train `vae` in place on the mini world; returns it with `scaling_factor` set."""
    rgb, depth, weight = training_pool(training)
    generator = torch.Generator().manual_seed(training.seed)
    optimiser = torch.optim.AdamW(vae.parameters(), lr=training.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, training.learning_rate,
                                                   total_steps=training.steps, pct_start=0.1)
    vae.train()
    progress = tqdm(range(training.steps), desc="mini codec", unit="step", leave=False)
    for _ in progress:
        images, weights = _batch(rgb, depth, weight, training, generator)
        posterior = vae.encode(images).latent_dist
        recon = vae.decode(posterior.mean).sample  # the codec only ever encodes the mean
        loss = (weights * (recon - images).abs()).mean()
        loss = loss + training.kl_weight * posterior.kl().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.4f}")
    vae.eval()
    with torch.no_grad():
        sample = torch.cat([rgb[:64], depth[::max(1, len(depth) // 64)][:64].expand(-1, 3, -1, -1)])
        std = vae.encode(sample).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=1.0 / std)
    return vae


def _save_atomically(vae: AutoencoderKL, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        vae.save_pretrained(staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary directory
        os.rename(staging, target)
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # only left behind if another process won


@gin.configurable
def mini_codec(cache_dir: str | None = None, steps: int = CodecTraining.steps,
               batch_size: int = CodecTraining.batch_size, crop: int = CodecTraining.crop,
               learning_rate: float = CodecTraining.learning_rate,
               kl_weight: float = CodecTraining.kl_weight,
               depth_fraction: float = CodecTraining.depth_fraction,
               scenes_per_domain: int = CodecTraining.scenes_per_domain,
               image_size: int = CodecTraining.image_size,
               relative_weighting: bool = CodecTraining.relative_weighting,
               seed: int = CodecTraining.seed) -> LatentCodec:
    """The mini world's codec: loaded from the cache, or trained (about 2 CPU minutes) and cached.

    `cache_dir` is the exact directory to use; by default it is
    `$DEPTHLAB_CACHE/mini_codec/<hash>` (or `~/.cache/depthlab/mini_codec/<hash>`), where the
    hash covers the `small_vae` bindings and these training bindings.
    """
    training = CodecTraining(steps, batch_size, crop, learning_rate, kl_weight, depth_fraction,
                             scenes_per_domain, image_size, relative_weighting, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = small_vae()
    target = Path(cache_dir).expanduser() if cache_dir else (
        default_cache_root() / "mini_codec" / config_hash(vae, training))
    if (target / "config.json").exists():
        log.info("mini codec: loading from cache %s", target)
        return load_codec_dir(target)
    log.info("mini codec: no cache at %s; training it (about 2 minutes on a CPU)", target)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        train_vae(vae, training)
    _save_atomically(vae, target)
    log.info("mini codec: trained in %.0f s, saved to %s", time.perf_counter() - start, target)
    return load_codec_dir(target)


def codec_round_trip_abs_rel(codec: LatentCodec, dataset, batch_size: int = 16) -> float:
    """Mean per-image AbsRel of depth after normalise -> encode -> decode -> clip -> de-normalise.

    `dataset` yields items with `depth` [1, H, W] and `valid` [1, H, W] (e.g. `MiniWorldDataset`).
    The quantiles used to de-normalise are the ones used to normalise, so only the codec's loss
    (and the 2%/98% clipping) remain.
    """
    errors = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        depth = torch.stack([item["depth"] for item in items])
        valid = torch.stack([item["valid"] for item in items])
        low, high = (q.view(-1, 1, 1, 1) for q in masked_quantiles(depth, valid, 0.02, 0.98))
        with torch.no_grad():
            label = quantile_normalise(depth, valid, 0.02, 0.98)
            decoded = codec.decode_depth(codec.encode_depth(label))
        restored = (decoded.clamp(-1.0, 1.0) + 1.0) / 2.0 * (high - low) + low
        for d, r, v in zip(depth, restored, valid):
            errors.append(((r[v] - d[v]).abs() / d[v]).mean().item())
    return float(np.mean(errors))
