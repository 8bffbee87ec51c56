"""DINOv2 as a frozen feature encoder, from a transformers directory or a timm weights file.

The tokens are the final layer's patch tokens *after* the final LayerNorm, as DepthMaster's
Feature Alignment compares them: transformers' `Dinov2Model.forward` applies `self.layernorm` to
the encoder output and returns that as `last_hidden_state` (likewise
`Dinov2WithRegistersModel`), and timm's `VisionTransformer.forward_features` ends with
`self.norm`. The class token (and register tokens) are dropped and the rest laid out on the grid.
Both builders are cached once per process by resolved path (`shared_instance`), and neither ever
downloads: the weights must already be on disk.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import gin
import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from timm.models.vision_transformer import checkpoint_filter_fn
from torch import nn
from transformers import AutoConfig, Dinov2Model, Dinov2WithRegistersModel, PreTrainedModel

from depthlab.encoders.base import FeatureEncoder, tokens_to_grid
from depthlab.errors import UserError
from depthlab.models.freezing import freeze
from depthlab.models.layout import macro_hint, require_layout
from depthlab.teachers.base import shared_instance

TRANSFORMERS_CLASSES: dict[str, type[PreTrainedModel]] = {
    "dinov2": Dinov2Model,
    "dinov2_with_registers": Dinov2WithRegistersModel,
}
# One of these holds a transformers directory's weights (single file, sharded, or legacy).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, SafetensorError)


class TransformersDinov2Encoder(FeatureEncoder):
    """A transformers `Dinov2Model` (or `Dinov2WithRegistersModel`): `last_hidden_state`
    without the class and register tokens."""

    def __init__(self, model: Dinov2Model | Dinov2WithRegistersModel):
        config = model.config
        super().__init__(config.hidden_size, config.patch_size)
        self.model = model
        self.prefix_tokens = 1 + int(getattr(config, "num_register_tokens", 0))
        freeze(self)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        tokens = self.model(pixel_values=pixels).last_hidden_state[:, self.prefix_tokens:]
        return tokens_to_grid(tokens, pixels.shape[-2] // self.patch_size,
                              pixels.shape[-1] // self.patch_size)


class TimmDinov2Encoder(FeatureEncoder):
    """A timm DINOv2 `VisionTransformer`: `forward_features` without its prefix tokens."""

    def __init__(self, model: nn.Module):
        super().__init__(model.embed_dim, model.patch_embed.patch_size[0])
        self.model = model
        self.prefix_tokens = int(model.num_prefix_tokens)
        freeze(self)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        tokens = self.model.forward_features(pixels)[:, self.prefix_tokens:]
        return tokens_to_grid(tokens, pixels.shape[-2] // self.patch_size,
                              pixels.shape[-1] // self.patch_size)


def _require_dinov2_dir(pretrained_dir: str) -> Path:
    """The directory as a Path once it holds a DINOv2 config and weights; a `UserError` naming
    it otherwise."""
    what = "DINOv2 encoder (transformers layout)"
    root = require_layout(pretrained_dir, ["config.json"], what)
    if not any((root / name).exists() for name in WEIGHT_FILES):
        raise UserError(f"The {what} directory '{root}'{macro_hint(str(pretrained_dir))} has a "
                        f"config.json but no weights ({' or '.join(WEIGHT_FILES)}). Save the "
                        f"model there with `save_pretrained`; depthlab never downloads weights.")
    return root


def _load_transformers_dinov2(root: Path) -> PreTrainedModel:
    try:
        model_type = AutoConfig.from_pretrained(root).model_type
    except LOAD_ERRORS as error:
        raise UserError(f"Could not read the DINOv2 config '{root / 'config.json'}': "
                        f"{error}") from None
    if model_type not in TRANSFORMERS_CLASSES:
        raise UserError(f"The directory '{root}' holds a '{model_type}' model, not DINOv2 "
                        f"(model_type {' or '.join(TRANSFORMERS_CLASSES)}). Point "
                        f"dinov2_encoder.pretrained_dir at a DINOv2 directory, e.g. one saved "
                        f"from facebook/dinov2-giant with `save_pretrained`.")
    try:
        model, info = TRANSFORMERS_CLASSES[model_type].from_pretrained(
            root, output_loading_info=True)
    except LOAD_ERRORS as error:
        raise UserError(f"Could not load the DINOv2 weights in '{root}': {error}") from None
    # transformers initialises missing weights at random with only a warning: refuse that.
    problems = {kind: sorted(info.get(kind) or ()) for kind in ("missing_keys",
                                                               "mismatched_keys")}
    problems = {kind: keys for kind, keys in problems.items() if keys}
    if problems:
        details = "; ".join(f"{kind.replace('_', ' ')}: {', '.join(map(str, keys[:5]))}"
                            + (" ..." if len(keys) > 5 else "") for kind, keys in problems.items())
        raise UserError(f"The weights in '{root}' do not fit its DINOv2 config ({details}).")
    return model


@gin.configurable
def dinov2_encoder(pretrained_dir: str = gin.REQUIRED) -> FeatureEncoder:
    """The process-wide frozen DINOv2 encoder of a transformers directory (`config.json` and
    weights, e.g. facebook/dinov2-giant saved with `save_pretrained`), built once per path."""
    root = _require_dinov2_dir(pretrained_dir)

    def build() -> FeatureEncoder:
        return TransformersDinov2Encoder(_load_transformers_dinov2(root))

    return shared_instance(("dinov2_encoder", str(root.resolve())), build)  # type: ignore


def read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or of a torch file holding a state dict."""
    try:
        if file.suffix == ".safetensors":
            return load_file(str(file))
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (*LOAD_ERRORS, pickle.UnpicklingError, EOFError) as error:
        raise UserError(f"Could not read the weights file '{file}': {error}") from None
    if not isinstance(state, dict):
        raise UserError(f"The weights file '{file}' holds a {type(state).__name__}, not a "
                        f"state dict.")
    return state


