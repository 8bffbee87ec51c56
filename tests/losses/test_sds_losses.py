"""SharpDepth's losses: the x0-form score distillation and the error-weighted reconstruction.
Values are worked out by hand; properties are checked with hypothesis."""
from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from depthlab.losses.registry import get_loss
from depthlab.losses.sds import error_weighted_l1, sds_x0

SETTINGS = settings(max_examples=40, deadline=None)


def test_both_are_registered():
    assert get_loss("sds_x0") is sds_x0
    assert get_loss("error_weighted_l1") is error_weighted_l1


def test_sds_value_and_gradient_by_hand():
    student = torch.tensor([[1.0, 2.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 0.0]])
    loss = sds_x0(student, teacher, 0.5)
    # g = 0.5 * (s - t) = [0.5, 1]; loss = 0.5 * mean(g^2) = 0.5 * (0.25 + 1) / 2 = 0.3125
    assert loss.item() == pytest.approx(0.3125)
    loss.backward()
    # d loss / d s = g / N = [0.25, 0.5]
    assert student.grad.flatten().tolist() == pytest.approx([0.25, 0.5])


def test_sds_per_sample_weight_by_hand():
    student = torch.tensor([[[[2.0]]], [[[2.0]]]], requires_grad=True)
    teacher = torch.zeros(2, 1, 1, 1)
    sds_x0(student, teacher, torch.tensor([1.0, 0.25])).backward()
    # g = [2, 0.5]; N = 2 -> gradient [1, 0.25]
    assert student.grad.flatten().tolist() == pytest.approx([1.0, 0.25])


@SETTINGS
@given(seed=st.integers(0, 10_000), weight=st.floats(0.0, 1.0),
       shape=st.sampled_from([(1, 4, 2, 2), (2, 4, 3, 5), (3, 1, 4, 4)]))
def test_sds_gradient_is_weight_times_prediction_minus_teacher(seed, weight, shape):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_()
    teacher = torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_()
    sds_x0(student, teacher, weight).backward()
    count = student.numel()  # MSE's mean divides the gradient by the number of elements
    torch.testing.assert_close(student.grad * count, weight * (student - teacher).detach())
    assert teacher.grad is None  # the teacher's prediction is a constant


@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_sds_is_zero_when_student_and_teacher_agree(seed):
    student = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(seed))
    assert sds_x0(student, student.clone(), 0.99).item() == 0.0


def test_error_weighted_l1_by_hand():
    prediction = torch.tensor([0.0, 1.0, 2.0]).view(1, 1, 1, 3)
    target = torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 1, 3)
    error = torch.tensor([0.5, 1.0, 0.0]).view(1, 1, 1, 3)
    # (0.5 * 1 + 1 * 0 + 0 * 2) / (0.5 + 1 + 0) = 1 / 3
    assert error_weighted_l1(prediction, target, error).item() == pytest.approx(1 / 3)


def test_error_weighted_l1_normalises_over_the_whole_batch():
    prediction = torch.tensor([[[[3.0]]], [[[0.0]]]])
    target = torch.zeros(2, 1, 1, 1)
    error = torch.tensor([[[[1.0]]], [[[3.0]]]])
    # (1 * 3 + 3 * 0) / (1 + 3) = 0.75, not the mean of per-image losses (1.5)
    assert error_weighted_l1(prediction, target, error).item() == pytest.approx(0.75)


def test_error_weighted_l1_without_weight_is_zero():
    prediction = torch.ones(1, 1, 2, 2, requires_grad=True)
    loss = error_weighted_l1(prediction, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(prediction.grad == 0)


@SETTINGS
@given(seed=st.integers(0, 10_000), junk=st.floats(-1e3, 1e3))
def test_error_weighted_l1_ignores_pixels_with_zero_error(seed, junk):
    generator = torch.Generator().manual_seed(seed)
    prediction = torch.randn(2, 1, 5, 5, generator=generator)
    target = torch.randn(2, 1, 5, 5, generator=generator)
    error = torch.rand(2, 1, 5, 5, generator=generator)
    error[..., :2] = 0.0
    changed = prediction.clone()
    changed[..., :2] = junk
    changed.requires_grad_()
    assert error_weighted_l1(changed, target, error).item() == pytest.approx(
        error_weighted_l1(prediction, target, error).item(), rel=1e-5)
    error_weighted_l1(changed, target, error).backward()
    assert torch.all(changed.grad[..., :2] == 0)


@SETTINGS
@given(seed=st.integers(0, 10_000), factor=st.floats(0.01, 100.0))
def test_error_weighted_l1_depends_on_relative_weights_only(seed, factor):
    generator = torch.Generator().manual_seed(seed)
    prediction, target = torch.randn(2, 1, 4, 4, generator=generator, dtype=torch.float64), \
        torch.randn(2, 1, 4, 4, generator=generator, dtype=torch.float64)
    error = torch.rand(2, 1, 4, 4, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(error_weighted_l1(prediction, target, error * factor),
                               error_weighted_l1(prediction, target, error))


def test_error_weights_receive_no_gradient():
    error = torch.full((1, 1, 2, 2), 0.5, requires_grad=True)
    error_weighted_l1(torch.ones(1, 1, 2, 2, requires_grad=True), torch.zeros(1, 1, 2, 2),
                      error).backward()
    assert error.grad is None


def test_sds_weight_defaults_to_one_and_half_precision_is_computed_in_float32():
    student, teacher = torch.tensor([[2.0, -1.0]]), torch.tensor([[0.0, 1.0]])
    assert sds_x0(student, teacher).item() == sds_x0(student, teacher, 1.0).item() == 2.0
    half = sds_x0(student.half(), teacher.half(), 0.5)
    assert half.dtype == torch.float32
    weighted = error_weighted_l1(student.half().view(1, 1, 1, 2), teacher.half().view(1, 1, 1, 2),
                                 torch.ones(1, 1, 1, 2, dtype=torch.half))
    assert weighted.dtype == torch.float32 and weighted.item() == 2.0
