"""E2E-FT's recipe on tiny blocks: the UNet learns through the frozen decoder, the prediction is
the inference mode's, and normals are an optional second task."""
from __future__ import annotations

import pytest
import torch

from depthlab.data.batch import Batch, LabelledBatch
from depthlab.errors import UserError
from depthlab.models.backbone import small_backbone
from depthlab.models.codec import LatentCodec, small_vae
from depthlab.models.depth_model import DepthModel
from depthlab.models.modes import DirectLatentMode, E2EFTMode, LotusGMode
from depthlab.models.surgery import widen_conv_in
from depthlab.recipes.e2e_ft import E2EFT

from fiffdepth_helpers import one_thread  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(output_kind: str = "depth") -> DepthModel:
    torch.manual_seed(0)
    backbone = small_backbone(block_out_channels=(16, 32), cross_attention_dim=8,
                              attention_head_dim=4, norm_num_groups=8)
    widen_conv_in(backbone.unet, 8, scale_bias=True)
    codec = LatentCodec(small_vae(block_out_channels=(8, 16), norm_num_groups=8))
    return DepthModel(backbone, codec, E2EFTMode(output_kind=output_kind))


def make_batch(size: int = 16, normals: bool = False) -> Batch:
    generator = torch.Generator().manual_seed(2)
    valid = torch.rand(2, 1, size, size, generator=generator) > 0.05
    ramp = torch.linspace(1.0, 6.0, size).view(1, 1, 1, size).expand(2, 1, size, size)
    extras = {}
    if normals:
        n = torch.randn(2, 3, size, size, generator=generator)
        extras["normals"] = n / n.norm(dim=1, keepdim=True)
    return Batch(LabelledBatch(torch.rand(2, 3, size, size, generator=generator),
                               ramp.contiguous(), valid, extras=extras))


def unet_vector(recipe: E2EFT) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in recipe.model.backbone.parameters()])


def test_one_step_changes_the_unet_and_lowers_the_loss_on_that_batch():
    recipe, batch = E2EFT(model=make_model()), make_batch()
    optimizer = torch.optim.SGD(recipe.parameter_groups()[0].parameters, lr=0.05)
    before_weights = unet_vector(recipe)
    loss = recipe.losses(batch, torch.Generator().manual_seed(0)).total
    loss.backward()
    optimizer.step()
    after = recipe.losses(batch, torch.Generator().manual_seed(0)).total
    assert not torch.equal(unet_vector(recipe), before_weights)
    assert float(after) < float(loss)
    assert all(not p.requires_grad for p in recipe.model.codec.parameters())


def test_the_prediction_is_the_inference_modes_decoded_and_clipped():
    recipe, batch = E2EFT(model=make_model()), make_batch()
    with torch.no_grad():  # a decoder whose output leaves [-1, 1] on both sides, so clipping shows
        recipe.model.codec.vae.decoder.conv_out.weight.mul_(40.0)
    captured = {}

    def loss(prediction, target, mask):
        captured["prediction"] = prediction
        return prediction.mean()

    recipe.loss = loss
    recipe.losses(batch, torch.Generator().manual_seed(0))
    with torch.no_grad():
        unit = recipe.model.predict(batch.labelled.rgb)  # the mode: decoded, clipped, to [0, 1]
    assert torch.allclose((captured["prediction"] + 1.0) / 2.0, unit, atol=1e-6)
    assert (captured["prediction"] == 1.0).any() and (captured["prediction"] == -1.0).any()


def test_the_loss_sees_the_gt_in_metres():
    recipe, batch = E2EFT(model=make_model()), make_batch()
    seen = {}

    def loss(prediction, target, mask):
        seen["target"], seen["mask"] = target, mask
        return prediction.mean()

    recipe.loss = loss
    recipe.losses(batch, torch.Generator().manual_seed(0))
    assert torch.equal(seen["target"], batch.labelled.depth)
    assert torch.equal(seen["mask"], batch.labelled.valid)


def test_normals_task_uses_unit_normals_and_the_angular_loss():
    recipe = E2EFT(model=make_model("normals"), task="normals")
    output = recipe.losses(make_batch(normals=True), torch.Generator().manual_seed(0))
    assert set(output.terms) == {"normals"}
    assert 0.0 < float(output.total) <= torch.pi
    with torch.no_grad():
        predicted = recipe.model.predict(make_batch().labelled.rgb)
    assert predicted.shape[1] == 3
    assert torch.allclose(predicted.norm(dim=1), torch.ones(1), atol=1e-3)


