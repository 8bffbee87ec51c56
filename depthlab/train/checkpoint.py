"""Training checkpoints: trained weights, the recipe's extra state, and the training state.

The layout is `depthlab.models.weights`'s; this module adds `state.pt` (optimizer, schedule, step
and RNG state, tensors and plain Python values only, so it loads with `weights_only=True`) and
writes everything atomically: a checkpoint is assembled in a `.partial` folder and renamed, so a
killed run never leaves half a checkpoint that `--resume` would pick up.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from depthlab.errors import UserError
from depthlab.models.weights import (EVALUATED_FILE, EXTRA_FILE, WEIGHTS_FILE, checkpoint_dir,
                                     list_checkpoints)

STATE_FILE = "state.pt"


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain values (numpy's key array becomes a tensor)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                       "position": int(position), "has_gauss": int(has_gauss),
                       "cached_gaussian": float(cached)},
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32),
                         saved["position"], saved["has_gauss"], saved["cached_gaussian"]))
    random.setstate(_as_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value):
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(run_dir: Path, step: int, weights: Mapping[str, torch.Tensor],
                    training_state: dict[str, Any], extra: Mapping[str, torch.Tensor] | None = None,
                    evaluated: Mapping[str, str] | None = None,
                    keep: int | None = None) -> Path:
    """Write a checkpoint for `step` atomically; keep the newest `keep` checkpoints.

    `weights`: trained parameters by recipe-relative name; `extra`: the recipe's extra state;
    `evaluated`: {DepthModel child: recipe path} of the model inference should load.
    """
    final = checkpoint_dir(run_dir, step)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(_contiguous(weights), str(partial / WEIGHTS_FILE), metadata={"step": str(step)})
    if extra:
        save_file(_contiguous(extra), str(partial / EXTRA_FILE), metadata={"step": str(step)})
    if evaluated:
        (partial / EVALUATED_FILE).write_text(json.dumps({"prefixes": dict(evaluated)}, indent=2))
    torch.save({**training_state, "step": step, "rng": rng_state()}, partial / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    if keep:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _contiguous(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.detach().cpu().contiguous() for name, t in tensors.items()}


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(Path(checkpoint) / STATE_FILE, map_location="cpu", weights_only=True)


def load_extra_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    file = Path(checkpoint) / EXTRA_FILE
    return load_file(str(file)) if file.is_file() else {}


def load_trained_weights(parameters: Mapping[str, nn.Parameter], checkpoint: Path) -> None:
    """Copy a checkpoint's weights into `parameters` (name -> parameter); all must be there."""
    weights = load_file(str(Path(checkpoint) / WEIGHTS_FILE))
    missing = [n for n in parameters if n not in weights]
    unknown = [n for n in weights if n not in parameters]
    if missing or unknown:
        raise UserError(
            f"The weights in '{checkpoint}' do not match the configured recipe: {len(missing)} "
            f"parameters missing (e.g. {missing[:3]}), {len(unknown)} unexpected (e.g. "
            f"{unknown[:3]}). Was it trained with a different gin recipe or block size?")
    with torch.no_grad():
        for name, tensor in weights.items():
            if parameters[name].shape != tensor.shape:
                raise UserError(f"The weights in '{checkpoint}' give '{name}' the shape "
                                f"{tuple(tensor.shape)}; the configured recipe expects "
                                f"{tuple(parameters[name].shape)}.")
            parameters[name].copy_(tensor)
