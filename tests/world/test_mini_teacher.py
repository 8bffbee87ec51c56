"""The mini teacher: a strided CNN on an 8-pixel feature grid behind the same disparity-teacher
preprocessing as Depth Anything V2, its shipped weights, and the round trip from a pretraining run
through `export_run`."""
from pathlib import Path

import gin
import numpy as np
import pytest
import torch

from depthlab.errors import UserError
from depthlab.models.output_kind import OutputKind
from depthlab.recipes.teacher_pretraining import TeacherPretraining
from depthlab.teachers.disparity_predictor import DisparityTeacher, network_size
from depthlab.train.checkpoint import save_checkpoint
from depthlab.train.loop import check_parameter_groups, evaluated_prefixes
from depthlab.world.mini_teacher import INPUT_SIZE, MiniTeacherNetwork, mini_teacher
from depthlab.world.shipped import export_run, shipped_file

from teacher_helpers import one_thread_fresh_teachers, val_batch  # noqa: F401  (autouse fixture)

REPO = Path(__file__).resolve().parents[2]


def _trained_run(run_dir: Path) -> TeacherPretraining:
    """A recipe whose network took one optimizer step, checkpointed as the trainer does."""
    torch.manual_seed(0)
    recipe = TeacherPretraining(MiniTeacherNetwork(), INPUT_SIZE)
    batch = val_batch("synthetic", 2)
    prediction = recipe.predictor.predict(batch["rgb"])
    (prediction - 1.0 / batch["depth"].clamp_min(1e-3)).abs().mean().backward()
    torch.optim.SGD(recipe.parameters(), lr=0.1).step()
    trained = check_parameter_groups(recipe, recipe.parameter_groups())
    save_checkpoint(run_dir, 1, trained, {}, evaluated=evaluated_prefixes(recipe))
    return recipe


def test_shipped_teacher_is_a_frozen_disparity_teacher_on_an_8_pixel_grid():
    assert shipped_file("teacher").is_file()
    teacher = mini_teacher()
    assert type(teacher) is DisparityTeacher and teacher.frozen
    assert isinstance(teacher.model, MiniTeacherNetwork)
    assert teacher.output_kind is OutputKind.DISPARITY
    assert teacher.multiple == 8 and teacher.input_size == INPUT_SIZE == 64
    assert not any(p.requires_grad for p in teacher.parameters())
    assert mini_teacher() is teacher  # built once per process
    teacher.train()
    assert not teacher.training and not teacher.model.training


@pytest.mark.parametrize("domain", ["synthetic", "real"])
def test_shipped_teacher_predicts_disparity_with_less_detail_than_the_truth(domain):
    batch = val_batch(domain, 8)
    out = mini_teacher()(batch["rgb"])
    assert out.shape == (8, 1, 64, 64) and (out >= 0).all()
    truth = torch.where(batch["valid"], 1.0 / batch["depth"].clamp_min(1e-6), 0.0)

    def sharpest_step(x):  # largest neighbour difference, in units of the map's spread
        x = (x - x.mean()) / x.std()
        return max(np.abs(np.diff(x, axis=0)).max(), np.abs(np.diff(x, axis=1)).max())

    correlations, sharpness = [], []
    for prediction, disparity, valid in zip(out[:, 0], truth[:, 0], batch["valid"][:, 0]):
        correlations.append(np.corrcoef(prediction[valid].numpy(), disparity[valid].numpy())[0, 1])
        sharpness.append(sharpest_step(prediction.numpy()) / sharpest_step(disparity.numpy()))
    # Trained: near is large as in the truth (an untrained network correlates about 0; the
    # shipped weights about 0.7). Low-pass: its sharpest edge is well below the truth's.
    assert np.mean(correlations) > 0.5
    assert np.median(sharpness) < 0.7


def test_any_image_size_is_resized_to_the_patch_grid():
    assert network_size(97, 131, 64, 8) == (64, 88)
    assert network_size(480, 640, 518, 14) == (518, 686)
    out = mini_teacher()(torch.rand(1, 3, 97, 131, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (1, 1, 97, 131) and torch.isfinite(out).all()


def test_trained_network_round_trips_through_export_and_mini_teacher(tmp_path):
    run_dir = tmp_path / "run"
    recipe = _trained_run(run_dir)
    rgb = val_batch("real", 3)["rgb"]
    with torch.no_grad():
        expected = recipe.evaluated_model().eval().predict(rgb)
    # The run directory itself: float32, the exact weights.
    torch.testing.assert_close(mini_teacher(weights=str(run_dir))(rgb), expected, rtol=0,
                               atol=0)
    # Exported as shipped weights (float16), then loaded from that file.
    exported = export_run(run_dir, "network.", "teacher", root=tmp_path / "weights")
    loaded = mini_teacher(weights=str(exported))(rgb)
    torch.testing.assert_close(loaded, expected, rtol=2e-2, atol=2e-2 * float(expected.max()))
    assert mini_teacher(weights=str(exported)) is not mini_teacher(weights=str(run_dir))


def test_weights_of_another_shape_are_a_user_error(tmp_path):
    _trained_run(tmp_path / "run")
    with gin.unlock_config():
        gin.bind_parameter("MiniTeacherNetwork.channels", (16, 64, 128, 128))
    try:
        with pytest.raises(UserError, match="do not fit"):
            mini_teacher(weights=str(tmp_path / "run"))
    finally:
        gin.clear_config()


def test_the_encoder_features_live_on_the_stride_8_grid():
    network = mini_teacher().model
    pixels = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = network.features(pixels)
        disparity = network(pixels)
    assert features.shape == (2, 128, 8, 12)
    assert disparity.shape == (2, 1, 64, 96) and (disparity > 0).all()


def test_a_wrong_architecture_is_a_user_error():
    with pytest.raises(UserError, match="four encoder channels"):
        MiniTeacherNetwork(channels=(32, 64, 128))


def test_gin_file_builds_one_shared_teacher():
    gin.clear_config()
    try:
        gin.parse_config_file(str(REPO / "gin/teachers/mini.gin"))
        first, second = gin.query_parameter("%TEACHER"), gin.query_parameter("%TEACHER")
        assert first.scoped_configurable_fn() is second.scoped_configurable_fn()
        assert first.scoped_configurable_fn() is mini_teacher()
    finally:
        gin.clear_config()
