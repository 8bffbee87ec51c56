"""Tiny randomly initialised models in the real on-disk layouts, for tests and benchmarks.

Nothing can be downloaded, so the loaders of the paper-scale recipes are exercised on real
component classes (UNet, VAE, scheduler, CLIP text encoder and tokenizer, Depth Anything V2)
built at any width from a config and written with `save_pretrained`:

- `save_sd2_dir`: Stable Diffusion 2's layout (unet/, vae/, text_encoder/, tokenizer/, scheduler/);
- `save_marigold_dir`: diffusers' `MarigoldDepthPipeline` layout (Marigold, E2E-FT, Lotus);
- `save_depth_anything_dir`: a transformers Depth Anything V2 directory (relative head);
- `save_metric_depth_anything_dir`: the same with the metric head (metres up to `max_depth`);
- `save_depth_pro_dir`: a transformers Depth Pro directory with its field-of-view head and image
  processor config.

The tokenizer's vocabulary is the lowercase letters and CLIP's two special tokens, enough to
encode the empty prompt exactly as a real CLIP tokenizer does.
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch
from diffusers import (AutoencoderKL, DDIMScheduler, MarigoldDepthPipeline,
                       UNet2DConditionModel)
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTokenizer, DepthAnythingConfig,
                          DepthAnythingForDepthEstimation, DepthProConfig,
                          DepthProForDepthEstimation, DepthProImageProcessor, Dinov2Config)

from depthlab.models.modes import sd2_ddim_scheduler
from depthlab.models.schedule import ddpm_schedule

TINY_UNET = dict(block_out_channels=(32, 64), layers_per_block=1, attention_head_dim=8,
                 norm_num_groups=16, cross_attention_dim=32)
TINY_VAE = dict(block_out_channels=(16, 16, 32, 32), layers_per_block=1, norm_num_groups=16)


def tiny_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer over a-z (as words and word ends) plus <|startoftext|>, <|endoftext|>."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in string.ascii_lowercase:
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def text_encoder(hidden_size: int, vocab_size: int, layers: int = 1) -> CLIPTextModel:
    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                            intermediate_size=2 * hidden_size, num_hidden_layers=layers,
                            num_attention_heads=max(1, hidden_size // 16),
                            max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                            pad_token_id=1)
    return CLIPTextModel(config)


def unet(in_channels: int, lotus: bool = False, **config: Any) -> UNet2DConditionModel:
    """A UNet2DConditionModel; `config` gives widths (TINY_UNET by default), `lotus` adds
    Lotus's 4-d projection class embedding."""
    config = {**TINY_UNET, **config}
    depth = len(config["block_out_channels"])
    config.setdefault("down_block_types",
                      ("CrossAttnDownBlock2D",) * (depth - 1) + ("DownBlock2D",))
    config.setdefault("up_block_types", ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (depth - 1))
    if lotus:
        config.update(class_embed_type="projection", projection_class_embeddings_input_dim=4)
    return UNet2DConditionModel(in_channels=in_channels, out_channels=4, **config)


def vae(**config: Any) -> AutoencoderKL:
    """An AutoencoderKL with SD2's scaling factor; `config` gives widths (TINY_VAE by default)."""
    config = {**TINY_VAE, **config}
    depth = len(config["block_out_channels"])
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * depth,
                         up_block_types=("UpDecoderBlock2D",) * depth,
                         scaling_factor=0.18215, **config)


