"""FiffDepth's terms and total against methods.md re-implemented in plain torch, per binding."""
import pytest
import torch

from fiffdepth_helpers import (cell_mask, make_batch, make_recipe, reference_trajectory_sample,
                               separate_pass_terms)
from fiffdepth_helpers import one_thread  # noqa: F401 (a fixture)

NAMES = ("t0", "trajectory", "t_minus_1", "total")
TOL = {"rtol": 1e-4, "atol": 1e-5}
FACTOR = 2  # the tiny VAE: 16x16 images, 8x8 latents

pytestmark = pytest.mark.usefixtures("one_thread")


def recipe_terms(recipe, batch, seed):
    out = recipe.losses(batch, torch.Generator().manual_seed(seed))
    return {**{name: term.detach() for name, term in out.terms.items()},
            "total": out.total.detach()}


@pytest.mark.parametrize("bindings", [
    {"gamma": 0.3, "mae_weight": 0.7, "gradient_weight": 0.25, "trajectory_weight": 0.4},
    {"gamma": 0.85, "mae_weight": 1.3, "gradient_weight": 2.0, "trajectory_weight": 0.05,
     "timestep_range": (900, 1000)},
], ids=["gamma0.3", "gamma0.85-late-t"])
def test_terms_match_independent_formulas(bindings):
    recipe, batch = make_recipe(**bindings), make_batch()
    got = recipe_terms(recipe, batch, seed=7)
    expected = separate_pass_terms(recipe, batch, seed=7, **bindings)
    assert set(got) == set(NAMES)
    for name in NAMES:
        torch.testing.assert_close(got[name], expected[name], **TOL, msg=name)


def test_trajectory_input_is_the_gamma_blend_noised(monkeypatch):
    """The UNet's trajectory input b_t and timesteps t, before any network is involved."""
    recipe, batch = make_recipe(gamma=0.3), make_batch()
    backbone, calls = recipe.model.backbone, []
    original = backbone.forward_many

    def spy(inputs):
        calls.append(inputs)
        return original(inputs)

    monkeypatch.setattr(backbone, "forward_many", spy)
    recipe.losses(batch, torch.Generator().manual_seed(3))
    with torch.no_grad():
        x0 = recipe.model.encode_rgb(batch.labelled.rgb)
        label = recipe.model.codec.encode_depth(
            recipe.target.from_depth(batch.labelled.depth, batch.labelled.valid))
    b_t, t, _ = reference_trajectory_sample(x0, label, recipe.schedule.alphas_cumprod, 0.3,
                                            torch.Generator().manual_seed(3), (1, 1000))
    trajectory = [(latent, steps) for latent, steps in calls[1] if (steps > 0).all()]
    assert len(trajectory) == 1
    torch.testing.assert_close(trajectory[0][0].detach(), b_t, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(trajectory[0][1], t.float())


def test_batch_has_invalid_latent_cells():
    valid = cell_mask(make_batch().labelled.valid, FACTOR)
    assert 0.2 < valid.float().mean() < 0.9  # so the masked and unmasked formulas differ


def perturb_velocity_at_invalid_cells(monkeypatch, recipe, batch):
    """v_t += 100 at latent cells invalid in the GT mask (the UNet's input is left unchanged)."""
    invalid = ~cell_mask(batch.labelled.valid, FACTOR)
    original = recipe.schedule.get_velocity
    monkeypatch.setattr(recipe.schedule, "get_velocity",
                        lambda *args: original(*args) + 100.0 * invalid)


@pytest.mark.parametrize("mask_trajectory", [True, False])
def test_trajectory_mask_binding_matches_formula(mask_trajectory):
    recipe, batch = make_recipe(mask_trajectory=mask_trajectory), make_batch()
    got = recipe_terms(recipe, batch, seed=5)["trajectory"]
    expected = separate_pass_terms(recipe, batch, seed=5, mask_trajectory=mask_trajectory)
    other = separate_pass_terms(recipe, batch, seed=5, mask_trajectory=not mask_trajectory)
    torch.testing.assert_close(got, expected["trajectory"], **TOL)
    assert not torch.allclose(got, other["trajectory"], **TOL)


@pytest.mark.parametrize("mask_trajectory", [True, False])
def test_trajectory_target_at_invalid_cells(monkeypatch, mask_trajectory):
    """Masked: v_t at invalid cells has no effect; unmasked: it counts (100^2 on ~1/3 of cells)."""
    recipe, batch = make_recipe(mask_trajectory=mask_trajectory), make_batch()
    before = recipe_terms(recipe, batch, seed=5)["trajectory"]
    perturb_velocity_at_invalid_cells(monkeypatch, recipe, batch)
    after = recipe_terms(recipe, batch, seed=5)["trajectory"]
    if mask_trajectory:
        torch.testing.assert_close(after, before, rtol=1e-6, atol=0.0)
    else:
        assert after > before + 1000.0
