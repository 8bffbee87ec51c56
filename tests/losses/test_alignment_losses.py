"""Feature-alignment losses (DepthMaster's Feature Alignment): values worked out by hand, the
release's F.kl_div reduction, masks, and hypothesis properties."""
import math
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings, strategies as st

from depthlab.losses.alignment import COSINE_EPS, alignment_cosine, alignment_kl
from depthlab.losses.registry import get_loss

check = settings(max_examples=50, deadline=None, derandomize=True, database=None)
LN3 = math.log(3.0)

# [B=1, D=2, h=1, w=2], channels first. Position 1: target logits (0, 0) -> p = (1/2, 1/2);
# prediction (0, ln 3) -> q = (1/4, 3/4). KL(p || q) = 1/2 ln(2) + 1/2 ln(2/3) = 1/2 ln(4/3).
# Position 2: target (ln 3, 0) -> p = (3/4, 1/4); prediction (ln 3 + 5, 5), the same softmax -> 0.
# The mean over all B * D * h * w = 4 elements: 1/2 ln(4/3) / 4 = ln(4/3) / 8.
TARGET = torch.tensor([[[[0.0, LN3]], [[0.0, 0.0]]]], dtype=torch.float64)
PREDICTION = torch.tensor([[[[0.0, LN3 + 5.0]], [[LN3, 5.0]]]], dtype=torch.float64)


def test_kl_by_hand():
    assert float(alignment_kl(PREDICTION, TARGET)) == pytest.approx(math.log(4.0 / 3.0) / 8.0)


def test_kl_direction_is_target_to_prediction():
    # Swapped, position 1 gives KL((1/4, 3/4) || (1/2, 1/2)) = 1/4 ln(1/2) + 3/4 ln(3/2).
    swapped = (0.25 * math.log(0.5) + 0.75 * math.log(1.5)) / 4.0
    assert float(alignment_kl(TARGET, PREDICTION)) == pytest.approx(swapped)
    assert swapped != pytest.approx(math.log(4.0 / 3.0) / 8.0)


def test_kl_is_the_release_kl_div_mean():
    # The release: F.kl_div(log_softmax(pred), softmax(target), reduction='mean'), a mean over
    # every element (B * D * h * w), i.e. the per-position KL divided by D = 3 here.
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randn(2, 3, 2, 4, generator=generator, dtype=torch.float64)
    target = torch.randn(2, 3, 2, 4, generator=generator, dtype=torch.float64)
    with warnings.catch_warnings():  # torch's notice that 'mean' is not 'batchmean'
        warnings.simplefilter("ignore")
        release = F.kl_div(prediction.log_softmax(1), target.softmax(1), reduction="mean")
    assert float(alignment_kl(prediction, target)) == pytest.approx(float(release), rel=1e-12)
    per_position = (target.softmax(1) * (target.log_softmax(1) - prediction.log_softmax(1)))
    assert float(alignment_kl(prediction, target)) == pytest.approx(
        float(per_position.sum(1).mean() / 3.0), rel=1e-12)


def test_kl_mask_by_hand():
    # Only position 1 valid: 1/2 ln(4/3) over 1 position, divided by D = 2. The masked position
    # holds nan, never read.
    mask = torch.tensor([[[[True, False]]]])
    prediction = PREDICTION.clone()
    prediction[..., 1] = float("nan")
    assert float(alignment_kl(prediction, TARGET, mask)) == pytest.approx(math.log(4.0 / 3.0) / 4.0)
    # Only position 2 valid: zero.
    assert float(alignment_kl(PREDICTION, TARGET, ~mask)) == pytest.approx(0.0, abs=1e-15)


# Cosine, [1, 2, 1, 2]: position 1 p = (1, 0), g = (1, 1): cos = 1/sqrt(2) -> 1 - 0.7071 = 0.2929;
# position 2 p = (3, 4), g = (-3, -4): cos = -1 -> 2. Mean (0.2929 + 2) / 2 = 1.1464.
COS_P = torch.tensor([[[[1.0, 3.0]], [[0.0, 4.0]]]], dtype=torch.float64)
COS_G = torch.tensor([[[[1.0, -3.0]], [[1.0, -4.0]]]], dtype=torch.float64)


def test_cosine_by_hand():
    assert float(alignment_cosine(COS_P, COS_G)) == pytest.approx((1 - 0.5 ** 0.5 + 2.0) / 2.0)


def test_cosine_mask_by_hand():
    mask = torch.tensor([[[[True, False]]]])
    p = COS_P.clone()
    p[..., 1] = float("inf")
    assert float(alignment_cosine(p, COS_G, mask)) == pytest.approx(1 - 0.5 ** 0.5)
    assert float(alignment_cosine(COS_P, COS_G, ~mask)) == pytest.approx(2.0)


def test_cosine_of_vanishing_features():
    # A zero feature: cos = 0 / max(0, eps) = 0 -> loss 1, not nan.
    zero = torch.zeros(1, 2, 1, 1, dtype=torch.float64)
    assert float(alignment_cosine(zero, COS_G[..., :1])) == 1.0
    # Parallel features of length 1e-5: p.g = 1e-10 = |p| |g| < eps = 1e-8 -> cos = 0.01.
    tiny = torch.tensor([[[[1e-5]], [[0.0]]]], dtype=torch.float64)
    assert COSINE_EPS == 1e-8
    assert float(alignment_cosine(tiny, tiny)) == pytest.approx(0.99)


