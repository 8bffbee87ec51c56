"""Turning linear radiance into an 8-bit image: a clean path and a 'real camera' path.

The `real` domain adds what separates photos from renders: exposure and white-balance errors,
optical blur, vignetting, a non-standard tone curve and sensor noise. Both paths end in uint8
(images are quantised like photos, which also makes the oracle's image hashes stable).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from depthlab.world.oracle import quantise


def develop_clean(linear: np.ndarray) -> np.ndarray:
    """Synthetic domain: plain gamma 2.2, no noise."""
    return quantise(np.clip(linear, 0.0, 1.0) ** (1.0 / 2.2))


def develop_real(linear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Real domain: exposure, white balance, blur, vignetting, tone curve, shot + read noise."""
    size_h, size_w = linear.shape[:2]
    image = linear * 2.0 ** rng.uniform(-0.6, 0.6) * rng.uniform(0.8, 1.2, size=3)
    sigma = rng.uniform(0.4, 1.0) * size_w / 64.0
    image = gaussian_filter(image, sigma=(sigma, sigma, 0.0), mode="nearest")
    yy, xx = np.mgrid[0:size_h, 0:size_w]
    radius2 = ((xx - size_w / 2 + 0.5) ** 2 + (yy - size_h / 2 + 0.5) ** 2) / (size_w / 2) ** 2
    image = image * (1.0 - rng.uniform(0.15, 0.45) * radius2)[..., None]
    image = np.clip(image, 0.0, None)
    shot, read = rng.uniform(0.0005, 0.003), rng.uniform(0.002, 0.008)
    image = image + rng.normal(size=image.shape) * np.sqrt(shot * image + read**2)
    image = np.clip(image, 0.0, 1.0) ** (1.0 / rng.uniform(1.6, 2.8))
    contrast = rng.uniform(0.8, 1.0)  # washed-out blacks, a lifted tone curve
    return quantise(contrast * image + (1.0 - contrast) * rng.uniform(0.05, 0.25))
