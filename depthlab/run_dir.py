"""Run directories: one per run, never silently reused or overwritten."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from depthlab.errors import UserError
from depthlab.models.weights import latest_checkpoint

RUNS_ROOT = Path("runs")


def experiment_name(gin_files: list[str]) -> str:
    """`experiments/mini/fiffdepth.gin` -> `mini-fiffdepth` (the last file names the experiment)."""
    path = Path(gin_files[-1]).with_suffix("")
    parts = path.parts
    if "experiments" in parts:
        parts = parts[parts.index("experiments") + 1:]
    else:
        parts = (path.name,)
    return "-".join(parts)


def new_run_dir(experiment: str, root: Path = RUNS_ROOT) -> Path:
    """`runs/<experiment>-<YYYYmmdd-HHMMSS>`, with a numeric suffix if that already exists."""
    base = root / f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, suffix = base, 1
    while candidate.exists():
        suffix += 1
        candidate = base.with_name(f"{base.name}-{suffix}")
    return candidate


def latest_run_dir(experiment: str, root: Path = RUNS_ROOT) -> Path | None:
    runs = sorted(p for p in root.glob(f"{experiment}-*") if p.is_dir())
    return runs[-1] if runs else None


def choose_run_dir(requested: str | None, experiment: str, resume: bool, overwrite: bool) -> Path:
    """Apply the rules: a non-empty directory needs --resume or --overwrite."""
    if requested is None:
        if not resume:
            return new_run_dir(experiment)
        latest = latest_run_dir(experiment)
        if latest is None:
            raise UserError(f"--resume found no earlier run of '{experiment}' under "
                            f"{RUNS_ROOT}/; pass --run-dir to name the run to continue.")
        return latest
    run_dir = Path(requested)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run-dir '{run_dir}' is a file, not a directory.")
    occupied = run_dir.is_dir() and any(run_dir.iterdir())
    if occupied and not (resume or overwrite):
        raise UserError(f"The run directory '{run_dir}' already holds a run. Pass --resume to "
                        f"continue it from its latest checkpoint, --overwrite to delete it and "
                        f"start again, or choose another --run-dir.")
    if resume and latest_checkpoint(run_dir) is None and occupied:
        raise UserError(f"--resume: '{run_dir}' has no complete checkpoint to continue from; use "
                        f"--overwrite to start it again.")
    return run_dir


def prepare(run_dir: Path, overwrite: bool) -> None:
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
