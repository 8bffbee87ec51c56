"""Teacher labels: inverting an affine-invariant teacher map into a label in another space.

Expected values are computed by hand in the tests. The running example is a five-pixel teacher
disparity [2, 2, 4, 6, 6]: its 2/98 quantiles are exactly 2 and 6 (the two smallest and the two
largest values are equal), so its unit map is [0, 0, 1/2, 1, 1]. Under a shift s the depth is
1 / (unit + s) = [1/s, 1/s, 1/(1/2 + s), 1/(1 + s), 1/(1 + s)], whose 2/98 quantiles are again
exactly its minimum 1/(1 + s) and maximum 1/s, so the depth label is [1, 1, m(s), -1, -1] with

    m(s) = 2 (1/(1/2 + s) - 1/(1 + s)) / (1/s - 1/(1 + s)) - 1,

m(0.05) = -10/11 (FixedShift's default) and m(0.25) = -2/3.
"""
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from depthlab.targets import (
    FixedShift,
    Space,
    StudentFittedShift,
    TargetEncoder,
    TeacherLabel,
    depth_to_space,
    masked_quantiles,
    shifted_labels,
    teacher_to_depth,
)

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
SPACES = list(Space)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def row(*values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype).view(1, 1, 1, -1)


def ones_like(x):
    return torch.ones_like(x, dtype=torch.bool)


def m(s):
    """The middle pixel's depth label in the running example (see the module docstring)."""
    return 2 * (1 / (0.5 + s) - 1 / (1 + s)) / (1 / s - 1 / (1 + s)) - 1


TEACHER = row(2.0, 2.0, 4.0, 6.0, 6.0)
UNIT = row(0.0, 0.0, 0.5, 1.0, 1.0)


def test_running_example_arithmetic():
    assert m(0.05) == pytest.approx(-10 / 11)
    assert m(0.25) == pytest.approx(-2 / 3)


# ---------------------------------------------------------------- spaces and quantiles


def test_depth_below_one_converts_to_large_disparity():
    depth = row(0.5, 0.25, 0.0)
    assert torch.allclose(depth_to_space(depth, Space.DISPARITY), row(2.0, 4.0, 0.0))
    assert torch.allclose(depth_to_space(depth, Space.SQRT_DISPARITY), row(2 ** 0.5, 2.0, 0.0))


def test_unknown_space_is_refused():
    with pytest.raises(ValueError):
        depth_to_space(row(1.0), "inverse_depth")
    with pytest.raises(ValueError):
        teacher_to_depth(row(1.0), "inverse_depth")


def test_masked_quantiles_interpolate_linearly_per_image():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0],
                           [10.0, 30.0, 20.0, 99.0, 40.0]]).view(2, 1, 1, 5)
    valid = torch.tensor([[True] * 5, [True, True, True, False, True]]).view(2, 1, 1, 5)
    low, high = masked_quantiles(values, valid, 0.25, 0.75)
    # image 0: positions 1 and 3 of [1..5]; image 1: [10, 20, 30, 40], positions 0.75 and 2.25
    assert torch.allclose(low, torch.tensor([2.0, 17.5]))
    assert torch.allclose(high, torch.tensor([4.0, 32.5]))


def test_masked_quantiles_of_one_valid_pixel_are_that_pixel():
    values = row(5.0, 7.0, 9.0)
    valid = torch.tensor([False, True, False]).view(1, 1, 1, 3)
    low, high = masked_quantiles(values, valid, 0.02, 0.98)
    assert low.tolist() == [7.0] and high.tolist() == [7.0]


def test_masked_quantiles_of_an_empty_image_are_zero():
    values = torch.tensor([[5.0, 7.0], [3.0, 4.0]], dtype=torch.float64).view(2, 1, 1, 2)
    valid = torch.tensor([[False, False], [True, True]]).view(2, 1, 1, 2)
    low, high = masked_quantiles(values, valid, 0.0, 1.0)
    assert low.tolist() == [0.0, 3.0] and high.tolist() == [0.0, 4.0]


