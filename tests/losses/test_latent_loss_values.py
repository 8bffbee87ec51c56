"""Latent losses on tiny hand-computed inputs, against literal values derived in the comments."""
import pytest
import torch

from depthlab.losses.latent import gradient_matching, latent_mae, latent_mse, v_prediction_mse

T, F = True, False
MSES = [latent_mse, v_prediction_mse]
ALL = [latent_mae, latent_mse, gradient_matching, v_prediction_mse]

# One image [1, 1, 2, 3]; target 0, so the residual R is the prediction.
R = torch.tensor([[[[0.0, 1.0, 2.0],
                    [3.0, -1.0, 5.0]]]])
ZERO = torch.zeros_like(R)
MASK = torch.tensor([[[[T, T, F],
                       [T, F, T]]]])  # 4 of 6 cells valid: R = 0, 1, 3, 5 there


def value(loss, prediction, target, mask=None) -> float:
    return float(loss(prediction, target, mask))


def test_mae_unmasked():
    # (0 + 1 + 2 + 3 + 1 + 5) / 6 = 12 / 6
    assert value(latent_mae, R, ZERO) == pytest.approx(2.0)


def test_mae_masked():
    # (0 + 1 + 3 + 5) / 4 valid cells (dividing by all 6 cells would give 1.5)
    assert value(latent_mae, R, ZERO, MASK) == pytest.approx(2.25)


@pytest.mark.parametrize("loss", MSES)
def test_mse_unmasked(loss):
    # (0 + 1 + 4 + 9 + 1 + 25) / 6 = 40 / 6 (with |R| instead of R^2 it would be 2)
    assert value(loss, R, ZERO) == pytest.approx(20.0 / 3.0)


@pytest.mark.parametrize("loss", MSES)
def test_mse_masked(loss):
    # (0 + 1 + 9 + 25) / 4 valid cells (over all 6 cells: 35 / 6; with |R|: 9 / 4)
    assert value(loss, R, ZERO, MASK) == pytest.approx(8.75)


def test_mae_and_mse_use_the_difference_not_its_parts():
    # prediction R + 2, target 2: the same residual as above
    assert value(latent_mae, R + 2.0, ZERO + 2.0, MASK) == pytest.approx(2.25)
    assert value(latent_mse, R + 2.0, ZERO + 2.0, MASK) == pytest.approx(8.75)


def test_gradient_matching_unmasked():
    # x: |1-0| + |2-1| + |-1-3| + |5+1| = 12; y: |3-0| + |-1-1| + |5-2| = 8; (12 + 8) / 6 cells
    assert value(gradient_matching, R, ZERO) == pytest.approx(20.0 / 6.0)


def test_gradient_matching_counts_pairs_of_valid_cells_only():
    # pairs with both cells valid: x (0,0)-(0,1): |1-0| = 1; y (0,0)-(1,0): |3-0| = 3.
    # (1 + 3) / 4 valid cells = 1 (over all 6 cells: 4/6; with R zeroed but every pair kept: 19/4)
    assert value(gradient_matching, R, ZERO, MASK) == pytest.approx(1.0)


def test_gradient_matching_of_the_residual():
    # prediction R + target, target = a ramp: the same residual, the same value as unmasked R
    ramp = torch.arange(6.0).view(1, 1, 2, 3) * 7.0
    assert value(gradient_matching, R + ramp, ramp) == pytest.approx(20.0 / 6.0)
    assert value(gradient_matching, ramp, ZERO) == pytest.approx((4 * 7.0 + 3 * 21.0) / 6.0)
    # ramp alone: x diffs 7 (four of them), y diffs 21 (three): (28 + 63) / 6


# --- four channels (like SD latents) with one [B, 1, h, w] mask broadcast over them --------------

# channel c holds (c + 1) * [[1, 2], [4, 100]]; the cell (1, 1) is invalid in every channel
PATTERN = torch.tensor([[1.0, 2.0], [4.0, 100.0]])
MULTI = torch.stack([(c + 1) * PATTERN for c in range(4)]).unsqueeze(0)  # [1, 4, 2, 2]
MULTI_MASK = torch.tensor([[[[T, T], [T, F]]]])  # [1, 1, 2, 2]; 3 cells x 4 channels = 12 valid


def test_mae_multichannel_mask():
    # (1 + 2 + 4) * (1 + 2 + 3 + 4) = 70 over 12 valid elements (not over 3 cells)
    assert value(latent_mae, MULTI, torch.zeros_like(MULTI), MULTI_MASK) == pytest.approx(70 / 12)


