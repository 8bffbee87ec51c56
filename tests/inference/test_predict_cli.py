"""`python -m depthlab.predict`: outputs per image, and every awkward input the issue lists."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from depthlab.inference.api import load_predictor
from depthlab.predict import main
from depthlab.train.checkpoint import save_checkpoint

from inference_helpers import MARIGOLD_GIN, model_weights, read_ply


def run(*args: str) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as exit_:
        return int(exit_.code)


@pytest.fixture
def marigold_args(marigold_bindings) -> list[str]:
    args = ["--gin", MARIGOLD_GIN]
    for binding in marigold_bindings():
        args += ["--bind", binding]
    return args


@pytest.fixture
def photo_folder(tmp_path):
    """A folder of good images of every awkward kind, one corrupt file and a non-image."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), np.uint8)).save(folder / "odd.png")
    Image.fromarray(rng.integers(0, 256, (24, 32, 4), np.uint8), "RGBA").save(folder / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (24, 32), np.uint8), "L").save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 65536, (24, 32), np.uint16)).save(folder / "deep.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rng.integers(0, 256, (24, 40, 3), np.uint8)).save(folder / "rotated.jpg",
                                                                      exif=exif)
    Image.fromarray(rng.integers(0, 256, (900, 1400, 3), np.uint8)).save(folder / "large.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (folder / "notes.txt").write_text("not an image")
    return folder


EXPECTED_SHAPES = {"odd": (37, 53), "rgba": (24, 32), "gray": (24, 32), "deep": (24, 32),
                   "rotated": (40, 24), "large": (900, 1400)}


def test_folder_with_awkward_and_broken_files(photo_folder, tmp_path, marigold_args, capsys):
    out = tmp_path / "out"
    code = run(*marigold_args, "--input", photo_folder, "--output", out,
               "--processing-res", 64, "--batch-size", 2)
    assert code == 1  # something was skipped
    assert "broken.png" in capsys.readouterr().err
    for name, shape in EXPECTED_SHAPES.items():
        unit = np.load(out / f"{name}.npy")
        assert unit.shape == shape and unit.dtype == np.float32
        assert 0.0 <= unit.min() and unit.max() <= 1.0
        assert np.asarray(Image.open(out / f"{name}_16bit.png")).shape == shape
        assert Image.open(out / f"{name}_color.png").size == shape[::-1]
    assert not any(p.name.startswith(("broken", "notes")) for p in out.iterdir())


def test_single_photo_with_point_cloud(photo_folder, tmp_path, marigold_args):
    out = tmp_path / "out"
    code = run(*marigold_args, "--input", photo_folder / "odd.png", "--output", out,
               "--processing-res", 0, "--save", "npy,ply", "--intrinsics", "50,50,26.5,18.5")
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["odd.npy", "odd.ply"]
    header, vertices = read_ply(out / "odd.ply")
    assert len(vertices) == 37 * 53
    assert vertices["z"].min() >= 1.0 and vertices["z"].max() <= 10.0


def test_run_directory_alone_is_enough(photo_folder, tmp_path, fiffdepth_gin, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.gin").write_text(fiffdepth_gin.read_text())
    args = ["--weights", run_dir, "--input", photo_folder / "gray.png", "--output", tmp_path / "o"]
    assert run(*args) == 2  # no checkpoint yet: a user error naming what is expected
    assert "checkpoints/step-*" in capsys.readouterr().err
    model = load_predictor([str(fiffdepth_gin)], None, device="cpu").model
    save_checkpoint(run_dir, 5, model_weights(model), {})
    assert run(*args) == 0
    assert np.load(tmp_path / "o" / "gray.npy").shape == (24, 32)


@pytest.mark.parametrize("extra, message", [
    (["--save", "npy,jpeg"], "jpeg"),
    (["--input", "missing.png"], "does not exist"),
    (["--bind", "NOISE = 'pink'"], "pink"),
])
def test_user_errors_exit_with_code_two(photo_folder, tmp_path, marigold_args, capsys, extra,
                                        message):
    args = [*marigold_args, "--input", photo_folder / "odd.png", "--output", tmp_path / "out"]
    if extra[0] == "--input":
        args[args.index("--input") + 1] = tmp_path / extra[1]
    else:
        args += extra
    assert run(*args) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "depthlab.predict", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--processing-res" in result.stdout and "--save" in result.stdout
