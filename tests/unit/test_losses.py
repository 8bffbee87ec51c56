"""Property tests of the registered losses."""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from depthlab.losses.registry import get_loss, loss_names

SHAPE = (2, 4, 6, 5)
finite = st.floats(-10, 10, allow_nan=False, width=32)
tensors = hnp.arrays(np.float32, SHAPE, elements=finite).map(torch.from_numpy)
masks = hnp.arrays(np.bool_, (SHAPE[0], 1, *SHAPE[2:])).map(torch.from_numpy)
ALL = ["latent_mae", "latent_mse", "gradient_matching", "v_prediction_mse"]


def test_builtin_losses_are_registered():
    assert set(ALL) <= set(loss_names())


@pytest.mark.parametrize("name", ALL)
@given(prediction=tensors, mask=masks)
@settings(max_examples=40, deadline=None, derandomize=True, database=None)
def test_zero_for_identical_inputs(name, prediction, mask):
    assert float(get_loss(name)(prediction, prediction.clone(), mask)) == 0.0


@pytest.mark.parametrize("name", ALL)
@given(prediction=tensors, target=tensors, mask=masks)
@settings(max_examples=40, deadline=None, derandomize=True, database=None)
def test_non_negative(name, prediction, target, mask):
    assert float(get_loss(name)(prediction, target, mask)) >= 0.0


@pytest.mark.parametrize("name", ALL)
@given(prediction=tensors, target=tensors, mask=masks, noise=tensors)
@settings(max_examples=40, deadline=None, derandomize=True, database=None)
def test_masked_cells_have_no_effect(name, prediction, target, mask, noise):
    loss = get_loss(name)
    changed = torch.where(mask, prediction, prediction + noise * 1e3)
    assert torch.allclose(loss(prediction, target, mask), loss(changed, target, mask),
                          rtol=1e-5, atol=1e-6)


@given(prediction=tensors, target=tensors, mask=masks, offset=finite)
@settings(max_examples=40, deadline=None, derandomize=True, database=None)
def test_gradient_matching_ignores_constant_offset(prediction, target, mask, offset):
    loss = get_loss("gradient_matching")
    assert torch.allclose(loss(prediction + offset, target, mask), loss(prediction, target, mask),
                          rtol=1e-4, atol=1e-4)


@given(prediction=tensors, target=tensors, offset=st.floats(0.5, 10))
@settings(max_examples=30, deadline=None, derandomize=True, database=None)
def test_mae_is_not_offset_invariant(prediction, target, offset):
    loss = get_loss("latent_mae")
    assert float(loss(target + offset, target)) == pytest.approx(offset, rel=1e-4)


def test_gradient_matching_matches_definition_without_mask():
    generator = torch.Generator().manual_seed(0)
    prediction, target = torch.randn(SHAPE, generator=generator), torch.randn(SHAPE,
                                                                              generator=generator)
    residual = prediction - target
    expected = ((residual[..., :, 1:] - residual[..., :, :-1]).abs().sum()
                + (residual[..., 1:, :] - residual[..., :-1, :]).abs().sum()) / residual.numel()
    assert torch.allclose(get_loss("gradient_matching")(prediction, target), expected)


def test_masked_cells_get_no_gradient():
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randn(SHAPE, generator=generator, requires_grad=True)
    target = torch.randn(SHAPE, generator=generator)
    mask = torch.zeros(SHAPE[0], 1, *SHAPE[2:], dtype=torch.bool)
    mask[..., :3, :] = True
    for name in ALL:
        prediction.grad = None
        get_loss(name)(prediction, target, mask).backward()
        assert torch.all(prediction.grad[..., 3:, :] == 0), name