# ---------------------------------------------------------------- teacher_to_depth, shifted_labels


def test_teacher_to_depth_in_each_space():
    unit = row(0.5, 2.0, 4.0)
    assert torch.equal(teacher_to_depth(unit, "depth"), unit)
    assert torch.allclose(teacher_to_depth(unit, Space.DISPARITY), row(2.0, 0.5, 0.25))
    assert torch.allclose(teacher_to_depth(unit, "sqrt_disparity"), row(4.0, 0.25, 0.0625))


def test_shifted_labels_one_label_per_shift_each_normalised_on_its_own():
    shifts = torch.tensor([0.05, 0.25, 0.05], dtype=torch.float64)
    labels = shifted_labels(UNIT, shifts, Space.DISPARITY, Space.DEPTH, ones_like(UNIT))
    assert labels.shape == (3, 1, 1, 5)
    assert labels.dtype == torch.float32  # the shifts follow the teacher map's dtype
    expected = torch.tensor([[1, 1, -10 / 11, -1, -1], [1, 1, -2 / 3, -1, -1],
                             [1, 1, -10 / 11, -1, -1]]).view(3, 1, 1, 5)
    assert torch.allclose(labels, expected, atol=1e-6)


def test_shifted_labels_into_sqrt_disparity():
    # unit + 0.25 = [1/4, 1/4, 3/4, 5/4, 5/4] is a disparity; its sqrt [1/2, 1/2, s3, s5, s5]
    s3, s5 = 0.75 ** 0.5, 1.25 ** 0.5
    labels = shifted_labels(UNIT, torch.tensor([0.25]), Space.DISPARITY, Space.SQRT_DISPARITY,
                            ones_like(UNIT))
    middle = 2 * (s3 - 0.5) / (s5 - 0.5) - 1
    assert torch.allclose(labels, row(-1.0, -1.0, middle, 1.0, 1.0), atol=1e-6)


def test_shifted_labels_ignore_invalid_pixels():
    unit = row(0.0, 0.0, 0.5, 1.0, 1.0, 0.0)
    valid = row(1, 1, 1, 1, 1, 0).bool()
    labels = shifted_labels(unit, torch.tensor([0.25]), Space.DISPARITY, Space.DEPTH, valid)
    assert torch.allclose(labels[..., :5], row(1.0, 1.0, -2 / 3, -1.0, -1.0), atol=1e-6)


# ---------------------------------------------------------------- FixedShift and TargetEncoder


def test_default_encoder_inverts_with_a_shift_of_five_hundredths():
    encoder = TargetEncoder()
    assert encoder.space is Space.DEPTH and not encoder.needs_student
    assert FixedShift().shift == 0.05
    label = encoder.from_teacher(TEACHER, "disparity")
    assert torch.allclose(label, row(1.0, 1.0, -10 / 11, -1.0, -1.0), atol=1e-6)


def test_fixed_shift_label_by_hand():
    encoder = TargetEncoder("depth", FixedShift(0.25))
    label = encoder.from_teacher(TEACHER, Space.DISPARITY)
    assert torch.allclose(label, row(1.0, 1.0, -2 / 3, -1.0, -1.0), atol=1e-6)
    shifts = FixedShift(0.25).shifts(torch.zeros(3, 1, 2, 2), Space.DISPARITY, Space.DEPTH,
                                     None, None)
    assert shifts.tolist() == [0.25, 0.25, 0.25]


