"""The mini world's pretrained weights, shipped inside the package as float16 safetensors.

Four files live in `depthlab/world/weights/`: `codec.safetensors` (the small VAE),
`prior.safetensors` (the small UNet trained as a latent diffusion model on mini-world RGB, with
its empty-prompt embedding), `teacher.safetensors` (the small Depth Anything-style teacher) and
`metric_teacher.safetensors` (its metric sibling, the stand-in for SharpDepth's metric teacher).
Each is exported from a run of the pretraining experiments in `experiments/mini/pretrain/` by
`python -m depthlab.world.regenerate`. Reruns on one machine write identical files; another CPU's
kernels round differently and give equivalent, not identical, weights (docs/results/mini_world.md).
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from depthlab.errors import UserError
from depthlab.models.weights import read_weights, resolve_weights

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
NAMES = ("codec", "prior", "teacher", "metric_teacher")


def shipped_file(name: str, root: Path | None = None) -> Path:
    if name not in NAMES:
        raise ValueError(f"unknown shipped weights '{name}'; one of {NAMES}")
    return Path(root or WEIGHTS_DIR) / f"{name}.safetensors"


def load_shipped(name: str, root: Path | None = None) -> dict[str, torch.Tensor]:
    """The shipped tensors of `name` in float32 (integer tensors unchanged)."""
    file = shipped_file(name, root)
    if not file.is_file():
        raise UserError(f"The mini world's pretrained {name} weights are missing ('{file}'). "
                        f"Reinstall depthlab, or regenerate them with "
                        f"`python -m depthlab.world.regenerate`.")
    tensors = load_file(str(file))
    return {key: t.float() if t.is_floating_point() else t for key, t in tensors.items()}


def load_into(module: torch.nn.Module, weights: dict[str, torch.Tensor], what: str) -> None:
    """Copy `weights` into `module`'s parameters and buffers; every parameter must be present
    with its shape."""
    state = module.state_dict()
    wrong = [f"{n} {tuple(t.shape)} (expected {tuple(state[n].shape)})"
             for n, t in weights.items() if n in state and state[n].shape != t.shape]
    if wrong:
        raise UserError(f"The {what} weights do not fit the configured module: {len(wrong)} "
                        f"tensors have another shape (e.g. {wrong[0]}). They were made for the "
                        f"mini world's architecture bindings (gin/codecs/mini_vae.gin, "
                        f"gin/backbones/mini_unet.gin, depthlab/world/mini_teacher.py); include "
                        f"those files, or regenerate the weights after changing them.")
    missing, unexpected = module.load_state_dict(weights, strict=False)
    missing = [n for n in missing if n in dict(module.named_parameters())]
    if missing or unexpected:
        raise UserError(f"The {what} weights do not fit the configured module: {len(missing)} "
                        f"parameters missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                        f"(e.g. {unexpected[:3]}). They were made for the default mini-world "
                        f"bindings; regenerate them after changing the architecture.")


def export_run(source: str | Path, prefix: str, name: str, root: Path | None = None) -> Path:
    """Write the tensors named `prefix*` of a run (its latest checkpoint), a checkpoint or a
    safetensors file as shipped weights `name`, in float16, with `prefix` removed."""
    tensors = read_weights(resolve_weights(source), prefix)
    if not tensors:
        raise UserError(f"'{source}' holds no tensor named '{prefix}*' to export as {name}.")
    half = {key: (t.half() if t.is_floating_point() else t).contiguous()
            for key, t in sorted(tensors.items())}
    target = shipped_file(name, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(half, str(target), metadata={"format": "pt"})  # one key: a stable header
    target.chmod(0o644)
    return target
