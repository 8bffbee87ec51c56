"""End to end on the mini world: a short run, its outputs, and resuming after a kill."""
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAST = ["--bind", "small_backbone.block_out_channels = (16, 32)",
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


@pytest.mark.slow
def test_short_run_writes_everything_and_evaluates(repo_root, tmp_path):
    run_dir = tmp_path / "run"
    result = run(repo_root, run_dir, "--bind",
                 "EVAL_SETS = {'mini_synthetic': {'length': 8}, 'mini_real': {'length': 8}}",
                 steps=3)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("config.gin", "operative_config.gin", "train.log", "metrics.json",
                 "baseline_metrics.json", "checkpoints/step-00000003/model.safetensors"):
        assert (run_dir / name).exists(), name
    assert list(run_dir.glob("events.out.tfevents.*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"mini_synthetic", "mini_real"}
    expected = {"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3",
                "i_rmse", "silog", "boundary_f1"}
    assert expected <= set(metrics["mini_real"])
    baselines = json.loads((run_dir / "baseline_metrics.json").read_text())
    assert set(baselines) == {"untrained", "teacher"}
    for model in ("trained", "untrained", "teacher"):
        assert f"| mini_real | {model} |" in result.stdout
    assert "FiffDepth.gamma = 0.5" in (run_dir / "operative_config.gin").read_text()


@pytest.mark.slow
def test_killed_run_resumes_with_identical_losses(repo_root, tmp_path):
    steps = 8
    reference = tmp_path / "reference"
    assert run(repo_root, reference, *NO_EVAL, steps=steps).returncode == 0
    interrupted = tmp_path / "interrupted"
    process = run(repo_root, interrupted, *NO_EVAL, "--bind", "Trainer.checkpoint_every = 2",
                  steps=steps, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not list((interrupted / "checkpoints").glob("step-*[0-9]")) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = sorted(p.name for p in (interrupted / "checkpoints").glob("step-*[0-9]"))
    assert saved and saved[-1] != f"step-{steps:08d}", "the run finished before it was killed"
    resumed_from = int(saved[-1].split("-")[1])
    result = run(repo_root, interrupted, *NO_EVAL, "--bind", "Trainer.checkpoint_every = 2",
                 "--resume", steps=steps)
    assert result.returncode == 0, result.stderr[-3000:]
    expected, got = logged_losses(reference), logged_losses(interrupted)
    for step in range(resumed_from + 1, steps + 1):
        assert got[step] == expected[step], step