def test_fixed_shifts_live_on_the_teacher_maps_device():
    # the meta device stands in for an accelerator: no data, but the device must follow
    unit = torch.empty(3, 1, 2, 2, device="meta")
    shifts = FixedShift(0.25).shifts(unit, Space.DISPARITY, Space.DEPTH, None, None)
    assert shifts.device == unit.device and shifts.shape == (3,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_labels_stay_on_the_gpu():
    unit = UNIT.cuda()
    valid = ones_like(unit)
    assert FixedShift().shifts(unit, Space.DISPARITY, Space.DEPTH, valid, None).is_cuda
    low, high = masked_quantiles(unit, valid, 0.02, 0.98)
    assert low.is_cuda and high.is_cuda
    empty = masked_quantiles(unit, ~valid, 0.02, 0.98)
    assert empty[0].is_cuda and empty[0].item() == 0.0
    student = row(1.0, 1.0, -0.7, -1.0, -1.0).cuda()
    block = StudentFittedShift(candidates=2, low=0.05, high=0.25)
    chosen = block.shifts(unit, Space.DISPARITY, Space.DEPTH, valid, student)
    assert chosen.is_cuda and chosen.item() == pytest.approx(0.25, rel=1e-5)


def test_gt_depth_label_by_hand():
    # depth [1, 1, 2, 4, 4] plus an invalid 0: quantiles over the valid five are exactly 1 and 4
    depth = row(1.0, 1.0, 2.0, 4.0, 4.0, 0.0)
    valid = depth > 0
    label = TargetEncoder("depth").from_depth(depth, valid)
    assert torch.allclose(label[..., :5], row(-1.0, -1.0, -1 / 3, 1.0, 1.0), atol=1e-6)
    # disparity [1, 1, 1/2, 1/4, 1/4]: quantiles 1/4 and 1, (1/2 - 1/4) / (3/4) = 1/3
    label = TargetEncoder("disparity").from_depth(depth, valid)
    assert torch.allclose(label[..., :5], row(1.0, 1.0, -1 / 3, -1.0, -1.0), atol=1e-6)
    # sqrt-disparity [1, 1, r, 1/2, 1/2] with r = 1/sqrt(2)
    label = TargetEncoder("sqrt_disparity").from_depth(depth, valid)
    middle = 2 * (2 ** -0.5 - 0.5) / 0.5 - 1
    assert torch.allclose(label[..., :5], row(1.0, 1.0, middle, -1.0, -1.0), atol=1e-6)


def test_sqrt_disparity_teacher_to_depth_label_by_hand():
    # unit + 1 = [1, 1, 3/2, 2, 2]; depth 1/(.)^2 = [1, 1, 4/9, 1/4, 1/4]
    label = TargetEncoder("depth", FixedShift(1.0)).from_teacher(TEACHER, "sqrt_disparity")
    middle = 2 * (4 / 9 - 1 / 4) / (1 - 1 / 4) - 1
    assert torch.allclose(label, row(1.0, 1.0, middle, -1.0, -1.0), atol=1e-6)


def test_teacher_valid_mask_is_used_in_both_paths():
    poisoned = row(2.0, 2.0, 4.0, 6.0, 6.0, 500.0)
    valid = row(1, 1, 1, 1, 1, 0).bool()
    same = TargetEncoder("disparity").from_teacher(poisoned, "disparity", valid)
    assert torch.allclose(same[..., :5], row(-1.0, -1.0, 0.0, 1.0, 1.0), atol=1e-6)
    crossed = TargetEncoder("depth", FixedShift(0.25)).from_teacher(poisoned, "disparity", valid)
    assert torch.allclose(crossed[..., :5], row(1.0, 1.0, -2 / 3, -1.0, -1.0), atol=1e-6)


teacher_maps = hnp.arrays(np.float32, (2, 1, 6, 6), elements=st.floats(0.0625, 20, width=32))


@given(teacher=teacher_maps, scale=st.floats(0.2, 5), offset=st.floats(-3, 3),
       shift=st.sampled_from([0.01, 0.05, 0.3, 2.0]), output=st.sampled_from(SPACES),
       target=st.sampled_from(SPACES))
@SETTINGS
def test_label_is_invariant_to_a_positive_affine_change_of_the_teacher(teacher, scale, offset,
                                                                       shift, output, target):
    teacher = torch.from_numpy(teacher).double()
    span = teacher.amax(dim=(1, 2, 3)) - teacher.amin(dim=(1, 2, 3))
    assume(bool((span > 1.0).all()))
    encoder = TargetEncoder(target.value, FixedShift(shift))
    label = encoder.from_teacher(teacher, output)
    changed = encoder.from_teacher(teacher * scale + offset, output)
    assert label.shape == teacher.shape
    assert label.min() >= -1 and label.max() <= 1
    assert torch.allclose(label, changed, atol=1e-4)


# ---------------------------------------------------------------- StudentFittedShift


def spread_unit(gaps, order, shape):
    """A [1, 1, H, W] map in [0, 1] with distinct values (consecutive gaps >= 1/10 of the
    largest), placed in the order `order`."""
    values = torch.tensor(np.cumsum([0.0] + list(gaps)), dtype=torch.float32)
    values = values / values[-1]
    return values[list(order)].view(1, 1, *shape)


units = st.tuples(st.lists(st.floats(0.1, 1.0), min_size=15, max_size=15),
                  st.permutations(range(16))).map(lambda a: spread_unit(*a, (4, 4)))
pairs = st.sampled_from([(Space.DISPARITY, Space.DEPTH), (Space.SQRT_DISPARITY, Space.DEPTH),
                         (Space.DISPARITY, Space.SQRT_DISPARITY),
                         (Space.DEPTH, Space.DISPARITY)])


def block_mean(x, f):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // f, f, w // f, f).mean(dim=(3, 5))


def block_any(x, f):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // f, f, w // f, f).any(dim=5).any(dim=3)


def upsample(x, f):
    return x.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)


