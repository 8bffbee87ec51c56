"""E2E-FT's losses (depthlab.losses.affine_fit): the least-squares affine fit, the quantile clamp,
the affine-invariant L1 and the angular normals loss. Values worked out by hand, every branch of
the fit, and hypothesis properties."""
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

from depthlab.losses.affine_fit import (ANGULAR_EPS, affine_invariant_l1, angular_normals,
                                        least_squares_scale_shift, quantile_clamp)
from depthlab.losses.registry import get_loss

check = settings(max_examples=50, deadline=None, derandomize=True, database=None)
NAN = float("nan")
FLOOR = math.acos(1.0 - 1e-12)  # the angular loss of identical normals: 1.4142e-6 rad


def image(*values: float, dtype=torch.float64) -> torch.Tensor:
    """One [1, 1, 1, W] image."""
    return torch.tensor(values, dtype=dtype).view(1, 1, 1, -1)


def mask_of(*values: bool) -> torch.Tensor:
    return torch.tensor(values).view(1, 1, 1, -1)


# --- least_squares_scale_shift ---------------------------------------------------------------

# p = 0, 1, 2, 3 and t = 1, 3, 5, 8: n = 4, sum p = 6, sum p^2 = 14, sum t = 17,
# sum p t = 0 + 3 + 10 + 24 = 37. det = 4 * 14 - 6^2 = 20;
# scale = (4 * 37 - 6 * 17) / 20 = 46 / 20 = 2.3; shift = (14 * 17 - 6 * 37) / 20 = 16 / 20 = 0.8.
P = image(0.0, 1.0, 2.0, 3.0)
T = image(1.0, 3.0, 5.0, 8.0)
# Image 2, pixel 1 masked (nan): p = 2, 0, 4 and t = 4, 1, 5: n = 3, sum p = 6, sum p^2 = 20,
# sum t = 10, sum p t = 8 + 0 + 20 = 28. det = 3 * 20 - 36 = 24; scale = (3 * 28 - 6 * 10) / 24
# = 1; shift = (20 * 10 - 6 * 28) / 24 = 32 / 24 = 4/3.
P2 = image(2.0, NAN, 0.0, 4.0)
T2 = image(4.0, NAN, 1.0, 5.0)
M2 = mask_of(True, False, True, True)
BATCH_P, BATCH_T = torch.cat([P, P2]), torch.cat([T, T2])
BATCH_M = torch.cat([mask_of(True, True, True, True), M2])


def test_fit_by_hand():
    scale, shift = least_squares_scale_shift(P, T)
    assert scale.shape == shift.shape == (1,)
    assert scale.item() == pytest.approx(2.3, rel=1e-12)
    assert shift.item() == pytest.approx(0.8, rel=1e-12)


def test_fit_by_hand_per_image_with_a_mask():
    scale, shift = least_squares_scale_shift(BATCH_P, BATCH_T, BATCH_M)
    assert scale.shape == shift.shape == (2,)
    assert scale.tolist() == pytest.approx([2.3, 1.0], rel=1e-12)
    assert shift.tolist() == pytest.approx([0.8, 4.0 / 3.0], rel=1e-12)


def test_fit_without_a_mask_uses_every_pixel():
    scale, shift = least_squares_scale_shift(P2.nan_to_num(6.0), T2.nan_to_num(7.0))
    mask = torch.ones(1, 1, 1, 4, dtype=torch.bool)
    expected = least_squares_scale_shift(P2.nan_to_num(6.0), T2.nan_to_num(7.0), mask)
    assert (scale.item(), shift.item()) == (expected[0].item(), expected[1].item())
    assert scale.item() != pytest.approx(1.0)  # pixel 1 (6, 7) takes part


def test_fit_accepts_0_1_float_masks():
    scale, shift = least_squares_scale_shift(BATCH_P, BATCH_T, BATCH_M.float())
    assert scale.tolist() == pytest.approx([2.3, 1.0], rel=1e-12)
    assert shift.tolist() == pytest.approx([0.8, 4.0 / 3.0], rel=1e-12)


