"""The SILog loss (Depth Anything V2's metric loss): values computed by hand, and properties
(hypothesis, derandomised): zero at the truth, blind to a global scale with lambda = 1 and not
with lambda < 1, masked pixels never read."""
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from depthlab.losses.metric import MIN_PREDICTION, SILOG_LAMBDA, silog
from depthlab.losses.registry import get_loss

LN2 = math.log(2.0)
SHAPE = (2, 1, 3, 4)
# Depths 2^(k/4) m for k in [-8, 16]: 0.25 m to 16 m, positive and well conditioned.
depths = hnp.arrays(np.int8, SHAPE, elements=st.integers(-8, 16)).map(
    lambda k: torch.from_numpy(2.0 ** (k.astype(np.float64) / 4.0)))
masks = hnp.arrays(np.bool_, SHAPE).map(torch.from_numpy)
scales = st.sampled_from([0.125, 0.5, 0.8, 1.25, 3.0, 10.0])
lambdas = st.sampled_from([0.0, 0.15, 0.5, 0.85])
check = settings(max_examples=40, deadline=None, derandomize=True, database=None)


def _map(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)


def test_registered_with_depth_anything_v2s_lambda():
    assert get_loss("silog") is silog
    assert SILOG_LAMBDA == 0.5


def test_values_computed_by_hand():
    # d = log(pred / gt) = (ln 2, 2 ln 2) on the two valid pixels; the third is masked out.
    prediction, target = _map(2.0, 4.0, 100.0), _map(1.0, 1.0, 1.0)
    mask = torch.tensor([True, True, False]).view(1, 1, 1, 3)
    # mean d^2 = 2.5 ln2^2, mean d = 1.5 ln2
    expected = {0.0: math.sqrt(2.5) * LN2, 0.5: math.sqrt(2.5 - 0.5 * 2.25) * LN2,
                1.0: math.sqrt(2.5 - 2.25) * LN2}
    for lambd, value in expected.items():
        assert float(silog(prediction, target, mask, lambd)) == pytest.approx(value, rel=1e-12)
    assert float(silog(prediction, target, mask)) == pytest.approx(expected[0.5], rel=1e-12)


