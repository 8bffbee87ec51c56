"""Property tests (hypothesis, derandomised) of the latent losses' masking, pooling and symmetry."""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from depthlab.losses.latent import gradient_matching, latent_mae, latent_mse, v_prediction_mse

SHAPE = (2, 4, 4, 5)  # B, C (latent channels), h, w
# Multiples of 1/4 in [-8, 8]: exact in float32, and a non-zero difference squares to >= 1/16.
grid = st.integers(-32, 32).map(lambda k: k / 4.0)
tensors = hnp.arrays(np.int8, SHAPE, elements=st.integers(-32, 32)).map(
    lambda quarters: torch.from_numpy(quarters.astype(np.float32) / 4.0))
masks = hnp.arrays(np.bool_, (SHAPE[0], 1, *SHAPE[2:])).map(torch.from_numpy)
ALL = [latent_mae, latent_mse, gradient_matching, v_prediction_mse]
MAE_MSE = [latent_mae, latent_mse, v_prediction_mse]
check = settings(max_examples=50, deadline=None, derandomize=True, database=None)


@pytest.mark.parametrize("loss", MAE_MSE, ids=lambda loss: loss.__name__)
@given(prediction=tensors, target=tensors, mask=masks)
@check
def test_zero_iff_equal_on_valid_cells(loss, prediction, target, mask):
    differs_where_valid = bool(((prediction != target) & mask).any())
    assert (float(loss(prediction, target, mask)) > 0.0) == differs_where_valid
    assert float(loss(torch.where(mask, target, prediction), target, mask)) == 0.0


@pytest.mark.parametrize("loss", ALL, ids=lambda loss: loss.__name__)
@given(prediction=tensors, target=tensors, mask=masks, other=tensors)
@check
def test_invariant_to_values_at_masked_cells(loss, prediction, target, mask, other):
    changed_prediction = torch.where(mask, prediction, other * 1e3)
    changed_target = torch.where(mask, target, -other)
    assert float(loss(changed_prediction, changed_target, mask)) \
        == float(loss(prediction, target, mask))


@given(prediction=tensors, target=tensors, mask=masks)
@check
def test_mse_at_least_mae_squared(prediction, target, mask):
    mae = float(latent_mae(prediction, target, mask))
    assert float(latent_mse(prediction, target, mask)) >= mae ** 2 * (1 - 1e-6)


@given(prediction=tensors, target=tensors, mask=masks, offset=grid)
@check
def test_gradient_matching_invariant_to_constant(prediction, target, mask, offset):
    assert float(gradient_matching(prediction + offset, target, mask)) \
        == pytest.approx(float(gradient_matching(prediction, target, mask)), rel=1e-6)


@pytest.mark.parametrize("loss", ALL, ids=lambda loss: loss.__name__)
@given(prediction=tensors, target=tensors, mask=masks)
@check
def test_symmetric_in_prediction_and_target(loss, prediction, target, mask):
    assert float(loss(prediction, target, mask)) == float(loss(target, prediction, mask))


@pytest.mark.parametrize("loss", ALL, ids=lambda loss: loss.__name__)
@given(prediction=tensors, target=tensors, mask=masks)
@check
def test_batch_is_one_mean_over_all_valid_cells(loss, prediction, target, mask):
    """The batch value is the per-image values weighted by their valid counts (pooled mean)."""
    counts = mask.flatten(1).sum(1).float() * SHAPE[1]
    per_image = torch.stack([loss(p[None], t[None], m[None])
                             for p, t, m in zip(prediction, target, mask)])
    pooled = (per_image * counts).sum() / counts.sum().clamp_min(1.0)
    assert float(loss(prediction, target, mask)) == pytest.approx(float(pooled), rel=1e-5,
                                                                  abs=1e-6)


@given(prediction=tensors, target=tensors, mask=masks)
@check
def test_gradient_matching_at_most_mae_bound(prediction, target, mask):
    """|R_a - R_b| <= |R_a| + |R_b| and a cell sits in at most four pairs, so GM <= 4 MAE; a GM
    that counts pairs with an invalid cell (huge values there) or divides by fewer elements than
    the valid ones breaks the bound."""
    huge = torch.where(mask, prediction, torch.full_like(prediction, 1e4))
    assert float(gradient_matching(huge, target, mask)) \
        <= 4 * float(latent_mae(huge, target, mask)) * (1 + 1e-6) + 1e-6
