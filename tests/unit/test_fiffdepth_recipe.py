"""FiffDepth's losses: the terms of methods.md, computed with two batched UNet passes."""
import pytest
import torch

from depthlab.data.batch import Batch
from depthlab.heads.fiffdepth_filter import TMinusOneFilter
from depthlab.models.output_kind import OutputKind

from fiffdepth_helpers import make_batch, make_recipe, separate_pass_terms
from fiffdepth_helpers import one_thread  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

# Non-default bindings, the gradient reaching d0 through the filter, and `mask_trajectory` are
# tested in tests/recipes/.


def test_terms_match_the_paper_written_as_separate_passes():
    recipe, batch = make_recipe(), make_batch()
    out = recipe.losses(batch, torch.Generator().manual_seed(7))
    expected = separate_pass_terms(recipe, batch, seed=7)  # the paper's defaults
    for name in ("t0", "trajectory", "t_minus_1"):
        assert torch.allclose(out.terms[name], expected[name], rtol=1e-4, atol=1e-5), name
    total = expected["t0"] + expected["t_minus_1"] + 0.2 * expected["trajectory"]
    assert torch.allclose(out.total, total, rtol=1e-4, atol=1e-5)
    assert torch.allclose(out.total, expected["total"], rtol=1e-4, atol=1e-5)


def test_teacher_only_batch_has_only_the_filter_term():
    recipe = make_recipe(filter_head=TMinusOneFilter(detach_input=True), trajectory_weight=0.0)
    batch = Batch(None, make_batch().unlabelled)
    out = recipe.losses(batch, torch.Generator().manual_seed(0))
    assert set(out.terms) == {"t_minus_1"}
    out.total.backward()  # still reaches the UNet through the t = -1 pass
    assert recipe.model.backbone.unet.conv_in.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, expected", [
    ({"teacher": None}, {"t0", "trajectory"}),
    ({"filter_head": TMinusOneFilter(enabled=False)}, {"t0", "trajectory", "teacher_on_t0"}),
    ({"trajectory_weight": 0.0}, {"t0", "t_minus_1"}),
])
def test_ablation_switches_change_the_terms(kwargs, expected):
    out = make_recipe(**kwargs).losses(make_batch(), torch.Generator().manual_seed(0),
                                       with_panels=True)
    assert set(out.terms) == expected
    assert all(p.values.min() >= 0 and p.values.max() <= 1 and p.kind is OutputKind.DEPTH
               for p in out.panels.values())


def test_codec_stays_frozen_and_unet_learns():
    recipe = make_recipe()
    recipe.losses(make_batch(), torch.Generator().manual_seed(0)).total.backward()
    assert all(p.grad is None for p in recipe.model.codec.parameters())
    assert recipe.model.backbone.unet.conv_in.weight.grad.abs().sum() > 0