def test_student_fitted_shift_defaults():
    block = StudentFittedShift()
    assert block.needs_student and TargetEncoder("depth", block).needs_student
    assert block.fit_size == 64
    assert block.grid.shape == (64,)
    assert block.grid[0].item() == pytest.approx(1e-3, rel=1e-5)
    assert block.grid[-1].item() == pytest.approx(10.0, rel=1e-5)


@given(low=st.floats(1e-4, 1.0), ratio=st.floats(1.5, 1e4), candidates=st.integers(2, 100))
@SETTINGS
def test_grid_is_log_spaced_from_low_to_high(low, ratio, candidates):
    high = low * ratio
    grid = StudentFittedShift(candidates=candidates, low=low, high=high).grid.double()
    assert grid.shape == (candidates,)
    assert grid[0].item() == pytest.approx(low, rel=1e-4)
    assert grid[-1].item() == pytest.approx(high, rel=1e-4)
    steps = grid[1:] / grid[:-1]
    expected = ratio ** (1 / (candidates - 1))
    assert torch.allclose(steps, torch.full_like(steps, expected), rtol=1e-3)


def test_student_is_required():
    with pytest.raises(ValueError, match=r"^StudentFittedShift needs the student's prediction$"):
        StudentFittedShift().shifts(UNIT, Space.DISPARITY, Space.DEPTH, ones_like(UNIT), None)
    with pytest.raises(ValueError):
        TargetEncoder("depth", StudentFittedShift()).from_teacher(TEACHER, "disparity")


def test_fit_by_hand_picks_the_nearer_middle_value():
    # grid [0.05, 0.25]: candidate labels [1, 1, -10/11, -1, -1] and [1, 1, -2/3, -1, -1]
    block = StudentFittedShift(candidates=2, low=0.05, high=0.25)
    valid = ones_like(UNIT)
    for middle, shift in [(-0.7, 0.25), (-0.85, 0.05), (-0.5, 0.25), (-0.95, 0.05)]:
        student = row(1.0, 1.0, middle, -1.0, -1.0)
        chosen = block.shifts(UNIT, Space.DISPARITY, Space.DEPTH, valid, student)
        assert chosen.shape == (1,)
        assert chosen.item() == pytest.approx(shift, rel=1e-5)