def test_float32_inputs_are_fitted_in_float64():
    # p = 1000 + 1e-3 k in float32: the spread is 1e-6 of the mean, so a float32 mean would
    # already be off by a few percent of it; t carries an offset of 1e4 likewise.
    p = (1000.0 + 1e-3 * torch.arange(4.0)).view(1, 1, 1, 4)
    t = (1e4 + 1e-2 * torch.tensor([0.0, 1.0, 2.0, 3.5])).view(1, 1, 1, 4)
    expected_scale, expected_shift = np.polyfit(p.double().flatten().numpy(),
                                                t.double().flatten().numpy(), 1)
    scale, shift = least_squares_scale_shift(p, t)
    assert scale.dtype == torch.float32
    assert scale.item() == pytest.approx(expected_scale, rel=1e-6)
    assert shift.item() == pytest.approx(expected_shift, rel=1e-6)
    # The shift in float64, before the final rounding to float32:
    _, shift64 = least_squares_scale_shift(p.double(), t)
    assert shift64.item() == pytest.approx(expected_shift, rel=1e-8)


def test_the_rounding_threshold_is_per_image():
    # Image 1 varies by 1e-6 (a real fit, as above) next to an image 1e4 times larger: the
    # threshold compares each image's spread with its own energy, not the batch's.
    d = (1.0 + 1e-6) - 1.0
    p = torch.cat([image(1.0, 1.0, 1.0, 1.0 + 1e-6), 1e4 * P])
    t = torch.cat([image(0.0, 0.0, 0.0, 1.0), T])
    scale, shift = least_squares_scale_shift(p, t)
    assert scale.tolist() == pytest.approx([1.0 / d, 2.3e-4], rel=1e-6)
    assert shift.tolist() == pytest.approx([-1.0 / d, 0.8], rel=1e-6)


def test_fit_returns_the_prediction_dtype_at_least_float32():
    for dtype, expected in ((torch.float32, torch.float32), (torch.float64, torch.float64),
                            (torch.bfloat16, torch.float32)):
        scale, shift = least_squares_scale_shift(P.to(dtype), T.to(dtype))
        assert scale.dtype == shift.dtype == expected
        assert scale.item() == pytest.approx(2.3, rel=1e-6)


def test_constant_prediction_gives_zero_scale_and_shift():
    # det = 4 * (4 * 0.1^2) - (4 * 0.1)^2 is 0, but rounding may leave +-1e-17: still no fit.
    for value in (0.1, 0.3, 5.0, -7.3):
        scale, shift = least_squares_scale_shift(torch.full_like(P, value), T)
        assert (scale.item(), shift.item()) == (0.0, 0.0)


def test_all_zero_prediction_gives_zero_shift_not_the_target_mean():
    scale, shift = least_squares_scale_shift(torch.zeros_like(P), T)
    assert (scale.item(), shift.item()) == (0.0, 0.0)


def test_one_valid_pixel_gives_zero_scale_and_shift():
    mask = mask_of(False, False, True, False)
    scale, shift = least_squares_scale_shift(P, T, mask)
    assert (scale.item(), shift.item()) == (0.0, 0.0)


def test_no_valid_pixel_gives_zero_scale_and_shift_and_finite_gradients():
    prediction = P.clone().requires_grad_(True)
    scale, shift = least_squares_scale_shift(prediction, T, mask_of(False, False, False, False))
    assert (scale.item(), shift.item()) == (0.0, 0.0)
    (scale + shift).sum().backward()
    assert torch.equal(prediction.grad, torch.zeros_like(P))


@pytest.mark.parametrize("magnitude", [1e-3, 1.0, 1e3])
def test_variation_at_rounding_level_counts_as_constant(magnitude):
    # p = c (1, 1, 1, 1 + 2e-8): sum (p - mean)^2 / sum p^2 = 0.75 (2e-8)^2 / 4 = 7.5e-17, below
    # float64 eps (2.2e-16): a determinant of rounding noise, so no fit, at any magnitude c.
    p = magnitude * image(1.0, 1.0, 1.0, 1.0 + 2e-8)
    scale, shift = least_squares_scale_shift(p, T)
    assert (scale.item(), shift.item()) == (0.0, 0.0)


def test_small_but_real_variation_is_fitted_exactly():
    # p = 1, 1, 1, 1 + d (d = 1e-6: relative variation 1.9e-13, above float64 eps) against
    # t = 0, 0, 0, 1 = (p - 1) / d: scale 1 / d, shift -1 / d (float64; float32 would lose d).
    d = (1.0 + 1e-6) - 1.0
    scale, shift = least_squares_scale_shift(image(1.0, 1.0, 1.0, 1.0 + 1e-6),
                                             image(0.0, 0.0, 0.0, 1.0))
    assert scale.item() == pytest.approx(1.0 / d, rel=1e-6)
    assert shift.item() == pytest.approx(-1.0 / d, rel=1e-6)


