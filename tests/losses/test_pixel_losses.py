"""Pixel-space losses of DepthMaster stage 2 (pixel MSE, four-direction gradient, the release's
inverted Huber): values worked out by hand, masks, and hypothesis properties."""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from depthlab.losses.pixel import (DIRECTIONS, RELEASE_HUBER_DELTA, four_direction_gradient,
                                   four_direction_gradient_release_huber, pixel_mse, release_huber)
from depthlab.losses.registry import get_loss

check = settings(max_examples=50, deadline=None, derandomize=True, database=None)


def image(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)[None, None]


# pixel_mse: p = [[1, 2], [3, 4]], g = [[1, 0], [0, 0]]: squares 0, 4, 9, 16 -> 29 / 4.
P2, G2 = image([[1.0, 2.0], [3.0, 4.0]]), image([[1.0, 0.0], [0.0, 0.0]])


def test_pixel_mse_by_hand():
    assert float(pixel_mse(P2, G2)) == pytest.approx(29.0 / 4.0)


def test_pixel_mse_mask_by_hand():
    # Without the pixel holding 4 (now inf, never read): (0 + 4 + 9) / 3. One valid pixel: 9.
    mask = torch.tensor([[[[True, True], [True, False]]]])
    p = P2.clone()
    p[..., 1, 1] = float("inf")
    assert float(pixel_mse(p, G2, mask)) == pytest.approx(13.0 / 3.0)
    only = torch.tensor([[[[False, False], [True, False]]]])
    assert float(pixel_mse(p, G2, only)) == pytest.approx(9.0)
    assert float(pixel_mse(p, G2, torch.zeros_like(only))) == 0.0


# The residual R = prediction - target (the target is zero here):
#   R = [[0, 1, 3],
#        [2, 2, 0],
#        [4, 1, 5]]
# x   (R[i, j+1] - R[i, j]):     1, 2 | 0, -2 | -3, 4        -> |.| 12 over 6 pairs = 2
# y   (R[i+1, j] - R[i, j]):     2, 2 | 1, -1 | -3, 5 (cols) -> 14 / 6 = 7/3
# 45  (R[i, j+1] - R[i+1, j]):   1-2, 3-2, 2-4, 0-1 = -1, 1, -2, -1   -> 5 / 4
# 135 (R[i+1, j+1] - R[i, j]):   2-0, 0-1, 1-2, 5-2 = 2, -1, -1, 3    -> 7 / 4
# Mean of the four: (2 + 7/3 + 5/4 + 7/4) / 4 = 11/6.
R3 = image([[0.0, 1.0, 3.0], [2.0, 2.0, 0.0], [4.0, 1.0, 5.0]])


def test_four_direction_gradient_by_hand():
    assert float(four_direction_gradient(R3, torch.zeros_like(R3))) == pytest.approx(11.0 / 6.0)
    # Only the residual counts: the same residual from another target.
    target = image([[5.0, -1.0, 2.0], [0.5, 0.0, 7.0], [1.0, 1.0, -3.0]])
    assert float(four_direction_gradient(R3 + target, target)) == pytest.approx(11.0 / 6.0)


def test_four_direction_gradient_mask_by_hand():
    # The centre pixel (nan, never read) is invalid, which voids every pair through it:
    # x: 1, 2 | - | -3, 4 -> 10 / 4;  y: 2, 2 | - | -3, 5 -> 12 / 4;
    # 45: R[0,1] - R[1,0] = -1, R[1,2] - R[2,1] = -1 -> 2 / 2;
    # 135: R[1,2] - R[0,1] = -1, R[2,1] - R[1,0] = -1 -> 2 / 2.
    # Mean (2.5 + 3 + 1 + 1) / 4 = 1.875.
    mask = torch.ones_like(R3, dtype=torch.bool)
    mask[..., 1, 1] = False
    p = R3.clone()
    p[..., 1, 1] = float("nan")
    assert float(four_direction_gradient(p, torch.zeros_like(p), mask)) == pytest.approx(1.875)


def test_each_direction_by_hand():
    # Every direction once, on one pair: R = [[0, 0.1], [0.5, 0]]:
    # x: 0.1, -0.5 -> 0.3; y: 0.5, -0.1 -> 0.3; 45: R[0,1] - R[1,0] = -0.4 (1 pair);
    # 135: R[1,1] - R[0,0] = 0 (1 pair). Mean (0.3 + 0.3 + 0.4 + 0) / 4 = 0.25.
    r = image([[0.0, 0.1], [0.5, 0.0]])
    assert float(four_direction_gradient(r, torch.zeros_like(r))) == pytest.approx(0.25)
    # Mirrored left-right, [[0.1, 0], [0, 0.5]]: 45 -> 0, 135 -> 0.5 - 0.1 = 0.4, x and y 0.3.
    assert float(four_direction_gradient(r.flip(-1), torch.zeros_like(r))) == pytest.approx(0.25)
    assert list(DIRECTIONS) == ["x", "y", "45", "135"]