@pytest.mark.parametrize("loss", MSES)
def test_mse_multichannel_mask(loss):
    # (1 + 4 + 16) * (1 + 4 + 9 + 16) = 630 over 12 valid elements
    assert value(loss, MULTI, torch.zeros_like(MULTI), MULTI_MASK) == pytest.approx(52.5)


def test_gradient_matching_multichannel_mask():
    # per channel: x (0,0)-(0,1) |2-1| + y (0,0)-(1,0) |4-1| = 4 (c + 1); sum 40 over 12 elements
    got = value(gradient_matching, MULTI, torch.zeros_like(MULTI), MULTI_MASK)
    assert got == pytest.approx(40 / 12)


# --- batch of two images with different masks: one mean over all valid cells of the batch ------

# image 0: residual 1 everywhere, all 4 cells valid; image 1: residual 4 at its one valid cell
BATCH = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[4.0, 9.0], [9.0, 9.0]]]])
BATCH_MASK = torch.tensor([[[[T, T], [T, T]]], [[[T, F], [F, F]]]])


def test_mae_batch_pools_valid_cells():
    # (4 * 1 + 4) / 5 valid cells = 1.6 (the mean of the per-image means would be 2.5)
    assert value(latent_mae, BATCH, torch.zeros_like(BATCH), BATCH_MASK) == pytest.approx(1.6)


@pytest.mark.parametrize("loss", MSES)
def test_mse_batch_pools_valid_cells(loss):
    # (4 * 1 + 16) / 5 = 4 (the mean of the per-image means would be 8.5)
    assert value(loss, BATCH, torch.zeros_like(BATCH), BATCH_MASK) == pytest.approx(4.0)


def test_gradient_matching_batch_pools_valid_cells():
    # image 0: R = [[0, 1], [2, 3]], all valid: x 1 + 1, y 2 + 2 = 6 over 4 cells;
    # image 1: R = [[0, 5], [9, 9]], top row valid: x |5 - 0| = 5 over 2 cells; no pair across
    # images. (6 + 5) / 6 cells (the mean of per-image values would be (1.5 + 2.5) / 2 = 2)
    residual = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]], [[[0.0, 5.0], [9.0, 9.0]]]])
    mask = torch.tensor([[[[T, T], [T, T]]], [[[T, T], [F, F]]]])
    assert value(gradient_matching, residual, torch.zeros_like(residual), mask) \
        == pytest.approx(11 / 6)


# --- edge cases -------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ALL, ids=lambda f: f.__name__)
def test_all_masked_is_zero_with_zero_gradient(loss):
    prediction = (R * 3.0 + 1.0).requires_grad_()
    result = loss(prediction, ZERO, torch.zeros_like(MASK))
    result.backward()
    assert float(result.detach()) == 0.0
    assert torch.equal(prediction.grad, torch.zeros_like(R))


@pytest.mark.parametrize("loss", ALL, ids=lambda f: f.__name__)
def test_none_mask_equals_all_valid_mask(loss):
    prediction, target = MULTI, torch.ones_like(MULTI)
    assert value(loss, prediction, target) == pytest.approx(
        value(loss, prediction, target, torch.ones_like(MULTI_MASK)))


@pytest.mark.parametrize("loss", [latent_mae, gradient_matching, latent_mse, v_prediction_mse],
                         ids=lambda f: f.__name__)
def test_nonfinite_masked_cells_leave_gradient_finite(loss):
    # the masked cells (0, 2) and (1, 1) hold inf and nan in the target
    target = torch.tensor([[[[0.0, 0.0, float("inf")], [0.0, float("nan"), 0.0]]]])
    prediction = R.clone().requires_grad_()
    result = loss(prediction, target, MASK)
    result.backward()
    assert torch.isfinite(result) and torch.isfinite(prediction.grad).all()
    assert prediction.grad[0, 0, 0, 2] == 0 and prediction.grad[0, 0, 1, 1] == 0


def test_mae_gradient_is_sign_over_count():
    # d/dp of sum |p - t| / 4 = sign(p - t) / 4 at valid cells, 0 elsewhere (0 at R = 0 too)
    prediction = R.clone().requires_grad_()
    latent_mae(prediction, ZERO, MASK).backward()
    assert torch.equal(prediction.grad, torch.tensor([[[[0.0, 0.25, 0.0], [0.25, 0.0, 0.25]]]]))


def test_mse_gradient_is_two_residual_over_count():
    # d/dp of sum (p - t)^2 / 4 = 2 (p - t) / 4 at valid cells, 0 elsewhere
    prediction = R.clone().requires_grad_()
    latent_mse(prediction, ZERO, MASK).backward()
    assert torch.equal(prediction.grad, torch.tensor([[[[0.0, 0.5, 0.0], [1.5, 0.0, 2.5]]]]))