def test_fit_is_differentiable_through_scale_and_shift():
    prediction = BATCH_P.nan_to_num(0.0).clone().requires_grad_(True)
    target = BATCH_T.nan_to_num(0.0)

    def fit(p):
        return least_squares_scale_shift(p, target, BATCH_M)

    assert torch.autograd.gradcheck(fit, (prediction,))


maps = hnp.arrays(np.float64, (2, 1, 3, 4), elements=st.floats(-10, 10, width=64))
depths = hnp.arrays(np.float64, (2, 1, 3, 4), elements=st.floats(0.1, 80.0, width=64))
masks = hnp.arrays(np.bool_, (2, 1, 3, 4))


def spread(values: np.ndarray, mask: np.ndarray) -> bool:
    """Every image has no valid pixel or a real spread of valid values."""
    return all(not m.any() or np.ptp(v[m]) > 1e-3 * (1.0 + np.abs(v[m]).max())
               for v, m in zip(values, mask))


@check
@given(prediction=maps, target=maps, mask=masks)
def test_fit_solves_the_normal_equations(prediction, target, mask):
    # At the least-squares optimum the residual is orthogonal to 1 and to p over valid pixels.
    assume(spread(prediction, mask))
    p, t, m = torch.tensor(prediction), torch.tensor(target), torch.tensor(mask)
    scale, shift = least_squares_scale_shift(p, t, m)
    residual = torch.where(m, scale.view(-1, 1, 1, 1) * p + shift.view(-1, 1, 1, 1) - t, 0.0)
    assert residual.sum((1, 2, 3)).abs().max() < 1e-9
    assert (residual * p).sum((1, 2, 3)).abs().max() < 1e-8


@check
@given(target=maps, mask=masks, value=st.floats(-100, 100))
def test_fit_of_any_constant_prediction_is_zero(target, mask, value):
    p, t, m = torch.full((2, 1, 3, 4), value, dtype=torch.float64), torch.tensor(target), \
        torch.tensor(mask)
    scale, shift = least_squares_scale_shift(p, t, m)
    assert scale.tolist() == shift.tolist() == [0.0, 0.0]


@check
@given(prediction=maps, target=maps, index=st.integers(0, 11))
def test_fit_with_one_valid_pixel_is_zero(prediction, target, index):
    mask = torch.zeros(2, 1, 3, 4, dtype=torch.bool)
    mask.view(2, -1)[:, index] = True
    scale, shift = least_squares_scale_shift(torch.tensor(prediction), torch.tensor(target), mask)
    assert scale.tolist() == shift.tolist() == [0.0, 0.0]


# --- quantile_clamp --------------------------------------------------------------------------

def test_quantile_clamp_defaults_by_hand():
    # 4 values 1, 3, 5, 8 (torch.quantile interpolates linearly): the 2% quantile lies at
    # position 0.02 * 3 = 0.06, 1 + 0.06 * 2 = 1.12; the 98% at 2.94, 5 + 0.94 * 3 = 7.82.
    assert quantile_clamp(T).flatten().tolist() == pytest.approx([1.12, 3.0, 5.0, 7.82], rel=1e-6)


def test_quantile_clamp_keeps_the_target_dtype():
    clamped = quantile_clamp(T.half())
    assert clamped.dtype == torch.float16
    assert clamped.flatten().tolist() == pytest.approx([1.12, 3.0, 5.0, 7.82], rel=1e-3)


def test_quantile_clamp_explicit_quantiles():
    # 25%: position 0.75, 1 + 0.75 * 2 = 2.5; 75%: position 2.25, 5 + 0.25 * 3 = 5.75.
    clamped = quantile_clamp(T, None, low=0.25, high=0.75)
    assert clamped.flatten().tolist() == pytest.approx([2.5, 3.0, 5.0, 5.75], rel=1e-6)


