"""Helpers shared by the inference tests (a uniquely named module, importable from them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[2]
MARIGOLD_GIN = str(REPO_ROOT / "experiments" / "marigold.gin")
E2EFT_GIN = str(REPO_ROOT / "gin" / "inference" / "e2eft.gin")
PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def model_weights(model: nn.Module) -> dict:
    """A model's trainable weights named as a recipe's checkpoint names them (`model.*`)."""
    return {f"model.{name}": p for name, p in model.named_parameters() if p.requires_grad}


def read_ply(path: Path) -> tuple[str, np.ndarray]:
    """(header, vertices) of a binary PLY written by depthlab."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    return data[:end].decode("ascii"), np.frombuffer(data[end:], dtype=PLY_VERTEX)
