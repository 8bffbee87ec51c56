"""Tiny randomly initialised models in the real on-disk layouts (diffusers / transformers).

Tests write them with `save_pretrained` and load them back through depthlab's loaders, so the
paper recipe's loading code runs without downloading anything.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTokenizer, DepthAnythingConfig,
                          DepthAnythingForDepthEstimation, Dinov2Config)

TEXT_WIDTH = 32


def save_tiny_tokenizer(directory: Path) -> CLIPTokenizer:
    """A CLIP tokenizer over a handful of tokens (enough for the empty prompt and short words)."""
    directory.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in letters + [f"{c}</w>" for c in letters]:
        vocab[token] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"),
                              model_max_length=8)
    tokenizer.save_pretrained(directory)
    return tokenizer


def tiny_unet(in_channels: int = 4) -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(16, 32),
        layers_per_block=1, cross_attention_dim=TEXT_WIDTH, attention_head_dim=4,
        norm_num_groups=8)


def tiny_vae() -> AutoencoderKL:
    torch.manual_seed(1)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
                         layers_per_block=1, norm_num_groups=8, scaling_factor=0.18215)


def tiny_text_encoder() -> CLIPTextModel:
    torch.manual_seed(2)
    return CLIPTextModel(CLIPTextConfig(vocab_size=64, hidden_size=TEXT_WIDTH,
                                        intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, max_position_embeddings=8))


def save_tiny_sd2(directory: Path, in_channels: int = 4, scheduler: str = "ddpm") -> Path:
    """A Stable-Diffusion-2-shaped directory: unet/, vae/, text_encoder/, tokenizer/, scheduler/."""
    tiny_unet(in_channels).save_pretrained(directory / "unet")
    tiny_vae().save_pretrained(directory / "vae")
    tiny_text_encoder().save_pretrained(directory / "text_encoder")
    save_tiny_tokenizer(directory / "tokenizer")
    schedule_class = DDIMScheduler if scheduler == "ddim" else DDPMScheduler
    schedule_class(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                   beta_end=0.012, prediction_type="v_prediction").save_pretrained(
        directory / "scheduler")
    return directory


def save_tiny_depth_anything(directory: Path) -> Path:
    """A Depth-Anything-V2-shaped transformers directory with a 4-layer DINOv2 backbone."""
    torch.manual_seed(3)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                            intermediate_size=64, patch_size=14, image_size=56,
                            out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[16, 32, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8,
                                 reassemble_hidden_size=32, depth_estimation_type="relative")
    DepthAnythingForDepthEstimation(config).save_pretrained(directory)
    return directory
