"""`Predictor` and `load_predictor`: resolution handling, batching, dtypes and weight loading."""
from __future__ import annotations

import gin
import numpy as np
import pytest
import torch
from PIL import Image

from depthlab.errors import UserError
from depthlab.inference.api import Predictor, load_predictor
from depthlab.models.output_kind import OutputKind
from depthlab.train.checkpoint import save_checkpoint

from inference_helpers import model_weights


def image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


@pytest.mark.parametrize("vae_blocks", [(32, 64, 64), (32, 32, 64, 64)], ids=["f4", "f8"])
def test_outputs_match_each_input_resolution(vae_blocks, small_model_factory):
    predictor = Predictor(small_model_factory(vae_blocks), processing_res=0)
    inputs = [image(64, 64), image(37, 53, 1), image(5, 3, 2)]
    outputs = predictor.predict(inputs)
    assert [o.shape for o in outputs] == [(64, 64), (37, 53), (5, 3)]
    for output in outputs:
        assert output.dtype == np.float32
        assert 0.0 <= output.min() and output.max() <= 1.0


def test_batches_equal_single_predictions(small_model):
    inputs = [image(64, 64, seed) for seed in range(3)] + [image(48, 40, 3)]
    single = Predictor(small_model, processing_res=0, batch_size=1).predict(inputs)
    batched = Predictor(small_model, processing_res=0, batch_size=3).predict(inputs)
    for a, b in zip(single, batched):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_processing_resolution_resizes_and_restores(small_model):
    seen = []
    original = small_model.predict
    small_model.predict = lambda rgb: seen.append(tuple(rgb.shape[-2:])) or original(rgb)
    output = Predictor(small_model, processing_res=32).predict([image(60, 90)])[0]
    assert seen == [(24, 32)]  # 60x90 -> 21x32 by the longer side, padded to multiples of 4
    assert output.shape == (60, 90)


def test_recipe_default_resolution_comes_from_gin(small_model):
    gin.bind_parameter("default_processing_res.resolution", 48)
    assert Predictor(small_model).processing_res == 48
    assert Predictor(small_model, processing_res=0).processing_res == 0


def test_pil_and_numpy_inputs_agree(small_model):
    array = image(32, 48)
    predictor = Predictor(small_model, processing_res=0)
    from_numpy, from_pil = predictor.predict([array, Image.fromarray(array)])
    np.testing.assert_array_equal(from_numpy, from_pil)


def test_training_mode_is_restored(small_model):
    small_model.train()
    Predictor(small_model, processing_res=0).predict([image(32, 32)])
    assert small_model.training


def test_bfloat16_autocast_runs_on_cpu(small_model):
    reference = Predictor(small_model, processing_res=0).predict([image(32, 32)])[0]
    low = Predictor(small_model, processing_res=0, dtype="bfloat16").predict([image(32, 32)])[0]
    assert low.dtype == np.float32 and low.shape == (32, 32)
    assert np.abs(low - reference).mean() < 0.05


def test_space_and_bad_arguments(small_model):
    assert Predictor(small_model, processing_res=0).output_kind is OutputKind.DEPTH
    with pytest.raises(UserError):
        Predictor(small_model, dtype="float64")
    with pytest.raises(UserError):
        Predictor(small_model, processing_res=-1)


@pytest.fixture
def trained_run(tmp_path, fiffdepth_gin):
    """A run directory whose weights differ from the pretrained ones, and its predictions."""
    source = load_predictor([str(fiffdepth_gin)], None, device="cpu")
    with torch.no_grad():
        for parameter in source.model.backbone.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    run = tmp_path / "run"
    checkpoint = save_checkpoint(run, 10, model_weights(source.model), {})
    (run / "config.gin").write_text(fiffdepth_gin.read_text())
    return run, checkpoint, source.predict([image(40, 56)])[0]


@pytest.mark.parametrize("which", ["run", "checkpoint", "file"])
def test_load_predictor_reads_weights(trained_run, fiffdepth_gin, which):
    run, checkpoint, expected = trained_run
    weights = {"run": run, "checkpoint": checkpoint,
               "file": checkpoint / "model.safetensors"}[which]
    predictor = load_predictor([str(fiffdepth_gin)], str(weights), device="cpu")
    np.testing.assert_allclose(predictor.predict([image(40, 56)])[0], expected, atol=1e-6)


def test_load_predictor_finds_the_run_config(trained_run):
    run, _, expected = trained_run
    predictor = load_predictor([], str(run), device="cpu")
    assert predictor.output_kind is OutputKind.DEPTH
    np.testing.assert_allclose(predictor.predict([image(40, 56)])[0], expected, atol=1e-6)


def test_load_predictor_without_gin_or_config(tmp_path):
    with pytest.raises(UserError, match="config.gin"):
        load_predictor([], str(tmp_path), device="cpu")