def test_quantile_clamp_per_image_over_valid_pixels_only():
    # Image 1: 1, 100 (masked), 3, 5, 8: quantiles of 1, 3, 5, 8 as above; 100 is kept as it is.
    # Image 2: 10, 20, 30, 40 (all valid): 10 + 0.06 * 10 = 10.6 and 30 + 0.94 * 10 = 39.4.
    target = torch.tensor([[[[1.0, 100.0, 3.0, 5.0, 8.0]]], [[[10.0, 20.0, 30.0, 40.0, 25.0]]]],
                          dtype=torch.float64)
    mask = torch.tensor([[[[True, False, True, True, True]]], [[[True] * 4 + [False]]]])
    target[1, 0, 0, 4] = NAN
    clamped = quantile_clamp(target, mask)
    assert clamped.shape == target.shape and clamped.dtype == torch.float64
    assert clamped[0].flatten().tolist() == pytest.approx([1.12, 100.0, 3.0, 5.0, 7.82], rel=1e-6)
    assert clamped[1, ..., :4].flatten().tolist() == pytest.approx([10.6, 20, 30, 39.4], rel=1e-6)
    assert clamped[1, 0, 0, 4].isnan()


# --- affine_invariant_l1 ---------------------------------------------------------------------

def test_affine_invariant_l1_by_hand():
    # Clamped t = 1.12, 3, 5, 7.82 (above). p = 0, 1, 2, 3: mean p 1.5, centred -1.5, -.5, .5, 1.5;
    # sum centred * t = -1.68 - 1.5 + 2.5 + 11.73 = 11.05, sum centred^2 = 5: scale 2.21;
    # mean t = 16.94 / 4 = 4.235, shift = 4.235 - 2.21 * 1.5 = 0.92. Fitted 0.92, 3.13, 5.34, 7.55;
    # |error| 0.2, 0.13, 0.34, 0.27 -> mean 0.94 / 4 = 0.235.
    assert affine_invariant_l1(P, T).item() == pytest.approx(0.235, rel=1e-6)


def test_affine_invariant_l1_is_a_mean_over_all_valid_pixels_of_the_batch():
    # Image 2, valid p = 2, 0, 4 and t = 4, 1, 5: quantiles of 1, 4, 5 at positions 0.04 and
    # 1.96: 1 + 0.04 * 3 = 1.12 and 4 + 0.96 * 1 = 4.96, so clamped t = 4, 1.12, 4.96.
    # Centred p 0, -2, 2: sum centred * t = -2.24 + 9.92 = 7.68, / 8 -> scale 0.96;
    # mean t 10.08 / 3 = 3.36, shift 3.36 - 1.92 = 1.44. Fitted 3.36, 1.44, 5.28;
    # |error| 0.64, 0.32, 0.32 = 1.28. Batch: (0.94 + 1.28) / (4 + 3) = 2.22 / 7 (the mean of
    # the two per-image means, (0.235 + 0.4267) / 2 = 0.331, would differ).
    loss = affine_invariant_l1(BATCH_P, BATCH_T, BATCH_M)
    assert loss.item() == pytest.approx(2.22 / 7.0, rel=1e-6)


def test_affine_invariant_l1_of_a_constant_prediction_is_the_mean_clamped_depth():
    # scale = shift = 0: the fitted prediction is 0 and the loss mean(1.12, 3, 5, 7.82) = 4.235.
    assert affine_invariant_l1(torch.full_like(P, 0.5), T).item() == pytest.approx(4.235, rel=1e-6)


def test_affine_invariant_l1_with_one_valid_pixel_is_its_depth():
    # One valid pixel: its quantiles are itself (5), scale = shift = 0, |0 - 5| / 1 = 5.
    loss = affine_invariant_l1(P, T, mask_of(False, False, True, False))
    assert loss.item() == pytest.approx(5.0, rel=1e-6)


def test_affine_invariant_l1_without_valid_pixels_is_zero_with_zero_gradient():
    prediction = P.clone().requires_grad_(True)
    loss = affine_invariant_l1(prediction, T, mask_of(False, False, False, False))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(prediction.grad, torch.zeros_like(P))


def test_affine_invariant_l1_without_a_mask_uses_every_pixel():
    full = torch.ones(2, 1, 1, 4, dtype=torch.bool)
    p, t = BATCH_P.nan_to_num(1.5), BATCH_T.nan_to_num(2.5)
    assert affine_invariant_l1(p, t).item() == affine_invariant_l1(p, t, full).item()
    assert affine_invariant_l1(p, t).item() != pytest.approx(
        affine_invariant_l1(p, t, BATCH_M).item())