def _load_timm_dinov2(model_name: str, file: Path, image_size: int | None,
                      model_kwargs: dict[str, Any]) -> nn.Module:
    size = {} if image_size is None else {"img_size": int(image_size)}
    try:
        model = timm.create_model(model_name, pretrained=False, num_classes=0,
                                  dynamic_img_size=True, **size, **model_kwargs)
    except (RuntimeError, TypeError, ValueError) as error:
        raise UserError(f"timm cannot build '{model_name}' with {size | model_kwargs}: "
                        f"{error}") from None
    state = read_state_dict(file)
    try:
        # timm's own pretrained-loading filter: converts the original DINOv2 release's names
        # and resamples the position embeddings to the model's grid.
        model.load_state_dict(checkpoint_filter_fn(state, model), strict=True)
    except LOAD_ERRORS as error:
        message = " ".join(str(error).split())
        first = message if len(message) <= 600 else message[:600] + " ..."
        raise UserError(f"The weights in '{file}' do not fit timm's '{model_name}' "
                        f"({size | model_kwargs or 'default size'}): {first}") from None
    return model


@gin.configurable
def timm_dinov2_encoder(model_name: str = "vit_small_patch14_dinov2",
                        weights_file: str = gin.REQUIRED, image_size: int | None = None,
                        model_kwargs: dict[str, Any] | None = None) -> FeatureEncoder:
    """The process-wide frozen DINOv2 encoder built by timm from a local weights file.

    `weights_file`: a safetensors or torch state dict, in timm's names or the original DINOv2
    release's. `image_size`: the size the position embeddings are made for (timm's default for
    the model when None, 518 for DINOv2); any input size works (`dynamic_img_size`).
    `model_kwargs`: further `timm.create_model` arguments (e.g. a smaller `embed_dim`).
    """
    if weights_file is None or str(weights_file) == "":
        raise UserError("No weights file was given for timm_dinov2_encoder; set "
                        "timm_dinov2_encoder.weights_file in your gin file.")
    file = Path(weights_file).expanduser()
    if not file.is_file():
        raise UserError(f"The DINOv2 weights file '{file}'{macro_hint(str(weights_file))} does "
                        f"not exist. Expected a local safetensors or torch state dict for timm's "
                        f"'{model_name}'; depthlab never downloads weights.")
    kwargs = dict(model_kwargs or {})

    def build() -> FeatureEncoder:
        return TimmDinov2Encoder(_load_timm_dinov2(model_name, file, image_size, kwargs))

    key = ("timm_dinov2_encoder", model_name, str(file.resolve()), image_size,
           repr(sorted(kwargs.items())))
    return shared_instance(key, build)  # type: ignore