def test_fit_is_per_image_and_feeds_the_label():
    block = StudentFittedShift(candidates=2, low=0.05, high=0.25)
    teacher = torch.cat([TEACHER, TEACHER * 3 + 1])
    student = torch.cat([row(1.0, 1.0, -0.6, -1.0, -1.0), row(1.0, 1.0, -0.9, -1.0, -1.0)])
    label = TargetEncoder("depth", block).from_teacher(teacher, "disparity", student=student)
    expected = torch.cat([row(1.0, 1.0, -2 / 3, -1.0, -1.0), row(1.0, 1.0, -10 / 11, -1.0, -1.0)])
    assert torch.allclose(label, expected, atol=1e-5)
    # called directly, as a TeacherLabel, on the unit map
    unit = torch.cat([UNIT, UNIT])
    assert isinstance(block, TeacherLabel)
    assert torch.allclose(block(unit, Space.DISPARITY, Space.DEPTH, ones_like(unit), student),
                          expected, atol=1e-5)


def test_student_is_detached():
    student = row(1.0, 1.0, -0.7, -1.0, -1.0).requires_grad_()
    block = StudentFittedShift(candidates=2, low=0.05, high=0.25)
    chosen = block.shifts(UNIT, Space.DISPARITY, Space.DEPTH, ones_like(UNIT), student)
    assert not chosen.requires_grad


@given(unit=units, k=st.integers(0, 63), pair=pairs)
@SETTINGS
def test_fit_reproduces_a_student_that_is_a_label_of_the_teacher(unit, k, pair):
    output, target = pair
    block = StudentFittedShift()
    valid = ones_like(unit)
    student = shifted_labels(unit, block.grid[k:k + 1], output, target, valid)
    chosen = block.shifts(unit, output, target, valid, student)
    assert chosen.tolist() == [block.grid[k].item()]
    # and the label it then makes is the student itself
    assert torch.allclose(block(unit, output, target, valid, student), student, atol=1e-6)


@given(unit=units, k=st.integers(0, 63), holes=hnp.arrays(np.bool_, (4, 4)),
       garbage=hnp.arrays(np.float32, (2, 4, 4), elements=st.floats(-1, 1, width=32)))
@SETTINGS
def test_masked_pixels_do_not_influence_the_fit(unit, k, holes, garbage):
    holes = torch.from_numpy(holes).view(1, 1, 4, 4)
    assume(int((~holes).sum()) >= 8)
    garbage = torch.from_numpy(garbage).view(2, 1, 4, 4)
    valid = ~holes
    block = StudentFittedShift()
    student = shifted_labels(unit, block.grid[k:k + 1], Space.DISPARITY, Space.DEPTH, valid)
    student = torch.where(valid, student, garbage[:1])
    poisoned = torch.where(valid, unit, (garbage[1:] + 1) / 2)
    chosen = block.shifts(poisoned, Space.DISPARITY, Space.DEPTH, valid, student)
    assert chosen.tolist() == [block.grid[k].item()]


def test_masked_pixels_do_not_influence_the_fit_by_hand():
    # the running example plus a sixth, invalid pixel that would pull the fit to the other shift
    block = StudentFittedShift(candidates=2, low=0.05, high=0.25)
    unit = row(0.0, 0.0, 0.5, 1.0, 1.0, 0.5)
    valid = row(1, 1, 1, 1, 1, 0).bool()
    for middle, shift in [(-0.7, 0.25), (-0.85, 0.05)]:
        decoy = -10 / 11 if shift == 0.25 else -2 / 3
        student = row(1.0, 1.0, middle, -1.0, -1.0, decoy)
        chosen = block.shifts(unit, Space.DISPARITY, Space.DEPTH, valid, student)
        assert chosen.item() == pytest.approx(shift, rel=1e-5)