def marigold_components(in_channels: int = 8, timestep_spacing: str = "trailing",
                        set_alpha_to_one: bool = False, lotus: bool = False, seed: int = 0,
                        unet_config: dict | None = None,
                        vae_config: dict | None = None) -> dict[str, Any]:
    """The five components of a `MarigoldDepthPipeline`, randomly initialised from `seed`."""
    unet_config = unet_config or {}
    tokenizer = tiny_tokenizer()
    hidden = unet_config.get("cross_attention_dim", TINY_UNET["cross_attention_dim"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        components = dict(unet=unet(in_channels, lotus, **unet_config),
                          vae=vae(**(vae_config or {})),
                          text_encoder=text_encoder(hidden, len(tokenizer)))
    scheduler = DDIMScheduler.from_config(sd2_ddim_scheduler(timestep_spacing).config,
                                          set_alpha_to_one=set_alpha_to_one)
    return dict(components, scheduler=scheduler, tokenizer=tokenizer)


def marigold_pipeline(**kwargs: Any) -> MarigoldDepthPipeline:
    """A `MarigoldDepthPipeline` over `marigold_components(**kwargs)`."""
    pipeline = MarigoldDepthPipeline(**marigold_components(**kwargs), prediction_type="depth",
                                     default_denoising_steps=1, default_processing_resolution=0)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def save_marigold_dir(path: str | Path, **kwargs: Any) -> Path:
    """Write a random `MarigoldDepthPipeline` checkpoint to `path`; returns it."""
    marigold_pipeline(**kwargs).save_pretrained(str(path))
    return Path(path)


def save_sd2_dir(path: str | Path, in_channels: int = 4, scheduler: str = "ddpm", seed: int = 0,
                 unet_config: dict | None = None, vae_config: dict | None = None) -> Path:
    """Write a random Stable-Diffusion-2-shaped directory (unet/, vae/, text_encoder/, tokenizer/,
    scheduler/ with SD2's v-prediction DDPM or DDIM schedule) to `path`; returns it."""
    path = Path(path)
    components = marigold_components(in_channels, seed=seed, unet_config=unet_config,
                                     vae_config=vae_config)
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        components[name].save_pretrained(str(path / name))
    schedule = ddpm_schedule()
    if scheduler == "ddim":
        schedule = DDIMScheduler.from_config(schedule.config)
    schedule.save_pretrained(str(path / "scheduler"))
    return path


def save_depth_anything_dir(path: str | Path, seed: int = 3, metric: bool = False,
                            max_depth: int = 20, initializer_range: float = 0.02) -> Path:
    """Write a random Depth-Anything-V2-shaped transformers directory (a 4-layer DINOv2 backbone,
    relative-depth head, or with `metric` the metric head: `max_depth` x sigmoid) to `path`;
    returns it. `initializer_range`: the std of the random weights (transformers' default)."""
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                            intermediate_size=64, patch_size=14, image_size=56,
                            out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False, initializer_range=initializer_range)
    config = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[16, 32, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8,
                                 reassemble_hidden_size=32, initializer_range=initializer_range,
                                 **(dict(depth_estimation_type="metric", max_depth=max_depth)
                                    if metric else dict(depth_estimation_type="relative")))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DepthAnythingForDepthEstimation(config)
    model.save_pretrained(str(path))
    return Path(path)


def save_metric_depth_anything_dir(path: str | Path, seed: int = 4,
                                   max_depth: int = 20) -> Path:
    """Write a random metric Depth Anything V2 directory (as Depth-Anything-V2-Metric-*-hf:
    `depth_estimation_type` 'metric', `predicted_depth` in metres below `max_depth`). Its weights
    are drawn wider than transformers' default (std 0.13, not 0.02), so the map varies (about 5
    to 12 m of 20) instead of sitting at max_depth / 2 everywhere."""
    return save_depth_anything_dir(path, seed, metric=True, max_depth=max_depth,
                                   initializer_range=0.13)


def _tiny_dinov2(image_size: int) -> dict[str, Any]:
    return dict(model_type="dinov2", hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=32, patch_size=4, image_size=image_size)


def save_depth_pro_dir(path: str | Path, seed: int = 5, patch: int = 16) -> Path:
    """Write a random Depth Pro directory (2-layer DINOv2 encoders on `patch`-pixel patches, the
    field-of-view head) and its image processor config to `path`; returns it.

    Depth Pro's encoder splits the image at 1/4, 1/2 and full size into `patch`-sized tiles, so
    its input is 4 `patch` square (64 pixels here, 1536 for the released model), the size written
    in the image processor config.
    """
    ratios = [0.25, 0.5, 1.0]
    config = DepthProConfig(fusion_hidden_size=16, patch_size=patch, intermediate_hook_ids=[1, 0],
                            intermediate_feature_dims=[8, 8], scaled_images_ratios=ratios,
                            scaled_images_overlap_ratios=[0.0, 0.5, 0.25],
                            scaled_images_feature_dims=[16, 16, 8], use_fov_model=True,
                            num_fov_head_layers=1, image_model_config=_tiny_dinov2(patch),
                            patch_model_config=_tiny_dinov2(patch),
                            fov_model_config=_tiny_dinov2(patch))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DepthProForDepthEstimation(config)
    with torch.no_grad():  # plausible outputs: canonical inverse depth near 1, a FoV near 60 deg
        depth_out = [layer for layer in model.head.layers if isinstance(layer, torch.nn.Conv2d)][-1]
        depth_out.weight.mul_(1e-3)
        depth_out.bias.fill_(1.0)
        model.fov_model.head.layers[-1].bias.fill_(60.0)
    model.save_pretrained(str(path))
    side = int(patch / ratios[0])
    DepthProImageProcessor(size={"height": side, "width": side}).save_pretrained(str(path))
    return Path(path)
