"""Edges of the alignment and the metrics that mutation testing found untested: which pixels
each fit uses, the float32 contract, the boundaries of the fit resolution, the clip, and the
exact wording of the errors a user reads.

Every expected number is worked out by hand in the test's docstring or comments.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from depthlab.errors import UserError
from depthlab.eval.alignment import (
    FitDownscale,
    align,
    check_alignment,
    check_fit_settings,
    clip_prediction,
    fit_downscale,
    fit_scale_shift,
    inverse,
    nearest_indices,
)
from depthlab.eval.metrics import check_metric_names, depth_metrics
from depthlab.models.output_kind import OutputKind

F32 = np.float32


def exactly(message: str) -> str:
    """A `match` pattern for the whole of `message`."""
    return "^" + re.escape(message) + "$"


# ---------------------------------------------------------------- the user's error messages


def test_unknown_alignment_names_the_choices():
    with pytest.raises(UserError, match=exactly(
            "Unknown alignment 'affine'; use one of depth, disparity, sqrt_disparity, none.")):
        check_alignment("affine")


def test_alignment_given_as_a_str_enum_is_read_by_its_value():
    """`align` takes `Space | str`; an `OutputKind` is a str enum too. Its value names it in the
    error (an f-string of the member itself would say 'OutputKind.METRIC_DEPTH')."""
    pred = gt = np.ones((2, 2), F32)
    with pytest.raises(UserError, match=exactly(
            "Unknown alignment 'metric_depth'; use one of depth, disparity, sqrt_disparity, "
            "none.")):
        align(pred, gt, np.ones((2, 2), bool), OutputKind.METRIC_DEPTH)


def test_unknown_downscale_mode_names_the_choices():
    with pytest.raises(UserError, match=exactly(
            "Unknown alignment downscale 'width'; use one of reference_width_only, both.")):
        FitDownscale(1024, "width")


@pytest.mark.parametrize("max_res, shown", [(0, "0"), (-3, "-3"), (True, "True"),
                                            (2.0, "2.0"), ("1024", "'1024'")])
def test_bad_fit_resolution_message(max_res, shown):
    with pytest.raises(UserError, match=exactly(
            f"The alignment resolution must be a positive whole number of pixels, got {shown}; "
            "leave it unset to fit at full resolution.")):
        fit_downscale(max_res)


def test_downscale_mode_without_a_resolution_message():
    with pytest.raises(UserError, match=exactly(
            "The alignment downscale 'both' says how alignment_max_res shrinks the maps for the "
            "fit, but no alignment_max_res was given; set it too (1024 for Marigold's ETH3D "
            "tables), or drop the downscale to fit at full resolution.")):
        fit_downscale(None, "both")
    assert fit_downscale(None) is None


MESSAGE_NO_FIT = (
    "An alignment resolution (alignment_max_res / --alignment-max-res) was given with alignment "
    "'none', which scores metric predictions without any fit; drop the resolution, or choose the "
    "space of a least-squares fit (depth, disparity or sqrt_disparity).")


def test_fit_resolution_with_alignment_none_message():
    with pytest.raises(UserError, match=exactly(MESSAGE_NO_FIT)):
        check_fit_settings("none", FitDownscale(4))
    check_fit_settings("none", None)
    check_fit_settings("depth", FitDownscale(4))


def test_align_itself_refuses_a_fit_resolution_with_alignment_none():
    """The runner checks this before the loop; `align` must refuse it too when called alone."""
    pred = gt = np.ones((4, 8), F32)
    with pytest.raises(UserError, match=exactly(MESSAGE_NO_FIT)):
        align(pred, gt, np.ones((4, 8), bool), "none", FitDownscale(4))


def test_unknown_metric_names_list_the_known_ones():
    with pytest.raises(UserError, match=exactly(
            "unknown metric(s) abs_rell, AbsRel; known metrics: abs_rel, sq_rel, rmse, rmse_log, "
            "log10, delta1, delta2, delta3, i_rmse, silog, boundary_f1, boundary_recall, dbe_acc, "
            "dbe_comp, da2k_acc")):
        check_metric_names(["rmse", "abs_rell", "delta1", "AbsRel"])
    assert check_metric_names(["rmse", "abs_rel", "rmse", "da2k_acc"]) == [
        "rmse", "abs_rel", "da2k_acc"]


# ---------------------------------------------------------------- the fit resolution's edges


def test_fit_resolution_of_one_pixel_is_allowed():
    """max_res 1 on a 3x4 map: factor min(1/3, 1/4) = 0.25; width-only keeps int(4 * 0.25) = 1
    column, floor(0 * 4) = 0. 'both' would keep int(3 * 0.25) = 0 rows: nothing to fit on."""
    values = np.arange(12, dtype=F32).reshape(3, 4)
    assert fit_downscale(1) == FitDownscale(1, "reference_width_only")
    np.testing.assert_array_equal(FitDownscale(1).shrink(values), [[0], [4], [8]])
    with pytest.raises(ValueError, match=exactly(
            "downscaling 3 pixels by 0.25 leaves none to fit on")):
        FitDownscale(1, "both").shrink(values)


def test_a_single_output_pixel_is_enough():
    """int(size * factor) = 1 is the smallest resize there is: output 0 reads column 0; 0.99
    outputs is none."""
    assert nearest_indices(4, 0.25).tolist() == [0]
    assert nearest_indices(5, 0.2).tolist() == [0]
    with pytest.raises(ValueError, match=exactly(
            "downscaling 4 pixels by 0.2475 leaves none to fit on")):
        nearest_indices(4, 0.2475)  # 4 * 0.2475 = 0.99


def test_fit_on_one_column_of_a_map():
    """max_res 1 on 3x4: the fit sees column 0 only, pred 1, 2, 3 against GT 3, 5, 7: scale 2,
    shift 1, applied to the whole map (the other columns would pull the fit elsewhere)."""
    pred = np.array([[1, 9, 9, 9], [2, 8, 8, 8], [3, 7, 7, 7]], F32)
    gt = np.array([[3, 1, 1, 1], [5, 1, 1, 1], [7, 1, 1, 1]], F32)
    aligned = align(pred, gt, np.ones((3, 4), bool), "depth", FitDownscale(1))
    assert (aligned.scale, aligned.shift) == (pytest.approx(2, abs=1e-5),
                                              pytest.approx(1, abs=1e-5))
    assert aligned.depth[0, 1] == pytest.approx(19, abs=1e-4)


@pytest.mark.parametrize("mode", ["reference_width_only", "both"])
def test_factor_one_or_more_fits_on_the_map_itself(mode):
    """4x8 at max res 8: factor min(2, 1) = 1; at max res 12: min(3, 1.5) = 1.5. Neither shrinks
    (nor upsamples: 1.5 would repeat columns 0, 2, 4, 6): the map itself is returned."""
    values = np.arange(32, dtype=F32).reshape(4, 8)
    assert FitDownscale(8, mode).shrink(values) is values
    assert FitDownscale(12, mode).shrink(values) is values


def test_last_source_column_can_be_the_last_column():
    """3228 columns at max res 3227: factor 3227/3228, int(3228 * factor) = 3227 outputs, step
    float32(3228/3227) = 1048901 / 2**20 = 1.000309944152832. Output 3226: 3226 * step =
    3226.99987984 exactly; float32's spacing there is 2**-12 = 0.000244140625, so it lies
    between 3226.999755859375 and 3227.0, 0.000123977 above the lower one (more than half the
    spacing): it rounds to 3227.0, column 3227 = size - 1, which is kept (torch's kernel reads
    the same). Outputs 3224 and 3225 give 3224.9992 and 3225.9996: columns 3224 and 3225."""
    columns = nearest_indices(3228, 3227 / 3228)
    assert len(columns) == 3227
    assert columns[-3:].tolist() == [3224, 3225, 3227]
    frame = np.broadcast_to(np.arange(3228, dtype=F32), (2, 3228))
    assert FitDownscale(3227).shrink(frame)[0, -1] == 3227.0


def test_downscaled_fit_in_sqrt_disparity_space():
    """GT 4 m on the left half and 16 m on the right: sqrt(1/GT) = 0.5 and 0.25. pred is that on
    the even columns and half of it on the odd ones. The width-only fit at max res 4 (columns 0,
    2, 4, 6) sees only the exact pixels: scale 1, shift 0. An odd column then gets disparity
    (sqrt(1/GT) / 2)**2 = 1 / (4 GT): depth 16 m on the left and 64 m on the right."""
    gt = np.repeat(np.array([[4, 4, 4, 4, 16, 16, 16, 16]], F32), 4, axis=0)
    pred = (np.sqrt(1 / gt) / np.array([1, 2, 1, 2, 1, 2, 1, 2], F32)).astype(F32)
    aligned = align(pred, gt, np.ones_like(gt, bool), "sqrt_disparity", FitDownscale(4))
    assert (aligned.scale, aligned.shift) == (pytest.approx(1, abs=1e-6),
                                              pytest.approx(0, abs=1e-6))
    np.testing.assert_allclose(aligned.depth[2], [4, 16, 4, 16, 16, 64, 16, 64], rtol=1e-5)


# ---------------------------------------------------------------- which pixels each fit uses


def test_disparity_fit_uses_pixels_with_positive_gt_and_positive_pred():
    """Disparity target 1/GT. On the line disparity = pred (scale 1, shift 0): GT 0.5 (pred 2),
    GT 0.25 (pred 4), GT 2 (pred 0.5); GT at or below 1 m counts like any other. Off the line
    and left out: a valid pixel with GT 0 (target would be 0, pred 3), one with pred 0 (target
    0.5) and one with pred -1. Then the clip: pred 0 and -1 give disparity below 1e-3, depth
    1000; pred 3 gives depth 1/3."""
    gt = np.array([[0.5, 0.25, 2.0], [0.0, 2.0, 2.0]], F32)
    pred = np.array([[2.0, 4.0, 0.5], [3.0, 0.0, -1.0]], F32)
    aligned = align(pred, gt, np.ones_like(gt, bool), "disparity")
    assert (aligned.scale, aligned.shift) == (pytest.approx(1, abs=1e-5),
                                              pytest.approx(0, abs=1e-5))
    np.testing.assert_allclose(aligned.depth, [[0.5, 0.25, 2.0], [1 / 3, 1000, 1000]],
                               rtol=1e-4)


def test_sqrt_disparity_fit_uses_valid_pixels_with_positive_gt():
    """Target sqrt(1/GT): GT 0.25 -> 2, GT 0.0625 -> 4, GT 4 -> 0.5, with pred equal to it:
    scale 1, shift 0. Left out: a valid pixel with GT 0 (target 0, pred 3) and an invalid one
    with GT 1 (target 1, pred 5). The aligned value is squared: pred 3 -> disparity 9 -> 1/9 m."""
    gt = np.array([[0.25, 0.0625, 4.0], [0.0, 1.0, 4.0]], F32)
    pred = np.array([[2.0, 4.0, 0.5], [3.0, 5.0, 0.5]], F32)
    valid = np.array([[True, True, True], [True, False, True]])
    aligned = align(pred, gt, valid, "sqrt_disparity")
    assert (aligned.scale, aligned.shift) == (pytest.approx(1, abs=1e-5),
                                              pytest.approx(0, abs=1e-5))
    np.testing.assert_allclose(aligned.depth, [[0.25, 0.0625, 4.0], [1 / 9, 0.04, 4.0]],
                               rtol=1e-4)


@pytest.mark.parametrize("space", ["disparity", "sqrt_disparity"])
def test_gt_is_read_in_float32_before_the_mask(space):
    """GT 1e-50 m (a float64 map) is 0 in float32, so it is left out of the fit like any GT 0;
    kept in float64 its target 1e50 (or 1e25) would wreck the fit. The other pixels lie on
    disparity (or sqrt-disparity) = pred: scale 1, shift 0."""
    gt = np.array([0.25, 1.0, 4.0, 1e-50])
    target = 1 / gt[:3] if space == "disparity" else np.sqrt(1 / gt[:3])
    pred = np.append(target, 3.0).astype(F32)
    aligned = align(pred, gt, np.ones(4, bool), space)
    assert (aligned.scale, aligned.shift) == (pytest.approx(1, abs=1e-5),
                                              pytest.approx(0, abs=1e-5))


# ---------------------------------------------------------------- the fit itself


def test_fit_on_a_single_pixel_is_the_minimum_norm_solution():
    """One pixel, pred 1, target 2: scale + shift = 2 has many solutions; least squares returns
    the smallest, (1, 1)."""
    scale, shift = fit_scale_shift(np.array([1.0], F32), np.array([2.0], F32), np.ones(1, bool))
    assert (scale, shift) == (pytest.approx(1, abs=1e-6), pytest.approx(1, abs=1e-6))


def test_fit_with_no_pixel_says_so():
    with pytest.raises(ValueError, match=exactly("no pixel to fit the scale and shift on")):
        fit_scale_shift(np.ones(3, F32), np.ones(3, F32), np.zeros(3, bool))
    with pytest.raises(ValueError, match=exactly("no pixel to fit the scale and shift on")):
        align(np.ones(3, F32), np.ones(3, F32), np.zeros(3, bool), "depth")


def test_fit_rounds_the_prediction_to_float32():
    """pred 1 and 1 + 2**-30 (float64) are both 1.0 in float32: the design has two equal rows
    and rank 1, and least squares returns the minimum-norm (s, t) with s + t = mean target = 0.5:
    (0.25, 0.25). In float64 the two rows differ and the fit would be exact: scale 2**30."""
    pred = np.array([1.0, 1.0, 1.0 + 2.0 ** -30, 1.0 + 2.0 ** -30])
    target = np.array([0.0, 0.0, 1.0, 1.0], F32)
    scale, shift = fit_scale_shift(pred, target, np.ones(4, bool))
    assert (scale, shift) == (pytest.approx(0.25, abs=1e-6), pytest.approx(0.25, abs=1e-6))


def test_fit_rounds_the_target_to_float32():
    """Target 0 and 1 + 2**-30 (float64): in float32 the second is 1.0, so pred 0, 1 fits scale
    exactly 1 (the float32 result rounds away the solver's 1e-16 noise); in float64 it would be
    1 + 2**-30. The results come back as float32 numbers."""
    scale, shift = fit_scale_shift(np.array([0.0, 1.0], F32), np.array([0.0, 1.0 + 2.0 ** -30]),
                                   np.ones(2, bool))
    assert scale == 1.0 and shift == pytest.approx(0.0, abs=1e-12)
    assert isinstance(scale, np.float32) and isinstance(shift, np.float32)


@pytest.mark.parametrize("space", ["depth", "disparity", "sqrt_disparity", "none"])
def test_aligned_depth_is_float32(space):
    """A float64 prediction is taken as float32 (like the reference's tensors), and the fitted
    scale and shift are float32, so the aligned depth stays float32 in every space."""
    gt = np.array([[1.0, 2.0], [4.0, 8.0]], F32)
    pred = np.array([[1.0, 0.5], [0.25, 0.125]])  # float64
    aligned = align(pred, gt, np.ones((2, 2), bool), space)
    assert aligned.depth.dtype == np.float32
    aligned = align(pred.astype(F32), gt, np.ones((2, 2), bool), space)
    assert aligned.depth.dtype == np.float32


def test_alignment_none_takes_the_prediction_as_float32_metres():
    """Alignment 'none' reports scale 1 and shift 0. The float64 value 1 + 2**-30 is 1.0 in
    float32, so against GT 1 m every error is exactly 0 (in float64 AbsRel would be 2**-30)."""
    pred = np.array([[1.0 + 2.0 ** -30, 2.0]])
    gt = np.array([[1.0, 2.0]], F32)
    valid = np.ones((1, 2), bool)
    aligned = align(pred, gt, valid, "none")
    assert (aligned.scale, aligned.shift) == (1.0, 0.0)
    np.testing.assert_array_equal(aligned.depth, np.array([[1.0, 2.0]], F32))
    record = depth_metrics(clip_prediction(aligned.depth, 1e-3, 10.0), gt, valid,
                           ["abs_rel", "rmse"])
    assert record == {"abs_rel": 0.0, "rmse": 0.0}


def test_inverse_of_zero_and_negative_values_is_zero():
    """1/x where x > 0: 2 -> 0.5, 0.5 -> 2; 0 and -4 -> 0 (no inf, no negative depth)."""
    out = inverse(np.array([2.0, 0.0, -4.0, 0.5], F32))
    np.testing.assert_array_equal(out, np.array([0.5, 0.0, 0.0, 2.0], F32))
    assert out.dtype == np.float32


# ---------------------------------------------------------------- the protocol's clip


def test_clip_to_the_dataset_range():
    """[min, max] = [0.5, 10]: 0.1 -> 0.5, 3 -> 3, 20 -> 10."""
    depth = np.array([0.1, 3.0, 20.0], F32)
    np.testing.assert_array_equal(clip_prediction(depth, 0.5, 10.0),
                                  np.array([0.5, 3.0, 10.0], F32))


def test_clip_below_at_1e_6_when_the_dataset_minimum_is_lower():
    """A dataset minimum of 0 (or below) still leaves no depth under 1e-6: -1, 0 and 5e-7 become
    1e-6, 2 stays and 20 is cut at the maximum 10."""
    depth = np.array([-1.0, 0.0, 5e-7, 2.0, 20.0], F32)
    for minimum in (0.0, -5.0):
        np.testing.assert_array_equal(clip_prediction(depth, minimum, 10.0),
                                      np.array([1e-6, 1e-6, 1e-6, 2.0, 10.0], F32))


# ---------------------------------------------------------------- the delta ratio's dtype


@pytest.mark.parametrize("pred_dtype, gt_dtype", [
    (np.float64, F32), (F32, np.float64), (np.float64, np.float64)])
def test_delta_ratio_is_float32_whatever_the_inputs(pred_dtype, gt_dtype):
    """pred 0.63 and GT 0.504 as float32 have the ratio 1.25 exactly (see
    test_delta1_ratio_is_divided_in_float32): not counted. With either map in float64 the
    quotient would be 0.63 / float32(0.504) = 1.2499999839 or float32(0.63) / 0.504 =
    1.2499999905, both below 1.25. With the control pair (1, 1): delta1 = 1/2."""
    pred, gt = np.array([0.63, 1.0], pred_dtype), np.array([0.504, 1.0], gt_dtype)
    for p, g in ((pred, gt), (gt.astype(pred_dtype), pred.astype(gt_dtype))):  # p/g and g/p
        assert depth_metrics(p, g, np.ones(2, bool), ["delta1"]) == {"delta1": 0.5}