def test_losses_without_valid_positions_are_zero():
    none = torch.zeros(1, 1, 1, 2, dtype=torch.bool)
    assert float(alignment_kl(PREDICTION, TARGET, none)) == 0.0
    assert float(alignment_cosine(COS_P, COS_G, none)) == 0.0


def test_registered_and_differentiable():
    assert get_loss("alignment_kl") is alignment_kl
    assert get_loss("alignment_cosine") is alignment_cosine
    prediction = PREDICTION.clone().requires_grad_(True)
    (alignment_kl(prediction, TARGET) + alignment_cosine(prediction, COS_G)).backward()
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0


def test_low_precision_features_are_computed_in_float32():
    prediction, target = PREDICTION.to(torch.bfloat16), TARGET.to(torch.bfloat16)
    for loss in (alignment_kl, alignment_cosine):
        value = loss(prediction, target)
        assert value.dtype == torch.float32
        assert float(value) == pytest.approx(float(loss(prediction.double(), target.double())),
                                             rel=1e-6, abs=1e-9)
    assert alignment_kl(PREDICTION, TARGET).dtype == torch.float64


def test_masked_gradient_is_zero():
    mask = torch.tensor([[[[True, False]]]])
    for loss in (alignment_kl, alignment_cosine):
        prediction = COS_P.clone().requires_grad_(True)
        loss(prediction, COS_G, mask).backward()
        assert prediction.grad[..., 1].abs().sum() == 0 and prediction.grad[..., 0].abs().sum() > 0


features = hnp.arrays(np.float64, (2, 3, 2, 2), elements=st.floats(-5, 5, width=64))
masks = hnp.arrays(np.bool_, (2, 1, 2, 2))
LOSSES = [alignment_kl, alignment_cosine]


@pytest.mark.parametrize("loss", LOSSES)
@check
@given(target=features, mask=masks)
def test_zero_for_identical_features(loss, target, mask):
    g, m = torch.tensor(target), torch.tensor(mask)
    if loss is alignment_cosine:  # a zero feature has no direction: it scores 1 (above)
        assume(float(g.norm(dim=1).min()) > 1e-3)
    assert float(loss(g, g, m)) == pytest.approx(0.0, abs=1e-12)
    assert float(loss(g, g)) == pytest.approx(0.0, abs=1e-12)


@check
@given(target=features, noise=features)
def test_kl_positive_when_the_softmaxes_differ(target, noise):
    # Softmax ignores a constant over the channels: only noise that varies over them counts.
    spread = np.ptp(noise, axis=1)
    assume(spread.max() > 1e-2)
    g = torch.tensor(target)
    assert float(alignment_kl(g + torch.tensor(noise), g)) > 0.0


@check
@given(target=features, shift=hnp.arrays(np.float64, (2, 1, 2, 2), elements=st.floats(-5, 5)))
def test_kl_ignores_a_constant_over_the_channels(target, shift):
    g = torch.tensor(target)
    assert float(alignment_kl(g + torch.tensor(shift), g)) == pytest.approx(0.0, abs=1e-12)


@check
@given(target=features, noise=features)
def test_cosine_positive_unless_parallel(target, noise):
    g, p = torch.tensor(target), torch.tensor(target + noise)
    cosine = F.cosine_similarity(p, g, dim=1)
    assume(float(cosine.min()) < 1.0 - 1e-6)
    assert float(alignment_cosine(p, g)) > 0.0


@check
@given(target=features, scale=hnp.arrays(np.float64, (2, 1, 2, 2), elements=st.floats(0.01, 100)))
def test_cosine_zero_for_positive_multiples(target, scale):
    g = torch.tensor(target)
    assume(float(g.norm(dim=1).min()) > 1e-3)
    assert float(alignment_cosine(torch.tensor(scale) * g, g)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
@check
@given(prediction=features, target=features, mask=masks, other=features)
def test_masked_positions_are_ignored(loss, prediction, target, mask, other):
    p, g, m = torch.tensor(prediction), torch.tensor(target), torch.tensor(mask)
    changed = torch.where(m, p, torch.tensor(other))
    changed_target = torch.where(m, g, torch.tensor(other))
    assert float(loss(changed, changed_target, m)) == pytest.approx(float(loss(p, g, m)),
                                                                    abs=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
@check
@given(prediction=features, target=features, mask=masks)
def test_masked_mean_is_the_mean_over_valid_positions(loss, prediction, target, mask):
    # Each valid position alone, averaged, gives the masked loss.
    p, g, m = torch.tensor(prediction), torch.tensor(target), torch.tensor(mask)
    assume(mask.any())
    values = [float(loss(p[b:b + 1, :, i:i + 1, j:j + 1], g[b:b + 1, :, i:i + 1, j:j + 1]))
              for b, _, i, j in zip(*np.nonzero(mask))]
    assert float(loss(p, g, m)) == pytest.approx(sum(values) / len(values), abs=1e-12)