def test_the_normals_loss_sees_the_unit_prediction_the_normals_and_the_mask():
    recipe, batch = E2EFT(model=make_model("normals"), task="normals"), make_batch(normals=True)
    seen = {}

    def loss(prediction, target, mask):
        seen.update(prediction=prediction, target=target, mask=mask)
        return prediction.mean()

    recipe.loss = loss
    recipe.losses(batch, torch.Generator().manual_seed(0))
    with torch.no_grad():
        predicted = recipe.model.predict(batch.labelled.rgb)
    assert torch.allclose(seen["prediction"], predicted, atol=1e-6)
    assert torch.equal(seen["target"], batch.labelled.extras["normals"])
    assert torch.equal(seen["mask"], batch.labelled.valid)


def test_normals_task_without_normals_in_the_batch_is_a_user_error():
    recipe = E2EFT(model=make_model("normals"), task="normals")
    with pytest.raises(UserError, match="extra_targets"):
        recipe.losses(make_batch(), torch.Generator().manual_seed(0))


def test_depth_training_never_needs_normals():
    E2EFT(model=make_model()).losses(make_batch(), torch.Generator().manual_seed(0))


@pytest.mark.parametrize("task, kind", [("depth", "normals"), ("normals", "depth")])
def test_task_and_declared_output_must_agree(task, kind):
    with pytest.raises(UserError, match="E2EFTMode.output_kind"):
        E2EFT(model=make_model(kind), task=task)


def test_unknown_task_and_other_modes_are_refused():
    with pytest.raises(UserError, match="Unknown E2EFT.task"):
        E2EFT(model=make_model(), task="albedo")
    model = make_model()
    model.mode = DirectLatentMode()
    with pytest.raises(UserError, match="E2EFTMode"):
        E2EFT(model=model)


def test_panels_show_the_clipped_prediction_in_unit_range():
    recipe, batch = E2EFT(model=make_model()), make_batch()
    assert recipe.losses(batch, torch.Generator().manual_seed(0)).panels == {}
    panels = recipe.losses(batch, torch.Generator().manual_seed(0), with_panels=True).panels
    assert set(panels) == {"synthetic/prediction"}
    with torch.no_grad():
        unit = recipe.model.predict(batch.labelled.rgb)
    assert torch.allclose(panels["synthetic/prediction"].values, unit, atol=1e-6)
    assert panels["synthetic/prediction"].kind.value == "depth"
    normals = E2EFT(model=make_model("normals"), task="normals")
    with_normals = make_batch(normals=True)
    panels = normals.losses(with_normals, torch.Generator().manual_seed(0),
                            with_panels=True).panels
    assert set(panels) == {"synthetic/normals"} and panels["synthetic/normals"].kind is None
    with torch.no_grad():
        predicted = normals.model.predict(with_normals.labelled.rgb)
    assert torch.allclose(panels["synthetic/normals"].values, (predicted + 1.0) / 2.0, atol=1e-6)


def test_messages_name_the_bindings_exactly():
    with pytest.raises(UserError) as error:
        E2EFT(model=make_model()).losses(Batch(), torch.Generator().manual_seed(0))
    assert str(error.value).startswith("E2EFT trains on labelled images only, but the batch has none: "
                                "bind MixedBatches.labelled.")
    with pytest.raises(UserError) as error:
        E2EFT(model=make_model(), task="albedo")
    assert str(error.value).startswith(
        "Unknown E2EFT.task 'albedo': expected one of depth, normals.")
    model = make_model()
    model.mode = DirectLatentMode()
    with pytest.raises(UserError) as error:
        E2EFT(model=model)
    assert "the model's mode is DirectLatentMode;" in str(error.value)
    with pytest.raises(UserError) as error:
        E2EFT(model=make_model("normals"), task="normals").losses(
            make_batch(), torch.Generator().manual_seed(0))
    assert str(error.value).startswith(
        "E2EFT.task = 'normals' needs normals in the batch: set MixedBatches.extra_targets = "
        "['normals'] and data that provides them (e.g. MiniWorldDataset.normals = True).")


def test_lotus_g_input_trains_through_the_same_recipe():
    """With `LotusGMode` the recipe trains on Lotus-G's noise input (fresh noise, seed None)."""
    model = make_model()
    model.mode = LotusGMode(seed=None)
    recipe = E2EFT(model=model, depth_loss="ssi_mae_median")
    step = recipe.losses(make_batch(), torch.Generator())
    step.total.backward()
    assert torch.isfinite(step.total)
    assert model.backbone.unet.conv_in.weight.grad[:, 4:].abs().sum() > 0  # noise reaches conv_in
