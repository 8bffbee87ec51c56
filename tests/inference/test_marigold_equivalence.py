"""depthlab's single-step Marigold/E2E-FT path equals diffusers' `MarigoldDepthPipeline`."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from diffusers import MarigoldDepthPipeline
from PIL import Image

from depthlab.inference.api import load_predictor

from inference_helpers import E2EFT_GIN, MARIGOLD_GIN

SIZES = [(32, 32), (40, 56), (37, 53)]  # square, non-square, neither a multiple of 8


@functools.lru_cache
def pipeline_at(root) -> MarigoldDepthPipeline:
    pipeline = MarigoldDepthPipeline.from_pretrained(root)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def reference(root, image: np.ndarray) -> np.ndarray:
    """The pipeline at one step, no ensemble, native resolution, from zero latents."""
    pipeline = pipeline_at(root)
    height, width = image.shape[:2]
    latents = torch.zeros(1, 4, -(-height // 8), -(-width // 8))
    output = pipeline(Image.fromarray(image), num_inference_steps=1, ensemble_size=1,
                      processing_resolution=0, latents=latents, output_type="np")
    return output.prediction[0, ..., 0]


def random_image(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_marigold_one_step_matches_diffusers(spacing, size, checkpoint_dir, marigold_bindings):
    image = random_image(*size)
    predictor = load_predictor([MARIGOLD_GIN], None,
                               marigold_bindings(timestep_spacing=spacing), processing_res=0,
                               device="cpu")
    ours = predictor.predict([image])[0]
    expected = reference(checkpoint_dir(timestep_spacing=spacing), image)
    assert ours.shape == expected.shape == size
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)


def test_e2eft_mode_matches_diffusers_when_final_alpha_is_one(checkpoint_dir, marigold_bindings):
    """With set_alpha_to_one, the pipeline's single trailing DDIM step returns exactly x0, which
    is what E2EFTMode computes from the same v-prediction."""
    image = random_image(40, 56)
    predictor = load_predictor([MARIGOLD_GIN, E2EFT_GIN], None,
                               marigold_bindings(set_alpha_to_one=True), processing_res=0,
                               device="cpu")
    expected = reference(checkpoint_dir(set_alpha_to_one=True), image)
    np.testing.assert_allclose(predictor.predict([image])[0], expected, rtol=0, atol=1e-4)
