"""FiffDepth's side of the recipe contract: references, EMA, panels, the teacher-on-d0 total, the
student-fitted label, and the filter head on its own."""
import functools

import pytest
import torch

from depthlab.data.batch import Batch, UnlabelledBatch
from depthlab.errors import UserError
from depthlab.heads.fiffdepth_filter import TMinusOneFilter
from depthlab.losses.latent import latent_mae, latent_mse
from depthlab.models.ema import EMA
from depthlab.models.output_kind import OutputKind
from depthlab.targets import StudentFittedShift, TargetEncoder

from fiffdepth_helpers import make_batch, make_recipe, one_thread  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_teacher_is_the_reference_model():
    recipe = make_recipe()
    assert recipe.reference_models() == {"teacher": recipe.teacher}
    assert make_recipe(teacher=None).reference_models() == {}


def test_an_ema_binding_gives_the_recipe_an_ema_of_its_backbone():
    recipe = make_recipe(ema=functools.partial(EMA, decay=0.5, start_after=1, every=1))
    assert isinstance(recipe.ema, EMA)
    recipe.after_optimizer_step(1)
    assert recipe.ema.updates == 1
    assert recipe.evaluated_model().backbone is recipe.ema.module
    assert make_recipe().averaged() is None


def test_panels_only_when_asked_and_named_for_tensorboard():
    recipe, batch = make_recipe(), make_batch()
    assert recipe.losses(batch, torch.Generator().manual_seed(0)).panels == {}
    panels = recipe.losses(batch, torch.Generator().manual_seed(0), with_panels=True).panels
    assert set(panels) == {"synthetic/prediction_t0", "synthetic/label", "real/prediction_t0",
                           "real/filtered_t_minus_1", "real/teacher_label"}
    assert all(p.kind is OutputKind.DEPTH for p in panels.values())
    with torch.no_grad():
        pseudo = recipe.target.from_teacher(recipe.teacher(batch.unlabelled.rgb), "disparity")
    # the teacher label panel is the [-1, 1] label mapped to [0, 1]
    torch.testing.assert_close(panels["real/teacher_label"].values, (pseudo + 1) / 2)


def test_teacher_on_d0_counts_in_the_total():
    recipe = make_recipe(filter_head=TMinusOneFilter(enabled=False), trajectory_weight=0.0)
    out = recipe.losses(make_batch(), torch.Generator().manual_seed(0))
    assert set(out.terms) == {"t0", "teacher_on_t0"}
    torch.testing.assert_close(out.total, out.terms["t0"] + out.terms["teacher_on_t0"])


def test_nothing_to_learn_from_names_the_bindings():
    recipe = make_recipe(teacher=None)
    batch = Batch(None, UnlabelledBatch(torch.rand(2, 3, 16, 16)))
    with pytest.raises(UserError, match=r"^FiffDepth got a batch with nothing to learn from: "
                                        r"unlabelled images need a teacher \(FiffDepth\.teacher\)"
                                        r", or bind labelled data \(MixedBatches\.labelled\)\.$"):
        recipe.losses(batch, torch.Generator().manual_seed(0))


def test_a_student_fitted_label_is_fitted_to_d0(monkeypatch):
    recipe = make_recipe(target=TargetEncoder("depth", StudentFittedShift()))
    seen = []
    original = recipe.target.from_teacher

    def spy(output, space, valid=None, student=None):
        seen.append(student)
        return original(output, space, valid, student)

    monkeypatch.setattr(recipe.target, "from_teacher", spy)
    batch = make_batch()
    captured = []
    forward_many = recipe.model.backbone.forward_many
    monkeypatch.setattr(recipe.model.backbone, "forward_many",
                        lambda inputs: captured.append(forward_many(inputs)) or captured[-1])
    recipe.losses(batch, torch.Generator().manual_seed(0))
    d0_real = captured[0][1]
    with torch.no_grad():
        torch.testing.assert_close(seen[0], recipe.model.codec.decode_depth(d0_real))


def test_the_filter_head_alone_runs_the_backbone_at_minus_one():
    recipe = make_recipe()
    backbone, d0 = recipe.model.backbone, torch.randn(2, 4, 8, 8)
    assert TMinusOneFilter().detach_input is False  # the documented default
    with torch.no_grad():
        torch.testing.assert_close(TMinusOneFilter()(backbone, d0), backbone(d0, -1.0))
        assert not torch.allclose(backbone(d0, -1.0), backbone(d0, 0.0))


def test_a_single_valid_cell_is_its_own_mean():
    prediction, target = torch.tensor([[[[3.0, 9.0]]]]), torch.tensor([[[[1.0, 0.0]]]])
    mask = torch.tensor([[[[True, False]]]])
    assert latent_mae(prediction, target, mask).item() == 2.0  # |3 - 1| over one cell
    assert latent_mse(prediction, target, mask).item() == 4.0
