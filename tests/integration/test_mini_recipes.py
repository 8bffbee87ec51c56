"""The mini DepthMaster trains on CPU through `depthlab.run` and writes its metrics, and stage 2
starts from a stage 1 run through the one binding STAGE1_RUN. (The mini E2E-FT's full run is in
docs/results/mini_recipes.md; its recipe is tested in tests/recipes and, through the same loop,
by the paper-scale test; a subprocess run of it here cost the suite too much time.)"""
import json
import subprocess
import sys

import pytest
from safetensors import safe_open

from run_helpers import FAST

SMALL_EVAL = ["--bind", "EVAL_SETS = {'mini_synthetic': {'length': 2}, 'mini_real': {'length': 2}}"]


def run_experiment(repo_root, gin_file, run_dir, *extra, steps=1):
    command = [sys.executable, "-m", "depthlab.run", "--gin", gin_file, "--run-dir",
               str(run_dir), "--bind", f"TRAIN_STEPS = {steps}", *FAST, *SMALL_EVAL, *extra]
    result = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"mini_synthetic", "mini_real"}
    assert "abs_rel" in metrics["mini_real"]
    return result


@pytest.mark.slow
def test_depthmaster_stage2_starts_from_stage1_by_one_binding(repo_root, tmp_path):
    first = tmp_path / "stage1"
    run_experiment(repo_root, "experiments/mini/depthmaster_stage1.gin", first)
    log = (first / "train.log").read_text()
    assert "loss/latent=" in log and "loss/alignment=" in log
    second = tmp_path / "stage2"
    run_experiment(repo_root, "experiments/mini/depthmaster_stage2.gin", second,
                   "--bind", f"STAGE1_RUN = '{first}'")
    log = (second / "train.log").read_text()
    assert "loss/pixel=" in log and "loss/gradient=" in log and "loss/alignment" not in log
    record = json.loads((second / "initialised_from.json").read_text())
    stage1_file = first / "checkpoints" / "step-00000001" / "model.safetensors"
    assert str(stage1_file) in json.dumps(record)
    stage2_file = second / "checkpoints" / "step-00000001" / "model.safetensors"
    with safe_open(str(stage2_file), framework="pt") as handle:
        assert any(".mid_block.fourier." in key for key in handle.keys())
    assert "unet.mid_block.fourier" not in str(list(safe_open(str(stage1_file), "pt").keys()))
