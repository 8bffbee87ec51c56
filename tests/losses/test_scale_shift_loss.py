"""Scale-and-shift-invariant losses: values worked out by hand, and hypothesis properties."""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

from depthlab.losses.registry import get_loss
from depthlab.losses.scale_shift import (align_scale_shift, scale_shift_invariant_gradient,
                                         scale_shift_invariant_mae)

T, F = True, False
check = settings(max_examples=50, deadline=None, derandomize=True, database=None)


def value(loss, prediction, target, mask=None) -> float:
    return float(loss(torch.tensor(prediction, dtype=torch.float64),
                      torch.tensor(target, dtype=torch.float64),
                      None if mask is None else torch.tensor(mask)))


# One image [1, 1, 1, 4]: prediction p = 0, 1, 2, 3 and target g = 1, 2, 2, 5.
# Means: p 1.5, g 2.5. Centred p: -1.5, -0.5, 0.5, 1.5 (sum of squares 5);
# covariance sum: (-1.5)(-1.5) + (-0.5)(-0.5) + 0.5(-0.5) + 1.5(2.5)
#   = 2.25 + 0.25 - 0.25 + 3.75 = 6.
# s = 6 / 5 = 1.2, t = 2.5 - 1.2 * 1.5 = 0.7; aligned = 0.7, 1.9, 3.1, 4.3;
# |aligned - g| = 0.3, 0.1, 1.1, 0.7 -> mean 2.2 / 4 = 0.55.
P = [[[[0.0, 1.0, 2.0, 3.0]]]]
G = [[[[1.0, 2.0, 2.0, 5.0]]]]


def test_mae_by_hand():
    assert value(scale_shift_invariant_mae, P, G) == pytest.approx(0.55)
    aligned = align_scale_shift(torch.tensor(P), torch.tensor(G))
    torch.testing.assert_close(aligned, torch.tensor([[[[0.7, 1.9, 3.1, 4.3]]]]))


def test_mae_by_hand_with_a_mask():
    # The last pixel masked: p 0, 1, 2; g 1, 2, 2 (means 1, 5/3). Centred p: -1, 0, 1 (squares 2);
    # covariance: (-1)(1 - 5/3) + 0 + 1(2 - 5/3) = 2/3 + 1/3 = 1 -> s = 1/2, t = 5/3 - 1/2 = 7/6;
    # aligned 7/6, 10/6, 13/6; errors 1/6, 2/6, 1/6 -> mean (4/6) / 3 = 2/9.
    # (Fitting and averaging over all four pixels would give 0.55.)
    mask = [[[[T, T, T, F]]]]
    assert value(scale_shift_invariant_mae, P, G, mask) == pytest.approx(2.0 / 9.0)


def test_mae_pools_valid_pixels_over_the_batch():
    # Image 1 as above (4 valid pixels, sum of errors 2.2); image 2 fits exactly (2 valid pixels,
    # error 0): 2.2 / 6 valid pixels (a mean of per-image means would give 0.275).
    prediction = [P[0], [[[1.0, 3.0, 0.0, 0.0]]]]
    target = [G[0], [[[2.0, 8.0, 9.0, 9.0]]]]
    mask = [[[[T, T, T, T]]], [[[T, T, F, F]]]]
    assert value(scale_shift_invariant_mae, prediction, target, mask) == pytest.approx(2.2 / 6)


def test_constant_prediction_fits_the_target_mean():
    # Scale 0, shift 2.5: errors 1.5, 0.5, 0.5, 2.5 -> mean 5 / 4.
    assert value(scale_shift_invariant_mae, [[[[4.0] * 4]]], G) == pytest.approx(1.25)


def test_gradient_matching_by_hand():
    # A 2x2 image; aligned prediction fits exactly except for a residual pattern. p = [[0, 1],
    # [2, 4]], g = [[0, 1], [2, 3]]: centred p -1.75, -0.75, 0.25, 2.25 (squares 8.75), g mean 1.5,
    # covariance 1.75*1.5 + 0.75*0.5 + 0.25*0.5 + 2.25*1.5 = 6.5 -> s = 26/35, t = 1.5 - s*1.75.
    # Residual r = s p + t - g at (0,0), (0,1), (1,0), (1,1): t, s + t - 1, 2s + t - 2, 4s + t - 3.
    # Scale 1 only (a 2x2 image's coarser scales are one pixel, with no pairs): x pairs
    # |r01 - r00| + |r11 - r10|, y pairs |r10 - r00| + |r11 - r01|, over 4 pixels.
    s = 26.0 / 35.0
    t = 1.5 - s * 1.75
    r = np.array([[t, s + t - 1], [2 * s + t - 2, 4 * s + t - 3]])
    expected = (abs(r[0, 1] - r[0, 0]) + abs(r[1, 1] - r[1, 0])
                + abs(r[1, 0] - r[0, 0]) + abs(r[1, 1] - r[0, 1])) / 4
    got = value(scale_shift_invariant_gradient, [[[[0.0, 1.0], [2.0, 4.0]]]],
                [[[[0.0, 1.0], [2.0, 3.0]]]])
    assert got == pytest.approx(expected)


