"""Checkpoints: trainable weights as safetensors, training state (optimizer, schedule, step, RNG).

Layout: `<run>/checkpoints/step-00001000/{model.safetensors, state.pt}`. `model.safetensors` holds
every trainable parameter of the recipe under its recipe-relative name (`model.backbone.unet...`
for the UNet, `heads...` for trainable heads), so inference can load a `DepthModel` from it alone.
A checkpoint is written to a temporary folder and renamed, so a killed run never leaves half a
checkpoint that `--resume` would pick up.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from depthlab.errors import UserError

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.pt"
MODEL_PREFIX = "model."


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    found = [p for p in root.glob("step-*") if (p / WEIGHTS_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters that require grad, by name, as contiguous CPU tensors."""
    return {name: p.detach().cpu().contiguous() for name, p in module.named_parameters()
            if p.requires_grad}


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, recipe: nn.Module, training_state: dict[str, Any],
                    keep: int | None = None) -> Path:
    """Write weights and training state for `step` atomically; keep the newest `keep` checkpoints."""
    final = checkpoint_dir(run_dir, step)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(trainable_state(recipe), str(partial / WEIGHTS_FILE), metadata={"step": str(step)})
    torch.save({**training_state, "step": step, "rng": rng_state()}, partial / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    if keep:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(Path(checkpoint) / STATE_FILE, map_location="cpu", weights_only=False)


def load_trainable_state(module: nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Copy `weights` into `module`'s parameters; every trainable parameter must be present."""
    params = dict(module.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    unknown = [n for n in weights if n not in params]
    if missing or unknown:
        raise UserError(
            f"The weights in '{source}' do not match the configured model: {len(missing)} "
            f"parameters missing (e.g. {missing[:3]}), {len(unknown)} unexpected (e.g. "
            f"{unknown[:3]}). Was it trained with a different gin recipe or block size?")
    with torch.no_grad():
        for name, tensor in weights.items():
            if params[name].shape != tensor.shape:
                raise UserError(f"The weights in '{source}' give '{name}' the shape "
                                f"{tuple(tensor.shape)}; the configured model expects "
                                f"{tuple(params[name].shape)}.")
            params[name].copy_(tensor)


def resolve_weights(path: str | Path) -> Path:
    """A run directory (its latest checkpoint), a checkpoint directory, or a safetensors file."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix == ".safetensors":
        return path
    if (path / WEIGHTS_FILE).is_file():
        return path / WEIGHTS_FILE
    latest = latest_checkpoint(path) if path.is_dir() else None
    if latest is None:
        raise UserError(f"No weights found at '{path}': expected a run directory with "
                        f"checkpoints/step-*/{WEIGHTS_FILE}, a checkpoint directory containing "
                        f"{WEIGHTS_FILE}, or a .safetensors file.")
    return latest / WEIGHTS_FILE


def load_model_weights(model: nn.Module, path: str | Path) -> Path:
    """Load a checkpoint's `model.*` weights into a `DepthModel`; returns the file used."""
    file = resolve_weights(path)
    weights = load_file(str(file))
    subset = {k[len(MODEL_PREFIX):]: v for k, v in weights.items() if k.startswith(MODEL_PREFIX)}
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in subset.items():
            if name not in params or params[name].shape != tensor.shape:
                raise UserError(f"The weights in '{file}' do not fit the configured model at "
                                f"'{name}'. Was it trained with a different gin recipe?")
            params[name].copy_(tensor)
    untouched = [n for n, p in params.items() if p.requires_grad and n not in subset
                 and n.startswith("backbone.")]
    if untouched:
        raise UserError(f"The weights in '{file}' lack {len(untouched)} backbone parameters "
                        f"(e.g. {untouched[:2]}): they do not come from this recipe.")
    return file
