"""Weights on disk: the checkpoint layout, loading a model for inference, initialising from a run.

A checkpoint `<run>/checkpoints/step-00001000/` holds
- `model.safetensors`: every trained parameter of the recipe under its recipe-relative name
  (`model.backbone.unet...`, `filter_head...`);
- `extra.safetensors`: the recipe's extra state (an EMA copy, ...), when it has any;
- `evaluated_model.json`: where the evaluated `DepthModel`'s parts live in the recipe (the
  student's `model.backbone`, or an EMA copy's), so inference loads what evaluation scored;
- `state.pt`: optimizer, schedule, step and RNG state (see `depthlab.train.checkpoint`).
"""
from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Sequence

import gin
import torch
from safetensors import safe_open
from torch import nn

from depthlab.errors import UserError

WEIGHTS_FILE = "model.safetensors"
EXTRA_FILE = "extra.safetensors"
EVALUATED_FILE = "evaluated_model.json"
MODEL_PREFIX = "model."


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    found = [p for p in root.glob("step-*") if (p / WEIGHTS_FILE).is_file()
             and p.name.split("-")[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


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


def weight_files(file: Path) -> list[Path]:
    """`file`, plus the `extra.safetensors` beside a checkpoint's weights (where EMA copies
    live)."""
    extra = file.parent / EXTRA_FILE
    return [file, extra] if file.name == WEIGHTS_FILE and extra.is_file() else [file]


def read_weights(file: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors named `prefix*` in `file` and its extra state, with `prefix` removed."""
    found: dict[str, torch.Tensor] = {}
    for path in weight_files(file):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                if key.startswith(prefix):
                    found[key[len(prefix):]] = handle.get_tensor(key)
    return found


def evaluated_prefixes(file: Path) -> dict[str, str]:
    """{DepthModel child: recipe path} recorded with a checkpoint; `model.<child>` otherwise."""
    record = file.parent / EVALUATED_FILE
    if file.name == WEIGHTS_FILE and record.is_file():
        return json.loads(record.read_text())["prefixes"]
    return {}


def load_model_weights(model: nn.Module, path: str | Path, require_all: bool = False) -> Path:
    """Load a checkpoint into a `DepthModel` (or any evaluated model, e.g. a teacher network) for
    inference: the evaluated model's weights (the student, or its EMA when the recipe evaluates
    that); returns the file used. A `DepthModel` must find every trainable backbone parameter;
    with `require_all`, every parameter must be found."""
    file = resolve_weights(path)
    weights, prefixes = read_weights(file), evaluated_prefixes(file)
    loaded = []
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            child, _, rest = name.partition(".")
            key = f"{prefixes[child]}.{rest}" if child in prefixes else MODEL_PREFIX + name
            if key not in weights:
                continue
            if parameter.shape != weights[key].shape:
                raise UserError(f"The weights in '{file}' give '{name}' the shape "
                                f"{tuple(weights[key].shape)}; the configured model expects "
                                f"{tuple(parameter.shape)}. Was it trained with another recipe?")
            parameter.copy_(weights[key])
            loaded.append(name)
    if require_all:
        untouched = [n for n, _ in model.named_parameters() if n not in loaded]
        what = "parameters"
    else:
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        untouched = [n for n in trainable if n.startswith("backbone.") and n not in loaded]
        what = "backbone parameters"
    if untouched:
        raise UserError(f"The weights in '{file}' lack {len(untouched)} {what} "
                        f"(e.g. {untouched[:2]}): they do not come from this recipe.")
    return file


@gin.configurable
class InitialiseFrom:
    """Initialise the recipe's submodule `target` from saved weights (`Trainer.initialise`).

    `source`: a run directory (its latest checkpoint), a checkpoint directory or a safetensors
    file. Tensors named `source_prefix + name` load into `target`'s parameter `name`
    (`source_prefix` defaults to `target + '.'`, the same place in a run of a compatible recipe;
    use '' for a plain safetensors file of the module). Every parameter of `target` must be found
    except those matching a pattern in `allow_missing` (fnmatch, e.g. 'unet.mid_block.fourier.*'),
    which keep their fresh initialisation; buffers are loaded when present. Nothing is copied
    unless everything fits. Applied when a run starts, not on `--resume`.
    """

    def __init__(self, source: str = gin.REQUIRED, target: str = "model",
                 source_prefix: str | None = None, allow_missing: Sequence[str] = ()):
        self.source, self.target = str(source), target
        if source_prefix is None:
            source_prefix = f"{target}." if target else ""
        self.source_prefix = source_prefix
        self.allow_missing = tuple(allow_missing)

    def resolve(self) -> Path:
        return resolve_weights(self.source)

    def apply(self, root: nn.Module, file: Path | None = None) -> Path:
        """Copy the weights into `root.<target>`; returns the file read (`file` overrides the
        source, e.g. the exact file recorded when a run started)."""
        file = file or self.resolve()
        try:
            module = root.get_submodule(self.target)
        except AttributeError:
            raise UserError(f"InitialiseFrom: the recipe has no module '{self.target}' (its "
                            f"top-level modules: {', '.join(n for n, _ in root.named_children())})."
                            ) from None
        prefix = self.source_prefix
        selected = read_weights(file, prefix)
        if not selected:
            raise UserError(f"InitialiseFrom: '{file}' holds no tensor named '{prefix}*'; set "
                            f"source_prefix to where '{self.target}' lives in that file.")
        parameters = dict(module.named_parameters())
        loadable = {**dict(module.named_buffers()), **parameters}
        unknown = sorted(set(selected) - set(loadable))
        missing = [n for n in parameters if n not in selected
                   and not any(fnmatch.fnmatchcase(n, p) for p in self.allow_missing)]
        if unknown or missing:
            raise UserError(
                f"InitialiseFrom: the weights '{prefix}*' in '{file}' do not fit the recipe's "
                f"'{self.target}': {len(missing)} parameters missing (e.g. {missing[:3]}), "
                f"{len(unknown)} unexpected (e.g. {unknown[:3]}). List new parameters in "
                f"allow_missing, or check source_prefix.")
        for name, tensor in selected.items():
            if loadable[name].shape != tensor.shape:
                raise UserError(f"InitialiseFrom: '{prefix}{name}' in '{file}' has shape "
                                f"{tuple(tensor.shape)}; the recipe's '{self.target}.{name}' "
                                f"has {tuple(loadable[name].shape)}.")
        with torch.no_grad():
            for name, tensor in selected.items():
                loadable[name].copy_(tensor)
        return file

    def describe(self, file: Path) -> dict[str, str]:
        return {"target": self.target, "source": str(file), "source_prefix": self.source_prefix}
