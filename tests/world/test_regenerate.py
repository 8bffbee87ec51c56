"""Regenerating the shipped weights is deterministic on a CPU: on one machine, two short runs of
every pretraining experiment, through the same command that made the shipped files, write
identical files."""
import pytest
from safetensors.torch import load_file

from depthlab.world import regenerate
from depthlab.world.shipped import NAMES, shipped_file

SHORT = ["TRAIN_STEPS = 2", "BATCH_SIZE = 2", "Trainer.progress = False",
         "Trainer.eval_sets = {'mini_synthetic': {'length': 2}}",
         "CodecPretraining.val_length = 2", "PriorPretraining.val_length = 1",
         "PriorPretraining.val_timesteps = 1", "PriorPretraining.sample_steps = 1"]


@pytest.fixture(scope="module")
def two_regenerations(tmp_path_factory):
    outputs = []
    for attempt in ("first", "second"):
        root = tmp_path_factory.mktemp(attempt)
        argv = ["--runs", str(root / "runs"), "--output", str(root / "weights")]
        for binding in SHORT:
            argv += ["--bind", binding]
        assert regenerate.main(argv) == 0
        outputs.append(root / "weights")
    return outputs


@pytest.mark.parametrize("name", NAMES)
def test_two_runs_write_identical_files(two_regenerations, name):
    first, second = (shipped_file(name, root) for root in two_regenerations)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_regenerated_files_fit_the_shipped_ones(two_regenerations, name):
    """Same tensor names, shapes and float16 storage as the shipped weights."""
    made, shipped = load_file(str(shipped_file(name, two_regenerations[0]))), \
        load_file(str(shipped_file(name)))
    assert {k: tuple(v.shape) for k, v in made.items()} == \
        {k: tuple(v.shape) for k, v in shipped.items()}
    assert {str(v.dtype) for v in made.values() if v.is_floating_point()} == {"torch.float16"}


def test_every_pretraining_experiment_is_regenerated():
    """Each experiment in experiments/mini/pretrain/ ships a file (metric_teacher included) and
    names where its network lives in the recipe."""
    assert {p.stem for p in regenerate.EXPERIMENTS.glob("*.gin")} == set(NAMES) \
        == set(regenerate.PREFIXES)
    assert regenerate.PREFIXES["metric_teacher"] == "network."


def test_each_record_names_what_decides_the_bits():
    """The torch version and the CPU kernels torch dispatches to: another instruction set rounds
    differently, so files made there differ (docs/results/mini_world.md)."""
    import torch

    record = regenerate.machine()
    assert record["torch"] == torch.__version__
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability() != ""
    assert isinstance(record["cpu"], str)


def test_unknown_weights_are_refused(capsys):
    with pytest.raises(SystemExit) as stopped:
        regenerate.main(["--only", "vae"])
    assert stopped.value.code != 0
    assert "unknown weights vae" in capsys.readouterr().err
