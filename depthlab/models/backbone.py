"""Backbone: a diffusers `UNet2DConditionModel` conditioned on a fixed (empty-prompt) embedding.

Timesteps are passed as float tensors, so the FiffDepth passes at t = 0 and t = -1 go through the
same sinusoidal embedding as the diffusion timesteps. Both builders (`sd2_backbone` for a local
diffusers directory, `small_backbone` for the mini world and tests) take the same surgery
options: a wider `conv_in`, UNet constructor options, and patches (see `depthlab.models.surgery`).
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import gin
import torch
from diffusers import UNet2DConditionModel
from torch import nn

from depthlab.errors import UserError
from depthlab.models.layout import require_layout
from depthlab.models.prompt import empty_prompt_embedding
from depthlab.models.surgery import BackbonePatch, capture_outputs, widen_conv_in

SD2_LAYOUT = ["unet/config.json", "text_encoder/config.json", "tokenizer"]


class BackboneOutput(NamedTuple):
    """The UNet's output latent and the outputs of the modules asked for by name."""

    sample: torch.Tensor
    features: dict[str, torch.Tensor]


class UNetBackbone(nn.Module):
    """UNet plus its conditioning; `forward(latent, t)` returns the UNet's output latent."""

    def __init__(self, unet: UNet2DConditionModel, prompt_embedding: torch.Tensor,
                 patches: Sequence[BackbonePatch] = ()):
        super().__init__()
        self.unet = unet
        self.apply_patches(patches)
        self.register_buffer("prompt_embedding", prompt_embedding.detach().clone(),
                             persistent=False)

    def apply_patches(self, patches: Sequence[BackbonePatch]) -> None:
        """Apply `patches` to the UNet in order (once; their modules become its children)."""
        for patch in patches:
            patch.apply(self.unet)

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

    def forward_with_features(self, latent: torch.Tensor, timestep: float | torch.Tensor,
                              features: Sequence[str],
                              class_labels: torch.Tensor | None = None) -> BackboneOutput:
        """The output latent and the outputs of the UNet modules named in `features` (e.g.
        'mid_block', 'down_blocks.1'; a patch inserted after a module is included)."""
        with capture_outputs(self.unet, features) as captured:
            sample = self(latent, timestep, class_labels)
        return BackboneOutput(sample, dict(captured))

    def forward_many(self, inputs: Sequence[tuple[torch.Tensor, torch.Tensor]]
                     ) -> list[torch.Tensor]:
        """Outputs for several (latent [B_i, C, h, w], timesteps [B_i]) pairs: pairs whose latents
        agree in shape share one UNet pass, the others get their own (images of different sizes
        in one step, e.g. Virtual KITTI crops beside photos)."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, (latent, _) in enumerate(inputs):
            groups.setdefault(tuple(latent.shape[1:]), []).append(index)
        outputs: list[torch.Tensor] = [torch.empty(0)] * len(inputs)
        for members in groups.values():
            latents = torch.cat([inputs[i][0] for i in members])
            timesteps = torch.cat([inputs[i][1].to(latents.device, torch.float32).expand(
                len(inputs[i][0])) for i in members])
            sizes = [len(inputs[i][0]) for i in members]
            for index, output in zip(members, self(latents, timesteps).split(sizes)):
                outputs[index] = output
        return outputs

    def enable_gradient_checkpointing(self) -> None:
        self.unet.enable_gradient_checkpointing()


def _unet_from_directory(root, options: dict[str, Any]) -> UNet2DConditionModel:
    """Load `<root>/unet`; constructor `options` override its config. Modules the options add
    get PyTorch's default initialisation (from the run's seed); every other weight must load."""
    pretrained = UNet2DConditionModel.from_pretrained(root, subfolder="unet")
    if not options:
        return pretrained
    # diffusers' from_pretrained skips initialising modules missing from the checkpoint (they
    # would hold garbage), so build from the config and copy the pretrained weights over.
    unet = UNet2DConditionModel.from_config({**pretrained.config, **options})
    result = unet.load_state_dict(pretrained.state_dict(), strict=False)
    if result.unexpected_keys:
        raise UserError(f"The UNet options {options} remove weights of '{root}/unet' "
                        f"({result.unexpected_keys[:3]}); they can only add modules.")
    return unet


@gin.configurable
def sd2_backbone(pretrained_dir: str = gin.REQUIRED, pad_prompt: bool = False,
                 conv_in_channels: int | None = None, scale_conv_in_bias: bool = False,
                 unet_options: dict[str, Any] | None = None,
                 patches: Sequence[BackbonePatch] = ()) -> UNetBackbone:
    """The UNet of a local diffusers directory (SD2, or a released Marigold / E2E-FT / Lotus
    checkpoint), conditioned on the empty prompt.

    `pad_prompt`: False encodes "" as Marigold's training code and diffusers'
    MarigoldDepthPipeline do ([1, 2, D]); True pads to 77 tokens as SD2 pipelines, Lotus and
    E2E-FT's training code do.
    `conv_in_channels`: widen conv_in (8 for E2E-FT and Marigold from SD2's 4); the kernel is
    repeated and halved; `scale_conv_in_bias` halves the bias too (E2E-FT; Marigold keeps it).
    `unet_options`: UNet config overrides, e.g. Lotus's {'class_embed_type': 'projection',
    'projection_class_embeddings_input_dim': 4}; modules they add start from random weights.
    `patches`: `InsertAfter` / `ReplaceModule` blocks applied in order.
    """
    root = require_layout(pretrained_dir, SD2_LAYOUT, "diffusers checkpoint (SD2 layout)")
    unet = _unet_from_directory(root, dict(unet_options or {}))
    if conv_in_channels is not None:
        widen_conv_in(unet, int(conv_in_channels), scale_conv_in_bias)
    return UNetBackbone(unet, empty_prompt_embedding(root, pad=pad_prompt), patches)


@gin.configurable
def small_backbone(in_channels: int = 4, out_channels: int = 4,
                   block_out_channels: tuple[int, ...] = (64, 128, 128),
                   layers_per_block: int = 1, cross_attention_dim: int = 32,
                   attention_head_dim: int = 8, norm_num_groups: int = 16,
                   prompt_tokens: int = 4, seed: int = 0,
                   attention_levels: Sequence[bool] | None = None,
                   unet_options: dict[str, Any] | None = None,
                   patches: Sequence[BackbonePatch] = ()) -> UNetBackbone:
    """A small randomly initialised UNet of the same class, for the mini world and tests.

    The conditioning is a fixed random tensor (there is no text encoder at this size).
    `attention_levels` says, per resolution level (finest first), whether its blocks carry
    self- and cross-attention; by default every level but the coarsest does, SD2's layout at a
    smaller width. The mid block always does. The UNet's weights and the conditioning come from
    `seed` (the conditioning is not saved with checkpoints: keep `seed` when reloading); modules
    added by `patches` draw from the run's seed.
    """
    depth = len(block_out_channels)
    levels = tuple(attention_levels) if attention_levels is not None \
        else (True,) * (depth - 1) + (False,)
    if len(levels) != depth:
        raise UserError(f"small_backbone.attention_levels needs one entry per level of "
                        f"block_out_channels ({depth}); {len(levels)} were given.")
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels))
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=in_channels, out_channels=out_channels,
            down_block_types=down, up_block_types=up, block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block, cross_attention_dim=cross_attention_dim,
            attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups,
            **dict(unet_options or {}))
    context = torch.randn(1, prompt_tokens, cross_attention_dim, generator=generator)
    return UNetBackbone(unet, context, patches)
