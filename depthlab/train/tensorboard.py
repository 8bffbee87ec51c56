"""TensorBoard scalars and image panels with one shared depth colormap."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from depthlab.targets import Space

PANEL_IMAGES = 4


def colorize(unit_map: torch.Tensor, space: Space, colormap: str = "Spectral") -> np.ndarray:
    """[B, 1, H, W] maps in [0, 1] -> [B, H, W, 3] uint8; near is warm in every space."""
    values = unit_map.detach().float().clamp(0, 1).cpu().numpy()[:, 0]
    if space is not Space.DEPTH:
        values = 1.0 - values  # disparity-like: large = near
    return (matplotlib.colormaps[colormap](values)[..., :3] * 255).astype(np.uint8)


def _row(images: np.ndarray) -> np.ndarray:
    """[B, H, W, 3] -> [H, B * W, 3], the first PANEL_IMAGES side by side."""
    return np.concatenate(list(images[:PANEL_IMAGES]), axis=1)


class BoardWriter:
    """Writes scalars and panels to `<run_dir>` (TensorBoard event files)."""

    def __init__(self, run_dir: Path, space: Space):
        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.space = space

    def scalars(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def panels(self, rgb: dict[str, torch.Tensor], maps: dict[str, torch.Tensor], step: int) -> None:
        for name, image in rgb.items():
            array = (image.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
                     * 255).astype(np.uint8)
            self.writer.add_image(f"panels/{name}", _row(array), step, dataformats="HWC")
        for name, unit_map in maps.items():
            self.writer.add_image(f"panels/{name}", _row(colorize(unit_map, self.space)), step,
                                  dataformats="HWC")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
