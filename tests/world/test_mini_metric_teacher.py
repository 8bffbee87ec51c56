"""The mini metric teacher: the mini teacher's network with a 20 m x sigmoid head behind the same
preprocessing, its shipped weights (frozen, built once, metres of the right scale on average and
coarse detail), and the round trip from a pretraining run through `export_run`."""
from pathlib import Path

import gin
import numpy as np
import pytest
import torch

from depthlab.data.batch import Batch, LabelledBatch
from depthlab.errors import UserError
from depthlab.models.freezing import frozen_parameter_owners
from depthlab.models.output_kind import OutputKind
from depthlab.recipes.metric_teacher_pretraining import MetricTeacherPretraining
from depthlab.teachers.metric import MetricDepthTeacher
from depthlab.train.checkpoint import save_checkpoint
from depthlab.train.loop import check_parameter_groups, evaluated_prefixes
from depthlab.world.layout import MAX_DEPTH
from depthlab.world.mini_metric_teacher import MiniMetricTeacherNetwork, mini_metric_teacher
from depthlab.world.mini_teacher import INPUT_SIZE
from depthlab.world.shipped import export_run, shipped_file

from teacher_helpers import one_thread_fresh_teachers, val_batch  # noqa: F401  (autouse fixture)

REPO = Path(__file__).resolve().parents[2]


def test_shipped_teacher_is_a_frozen_metric_teacher_built_once():
    assert shipped_file("metric_teacher").is_file()
    teacher = mini_metric_teacher()
    assert type(teacher) is MetricDepthTeacher and teacher.frozen
    assert type(teacher.model) is MiniMetricTeacherNetwork
    assert teacher.model.max_depth == MAX_DEPTH == 20.0
    assert teacher.output_kind is OutputKind.METRIC_DEPTH
    assert teacher.multiple == 8 and teacher.input_size == INPUT_SIZE == 64
    assert not any(p.requires_grad for p in teacher.parameters())
    assert len(frozen_parameter_owners(teacher)) == len(list(teacher.parameters()))
    assert mini_metric_teacher() is teacher  # built once per process
    teacher.train()
    assert not teacher.training and not teacher.model.training
    rgb = val_batch(count=1)["rgb"].requires_grad_()
    assert not teacher(rgb).requires_grad  # computed without autograd


@pytest.mark.parametrize("domain", ["synthetic", "real"])
def test_shipped_teacher_has_the_truths_scale_and_coarse_detail(domain):
    batch = val_batch(domain, 8)
    out = mini_metric_teacher()(batch["rgb"])
    assert out.shape == (8, 1, 64, 64) and (out > 0).all() and (out < MAX_DEPTH).all()

    def sharpest_step(x):  # largest neighbour difference, in units of the map's spread
        x = (x - x.mean()) / x.std()
        return max(np.abs(np.diff(x, axis=0)).max(), np.abs(np.diff(x, axis=1)).max())

    ratios, correlations, sharpness = [], [], []
    for prediction, depth, valid in zip(out[:, 0], batch["depth"][:, 0], batch["valid"][:, 0]):
        p, g = prediction[valid].numpy(), depth[valid].numpy()
        ratios.append(np.median(p / g))
        correlations.append(np.corrcoef(np.log(p), np.log(g))[0, 1])
        sharpness.append(sharpest_step(prediction.numpy()) / sharpest_step(depth.numpy()))
    # Metric: the median over images of the per-image median ratio to the truth is near 1
    # (measured 0.92 synthetic, 0.83 real on these scenes; an untrained network's, about 10 m
    # everywhere, is 2.6 and 2.8). Log depth correlates with the truth's (0.86 / 0.80; untrained
    # -0.28 / 0.04). Low-pass: its sharpest edge is a fifth of the truth's (0.19 / 0.23;
    # untrained 0.98).
    assert 0.6 < np.median(ratios) < 1.6
    assert np.mean(correlations) > 0.6
    assert np.median(sharpness) < 0.6


def test_any_image_size_comes_back_at_its_own_size():
    out = mini_metric_teacher()(torch.rand(1, 3, 97, 131,
                                           generator=torch.Generator().manual_seed(0)))
    assert out.shape == (1, 1, 97, 131) and torch.isfinite(out).all() and (out > 0).all()


def _trained_run(run_dir: Path) -> MetricTeacherPretraining:
    """A recipe whose network took one optimizer step, checkpointed as the trainer does."""
    torch.manual_seed(0)
    recipe = MetricTeacherPretraining(MiniMetricTeacherNetwork(), INPUT_SIZE)
    batch = val_batch("synthetic", 2)
    recipe.losses(Batch(LabelledBatch(batch["rgb"], batch["depth"], batch["valid"])),
                  torch.Generator()).total.backward()
    torch.optim.SGD(recipe.parameters(), lr=0.1).step()
    trained = check_parameter_groups(recipe, recipe.parameter_groups())
    save_checkpoint(run_dir, 1, trained, {}, evaluated=evaluated_prefixes(recipe))
    return recipe


def test_trained_network_round_trips_through_export_and_mini_metric_teacher(tmp_path):
    run_dir = tmp_path / "run"
    recipe = _trained_run(run_dir)
    rgb = val_batch("real", 3)["rgb"]
    with torch.no_grad():
        expected = recipe.evaluated_model().eval().predict(rgb)
    torch.testing.assert_close(mini_metric_teacher(weights=str(run_dir))(rgb), expected,
                               rtol=0, atol=0)
    exported = export_run(run_dir, "network.", "metric_teacher", root=tmp_path / "weights")
    assert exported.name == "metric_teacher.safetensors"
    loaded = mini_metric_teacher(weights=str(exported))(rgb)
    torch.testing.assert_close(loaded, expected, rtol=2e-2, atol=2e-2)
    assert mini_metric_teacher(weights=str(exported)) is not \
        mini_metric_teacher(weights=str(run_dir))


def test_weights_of_another_shape_are_a_user_error(tmp_path):
    _trained_run(tmp_path / "run")
    with gin.unlock_config():
        gin.bind_parameter("MiniMetricTeacherNetwork.channels", (16, 64, 128, 128))
    try:
        with pytest.raises(UserError, match="do not fit"):
            mini_metric_teacher(weights=str(tmp_path / "run"))
    finally:
        gin.clear_config()


def test_gin_file_builds_one_shared_teacher():
    gin.clear_config()
    try:
        gin.parse_config_file(str(REPO / "gin/teachers/mini_metric.gin"))
        first, second = (gin.query_parameter("%METRIC_TEACHER"),
                         gin.query_parameter("%METRIC_TEACHER"))
        assert first.scoped_configurable_fn() is second.scoped_configurable_fn()
        assert first.scoped_configurable_fn() is mini_metric_teacher()
    finally:
        gin.clear_config()
