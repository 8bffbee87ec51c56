"""SharpDepth's inference mode: two gated passes and the metric fit on the trusted pixels."""
from __future__ import annotations

import pytest
import torch

from depthlab.errors import UserError
from depthlab.heads.noise_aware_gating import NoiseAwareGating
from depthlab.heads.sharpdepth_mode import SharpDepthMode, fit_to_metric
from depthlab.models.modes import LotusGMode
from depthlab.models.schedule import ddpm_schedule

from fiffdepth_helpers import MeanTeacher, one_thread  # noqa: F401  (the fixture)
from sharpdepth_helpers import BrightnessMetricTeacher, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_fit_uses_only_trusted_pixels():
    prediction = torch.tensor([0.0, 0.5, 1.0, -1.0]).view(1, 1, 1, 4)
    metric = torch.tensor([2.0, 3.5, 5.0, 100.0]).view(1, 1, 1, 4)  # 3 p + 2, but the last
    trusted = torch.tensor([True, True, True, False]).view(1, 1, 1, 4)
    # Fitted on the first three: scale 3, shift 2; the untrusted pixel follows the fit (-1 -> 0
    # after clamping 3 * -1 + 2 = -1 at zero).
    assert fit_to_metric(prediction, metric, trusted).flatten().tolist() == pytest.approx(
        [2.0, 3.5, 5.0, 0.0])


def test_fit_falls_back_to_all_pixels_when_too_few_are_trusted():
    prediction = torch.tensor([0.0, 1.0, 2.0]).view(1, 1, 1, 3)
    metric = torch.tensor([1.0, 3.0, 5.0]).view(1, 1, 1, 3)
    trusted = torch.tensor([True, False, False]).view(1, 1, 1, 3)  # one pixel fixes nothing
    assert fit_to_metric(prediction, metric, trusted).flatten().tolist() == pytest.approx(
        [1.0, 3.0, 5.0])


def test_fit_is_per_image():
    prediction = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(2, 1, 1, 2)
    metric = torch.tensor([[1.0, 2.0], [10.0, 30.0]]).view(2, 1, 1, 2)
    trusted = torch.ones(2, 1, 1, 2, dtype=torch.bool)
    assert fit_to_metric(prediction, metric, trusted).flatten().tolist() == pytest.approx(
        [1.0, 2.0, 10.0, 30.0])


def test_the_mode_predicts_metres_reproducibly():
    model = tiny_model().eval()
    rgb = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first, second = model.predict(rgb), model.predict(rgb)
    assert first.shape == (2, 1, 16, 16) and torch.equal(first, second)
    assert model.output_kind.is_metric and torch.all(first >= 0)
    # Least squares to the teacher over trusted pixels: on average the scale is the teacher's.
    teacher = BrightnessMetricTeacher()(rgb)
    assert first.mean().item() == pytest.approx(teacher.mean().item(), rel=0.2)


def test_the_affine_invariant_output_skips_the_fit():
    model = tiny_model(output_kind="depth").eval()
    with torch.no_grad():
        unit = model.predict(torch.rand(1, 3, 16, 16))
    assert unit.min() >= 0 and unit.max() <= 1


def test_the_first_pass_is_lotus_g():
    model = tiny_model().eval()
    rgb = torch.rand(1, 3, 16, 16)
    inputs = model.mode_inputs(rgb)
    noise = model.mode.start(inputs.rgb_latent)
    with torch.no_grad():
        expected = LotusGMode().latent(inputs)
        got = model.mode.clean(inputs.backbone, inputs.rgb_latent, noise)
    torch.testing.assert_close(got, expected)


def test_a_relative_teacher_is_refused():
    with pytest.raises(UserError, match="must predict metric depth"):
        SharpDepthMode(MeanTeacher())


def test_other_output_kinds_are_refused():
    with pytest.raises(UserError, match="SharpDepthMode.output_kind"):
        SharpDepthMode(BrightnessMetricTeacher(), output_kind="disparity")


def test_a_fit_with_zero_shift_is_kept():
    prediction = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4)
    metric = torch.tensor([3.0, 6.0, 9.0, 50.0]).view(1, 1, 1, 4)  # 3 p on the trusted pixels
    trusted = torch.tensor([True, True, True, False]).view(1, 1, 1, 4)
    fitted = fit_to_metric(prediction, metric, trusted)
    assert fitted.flatten().tolist() == pytest.approx([3.0, 6.0, 9.0, 12.0])
    assert fitted.dtype == torch.float32


def test_the_modes_settings_reach_it():
    teacher = BrightnessMetricTeacher()
    mode = SharpDepthMode(teacher)
    assert mode.fit_threshold == 0.5 and isinstance(mode.gating, NoiseAwareGating)
    custom = SharpDepthMode(teacher, scheduler=ddpm_schedule(prediction_type="sample"), seed=5)
    assert custom.prediction_type == "sample" and custom.seed == 5
    with pytest.raises(UserError, match="MeanTeacher declares 'disparity'"):
        SharpDepthMode(MeanTeacher())


def test_latent_is_the_second_pass():
    model = tiny_model().eval()
    inputs = model.mode_inputs(torch.rand(1, 3, 16, 16))
    with torch.no_grad():
        torch.testing.assert_close(model.mode.latent(inputs), model.mode.passes(inputs).latent)


def test_the_fit_sees_the_clipped_map_and_the_trusted_pixels(monkeypatch):
    model = tiny_model().eval()
    decode = model.codec.decode_depth
    monkeypatch.setattr(model.codec, "decode_depth", lambda latent: 5.0 * decode(latent))
    seen = {}

    def spy(prediction, metric, trusted):
        seen.update(prediction=prediction, trusted=trusted)
        return metric

    monkeypatch.setattr("depthlab.heads.sharpdepth_mode.fit_to_metric", spy)
    rgb = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.predict(rgb)
        passes = model.mode.passes(model.mode_inputs(rgb))
    assert seen["prediction"].min() == -1.0 and seen["prediction"].max() == 1.0
    assert torch.equal(seen["trusted"], passes.gate.error < 0.5)