def test_affine_invariant_l1_ignores_masked_nan_in_value_and_gradient():
    prediction = BATCH_P.clone().requires_grad_(True)
    loss = affine_invariant_l1(prediction, BATCH_T, BATCH_M)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(prediction.grad).all()
    assert prediction.grad[1, 0, 0, 1] == 0.0 and prediction.grad.abs().sum() > 0


def test_affine_invariant_l1_gradient_flows_through_the_fit():
    # With the fit in the graph the gradient of the L1 residual is orthogonal to 1 and to p
    # (moving p along either changes only scale and shift, which the fit absorbs).
    prediction = P.clone().requires_grad_(True)
    affine_invariant_l1(prediction, T).backward()
    grad = prediction.grad.flatten()
    assert grad.sum().item() == pytest.approx(0.0, abs=1e-12)
    assert (grad * P.flatten()).sum().item() == pytest.approx(0.0, abs=1e-12)
    assert grad.abs().sum() > 0.1


def test_affine_invariant_l1_returns_the_prediction_dtype_and_is_registered():
    assert affine_invariant_l1(P.float(), T.float()).dtype == torch.float32
    assert affine_invariant_l1(P, T).dtype == torch.float64
    assert affine_invariant_l1(P.bfloat16(), T.float()).dtype == torch.float32
    assert affine_invariant_l1(P.float(), T.float()).item() == pytest.approx(0.235, rel=1e-5)
    assert get_loss("affine_invariant_l1") is affine_invariant_l1


@check
@given(target=depths, mask=masks, scale=st.floats(0.01, 100), shift=st.floats(-10, 10))
def test_affine_invariant_l1_is_zero_for_a_positive_affine_copy_of_the_clamped_gt(
        target, mask, scale, shift):
    t, m = torch.tensor(target), torch.tensor(mask)
    clamped = quantile_clamp(t, m)
    assume(spread(clamped.numpy(), mask))
    loss = affine_invariant_l1(scale * clamped + shift, t, m)
    assert loss.item() == pytest.approx(0.0, abs=1e-9)


@check
@given(target=depths, mask=masks, scale=st.floats(0.01, 100), shift=st.floats(-10, 10))
def test_affine_invariant_l1_is_zero_when_clamping_changes_nothing(target, mask, scale, shift):
    # Every valid depth repeated (each value 3 times, 3 distinct values): with 9 values the 2%
    # and 98% quantiles lie at positions 0.16 and 7.84, between equal copies of min and max.
    # (Float32 values: masked_quantiles works in float32.)
    values = np.repeat(np.sort(target.reshape(2, -1)[:, :3], axis=1), 3, axis=1)  # [2, 9]
    values = values.astype(np.float32).astype(np.float64)
    t = torch.tensor(values).view(2, 1, 1, 9)
    assume(spread(values[:, None, None], np.ones_like(values, dtype=bool)[:, None, None]))
    assert torch.equal(quantile_clamp(t), t)
    assert affine_invariant_l1(scale * t + shift, t).item() == pytest.approx(0.0, abs=1e-9)


@check
@given(prediction=maps, target=depths, mask=masks,
       scale=st.floats(0.1, 10).flatmap(lambda a: st.sampled_from([a, -a])),
       shift=st.floats(-5, 5))
def test_affine_invariant_l1_is_unchanged_by_affine_changes_of_the_prediction(
        prediction, target, mask, scale, shift):
    assume(spread(prediction, mask))
    p, t, m = torch.tensor(prediction), torch.tensor(target), torch.tensor(mask)
    assert affine_invariant_l1(scale * p + shift, t, m).item() == pytest.approx(
        affine_invariant_l1(p, t, m).item(), rel=1e-6, abs=1e-9)


@check
@given(prediction=maps, target=depths, mask=masks, junk=st.sampled_from([NAN, math.inf, -1e30]))
def test_masked_pixels_never_affect_the_affine_loss(prediction, target, mask, junk):
    p, t, m = torch.tensor(prediction), torch.tensor(target), torch.tensor(mask)
    reference = affine_invariant_l1(p, t, m).item()
    assert affine_invariant_l1(torch.where(m, p, junk), torch.where(m, t, junk), m).item() == \
        reference
    scale, shift = least_squares_scale_shift(torch.where(m, p, junk), t, m)
    expected = least_squares_scale_shift(p, t, m)
    assert scale.tolist() == expected[0].tolist() and shift.tolist() == expected[1].tolist()


