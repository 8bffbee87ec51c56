"""Regenerate the mini world's shipped weights: `python -m depthlab.world.regenerate`.

Runs the four pretraining experiments of `experiments/mini/pretrain/` as ordinary runs (the
codec first, because the prior trains on its latents; then the prior, the teacher and the metric
teacher), exports each run's weights in float16 to the shipped files, and prints what each run
measured. On a CPU the runs are deterministic: on one machine, with the same torch version, a
rerun writes the same files bit for bit. A CPU with other vector instructions (AVX-512 against
AVX2, say) runs other torch kernels, whose float rounding differs, so there the files come out
equivalent in quality but not identical (`--output DIR --check` compares with the shipped ones
without replacing them; docs/results/mini_world.md has a full check on another machine).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from depthlab.errors import UserError, cli_entry
from depthlab.world.shipped import NAMES, WEIGHTS_DIR, export_run, shipped_file

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO_ROOT / "experiments" / "mini" / "pretrain"
# Where each experiment's network lives in its recipe (the checkpoint's tensor prefix).
PREFIXES = {"codec": "vae.", "prior": "backbone.unet.", "teacher": "network.",
            "metric_teacher": "network."}
# One thread: the result is independent of the machine's core count (and no thread oversubscribes
# a busy machine).
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def machine() -> dict:
    """What decides the files' bits besides the code: the torch version and the CPU kernels it
    dispatches to (another vector instruction set rounds differently)."""
    import torch  # local: the runs themselves happen in subprocesses

    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu": model}


def pretrain(name: str, runs: Path, weights: Path, bindings: Sequence[str]) -> dict:
    """Run `experiments/mini/pretrain/<name>.gin` into `runs/<name>` and export its weights."""
    run_dir = runs / name
    command = [sys.executable, "-m", "depthlab.run", "--gin", str(EXPERIMENTS / f"{name}.gin"),
               "--run-dir", str(run_dir), "--overwrite"]
    if name == "prior":  # the prior encodes RGB with the codec just made
        command += ["--bind", f"mini_codec.weights = '{shipped_file('codec', weights)}'",
                    "--bind", "mini_codec.prefix = ''"]
    for binding in bindings:
        command += ["--bind", binding]
    started = time.perf_counter()
    environment = {**os.environ, **SINGLE_THREADED}
    if subprocess.run(command, cwd=REPO_ROOT, env=environment).returncode != 0:
        raise UserError(f"The {name} pretraining run failed (run directory '{run_dir}'); see its "
                        f"train.log.")
    seconds = time.perf_counter() - started
    file = export_run(run_dir, PREFIXES[name], name, weights)
    record = {"name": name, "seconds": round(seconds, 1), "file": str(file),
              "sha256": sha256(file), **machine()}
    for result in ("validation.json", "baseline_validation.json", "metrics.json"):
        if (run_dir / result).is_file():
            record[result] = json.loads((run_dir / result).read_text())
    return record


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m depthlab.world.regenerate",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(NAMES),
                        help=f"comma-separated subset of {','.join(NAMES)} (default: all)")
    parser.add_argument("--runs", type=Path, default=Path("runs/mini_pretrain"),
                        help="where the pretraining runs are written")
    parser.add_argument("--output", type=Path, default=WEIGHTS_DIR,
                        help="where the weights are written (default: the shipped files)")
    parser.add_argument("--check", action="store_true",
                        help="compare the new files with the shipped ones; exit 1 if they differ")
    parser.add_argument("--bind", action="append", default=[], metavar="BINDING",
                        help="extra gin binding for every run (e.g. 'TRAIN_STEPS = 2' to try it)")
    return parser.parse_args(argv)


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise UserError(f"--only: unknown weights {', '.join(unknown)}; choose from "
                        f"{', '.join(NAMES)}.")
    if "prior" in names and "codec" not in names and args.output != WEIGHTS_DIR:
        shipped = shipped_file("codec", args.output)
        if not shipped.is_file():
            raise UserError(f"The prior trains on the codec's latents: regenerate the codec too, "
                            f"or put one at '{shipped}'.")
    records = [pretrain(name, args.runs, args.output, args.bind)
               for name in NAMES if name in names]
    print(json.dumps(records, indent=2))
    if args.check:
        different = [r["name"] for r in records if r["sha256"] != sha256(shipped_file(r["name"]))]
        print("identical to the shipped weights" if not different else
              f"different from the shipped weights: {', '.join(different)}")
        return 1 if different else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