def pooled_case(seed, k, shape=(6, 8), factor=2, holes=()):
    """A teacher unit with strong detail inside each factor x factor cell, and a blockwise
    constant student that is exactly a label (under grid[k]) of the cell means."""
    generator = torch.Generator().manual_seed(seed)
    unit = torch.rand(1, 1, *shape, generator=generator)
    valid = torch.ones_like(unit, dtype=torch.bool)
    for y, x in holes:
        valid[0, 0, y, x] = False
    cells = block_mean(unit, factor)
    cell_valid = ~block_any(~valid, factor)
    grid = StudentFittedShift().grid
    student = shifted_labels(cells, grid[k:k + 1], Space.DISPARITY, Space.DEPTH, cell_valid)
    # voided cells hold garbage: the opposite of the label
    student = upsample(torch.where(cell_valid, student, -student), factor)
    return unit, valid, student, grid[k].item()


@pytest.mark.parametrize("seed,k", [(0, 10), (1, 30), (2, 50)])
def test_fit_runs_on_the_map_pooled_to_fit_size(seed, k):
    unit, valid, student, shift = pooled_case(seed, k)
    # 6 x 8 with fit_size 4: pooled by ceil(8 / 4) = 2 to 3 x 4
    chosen = StudentFittedShift(fit_size=4).shifts(unit, Space.DISPARITY, Space.DEPTH, valid,
                                                   student)
    assert chosen.tolist() == [shift]
    # the same map is not pooled when it already fits, and the fit then differs
    unpooled = StudentFittedShift(fit_size=8).shifts(unit, Space.DISPARITY, Space.DEPTH, valid,
                                                     student)
    assert unpooled.tolist() != [shift]


def test_pooling_factor_rounds_up():
    # 6 x 8 with fit_size 5: ceil(8 / 5) = 2, as with fit_size 4
    unit, valid, student, shift = pooled_case(1, 30)
    chosen = StudentFittedShift(fit_size=5).shifts(unit, Space.DISPARITY, Space.DEPTH, valid,
                                                   student)
    assert chosen.tolist() == [shift]


@pytest.mark.parametrize("seed,k", [(3, 20), (4, 45)])
def test_an_invalid_pixel_voids_its_pooled_cell(seed, k):
    unit, valid, student, shift = pooled_case(seed, k, holes=[(0, 1), (3, 6), (5, 2)])
    chosen = StudentFittedShift(fit_size=4).shifts(unit, Space.DISPARITY, Space.DEPTH, valid,
                                                   student)
    assert chosen.tolist() == [shift]


def test_small_map_is_not_pooled():
    # every 2 x 2 cell holds {0, 1/3, 2/3, 1}: pooled by 2 it would be constant, and carry no fit
    unit = torch.tensor([[0, 1, 2, 0], [3, 2, 3, 1], [1, 0, 1, 2], [2, 3, 0, 3]],
                        dtype=torch.float32).view(1, 1, 4, 4) / 3
    block = StudentFittedShift()
    valid = ones_like(unit)
    for k in (5, 33, 60):
        student = shifted_labels(unit, block.grid[k:k + 1], Space.DISPARITY, Space.DEPTH, valid)
        chosen = block.shifts(unit, Space.DISPARITY, Space.DEPTH, valid, student)
        assert chosen.tolist() == [block.grid[k].item()]


@given(teacher=teacher_maps, student=hnp.arrays(np.float32, (2, 1, 6, 6),
                                                elements=st.floats(-1, 1, width=32)),
       output=st.sampled_from(SPACES), target=st.sampled_from(SPACES))
@SETTINGS
def test_fitted_labels_lie_in_the_unit_interval(teacher, student, output, target):
    encoder = TargetEncoder(target.value, StudentFittedShift(candidates=8))
    label = encoder.from_teacher(torch.from_numpy(teacher), output,
                                 student=torch.from_numpy(student))
    assert label.shape == (2, 1, 6, 6)
    assert torch.isfinite(label).all()
    assert label.min() >= -1 and label.max() <= 1
    assert math.isfinite(float(label.sum()))
