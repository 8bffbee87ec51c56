"""Median/MAD-normalised affine-invariant losses (Depth Anything's): values worked out by hand,
orientation sensitivity, and hypothesis properties."""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

from depthlab.losses.registry import get_loss
from depthlab.losses.scale_shift import (median_normalised_gradient, median_normalised_mae,
                                         normalise_median, scale_shift_invariant_mae)

check = settings(max_examples=50, deadline=None, derandomize=True, database=None)

# One image [1, 1, 1, 4]. p = 0, 1, 2, 3: lower median 1, MAD (1 + 0 + 1 + 2) / 4 = 1, so the
# normalised p is -1, 0, 1, 2. g = 0, 2, 2, 4: median 2, MAD (2 + 0 + 0 + 2) / 4 = 1, normalised
# -2, 0, 0, 2. |difference| = 1, 0, 1, 0 -> mean 0.5.
P = torch.tensor([[[[0.0, 1.0, 2.0, 3.0]]]], dtype=torch.float64)
G = torch.tensor([[[[0.0, 2.0, 2.0, 4.0]]]], dtype=torch.float64)


def test_normalisation_by_hand():
    assert normalise_median(P).flatten().tolist() == [-1.0, 0.0, 1.0, 2.0]
    assert normalise_median(G).flatten().tolist() == [-2.0, 0.0, 0.0, 2.0]


def test_mae_by_hand():
    assert float(median_normalised_mae(P, G)) == pytest.approx(0.5)


def test_an_inverted_map_is_penalised_where_least_squares_is_blind():
    # p reversed = 3, 2, 1, 0: median 1, MAD 1 -> 2, 1, 0, -1; against -2, 0, 0, 2:
    # |4, 1, 0, 3| -> mean 2. Least squares fits a negative scale to -p as well as to p.
    assert float(median_normalised_mae(P.flip(-1), G)) == pytest.approx(2.0)
    assert float(scale_shift_invariant_mae(-P, G)) == pytest.approx(
        float(scale_shift_invariant_mae(P, G)))
    assert float(median_normalised_mae(-P, G)) > float(median_normalised_mae(P, G)) + 1.0


def test_mask_by_hand():
    # Valid: p 0, 1, 3 (median 1, MAD (1 + 0 + 2) / 3 = 1) -> -1, 0, 2;
    #        g 0, 2, 4 (median 2, MAD (2 + 0 + 2) / 3 = 4/3) -> -1.5, 0, 1.5.
    # |0.5, 0, 0.5| -> mean 1/3. The masked pixel's value (nan) is never read.
    mask = torch.tensor([[[[True, True, False, True]]]])
    p = P.clone()
    p[..., 2] = float("nan")
    assert float(median_normalised_mae(p, G, mask)) == pytest.approx(1.0 / 3.0)
    assert normalise_median(p, mask)[..., 2].item() == 0.0


def test_images_without_valid_pixels_or_spread_normalise_to_zero():
    none = torch.zeros(1, 1, 1, 4, dtype=torch.bool)
    assert normalise_median(P, none).abs().sum() == 0
    assert normalise_median(torch.full_like(P, 7.0)).abs().sum() == 0


def test_gradient_matching_by_hand():
    # 2x2 images (one scale: the coarser ones are one pixel): p = [[0, 1], [2, 3]] normalises to
    # [[-1, 0], [1, 2]] and g = [[0, 2], [2, 4]] to [[-2, 0], [0, 2]] (as above, row-major).
    # Residual [[1, 0], [1, 0]]: |grad_x| 1 + 1, |grad_y| 0 + 0 -> 2 over 4 cells = 0.5.
    assert float(median_normalised_gradient(P.view(1, 1, 2, 2), G.view(1, 1, 2, 2))) == \
        pytest.approx(0.5)


def test_gradient_matching_skips_pairs_across_invalid_pixels():
    # A 2x6 image whose valid columns are 0-1, 3 and 5 (pixels p = 0, 1, 2, g = 0, 2, 3 by
    # region). p over the 8 valid pixels: lower median 0, MAD (2 * 1 + 2 * 2) / 8 = 0.75, so the
    # regions normalise to 0, 4/3, 8/3; g: median 0, MAD (2 * 2 + 2 * 3) / 8 = 1.25, so 0, 1.6,
    # 2.4. The residual is constant within each region, and no two valid pixels of different
    # regions are neighbours, so the loss is 0. (Counting the masked columns as neighbours, with
    # their normalised value 0, would give it pairs with a residual step of 4/15.)
    mask = torch.tensor([[[[True, True, False, True, False, True]] * 2]])
    p = torch.tensor([[[[0.0, 0.0, 9.0, 1.0, 9.0, 2.0]] * 2]], dtype=torch.float64)
    g = torch.tensor([[[[0.0, 0.0, -9.0, 2.0, -9.0, 3.0]] * 2]], dtype=torch.float64)
    residual = normalise_median(p, mask) - normalise_median(g, mask)
    assert residual[0, 0, 0].tolist() == pytest.approx([0, 0, 0, -4 / 15, 0, 4 / 15])
    assert float(median_normalised_gradient(p, g, mask)) == 0.0


def test_registered_and_differentiable():
    assert get_loss("ssi_mae_median") is median_normalised_mae
    assert get_loss("ssi_gradient_matching_median") is median_normalised_gradient
    prediction = P.clone().requires_grad_(True)
    (median_normalised_mae(prediction, G) + median_normalised_gradient(prediction, G)).backward()
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0


maps = hnp.arrays(np.float64, (2, 1, 4, 4), elements=st.floats(-10, 10, width=64))
masks = hnp.arrays(np.bool_, (2, 1, 4, 4))
LOSSES = [median_normalised_mae, median_normalised_gradient]


@pytest.mark.parametrize("loss", LOSSES)
@check
@given(prediction=maps, target=maps, mask=masks, scale=st.floats(0.1, 10), shift=st.floats(-5, 5))
def test_invariant_to_positive_scale_and_shift(loss, prediction, target, mask, scale, shift):
    p, g, m = torch.tensor(prediction), torch.tensor(target), torch.tensor(mask)
    assume(all(np.ptp(prediction[i][mask[i]]) > 1e-3 if mask[i].any() else True
               for i in range(2)))
    assert float(loss(scale * p + shift, g, m)) == pytest.approx(float(loss(p, g, m)),
                                                                 rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("loss", LOSSES)
@check
@given(target=maps, mask=masks, scale=st.floats(0.1, 10), shift=st.floats(-5, 5))
def test_zero_for_a_positive_affine_copy_of_the_target(loss, target, mask, scale, shift):
    g, m = torch.tensor(target), torch.tensor(mask)
    assert float(loss(scale * g + shift, g, m)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss", LOSSES)
@check
@given(prediction=maps, target=maps, mask=masks, other=maps)
def test_masked_pixels_are_ignored(loss, prediction, target, mask, other):
    p, g, m = torch.tensor(prediction), torch.tensor(target), torch.tensor(mask)
    changed = torch.where(m, p, torch.tensor(other))
    assert float(loss(changed, g, m)) == pytest.approx(float(loss(p, g, m)), abs=1e-9)


def test_each_image_normalises_by_its_own_spread():
    # Image 2 is image 1 times 10: median 10, MAD 10 -> the same -1, 0, 1, 2.
    batch = torch.cat([P, 10.0 * P])
    assert normalise_median(batch).flatten(1).tolist() == [[-1.0, 0.0, 1.0, 2.0]] * 2