def test_gradient_matching_adds_coarser_scales():
    # 4x4, prediction 0 except 1 at (0, 0); target 0 except 1 at (0, 1). Scale 1 is the sum over
    # 16 pixels; scale 2 (every other pixel: (0,0), (0,2), (2,0), (2,2)) adds a second term.
    prediction = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    target = torch.zeros_like(prediction)
    prediction[..., 0, 0], target[..., 0, 1] = 1.0, 1.0
    aligned = align_scale_shift(prediction, target)
    from depthlab.losses.latent import gradient_matching
    expected = (gradient_matching(aligned, target) +
                gradient_matching(aligned[..., ::2, ::2], target[..., ::2, ::2]))
    assert float(scale_shift_invariant_gradient(prediction, target)) == pytest.approx(
        float(expected))


def test_registered_by_name():
    assert get_loss("ssi_mae") is scale_shift_invariant_mae
    assert get_loss("ssi_gradient_matching") is scale_shift_invariant_gradient


def test_gradients_reach_the_prediction_through_the_fit():
    prediction = torch.tensor(P, requires_grad=True)
    scale_shift_invariant_mae(prediction, torch.tensor(G)).backward()
    assert prediction.grad is not None and torch.isfinite(prediction.grad).all()
    assert prediction.grad.abs().sum() > 0


def test_masked_inf_and_nan_leave_value_and_gradient_finite():
    # P and G above, as the first of two rows; the second row and the last pixel are masked out.
    prediction = torch.tensor([[[[0.0, 1.0, 2.0, float("inf")], [float("-inf"), 1.0, 2.0, 3.0]]]],
                              requires_grad=True)
    target = torch.tensor([[[[1.0, 2.0, 2.0, float("nan")], [float("nan"), 0.0, 0.0, 0.0]]]])
    mask = torch.tensor([[[[T, T, T, F], [F, F, F, F]]]])
    for loss in (scale_shift_invariant_mae, scale_shift_invariant_gradient):
        out = loss(prediction, target, mask)
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(prediction.grad).all()
        assert prediction.grad[mask.logical_not()].eq(0).all()
        prediction.grad = None
    got = float(scale_shift_invariant_mae(prediction.detach(), target, mask))
    assert got == pytest.approx(2.0 / 9.0)



def test_invalid_pixels_hold_the_shift():
    # As in test_mae_by_hand_with_a_mask: s = 1/2, t = 7/6, so the masked pixel holds t.
    mask = torch.tensor([[[[T, T, T, F]]]])
    aligned = align_scale_shift(torch.tensor(P, dtype=torch.float64),
                                torch.tensor(G, dtype=torch.float64), mask)
    assert aligned.flatten().tolist() == pytest.approx([7 / 6, 10 / 6, 13 / 6, 7 / 6])
    # A constant prediction carries no scale: s = 0 and t = the target's mean over valid pixels
    # (5/3), everywhere, the masked pixel included.
    constant = align_scale_shift(torch.full((1, 1, 1, 4), 4.0, dtype=torch.float64),
                                 torch.tensor(G, dtype=torch.float64), mask)
    assert constant.flatten().tolist() == pytest.approx([5 / 3] * 4)
    # One valid pixel: s = 0 and t = its target value, 2.
    single = align_scale_shift(torch.tensor(P, dtype=torch.float64),
                               torch.tensor(G, dtype=torch.float64),
                               torch.tensor([[[[F, T, F, F]]]]))
    assert single.flatten().tolist() == pytest.approx([2.0] * 4)


def test_each_image_is_fitted_on_its_own():
    # Beside an image of values near 1e6, P still fits G with s = 1.2, t = 0.7 (as alone).
    prediction = torch.tensor([P[0], [[[1e6, 2e6, 3e6, 5e6]]]])
    target = torch.tensor([G[0], [[[1.0, 2.0, 3.0, 4.0]]]])
    aligned = align_scale_shift(prediction, target)
    assert aligned[0].flatten().tolist() == pytest.approx([0.7, 1.9, 3.1, 4.3], rel=1e-6)


def test_predictions_equal_up_to_rounding_carry_no_scale():
    # 1000, the next float32 above it (1000 + 2^-14) and 1000: a variation of one unit in the last
    # place, nothing against the map's own size, so s = 0 and every pixel is the target's mean,
    # (1 + 2 + 6) / 3 = 3. (Fitting it would take a scale of about -2.5e4.)
    above = float(torch.nextafter(torch.tensor(1000.0), torch.tensor(2000.0)))
    assert above - 1000.0 == 2.0 ** -14
    prediction = torch.tensor([[[[1000.0, above, 1000.0]]]])
    aligned = align_scale_shift(prediction, torch.tensor([[[[1.0, 2.0, 6.0]]]]))
    assert aligned.flatten().tolist() == pytest.approx([3.0] * 3, abs=1e-6)


