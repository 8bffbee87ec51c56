"""Backbone: a diffusers `UNet2DConditionModel` conditioned on a fixed (empty-prompt) embedding.

Timesteps are passed as float tensors, so the FiffDepth passes at t = 0 and t = -1 go through the
same sinusoidal embedding as the diffusion timesteps.
"""
from __future__ import annotations

import gin
import torch
from diffusers import UNet2DConditionModel
from torch import nn

from depthlab.models.layout import require_layout
from depthlab.models.prompt import empty_prompt_embedding

SD2_LAYOUT = ["unet/config.json", "text_encoder/config.json", "tokenizer"]


class UNetBackbone(nn.Module):
    """UNet plus its conditioning; `forward(latent, t)` returns the UNet's output latent."""

    def __init__(self, unet: UNet2DConditionModel, prompt_embedding: torch.Tensor):
        super().__init__()
        self.unet = unet
        self.register_buffer("prompt_embedding", prompt_embedding.detach().clone(),
                             persistent=False)

    @property
    def in_channels(self) -> int:
        return int(self.unet.config.in_channels)

    def forward(self, latent: torch.Tensor, timestep: float | torch.Tensor,
                class_labels: torch.Tensor | None = None) -> torch.Tensor:
        batch = latent.shape[0]
        t = torch.as_tensor(timestep, dtype=torch.float32, device=latent.device)
        t = t.expand(batch) if t.ndim == 0 else t
        context = self.prompt_embedding.to(latent.dtype).expand(batch, -1, -1)
        return self.unet(latent, t, encoder_hidden_states=context, class_labels=class_labels).sample

    def enable_gradient_checkpointing(self) -> None:
        self.unet.enable_gradient_checkpointing()


@gin.configurable
def sd2_backbone(pretrained_dir: str = gin.REQUIRED, pad_prompt: bool = False) -> UNetBackbone:
    """The UNet of a local diffusers directory (SD2, or a released Marigold / E2E-FT / Lotus
    checkpoint), conditioned on the empty prompt.

    `pad_prompt`: False encodes "" as Marigold's and E2E-FT's training code and diffusers'
    MarigoldDepthPipeline do ([1, 2, D]); True pads to 77 tokens as SD2 pipelines and Lotus do.
    FiffDepth's choice is not public; it follows Marigold, whose code it builds on.
    """
    root = require_layout(pretrained_dir, SD2_LAYOUT, "diffusers checkpoint (SD2 layout)")
    unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet")
    return UNetBackbone(unet, empty_prompt_embedding(root, pad=pad_prompt))


@gin.configurable
def small_backbone(in_channels: int = 4, out_channels: int = 4,
                   block_out_channels: tuple[int, ...] = (64, 128, 128),
                   layers_per_block: int = 1, cross_attention_dim: int = 32,
                   attention_head_dim: int = 8, norm_num_groups: int = 16,
                   prompt_tokens: int = 4, seed: int = 0) -> UNetBackbone:
    """A small randomly initialised UNet of the same class, for the mini world and tests.

    The conditioning is a fixed random tensor (there is no text encoder at this size); only the
    last block carries no cross-attention, mirroring SD2's layout at a smaller width.
    """
    depth = len(block_out_channels)
    down = ("CrossAttnDownBlock2D",) * (depth - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (depth - 1)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=in_channels, out_channels=out_channels,
            down_block_types=down, up_block_types=up, block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block, cross_attention_dim=cross_attention_dim,
            attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups)
    context = torch.randn(1, prompt_tokens, cross_attention_dim, generator=generator)
    return UNetBackbone(unet, context)
