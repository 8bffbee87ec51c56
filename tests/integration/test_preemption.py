"""SIGTERM mid-run: a checkpoint, the preemption exit code, then `--resume` finishes exactly as an
uninterrupted run (losses and the EMA checkpointed bit for bit)."""
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from depthlab.errors import EXIT_PREEMPTED

from run_helpers import NO_EVAL, logged_losses, run

STEPS = 10
EMA = ["--bind", "FiffDepth.ema = @EMA", "--bind", "EMA.decay = 0.9",
       "--bind", "EMA.start_after = 1", "--bind", "EMA.every = 2",
       "--bind", f"Trainer.checkpoint_every = {STEPS}"]


def wait_for_step(run_dir, step: int, process, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    log = run_dir / "train.log"
    while time.time() < deadline and process.poll() is None:
        if log.exists() and f"step {step} " in log.read_text():
            return
        time.sleep(0.02)
    raise AssertionError(f"the run never logged step {step}")


@pytest.mark.slow
def test_sigterm_checkpoints_exits_75_and_resumes_identically(repo_root, tmp_path):
    reference = tmp_path / "reference"
    result = run(repo_root, reference, *NO_EVAL, *EMA, steps=STEPS)
    assert result.returncode == 0, result.stderr[-3000:]

    preempted = tmp_path / "preempted"
    process = run(repo_root, preempted, *NO_EVAL, *EMA, steps=STEPS, stdout=subprocess.DEVNULL,
                  stderr=subprocess.PIPE, text=True)
    wait_for_step(preempted, 1, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == EXIT_PREEMPTED, stderr[-3000:]
    assert "SIGTERM" in stderr and "--resume" in stderr and "Traceback" not in stderr
    saved = sorted(p.name for p in (preempted / "checkpoints").glob("step-*[0-9]"))
    assert len(saved) == 1 and saved[0] != f"step-{STEPS:08d}", saved
    stopped_at = int(saved[0].split("-")[1])
    assert not (preempted / "metrics.json").exists()

    result = run(repo_root, preempted, *NO_EVAL, *EMA, "--resume", steps=STEPS)
    assert result.returncode == 0, result.stderr[-3000:]
    expected, got = logged_losses(reference), logged_losses(preempted)
    assert [got[s] for s in range(stopped_at + 1, STEPS + 1)] == \
        [expected[s] for s in range(stopped_at + 1, STEPS + 1)]
    final = f"checkpoints/step-{STEPS:08d}"
    for name in ("model.safetensors", "extra.safetensors"):
        want, have = (load_file(str(root / final / name)) for root in (reference, preempted))
        assert set(have) == set(want)
        assert all(torch.equal(have[k], want[k]) for k in want), name
    assert "FiffDepth.ema = @EMA" in (preempted / "config.gin").read_text()

