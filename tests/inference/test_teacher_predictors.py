"""Teachers through the normal inference path: `experiments/mini/teacher.gin` and
`experiments/depth_anything_v2.gin` in `python -m depthlab.predict` and `python -m
depthlab.evaluate`, on any image, with the weights a pretraining run wrote."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from depthlab.errors import UserError
from depthlab.evaluate import main as evaluate_main
from depthlab.inference.api import load_predictor
from depthlab.inference.peak_normalised import PeakNormalised
from depthlab.models.output_kind import OutputKind
from depthlab.predict import main as predict_main
from depthlab.recipes.teacher_pretraining import TeacherPretraining
from depthlab.teachers.base import clear_shared_instances
from depthlab.teachers.depth_anything import DepthAnythingTeacher
from depthlab.train.checkpoint import save_checkpoint
from depthlab.train.loop import check_parameter_groups, evaluated_prefixes
from depthlab.world.mini_teacher import INPUT_SIZE, MiniTeacherNetwork, mini_teacher

from inference_helpers import REPO_ROOT

MINI_GIN = str(REPO_ROOT / "experiments" / "mini" / "teacher.gin")
DA2_GIN = str(REPO_ROOT / "experiments" / "depth_anything_v2.gin")
PRETRAIN_GIN = str(REPO_ROOT / "experiments" / "mini" / "pretrain" / "teacher.gin")


@pytest.fixture(autouse=True)
def fresh_teachers():
    clear_shared_instances()
    yield
    clear_shared_instances()


def cli(main, *args) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as exit_:
        return int(exit_.code)


@pytest.fixture
def odd_photo(tmp_path):
    """A random 97x131 PNG: not from the mini world, odd in both sides."""
    path = tmp_path / "odd.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (97, 131, 3), np.uint8)).save(path)
    return path


@pytest.fixture
def da2_bind(tiny_depth_anything_dir) -> str:
    return f"DA2_DIR = '{tiny_depth_anything_dir}'"


def check_outputs(folder, name: str = "odd") -> np.ndarray:
    for suffix in (".npy", "_16bit.png", "_color.png", ".ply"):
        assert (folder / f"{name}{suffix}").is_file(), suffix
    values = np.load(folder / f"{name}.npy")
    assert values.shape == (97, 131) and values.dtype == np.float32
    assert values.min() >= 0.0 and values.max() <= 1.0 and values.max() > 0.9
    assert Image.open(folder / f"{name}_16bit.png").size == (131, 97)
    return values


def test_mini_teacher_predicts_any_photo(odd_photo, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(predict_main, "--gin", MINI_GIN, "--input", odd_photo, "--output", out,
               "--device", "cpu", "--save", "npy,png16,color,ply") == 0
    values = check_outputs(out)
    assert "affine-invariant disparity" in capsys.readouterr().err
    # The file is the teacher's map divided by its maximum.
    rgb = torch.from_numpy(np.asarray(Image.open(odd_photo), np.float32) / 255).permute(2, 0, 1)
    raw = mini_teacher()(rgb[None])[0, 0].numpy()
    np.testing.assert_allclose(values, raw / raw.max(), atol=1e-5)


def test_depth_anything_v2_experiment_predicts(odd_photo, tmp_path, da2_bind):
    out = tmp_path / "out"
    assert cli(predict_main, "--gin", DA2_GIN, "--bind", da2_bind, "--input", odd_photo,
               "--output", out, "--device", "cpu", "--save", "npy,png16,color,ply") == 0
    check_outputs(out)


def test_load_predictor_builds_the_bound_teacher(da2_bind):
    predictor = load_predictor([DA2_GIN], None, [da2_bind, "depth_anything_v2.input_size = 28"],
                               device="cpu")
    assert isinstance(predictor.model, PeakNormalised)
    assert isinstance(predictor.model.model, DepthAnythingTeacher)
    assert predictor.model.model.patch == 14 and predictor.model.model.input_size == 28
    assert predictor.output_kind is OutputKind.DISPARITY and predictor.processing_res == 0


def write_folder_set(root, count: int = 2):
    """A `folder` evaluation set of small odd-sized images with depth in millimetres."""
    rng = np.random.default_rng(1)
    for sub in ("rgb", "depth"):
        (root / sub).mkdir(parents=True)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (45, 61, 3), np.uint8)).save(
            root / "rgb" / f"{index}.png")
        depth = np.linspace(1000, 4000, 45 * 61).reshape(45, 61).astype(np.uint16)
        Image.fromarray(depth).save(root / "depth" / f"{index}.png")
    return root


@pytest.mark.parametrize("experiment", ["mini", "da2"])
def test_evaluate_accepts_teacher_experiments(experiment, tmp_path, da2_bind, capsys):
    data = write_folder_set(tmp_path / "set")
    gin_args = ["--gin", MINI_GIN] if experiment == "mini" else ["--gin", DA2_GIN, "--bind",
                                                                 da2_bind]
    output = tmp_path / "result.json"
    assert cli(evaluate_main, *gin_args, "--dataset", "folder", "--data-dir", data,
               "--depth-scale", "1000", "--metrics", "abs_rel,delta1", "--output", output,
               "--no-progress") == 0
    assert "| folder" in capsys.readouterr().out
    assert '"alignment": "disparity"' in output.read_text()


def test_weights_of_a_pretraining_run_load_into_a_copy(tmp_path, odd_photo):
    torch.manual_seed(0)
    recipe = TeacherPretraining(MiniTeacherNetwork(), INPUT_SIZE)
    trained = check_parameter_groups(recipe, recipe.parameter_groups())
    save_checkpoint(tmp_path / "run", 5, trained, {}, evaluated=evaluated_prefixes(recipe))
    shipped = mini_teacher()
    before = {k: v.clone() for k, v in shipped.state_dict().items()}
    predictor = load_predictor([PRETRAIN_GIN], str(tmp_path / "run"), device="cpu")
    loaded = predictor.model.model
    assert loaded is not shipped
    for name, tensor in shipped.state_dict().items():  # the shared teacher is untouched
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0)
    rgb = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    recipe.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(rgb), recipe.evaluated_model().predict(rgb))


def test_weights_from_another_model_are_refused(tmp_path):
    from safetensors.torch import save_file

    file = tmp_path / "other.safetensors"
    save_file({"model.unrelated.weight": torch.zeros(2)}, str(file))
    with pytest.raises(UserError, match="lack"):
        load_predictor([MINI_GIN], str(file), device="cpu")
