"""`python -m depthlab.run` turns configuration mistakes into one clear paragraph, exit code 2."""
import subprocess
import sys

import pytest


def run_cli(repo_root, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", "depthlab.run", *args], cwd=cwd or repo_root,
                          capture_output=True, text=True, timeout=300)


def assert_clean_error(result, *needles):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_paper_recipe_without_weights_names_the_macros(repo_root, tmp_path):
    result = run_cli(repo_root, "--gin", "experiments/fiffdepth.gin", "--run-dir",
                     str(tmp_path / "run"))
    assert_clean_error(result, "SD2_DIR", "DA2_DIR", "HYPERSIM_DIR", "experiments/fiffdepth.gin")
    assert not (tmp_path / "run").exists()


def test_paper_recipe_with_an_empty_folder_names_macro_and_layout(repo_root, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    binds = [f"--bind={name} = '{empty}'" for name in
             ("SD2_DIR", "DA2_DIR", "HYPERSIM_DIR", "VKITTI_DIR", "REAL_IMAGES_DIR")]
    result = run_cli(repo_root, "--gin", "experiments/fiffdepth.gin", *binds,
                     "--run-dir", str(tmp_path / "run"))
    assert_clean_error(result, "SD2_DIR", "unet/config.json")


@pytest.mark.parametrize("binding, needle", [
    ("FiffDepth.gama = 0.3", "gama"),
    ("FifDepth.gamma = 0.3", "FifDepth"),
    ("FiffDepth.mae_loss = 'no_such_loss'", "no_such_loss"),
    ("Trainer.steps = (", "Trainer.steps"),
])
def test_misspelled_binding_is_a_clear_error(repo_root, tmp_path, binding, needle):
    result = run_cli(repo_root, "--gin", "experiments/mini/fiffdepth.gin", "--bind", binding,
                     "--run-dir", str(tmp_path / "run"))
    assert_clean_error(result, needle)


def test_missing_gin_file(repo_root):
    assert_clean_error(run_cli(repo_root, "--gin", "experiments/nope.gin"), "experiments/nope.gin")


def test_occupied_run_dir_is_refused(repo_root, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.gin").write_text("# earlier run\n")
    result = run_cli(repo_root, "--gin", "experiments/mini/fiffdepth.gin", "--run-dir",
                     str(tmp_path / "run"))
    assert_clean_error(result, "--resume", "--overwrite")
    assert (tmp_path / "run" / "config.gin").read_text() == "# earlier run\n"


def test_list_blocks_names_the_fiffdepth_pieces(repo_root):
    result = run_cli(repo_root, "--list-blocks")
    assert result.returncode == 0
    for block in ("FiffDepth", "TMinusOneFilter", "sd2_backbone", "depth_anything_v2",
                  "MixedBatches", "Trainer", "lowpass_teacher", "mini_codec", "mini_prior",
                  "CodecPretraining", "PriorPretraining"):
        assert block in result.stdout