@check
@given(prediction=maps, target=depths, mask=masks)
def test_affine_loss_gradients_are_finite_and_zero_on_masked_pixels(prediction, target, mask):
    p = torch.where(torch.tensor(mask), torch.tensor(prediction), NAN).requires_grad_(True)
    affine_invariant_l1(p, torch.tensor(target), torch.tensor(mask)).backward()
    assert torch.isfinite(p.grad).all()
    assert (p.grad[~torch.tensor(mask)] == 0).all()


# --- angular_normals -------------------------------------------------------------------------

def normals(*vectors) -> torch.Tensor:
    """One [1, 3, 1, W] image of the given 3-vectors."""
    return torch.tensor(vectors, dtype=torch.float64).T.reshape(1, 3, 1, -1)


def test_identical_normals_cost_only_the_clamp_floor_with_zero_gradient():
    n = torch.nn.functional.normalize(torch.randn(2, 3, 4, 5, dtype=torch.float64,
                                                  generator=torch.Generator().manual_seed(0)),
                                      dim=1)
    prediction = n.clone().requires_grad_(True)
    loss = angular_normals(prediction, n)
    loss.backward()
    assert ANGULAR_EPS == 1e-12
    assert loss.item() == pytest.approx(FLOOR, rel=1e-6)
    assert loss.item() == pytest.approx(0.0, abs=2e-6)
    assert torch.equal(prediction.grad, torch.zeros_like(n))


def test_float32_normals_are_compared_in_float64():
    # Normalised in float32, identical directions would meet at a dot product 1 - 1e-7 or so, an
    # angle of ~5e-4 rad; in float64 they reach the clamp floor.
    n = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    assert angular_normals(n, n.clone()).item() == pytest.approx(FLOOR, rel=1e-3)
    assert angular_normals(n, (3.0 * n).double()).item() == pytest.approx(FLOOR, rel=1e-3)
    assert angular_normals(n.double(), 3.0 * n).item() == pytest.approx(FLOOR, rel=1e-3)


def test_integer_masks_select_like_boolean_ones():
    prediction = torch.cat([normals((1, 1, 0), (0, 0, 1)), normals((0, 1, 0), (0, 0, 1))])
    target = torch.cat([normals((1, 0, 0), (1, 0, 0)), normals((0, 1, 0), (0, 1, 0))])
    mask = torch.tensor([[[[1, 0]]], [[[0, 1]]]], dtype=torch.uint8)
    assert angular_normals(prediction, target, mask).item() == pytest.approx(
        (math.pi / 4 + math.pi / 2) / 2, rel=1e-12)


def test_opposite_normals_cost_pi_less_the_floor():
    loss = angular_normals(normals((0, 0, -1), (1, 0, 0)), normals((0, 0, 1), (-2, 0, 0)))
    assert loss.item() == pytest.approx(math.acos(-1.0 + 1e-12), rel=1e-14)
    assert loss.item() < math.pi - 1e-6


def test_angular_loss_by_hand_with_a_mask():
    # Image 1: (0, 0, -3) vs (0, 0, -1): same direction, the floor; (1, 0, 0) vs (0, 1, 0): pi/2.
    # Image 2: (1, 1, 0) vs (0.5, 0, 0): pi/4 (both normalised first); pixel 2 masked (nan).
    # Mean over the 3 valid pixels of the batch: (floor + pi/2 + pi/4) / 3.
    prediction = torch.cat([normals((0, 0, -3), (1, 0, 0)), normals((1, 1, 0), (NAN, NAN, NAN))])
    target = torch.cat([normals((0, 0, -1), (0, 1, 0)), normals((0.5, 0, 0), (NAN, 0, 0))])
    mask = torch.tensor([[[[True, True]]], [[[True, False]]]])
    loss = angular_normals(prediction, target, mask)
    assert loss.item() == pytest.approx((FLOOR + math.pi / 2 + math.pi / 4) / 3, rel=1e-12)


def test_one_valid_pixel_gives_its_angle():
    prediction = normals((1, 1, 0), (0, 0, 1))
    target = normals((1, 0, 0), (0, 0, 1))
    loss = angular_normals(prediction, target, torch.tensor([[[[True, False]]]]))
    assert loss.item() == pytest.approx(math.pi / 4, rel=1e-12)