def test_pixels_are_pooled_over_the_batch_not_averaged_per_image():
    # Image 1: one valid pixel with d = ln 2; image 2: three with d = 0 (as DA2's target[mask]).
    prediction = torch.tensor([2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
                              dtype=torch.float64).view(2, 1, 1, 4)
    target = torch.ones_like(prediction)
    mask = torch.tensor([True, False, False, False, True, True, True, False]).view(2, 1, 1, 4)
    # mean d^2 = ln2^2 / 4, mean d = ln2 / 4: 1/4 - 0.5 / 16 = 7 / 32
    assert float(silog(prediction, target, mask)) == pytest.approx(math.sqrt(7 / 32) * LN2,
                                                                   rel=1e-12)


def test_no_mask_means_every_pixel():
    prediction, target = _map(2.0, 0.5), _map(1.0, 1.0)  # d = +-ln 2: mean 0, mean d^2 ln2^2
    assert float(silog(prediction, target)) == pytest.approx(LN2, rel=1e-12)


def test_no_valid_pixel_is_zero_with_a_zero_gradient():
    prediction = torch.full((1, 1, 2, 2), 3.0, requires_grad=True)
    loss = silog(prediction, torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(prediction.grad, torch.zeros_like(prediction))


def test_masked_pixels_are_never_read_and_get_no_gradient():
    prediction = torch.tensor([2.0, float("nan"), 0.0]).view(1, 1, 1, 3).requires_grad_()
    target = torch.tensor([1.0, 0.0, float("inf")]).view(1, 1, 1, 3)
    mask = torch.tensor([True, False, False]).view(1, 1, 1, 3)
    loss = silog(prediction, target, mask)
    loss.backward()
    # One pixel, d = ln 2: sqrt(ln2^2 - 0.5 ln2^2)
    assert loss.item() == pytest.approx(math.sqrt(0.5) * LN2, rel=1e-6)
    assert prediction.grad[0, 0, 0, 1:].tolist() == [0.0, 0.0]
    assert prediction.grad[0, 0, 0, 0] > 0  # too deep: the loss falls as the prediction does


def test_gradient_is_finite_at_zero_loss():
    prediction = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2).requires_grad_()
    loss = silog(prediction, 3.0 * prediction.detach(), lambd=1.0)  # right up to scale
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(prediction.grad).all()


def test_a_zero_prediction_is_clamped_to_a_finite_loss():
    loss = silog(torch.zeros(1, 1, 1, 2, dtype=torch.float64), _map(1.0, 1.0))
    assert float(loss) == pytest.approx(math.sqrt(0.5) * -math.log(MIN_PREDICTION), rel=1e-12)


def test_dtypes():
    half = torch.tensor([2.0, 3.0], dtype=torch.float16).view(1, 1, 1, 2)
    assert silog(half, half.float()).dtype == torch.float32
    assert silog(_map(2.0, 3.0), _map(1.0, 1.0)).dtype == torch.float64


@given(target=depths, mask=masks, lambd=lambdas)
@check
def test_zero_at_the_truth(target, mask, lambd):
    assert float(silog(target.clone(), target, mask, lambd)) == 0.0


@given(prediction=depths, target=depths, mask=masks, scale=scales)
@check
def test_lambda_one_is_blind_to_a_global_scale(prediction, target, mask, scale):
    # Squares: at a loss of 0 the square root turns rounding noise of 1e-17 into 1e-9.
    assert float(silog(scale * prediction, target, mask, 1.0)) ** 2 == pytest.approx(
        float(silog(prediction, target, mask, 1.0)) ** 2, abs=1e-12)


@given(target=depths, mask=masks, scale=scales, lambd=lambdas)
@check
def test_lambda_below_one_charges_a_wrong_scale(target, mask, scale, lambd):
    """The truth times c scores sqrt(1 - lambda) |ln c| (d = ln c everywhere)."""
    expected = math.sqrt(1.0 - lambd) * abs(math.log(scale)) if mask.any() else 0.0
    assert float(silog(scale * target, target, mask, lambd)) == pytest.approx(expected, abs=1e-9)


@given(prediction=depths, target=depths, mask=masks, scale=scales, lambd=lambdas)
@check
def test_the_best_scale_is_the_one_that_centres_the_log_error(prediction, target, mask, scale,
                                                              lambd):
    """loss^2 = var(d) + (1 - lambda) mean(d)^2: no global scale beats exp(-mean d), which
    leaves the standard deviation of d (the lambda = 1 value)."""
    if not mask.any():
        return
    d = (prediction.log() - target.log())[mask]
    centred = prediction * torch.exp(-d.mean())
    best = float(silog(centred, target, mask, lambd)) ** 2  # squares: see the lambda = 1 test
    assert best == pytest.approx(float(silog(prediction, target, mask, 1.0)) ** 2, abs=1e-12)
    assert float(silog(scale * prediction, target, mask, lambd)) ** 2 >= best - 1e-12
    assert float(silog(prediction, target, mask, lambd)) ** 2 == pytest.approx(
        float(d.var(unbiased=False)) + (1.0 - lambd) * float(d.mean()) ** 2, abs=1e-9)


@given(prediction=depths, target=depths, mask=masks, lambd=lambdas)
@check
def test_symmetric_in_prediction_and_target(prediction, target, mask, lambd):
    assert float(silog(prediction, target, mask, lambd)) == pytest.approx(
        float(silog(target, prediction, mask, lambd)), abs=1e-12)


@given(prediction=depths, target=depths, mask=masks, other=depths)
@check
def test_invariant_to_values_at_masked_pixels(prediction, target, mask, other):
    changed_prediction = torch.where(mask, prediction, other * 7.0)
    changed_target = torch.where(mask, target, -other)
    assert float(silog(changed_prediction, changed_target, mask)) == \
        float(silog(prediction, target, mask))


def test_half_precision_is_computed_in_float32():
    # Both maps are exact in float16; their logs are not, so a float16 log would show.
    prediction, target = _map(6.0, 20.0).half(), _map(3.0, 5.0).half()
    value = silog(prediction, target)
    assert value.dtype == torch.float32
    # d = (ln 2, 2 ln 2) as in the hand-computed case above
    assert float(value) == pytest.approx(math.sqrt(2.5 - 0.5 * 2.25) * LN2, rel=1e-6)


def test_the_gradient_at_the_truth_is_zero_not_nan():
    prediction = _map(2.0, 4.0, 8.0).requires_grad_()
    loss = silog(prediction, _map(2.0, 4.0, 8.0))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(prediction.grad, torch.zeros_like(prediction))
