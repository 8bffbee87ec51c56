"""The filter's `detach_input` binding, read off the gradient the t = -1 term sends to d0."""
import pytest
import torch

from depthlab.heads.fiffdepth_filter import TMinusOneFilter

from fiffdepth_helpers import make_batch, make_recipe
from fiffdepth_helpers import one_thread  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def t_minus_1_gradients(monkeypatch, detach_input: bool):
    """(d t_minus_1 / d d0_real, d t_minus_1 / d conv_in.weight) for one step of the recipe;
    d0_real is the first UNet round's output for the real images (None: not in the graph)."""
    recipe, batch = make_recipe(filter_head=TMinusOneFilter(detach_input=detach_input)), \
        make_batch()
    backbone, first = recipe.model.backbone, []
    original = backbone.forward_many

    def spy(inputs):
        outputs = original(inputs)
        if not first:
            first.extend(outputs)
        return outputs

    monkeypatch.setattr(backbone, "forward_many", spy)
    out = recipe.losses(batch, torch.Generator().manual_seed(0))
    assert set(out.terms) == {"t0", "trajectory", "t_minus_1"}
    # first round: [synthetic d0, real d0], both at t = 0
    d0_real = first[1]
    assert d0_real.shape[0] == len(batch.unlabelled.rgb) and d0_real.requires_grad
    weight = backbone.unet.conv_in.weight
    to_d0, to_weight = torch.autograd.grad(out.terms["t_minus_1"], [d0_real, weight],
                                           allow_unused=True)
    return to_d0, to_weight


def test_attached_filter_sends_teacher_gradient_to_d0(monkeypatch):
    to_d0, to_weight = t_minus_1_gradients(monkeypatch, detach_input=False)
    assert to_d0 is not None and to_d0.abs().sum() > 0
    assert to_weight.abs().sum() > 0


def test_detached_filter_sends_no_gradient_to_d0(monkeypatch):
    to_d0, to_weight = t_minus_1_gradients(monkeypatch, detach_input=True)
    assert to_d0 is None or torch.all(to_d0 == 0)
    assert to_weight is not None and to_weight.abs().sum() > 0  # the t = -1 pass still learns
