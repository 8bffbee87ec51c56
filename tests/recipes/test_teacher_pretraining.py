"""TeacherPretraining: the recipe's contract, its loss on GT disparity, and a two-step run of
`experiments/mini/pretrain/teacher.gin` through `python -m depthlab.run`."""
import json
from pathlib import Path

import gin
import pytest
import torch

from depthlab.data.batch import Batch, LabelledBatch, UnlabelledBatch
from depthlab.errors import UserError
from depthlab.losses.scale_shift import median_normalised_mae
from depthlab.models.output_kind import OutputKind
from depthlab.models.weights import EVALUATED_FILE, latest_checkpoint
from depthlab.recipes.teacher_pretraining import (TeacherPretraining, disparity_target,
                                                   per_image_mean)
from depthlab.run import main as run_main
from depthlab.teachers.depth_anything import DepthAnythingPredictor
from depthlab.teachers.disparity_predictor import DisparityPredictor
from depthlab.testing.tiny_models import save_depth_anything_dir
from depthlab.train.loop import check_parameter_groups, evaluated_prefixes
from depthlab.world.mini_teacher import INPUT_SIZE, MiniTeacherNetwork

EXPERIMENT = str(Path(__file__).resolve().parents[2] / "experiments/mini/pretrain/teacher.gin")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_recipe(**kwargs) -> TeacherPretraining:
    torch.manual_seed(0)
    return TeacherPretraining(MiniTeacherNetwork(), INPUT_SIZE, **kwargs)


def labelled(count: int = 2) -> LabelledBatch:
    generator = torch.Generator().manual_seed(0)
    depth = 1.0 + 9.0 * torch.rand(count, 1, 64, 64, generator=generator)
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[:, :, :8] = False  # sky
    return LabelledBatch(torch.rand(count, 3, 64, 64, generator=generator), depth, valid)


def test_gt_disparity_is_inverse_depth_on_valid_pixels_only():
    depth = torch.tensor([[[[2.0, 4.0, 0.0, 5.0]]]])
    valid = torch.tensor([[[[True, True, True, False]]]])
    target, mask = disparity_target(depth, valid)
    torch.testing.assert_close(target, torch.tensor([[[[0.5, 0.25, 0.0, 0.0]]]]))
    assert mask.tolist() == [[[[True, True, False, False]]]]


def test_per_image_mean_over_valid_pixels():
    values = torch.tensor([[[[2.0, 4.0, 100.0]]], [[[5.0, 5.0, 5.0]]]])
    mask = torch.tensor([[[[True, True, False]]], [[[False, False, False]]]])
    assert per_image_mean(values, mask).flatten().tolist() == [3.0, 1.0]  # none valid: 1


def test_the_network_trains_and_is_evaluated_through_the_teacher_preprocessing():
    recipe = make_recipe()
    trained = check_parameter_groups(recipe, recipe.parameter_groups())
    assert trained and all(name.startswith("network.") for name in trained)
    assert all(p.requires_grad for p in recipe.network.parameters())
    model = recipe.evaluated_model()
    assert type(model) is DisparityPredictor and model.model is recipe.network
    assert model.output_kind is OutputKind.DISPARITY and model.multiple == 8
    assert evaluated_prefixes(recipe) == {"model": "network"}
    recipe.train()
    assert recipe.network.training  # not frozen: a Teacher would force eval mode


def test_a_depth_anything_network_trains_through_its_own_predictor(tmp_path):
    from transformers import DepthAnythingForDepthEstimation
    network = DepthAnythingForDepthEstimation.from_pretrained(
        save_depth_anything_dir(tmp_path / "da2"))
    recipe = TeacherPretraining(network, 28)
    assert type(recipe.evaluated_model()) is DepthAnythingPredictor
    assert recipe.evaluated_model().patch == network.config.backbone_config.patch_size
    out = recipe.losses(Batch(labelled()), torch.Generator())
    out.total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in network.parameters())


def test_gradient_checkpointing_of_a_network_without_it_is_a_user_error():
    with pytest.raises(UserError, match="gradient checkpointing"):
        make_recipe().enable_gradient_checkpointing()


def test_losses_are_the_registered_losses_on_gt_disparity():
    recipe = make_recipe(gradient_weight=0.25)
    batch = labelled()
    out = recipe.losses(Batch(batch), torch.Generator(), with_panels=True)
    prediction = recipe.predictor.predict(batch.rgb)
    target, mask = disparity_target(batch.depth, batch.valid)
    target = target / per_image_mean(target, mask)  # normalise_target (the default)
    expected = median_normalised_mae(prediction, target, mask)  # the default loss
    torch.testing.assert_close(out.terms["ssi"], expected)
    torch.testing.assert_close(out.total, out.terms["ssi"] + 0.25 * out.terms["gradient"])
    out.total.backward()
    assert recipe.network.head.weight.grad.abs().sum() > 0
    assert set(out.panels) == {"synthetic/prediction", "synthetic/gt"}
    assert float(out.panels["synthetic/gt"].values.max()) == pytest.approx(1.0)
    assert set(make_recipe(gradient_weight=0.0).losses(Batch(batch), torch.Generator()).terms) \
        == {"ssi"}


def test_unlabelled_images_and_other_spaces_are_user_errors():
    recipe = make_recipe()
    rgb = torch.rand(1, 3, 64, 64)
    with pytest.raises(UserError, match="ground truth only"):
        recipe.losses(Batch(labelled(), UnlabelledBatch(rgb)), torch.Generator())
    with pytest.raises(UserError, match="ground truth only"):
        recipe.losses(Batch(None, UnlabelledBatch(rgb)), torch.Generator())
    recipe.check_target_space("disparity")
    with pytest.raises(UserError, match="disparity"):
        recipe.check_target_space("depth")


def test_two_steps_of_the_experiment_run_and_evaluate(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["--gin", EXPERIMENT, "--run-dir", str(run_dir),
            "--bind", "TRAIN_STEPS = 2", "--bind", "BATCH_SIZE = 2",
            "--bind", "Trainer.eval_sets = {'mini_synthetic': {'length': 2}, "
                      "'mini_real': {'length': 2}}",
            "--bind", "batch_loader.num_workers = 0", "--bind", "Trainer.progress = False",
            "--bind", "Trainer.image_every = 1"]
    try:
        assert run_main(args) == 0
    finally:
        gin.clear_config()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"mini_synthetic", "mini_real"}
    assert "| mini_real | trained |" in capsys.readouterr().out
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint.name == "step-00000002"
    assert json.loads((checkpoint / EVALUATED_FILE).read_text()) == {
        "prefixes": {"model": "network"}}
    assert "MiniWorldDataset.split = 'pretrain'" in (run_dir / "config.gin").read_text()