def test_each_direction_separately():
    # Linear ramps on a 3x4 grid: every pair of a direction has the same |difference|.
    # R = i + j is constant along 45 (R[i, j+1] - R[i+1, j] = 0): x = 1, y = 1, 45 = 0,
    # 135 = 2 -> (1 + 1 + 0 + 2) / 4 = 1.
    i, j = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    diagonal = (i + j).double()[None, None]
    assert float(four_direction_gradient(diagonal, 0 * diagonal)) == pytest.approx(1.0)
    # R = i - j is constant along 135: x = 1, y = 1, 45 = |(i - j - 1) - (i + 1 - j)| = 2, 135 = 0.
    anti = (i - j).double()[None, None]
    assert float(four_direction_gradient(anti, 0 * anti)) == pytest.approx(1.0)
    # R = j only: x = 1, y = 0, 45 = 1, 135 = 1 -> 3/4; R = i only: x = 0, y = 1, 45 = 1,
    # 135 = 1 -> 3/4; R = 2 j + i: x 2, y 1, 45 |2 - 1| = 1, 135 3 -> 7/4.
    assert float(four_direction_gradient(j.double()[None, None], 0 * anti)) == pytest.approx(0.75)
    assert float(four_direction_gradient(i.double()[None, None], 0 * anti)) == pytest.approx(0.75)
    assert float(four_direction_gradient((2 * j + i).double()[None, None], 0 * anti)) == \
        pytest.approx(1.75)


def test_a_direction_without_pairs_counts_as_zero():
    # A 1x3 image has only x pairs: |1| and |2| -> 1.5; the other three directions give 0.
    r = image([[0.0, 1.0, 3.0]])
    assert float(four_direction_gradient(r, torch.zeros_like(r))) == pytest.approx(1.5 / 4.0)
    none = torch.zeros_like(R3, dtype=torch.bool)
    assert float(four_direction_gradient(R3, torch.zeros_like(R3), none)) == 0.0


def test_release_huber_by_hand():
    assert RELEASE_HUBER_DELTA == 0.2
    # Below delta: delta |d| = 0.2 * 0.1 = 0.02. Above: (d^2 + delta^2) / 2 = (0.25 + 0.04) / 2.
    assert float(release_huber(torch.tensor(0.1, dtype=torch.float64))) == pytest.approx(0.02)
    assert float(release_huber(torch.tensor(-0.1, dtype=torch.float64))) == pytest.approx(0.02)
    assert float(release_huber(torch.tensor(-0.5, dtype=torch.float64))) == pytest.approx(0.145)
    assert float(release_huber(torch.tensor(0.0, dtype=torch.float64))) == 0.0
    # Continuous at delta: delta^2 = 0.04 from both sides.
    at = torch.tensor([0.2 - 1e-9, 0.2, 0.2 + 1e-9], dtype=torch.float64)
    assert release_huber(at).tolist() == pytest.approx([0.04] * 3, abs=1e-9)
    # Another delta: 1 * 0.5 below, (4 + 1) / 2 above.
    two = torch.tensor([0.5, 2.0], dtype=torch.float64)
    assert release_huber(two, delta=1.0).tolist() == pytest.approx([0.5, 2.5])


def test_release_huber_has_the_release_gradient():
    # The release: delta |d| + delta^2 / 2 for |d| <= delta, d^2 / 2 above. Same gradient.
    d = torch.tensor([-0.7, -0.15, 0.05, 0.19, 0.21, 0.9], dtype=torch.float64,
                     requires_grad=True)
    release_huber(d).sum().backward()
    delta = 0.2
    expected = torch.where(d.abs() > delta, d, delta * d.sign())
    assert torch.allclose(d.grad, expected.detach())
    original = torch.where(d.abs() > delta, 0.5 * d ** 2, delta * d.abs() + 0.5 * delta ** 2)
    offset = (release_huber(d) - original).detach()
    assert offset.tolist() == pytest.approx([0.02, -0.02, -0.02, -0.02, 0.02, 0.02])


def test_release_huber_gradient_loss_by_hand():
    # R = [[0, 0.1], [0.5, 0]]: x: 0.1 -> 0.02, -0.5 -> 0.145: (0.165) / 2; y the same;
    # 45: -0.4 -> (0.16 + 0.04) / 2 = 0.1; 135: 0 -> 0. Mean (0.0825 * 2 + 0.1) / 4 = 0.06625.
    r = image([[0.0, 0.1], [0.5, 0.0]])
    value = four_direction_gradient_release_huber(r, torch.zeros_like(r))
    assert float(value) == pytest.approx(0.06625)