def test_short_and_long_vectors_are_normalised_and_zero_vectors_count_a_right_angle():
    prediction = normals((1e-6, 0, 0), (0, 300, 0), (0, 0, 0))
    target = normals((5, 0, 0), (0, 1e-9, 1e-9), (0, 0, 1))
    # Angles: floor, pi/4, pi/2 (a zero vector is orthogonal to everything).
    expected = (FLOOR + math.pi / 4 + math.pi / 2) / 3
    assert angular_normals(prediction, target).item() == pytest.approx(expected, rel=1e-9)


def test_angular_loss_without_a_mask_uses_every_pixel_and_empty_masks_give_zero():
    prediction = torch.cat([normals((1, 1, 0), (0, 1, 0)), normals((0, 0, 1), (1, 0, 1))])
    target = torch.cat([normals((1, 0, 0), (0, 1, 0)), normals((0, 1, 0), (1, 0, 0))])
    # Angles pi/4, floor, pi/2, pi/4 -> mean over 4 pixels.
    expected = (math.pi / 4 + FLOOR + math.pi / 2 + math.pi / 4) / 4
    assert angular_normals(prediction, target).item() == pytest.approx(expected, rel=1e-12)
    empty = torch.zeros(2, 1, 1, 2, dtype=torch.bool)
    grad = prediction.clone().requires_grad_(True)
    loss = angular_normals(grad, target, empty)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(grad.grad, torch.zeros_like(prediction))


def test_angular_loss_dtype_and_registration():
    p, t = normals((1, 1, 0)), normals((1, 0, 0))
    assert angular_normals(p.float(), t.float()).dtype == torch.float32
    assert angular_normals(p, t).dtype == torch.float64
    assert angular_normals(p.bfloat16(), t.float()).dtype == torch.float32
    assert angular_normals(p.float(), t.float()).item() == pytest.approx(math.pi / 4, rel=1e-6)
    assert get_loss("angular_normals") is angular_normals


vectors = hnp.arrays(np.float64, (2, 3, 2, 3), elements=st.floats(-1, 1, width=64))
normal_masks = hnp.arrays(np.bool_, (2, 1, 2, 3))


def rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation of [..., 3] vectors about a unit axis."""
    return (v * math.cos(angle) + np.cross(axis, v) * math.sin(angle)
            + axis * (v @ axis)[..., None] * (1 - math.cos(angle)))


@check
@given(vector=hnp.arrays(np.float64, 3, elements=st.floats(-1, 1, width=64)),
       helper=hnp.arrays(np.float64, 3, elements=st.floats(-1, 1, width=64)),
       angle=st.floats(1e-3, math.pi - 1e-3), length=st.floats(0.01, 100))
def test_angular_loss_equals_the_angle_of_a_rotation(vector, helper, angle, length):
    assume(np.linalg.norm(vector) > 0.1)
    axis = np.cross(vector, helper)  # perpendicular to the vector: rotating by `angle` turns it
    assume(np.linalg.norm(axis) > 0.1)  # by exactly `angle`
    axis /= np.linalg.norm(axis)
    rotated = rotate(vector, axis, angle) * length
    loss = angular_normals(normals(tuple(rotated)), normals(tuple(vector)))
    assert loss.item() == pytest.approx(angle, abs=1e-9)


@check
@given(target=vectors, mask=normal_masks, lengths=hnp.arrays(np.float64, (2, 1, 2, 3),
                                                             elements=st.floats(0.01, 100)))
def test_angular_loss_is_zero_for_identical_directions(target, mask, lengths):
    t, m = torch.tensor(target), torch.tensor(mask)
    assume((t.norm(dim=1, keepdim=True) > 1e-3)[m].all())
    loss = angular_normals(t * torch.tensor(lengths), t, m)
    assert loss.item() == pytest.approx(FLOOR if mask.any() else 0.0, rel=1e-6)


@check
@given(prediction=vectors, target=vectors, mask=normal_masks,
       junk=st.sampled_from([NAN, math.inf, 0.0]))
def test_masked_pixels_never_affect_the_angular_loss(prediction, target, mask, junk):
    p, t, m = torch.tensor(prediction), torch.tensor(target), torch.tensor(mask)
    changed = torch.where(m, p, junk).requires_grad_(True)
    loss = angular_normals(changed, torch.where(m, t, junk), m)
    assert loss.item() == angular_normals(p, t, m).item()
    loss.backward()
    assert torch.isfinite(changed.grad).all()
    assert (changed.grad * ~m == 0).all()
