"""MetricTeacherPretraining: the SILog loss on GT depth in metres over valid pixels, a network
evaluated as a metric predictor (no alignment), and metric Depth Anything networks accepted where
relative ones are refused."""
import pytest
import torch
from transformers import DepthAnythingForDepthEstimation

from depthlab.data.batch import Batch, LabelledBatch, UnlabelledBatch
from depthlab.errors import UserError
from depthlab.losses.metric import silog
from depthlab.models.output_kind import OutputKind
from depthlab.recipes.metric_teacher_pretraining import MetricTeacherPretraining, metric_mask
from depthlab.recipes.teacher_pretraining import MIN_DEPTH
from depthlab.teachers.metric import DepthAnythingMetricPredictor, MetricDepthPredictor
from depthlab.testing.tiny_models import save_depth_anything_dir, save_metric_depth_anything_dir
from depthlab.train.loop import check_parameter_groups, evaluated_prefixes
from depthlab.world.mini_metric_teacher import MiniMetricTeacherNetwork
from depthlab.world.mini_teacher import INPUT_SIZE

from fiffdepth_helpers import one_thread  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def make_recipe(**kwargs) -> MetricTeacherPretraining:
    torch.manual_seed(0)
    return MetricTeacherPretraining(MiniMetricTeacherNetwork(), INPUT_SIZE, **kwargs)


def labelled(count: int = 2) -> LabelledBatch:
    generator = torch.Generator().manual_seed(0)
    depth = 1.0 + 9.0 * torch.rand(count, 1, 64, 64, generator=generator)
    depth[:, :, 8:10] = 0.0  # holes: valid but no depth
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[:, :, :8] = False  # sky
    return LabelledBatch(torch.rand(count, 3, 64, 64, generator=generator), depth, valid)


def test_the_mask_keeps_valid_depths_above_the_minimum_and_up_to_max_depth():
    depth = torch.tensor([[[[2.0, 30.0, MIN_DEPTH, 5.0, 20.0]]]])
    valid = torch.tensor([[[[True, True, True, False, True]]]])
    assert metric_mask(depth, valid).tolist() == [[[[True, True, False, False, True]]]]
    assert metric_mask(depth, valid, 20.0).tolist() == [[[[True, False, False, False, True]]]]


def test_the_network_trains_and_is_evaluated_as_a_metric_predictor():
    recipe = make_recipe()
    trained = check_parameter_groups(recipe, recipe.parameter_groups())
    assert trained and all(name.startswith("network.") for name in trained)
    model = recipe.evaluated_model()
    assert type(model) is MetricDepthPredictor and model.model is recipe.network
    assert model.output_kind is OutputKind.METRIC_DEPTH and model.output_kind.alignment == "none"
    assert model.multiple == 8 and model.input_size == INPUT_SIZE
    assert evaluated_prefixes(recipe) == {"model": "network"}
    recipe.train()
    assert recipe.network.training


def test_the_loss_is_silog_on_gt_metres_over_the_mask():
    recipe = make_recipe(max_depth=8.0)
    batch = labelled()
    out = recipe.losses(Batch(batch), torch.Generator(), with_panels=True)
    prediction = recipe.predictor.predict(batch.rgb)
    mask = batch.valid & (batch.depth > MIN_DEPTH) & (batch.depth <= 8.0)
    torch.testing.assert_close(out.terms["metric"], silog(prediction, batch.depth, mask))
    assert out.total is out.terms["metric"] and set(out.terms) == {"metric"}
    out.total.backward()
    assert recipe.network.head.weight.grad.abs().sum() > 0
    assert {k: v.kind for k, v in out.panels.items()} == {
        "synthetic/prediction": OutputKind.METRIC_DEPTH, "synthetic/gt": OutputKind.METRIC_DEPTH}
    assert float(out.panels["synthetic/gt"].values.max()) <= 8.0
    assert not recipe.losses(Batch(batch), torch.Generator()).panels


def test_the_network_outputs_metres_below_its_max_depth():
    network = MiniMetricTeacherNetwork(max_depth=5.0)
    with torch.no_grad():
        depth = network(torch.randn(2, 3, 16, 24, generator=torch.Generator().manual_seed(0)))
    assert depth.shape == (2, 1, 16, 24) and (depth > 0).all() and (depth < 5.0).all()


def test_unlabelled_images_and_other_spaces_are_user_errors():
    recipe = make_recipe()
    rgb = torch.rand(1, 3, 64, 64)
    with pytest.raises(UserError, match="MetricTeacherPretraining learns from ground truth"):
        recipe.losses(Batch(labelled(), UnlabelledBatch(rgb)), torch.Generator())
    recipe.check_target_space("depth")
    with pytest.raises(UserError, match="metres"):
        recipe.check_target_space("disparity")
    with pytest.raises(UserError, match="gradient checkpointing"):
        recipe.enable_gradient_checkpointing()


def test_a_metric_depth_anything_trains_through_its_own_predictor(tmp_path):
    network = DepthAnythingForDepthEstimation.from_pretrained(
        save_metric_depth_anything_dir(tmp_path / "metric"))
    recipe = MetricTeacherPretraining(network, 28)
    assert type(recipe.evaluated_model()) is DepthAnythingMetricPredictor
    recipe.losses(Batch(labelled(1)), torch.Generator()).total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in network.parameters())
    relative = DepthAnythingForDepthEstimation.from_pretrained(
        save_depth_anything_dir(tmp_path / "relative"))
    with pytest.raises(UserError, match="'relative' head"):
        MetricTeacherPretraining(relative, 28)


def test_panels_show_the_prediction_and_the_masked_gt():
    recipe = make_recipe()
    batch = labelled()
    out = recipe.losses(Batch(batch), torch.Generator(), with_panels=True)
    torch.testing.assert_close(out.panels["synthetic/prediction"].values,
                               recipe.predictor.predict(batch.rgb).detach())
    gt = out.panels["synthetic/gt"].values
    assert torch.all(gt[:, :, :8] == 0)  # the sky is shown as 0, not a depth


def test_settings_reach_the_predictor(tmp_path):
    assert make_recipe().predictor.input_size == INPUT_SIZE
    plain = MetricTeacherPretraining(torch.nn.Conv2d(3, 1, 1))  # no input_multiple: 1
    assert plain.predictor.multiple == 1 and plain.predictor.input_size == 518
    network = DepthAnythingForDepthEstimation.from_pretrained(
        save_metric_depth_anything_dir(tmp_path / "metric"))
    recipe = MetricTeacherPretraining(network, 28)
    assert recipe.predictor.input_size == 28
    recipe.enable_gradient_checkpointing()
    assert getattr(network, "is_activation_checkpointing", None) or network.is_gradient_checkpointing