def test_low_precision_inputs_are_fitted_in_float32():
    # bfloat16 holds integers exactly only up to 256 (and counts such as 3001 not at all): the
    # pixel count and the sums must be taken in float32. The reference is the same fit in float64
    # over the same (bfloat16) values.
    generator = torch.Generator().manual_seed(0)
    prediction = torch.rand(1, 1, 60, 60, generator=generator).to(torch.bfloat16)
    target = (3.0 * prediction.double() + 0.1 * torch.rand(1, 1, 60, 60, generator=generator))
    mask = torch.zeros(1, 1, 60, 60, dtype=torch.bool)
    mask.view(-1)[:3001] = True
    p, g = prediction.double()[mask], target[mask]
    s = ((p - p.mean()) * (g - g.mean())).sum() / (p - p.mean()).square().sum()
    expected = s * (prediction.double() - p.mean()) + g.mean()
    aligned = align_scale_shift(prediction, target.to(torch.bfloat16), mask)
    assert aligned.dtype == torch.float32
    # The target is rounded to bfloat16 too; its mean and covariance move by ~1e-3 at most.
    torch.testing.assert_close(aligned[mask].double(), expected[mask], rtol=0, atol=2e-3)
    exact_target = align_scale_shift(prediction, target.float(), mask)
    torch.testing.assert_close(exact_target[mask].double(), expected[mask], rtol=0, atol=2e-5)


def test_gradient_matching_of_a_one_row_image_by_hand():
    # MiDaS takes every scale, whatever the size. P and G: aligned 0.7, 1.9, 3.1, 4.3, residual
    # -0.3, -0.1, 1.1, -0.7. Scale 1: |0.2| + |1.2| + |-1.8| = 3.2 over 4 pixels = 0.8. Scale 2
    # (pixels 0 and 2): |1.1 + 0.3| = 1.4 over 2 pixels = 0.7. Scales 4 and 8: one pixel, 0.
    assert value(scale_shift_invariant_gradient, P, G) == pytest.approx(1.5)


# -- properties ---------------------------------------------------------------------------------
SHAPE = (2, 1, 6, 7)
maps = hnp.arrays(np.float64, SHAPE, elements=st.floats(0.0, 4.0, width=32)).map(torch.from_numpy)
masks = hnp.arrays(np.bool_, SHAPE).map(torch.from_numpy)
scales = st.floats(0.05, 20.0)
shifts = st.floats(-5.0, 5.0)
LOSSES = [scale_shift_invariant_mae, scale_shift_invariant_gradient]


def spread(prediction: torch.Tensor, mask: torch.Tensor) -> bool:
    """Every image has valid pixels whose predictions differ clearly (a well-posed fit)."""
    for p, m in zip(prediction, mask):
        values = p[m]
        if values.numel() < 2 or float(values.max() - values.min()) < 1e-2:
            return False
    return True


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: loss.__name__)
@given(prediction=maps, target=maps, mask=masks, scale=scales, shift=shifts)
@check
def test_invariant_to_positive_scale_and_shift_of_the_prediction(loss, prediction, target, mask,
                                                                  scale, shift):
    assume(spread(prediction, mask))
    base = float(loss(prediction, target, mask))
    assert float(loss(scale * prediction + shift, target, mask)) == pytest.approx(
        base, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: loss.__name__)
@given(target=maps, mask=masks, scale=scales, shift=shifts)
@check
def test_zero_for_an_affine_copy_of_the_target(loss, target, mask, scale, shift):
    assume(spread(target, mask))
    assert float(loss(scale * target + shift, target, mask)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: loss.__name__)
@given(prediction=maps, target=maps, mask=masks, other=maps)
@check
def test_masked_pixels_are_ignored(loss, prediction, target, mask, other):
    changed_prediction = torch.where(mask, prediction, other * 1e3 - 7.0)
    changed_target = torch.where(mask, target, -other)
    assert float(loss(changed_prediction, changed_target, mask)) == pytest.approx(
        float(loss(prediction, target, mask)), rel=1e-9, abs=1e-12)


@given(prediction=maps, target=maps, mask=masks)
@check
def test_the_fit_is_no_worse_than_any_other_affine_map(prediction, target, mask):
    # The least-squares fit minimises the squared error: check it against the identity and a
    # constant map (both are affine maps of the prediction).
    aligned = align_scale_shift(prediction, target, mask)
    weights = mask.double()

    def squared(x):
        return float((weights * (x - target).square()).sum())

    mean = (weights * target).sum(dim=(1, 2, 3), keepdim=True) / weights.sum(
        dim=(1, 2, 3), keepdim=True).clamp_min(1)
    assert squared(aligned) <= squared(prediction) + 1e-9
    assert squared(aligned) <= squared(mean.expand_as(prediction)) + 1e-9
