"""TensorBoard scalars and image panels, coloured by each panel's output kind (near = warm)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from depthlab.inference.outputs import colorize
from depthlab.recipes.base import Panel

PANEL_IMAGES = 4


def panel_image(panel: Panel) -> np.ndarray:
    """The first PANEL_IMAGES of a panel side by side, [H, n * W, 3] uint8."""
    values = panel.values[:PANEL_IMAGES].detach().float().cpu().numpy()
    if panel.kind is None:  # RGB in [0, 1]
        images = [(np.clip(v.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8) for v in values]
    else:
        images = [colorize(v[0] if v.shape[0] == 1 else v.transpose(1, 2, 0), panel.kind)
                  for v in values]
    return np.concatenate(images, axis=1)


class BoardWriter:
    """Writes scalars and panels to `<run_dir>` (TensorBoard event files)."""

    def __init__(self, run_dir: Path):
        self.writer = SummaryWriter(log_dir=str(run_dir))

    def scalars(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def panels(self, panels: dict[str, Panel], step: int) -> None:
        for name, panel in panels.items():
            self.writer.add_image(f"panels/{name}", panel_image(panel), step, dataformats="HWC")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
