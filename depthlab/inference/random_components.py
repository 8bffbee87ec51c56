"""Randomly initialised checkpoints in the layout of diffusers' `MarigoldDepthPipeline`.

Tests and benchmarks need real component classes (UNet, VAE, scheduler, CLIP text encoder and
tokenizer) without downloading anything: these build them at any width from a config, and write
them with `save_pretrained`. The tokenizer's vocabulary is the lowercase letters and CLIP's two
special tokens, enough to encode the empty prompt exactly as a real CLIP tokenizer does.
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, MarigoldDepthPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from depthlab.inference.modes import sd2_ddim_scheduler

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
