"""`python -m depthlab.run` turns configuration mistakes into one clear paragraph, exit code 2.

The CLI runs in-process (`depthlab.run.main`, the function `python -m depthlab.run` calls), so
each case costs no interpreter start; one case goes through `python -m` itself.
"""
import subprocess
import sys
from dataclasses import dataclass

import gin
import pytest

from depthlab.run import main
from depthlab.teachers.base import clear_shared_instances


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(repo_root, capsys, monkeypatch):
    """Call the CLI's main with `args` from the repository root; its exit code and output."""
    monkeypatch.chdir(repo_root)

    def run(*args: str) -> Result:
        try:
            code = main(list(args))
        except SystemExit as exit:
            code = exit.code
        finally:
            gin.clear_config()
            clear_shared_instances()
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def assert_clean_error(result, *needles):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_paper_recipe_without_weights_names_the_macros(run_cli, tmp_path):
    result = run_cli("--gin", "experiments/fiffdepth.gin", "--run-dir",
                     str(tmp_path / "run"))
    assert_clean_error(result, "SD2_DIR", "DA2_DIR", "HYPERSIM_DIR", "experiments/fiffdepth.gin")
    assert not (tmp_path / "run").exists()


def test_paper_recipe_with_an_empty_folder_names_macro_and_layout(run_cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    binds = [f"--bind={name} = '{empty}'" for name in
             ("SD2_DIR", "DA2_DIR", "HYPERSIM_DIR", "VKITTI_DIR", "REAL_IMAGES_DIR")]
    result = run_cli("--gin", "experiments/fiffdepth.gin", *binds,
                     "--run-dir", str(tmp_path / "run"))
    assert_clean_error(result, "SD2_DIR", "unet/config.json")


@pytest.mark.parametrize("binding, needle", [
    ("FiffDepth.gama = 0.3", "gama"),
    ("FifDepth.gamma = 0.3", "FifDepth"),
    ("FiffDepth.mae_loss = 'no_such_loss'", "no_such_loss"),
    ("Trainer.steps = (", "Trainer.steps"),
])
def test_misspelled_binding_is_a_clear_error(run_cli, tmp_path, binding, needle):
    result = run_cli("--gin", "experiments/mini/fiffdepth.gin", "--bind", binding,
                     "--run-dir", str(tmp_path / "run"))
    assert_clean_error(result, needle)


def test_missing_gin_file_through_python_m(repo_root):
    """The module entry point itself: a clean paragraph on stderr and exit code 2."""
    result = subprocess.run([sys.executable, "-m", "depthlab.run", "--gin", "experiments/nope.gin"],
                            cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert_clean_error(result, "experiments/nope.gin")


def test_occupied_run_dir_is_refused(run_cli, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.gin").write_text("# earlier run\n")
    result = run_cli("--gin", "experiments/mini/fiffdepth.gin", "--run-dir",
                     str(tmp_path / "run"))
    assert_clean_error(result, "--resume", "--overwrite")
    assert (tmp_path / "run" / "config.gin").read_text() == "# earlier run\n"


def test_list_blocks_names_the_fiffdepth_pieces(run_cli):
    result = run_cli("--list-blocks")
    assert result.returncode == 0
    for block in ("FiffDepth", "TMinusOneFilter", "sd2_backbone", "depth_anything_v2",
                  "MixedBatches", "Trainer", "lowpass_teacher", "mini_codec", "mini_prior",
                  "CodecPretraining", "PriorPretraining"):
        assert block in result.stdout
