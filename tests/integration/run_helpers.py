"""Running the main entry point on the mini world from tests (a uniquely named helper module)."""
import re
import subprocess
import sys
from pathlib import Path

FAST = ["--bind", "mini_prior.pretrained = False",
        "--bind", "small_backbone.block_out_channels = (16, 32)",
        "--bind", "small_backbone.attention_levels = None",
        "--bind", "small_backbone.attention_head_dim = 4",
        "--bind", "small_backbone.norm_num_groups = 8",
        "--bind", "BATCH_SIZE = 4", "--bind", "Trainer.log_every = 1",
        "--bind", "Trainer.image_every = 2", "--bind", "Trainer.progress = False"]
NO_EVAL = ["--bind", "EVAL_SETS = {}"]


def run(repo_root: Path, run_dir: Path, *extra: str, steps: int, **popen):
    command = [sys.executable, "-m", "depthlab.run", "--gin", "experiments/mini/fiffdepth.gin",
               "--run-dir", str(run_dir), "--bind", f"TRAIN_STEPS = {steps}", *FAST, *extra]
    if popen:
        return subprocess.Popen(command, cwd=repo_root, **popen)
    return subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=900)


def logged_losses(run_dir: Path) -> dict[int, str]:
    found = {}
    for line in (run_dir / "train.log").read_text().splitlines():
        match = re.search(r"step (\d+) loss/total=(\S+)", line)
        if match:
            found[int(match.group(1))] = match.group(2)
    return found
