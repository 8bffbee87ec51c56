"""Fixtures for the inference tests: tiny random checkpoints in diffusers layout and small models.

Nothing is downloaded: every checkpoint is written with `save_pretrained` into a temp directory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import gin
import pytest
import torch
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from depthlab.models.modes import DirectLatentMode
from depthlab.testing.tiny_models import save_marigold_dir
from depthlab.models.backbone import small_backbone
from depthlab.models.codec import LatentCodec, small_vae
from depthlab.models.depth_model import DepthModel

# The models here are tiny: one intra-op thread is faster than several and immune to the
# spin-wait stalls OpenMP threads suffer on a busy 2-core machine.
torch.set_num_threads(1)
diffusers_logging.set_verbosity_error()
diffusers_logging.disable_progress_bar()
transformers_logging.set_verbosity_error()
transformers_logging.disable_progress_bar()


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> Callable[..., Path]:
    """`checkpoint_dir(**kwargs)`: a cached random MarigoldDepthPipeline directory."""
    cache: dict[tuple, Path] = {}

    def make(**kwargs) -> Path:
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            cache[key] = save_marigold_dir(tmp_path_factory.mktemp("checkpoint"), **kwargs)
        return cache[key]

    return make


@pytest.fixture
def marigold_bindings(checkpoint_dir) -> Callable[..., list[str]]:
    """Bindings that run experiments/marigold.gin on a tiny checkpoint in reference settings."""

    def bindings(steps: int = 1, ensemble: int = 1, noise: str = "zeros", **kwargs) -> list[str]:
        root = checkpoint_dir(**kwargs)
        return [f"MARIGOLD_DIR = '{root}'", f"DENOISING_STEPS = {steps}",
                f"ENSEMBLE_SIZE = {ensemble}", f"NOISE = '{noise}'"]

    return bindings


@pytest.fixture
def experiment_gin(tmp_path, checkpoint_dir) -> Callable[..., Path]:
    """`experiment_gin(method, extra, **components)`: a gin file running gin/inference/METHOD.gin
    on a tiny checkpoint (`checkpoint_dir(**components)`) at native resolution."""

    def write(method: str, extra: str = "", **components) -> Path:
        root = checkpoint_dir(**components)
        path = tmp_path / f"tiny_{method}.gin"
        path.write_text(f"""
include 'gin/inference/{method}.gin'
DepthModel.backbone = @sd2_backbone()
sd2_backbone.pretrained_dir = '{root}'
DepthModel.codec = @pretrained_codec()
pretrained_codec.pretrained_dir = '{root}'
default_processing_res.resolution = 0
{extra}""")
        return path

    return write


@pytest.fixture
def fiffdepth_gin(experiment_gin) -> Path:
    """FiffDepth's inference mode on a tiny 4-channel checkpoint."""
    return experiment_gin("fiffdepth", in_channels=4)


def make_small_model(vae_blocks: tuple[int, ...] = (32, 64, 64)) -> DepthModel:
    """The trainer's small model: small UNet, small VAE (factor 2 ** (len(vae_blocks) - 1))."""
    return DepthModel(small_backbone(), LatentCodec(small_vae(block_out_channels=vae_blocks)),
                      DirectLatentMode())


@pytest.fixture
def small_model_factory() -> Callable[..., DepthModel]:
    return make_small_model


@pytest.fixture
def small_model() -> DepthModel:
    return make_small_model()
