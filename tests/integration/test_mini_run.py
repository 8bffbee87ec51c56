"""End to end on the mini world: a short run, its outputs, and resuming after a kill."""
import json
import signal
import subprocess
import time

import pytest

from run_helpers import NO_EVAL, logged_losses, run


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