def test_registered_and_differentiable():
    assert get_loss("pixel_mse") is pixel_mse
    assert get_loss("four_direction_gradient") is four_direction_gradient
    assert get_loss("four_direction_gradient_release_huber") is \
        four_direction_gradient_release_huber
    mask = torch.ones_like(R3, dtype=torch.bool)
    mask[..., 0, 0] = False
    for loss in (pixel_mse, four_direction_gradient, four_direction_gradient_release_huber):
        prediction = R3.clone().requires_grad_(True)
        loss(prediction, torch.zeros_like(R3), mask).backward()
        assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0
        assert prediction.grad[..., 0, 0] == 0


def test_low_precision_maps_are_computed_in_float32():
    for loss in (pixel_mse, four_direction_gradient, four_direction_gradient_release_huber):
        value = loss(R3.to(torch.bfloat16), torch.zeros(1, 1, 3, 3, dtype=torch.bfloat16))
        assert value.dtype == torch.float32
        assert float(value) == pytest.approx(float(loss(R3, torch.zeros_like(R3))), rel=1e-6)
    assert pixel_mse(R3, R3).dtype == torch.float64


maps = hnp.arrays(np.float64, (2, 1, 4, 5), elements=st.floats(-10, 10, width=64))
masks = hnp.arrays(np.bool_, (2, 1, 4, 5))
GRADIENT_LOSSES = [four_direction_gradient, four_direction_gradient_release_huber]


@pytest.mark.parametrize("loss", GRADIENT_LOSSES)
@check
@given(prediction=maps, target=maps, mask=masks, offset=st.floats(-100, 100))
def test_invariant_to_a_constant_offset(loss, prediction, target, mask, offset):
    p, g, m = torch.tensor(prediction), torch.tensor(target), torch.tensor(mask)
    assert float(loss(p + offset, g, m)) == pytest.approx(float(loss(p, g, m)), rel=1e-9,
                                                          abs=1e-9)


@pytest.mark.parametrize("loss", GRADIENT_LOSSES)
@check
@given(target=maps, mask=masks, offset=st.floats(-100, 100))
def test_zero_for_an_offset_copy_of_the_target(loss, target, mask, offset):
    g, m = torch.tensor(target), torch.tensor(mask)
    assert float(loss(g + offset, g, m)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("loss", GRADIENT_LOSSES + [pixel_mse])
@check
@given(prediction=maps, target=maps, mask=masks, other=maps)
def test_masked_pixels_are_ignored(loss, prediction, target, mask, other):
    p, g, m = torch.tensor(prediction), torch.tensor(target), torch.tensor(mask)
    changed = torch.where(m, p, torch.tensor(other))
    changed_target = torch.where(m, g, -torch.tensor(other))
    assert float(loss(changed, changed_target, m)) == pytest.approx(float(loss(p, g, m)),
                                                                    abs=1e-12)


@check
@given(prediction=maps, target=maps, mask=masks)
def test_pixel_mse_is_the_mean_over_valid_pixels(prediction, target, mask):
    p, g, m = torch.tensor(prediction), torch.tensor(target), torch.tensor(mask)
    expected = ((p - g)[m].square().mean() if mask.any() else torch.tensor(0.0))
    assert float(pixel_mse(p, g, m)) == pytest.approx(float(expected), rel=1e-12, abs=1e-12)


@check
@given(prediction=maps, target=maps, mask=masks)
def test_gradient_loss_is_the_mean_of_four_direction_means(prediction, target, mask):
    # A direct loop over pixel pairs, per direction, in plain numpy.
    residual = prediction - target
    steps = {"x": ((0, 1), (0, 0)), "y": ((1, 0), (0, 0)), "45": ((0, 1), (1, 0)),
             "135": ((1, 1), (0, 0))}
    means = []
    for (a_di, a_dj), (b_di, b_dj) in steps.values():
        values = []
        for b in range(2):
            for i in range(3 if (a_di or b_di) else 4):
                for j in range(4 if (a_dj or b_dj) else 5):
                    first, second = (b, 0, i + a_di, j + a_dj), (b, 0, i + b_di, j + b_dj)
                    if mask[first] and mask[second]:
                        values.append(abs(residual[first] - residual[second]))
        means.append(np.mean(values) if values else 0.0)
    value = four_direction_gradient(torch.tensor(prediction), torch.tensor(target),
                                    torch.tensor(mask))
    assert float(value) == pytest.approx(float(np.mean(means)), rel=1e-9, abs=1e-12)
