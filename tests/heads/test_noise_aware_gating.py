"""SharpDepth's noise-aware gating: normalisation, error map, latent mask and gated input, with
values by hand and hypothesis properties."""
from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from depthlab.errors import UserError
from depthlab.heads.noise_aware_gating import (NoiseAwareGating, error_map, gated_latent,
                                               latent_mask, normalise_per_image)

SETTINGS = settings(max_examples=30, deadline=None)


def row(*values: float) -> torch.Tensor:
    return torch.tensor(values).view(1, 1, 1, -1)


def test_normalise_per_image_by_hand():
    assert normalise_per_image(row(1, 2, 3, 5)).flatten().tolist() == [-1.0, -0.5, 0.0, 1.0]
    batch = torch.cat([row(1, 2, 3), row(10, 30, 20)])
    assert normalise_per_image(batch).flatten().tolist() == [-1.0, 0.0, 1.0, -1.0, 1.0, 0.0]


def test_normalise_per_image_maps_a_flat_image_to_zero():
    assert normalise_per_image(torch.full((1, 1, 2, 2), 4.0)).abs().sum().item() == 0.0


def test_error_map_by_hand():
    first, reference = row(0.0, 0.5, -1.0, 1.0), row(0.0, 0.0, 0.0, -1.0)
    # |d| = [0, 0.5, 1, 2]; divided by the largest (2) -> [0, 0.25, 0.5, 1]
    assert error_map(first, reference).flatten().tolist() == [0.0, 0.25, 0.5, 1.0]
    # A fixed scale of 1 clips at 1 -> [0, 0.5, 1, 1]
    assert error_map(first, reference, 1.0).flatten().tolist() == [0.0, 0.5, 1.0, 1.0]


def test_error_map_of_agreeing_maps_is_zero():
    first = torch.rand(2, 1, 4, 4)
    assert error_map(first, first.clone()).abs().sum().item() == 0.0


def test_error_map_is_per_image():
    first = torch.cat([row(1.0, 0.0), row(0.1, 0.0)])
    reference = torch.zeros(2, 1, 1, 2)
    assert error_map(first, reference).flatten().tolist() == [1.0, 0.0, 1.0, 0.0]


def test_latent_mask_is_nearest_downsampling():
    error = torch.arange(16.0).view(1, 1, 4, 4)
    assert latent_mask(error, (2, 2)).flatten().tolist() == [0.0, 2.0, 8.0, 10.0]


def test_gated_latent_by_hand():
    mask = torch.tensor([[[[1.0, 0.0, 0.25]]]])
    noise = torch.full((1, 2, 1, 3), 4.0)
    metric = torch.full((1, 2, 1, 3), -4.0)
    assert gated_latent(mask, noise, metric)[0, :, 0].tolist() == [[4.0, -4.0, -2.0]] * 2


@SETTINGS
@given(seed=st.integers(0, 10_000), factor=st.sampled_from([2, 4, 8]))
def test_gated_input_is_metric_where_e_is_0_and_noise_where_e_is_1(seed, factor):
    generator = torch.Generator().manual_seed(seed)
    cells = (torch.rand(2, 1, 3, 4, generator=generator) > 0.5).float()
    cells[:, :, 0, 0] = 1.0  # every image has a disagreeing cell, so its largest error is > 0
    pattern = cells.repeat_interleave(factor, -2).repeat_interleave(factor, -1)
    reference = torch.rand(pattern.shape, generator=generator) * 2 - 1
    first = reference + 0.7 * pattern  # disagree by 0.7 exactly where the pattern is 1
    noise = torch.randn(2, 4, 3, 4, generator=generator)
    metric = torch.randn(2, 4, 3, 4, generator=generator)
    gate = NoiseAwareGating(pure_noise_probability=0.0)(first, reference, noise, metric)
    torch.testing.assert_close(gate.error, pattern)
    torch.testing.assert_close(gate.mask, cells)
    on = cells.bool().expand_as(noise)
    torch.testing.assert_close(gate.latent[on], noise[on])
    torch.testing.assert_close(gate.latent[~on], metric[~on])


def inputs(batch: int = 4):
    generator = torch.Generator().manual_seed(0)
    first = torch.rand(batch, 1, 8, 8, generator=generator) * 2 - 1
    reference = torch.rand(batch, 1, 8, 8, generator=generator) * 2 - 1
    noise = torch.randn(batch, 4, 2, 2, generator=generator)
    metric = torch.randn(batch, 4, 2, 2, generator=generator)
    return first, reference, noise, metric


def test_pure_noise_with_probability_one_is_all_noise_when_training():
    first, reference, noise, metric = inputs()
    gating = NoiseAwareGating(pure_noise_probability=1.0)
    drawn = gating(first, reference, noise, metric, torch.Generator().manual_seed(0))
    assert torch.equal(drawn.latent, noise) and torch.all(drawn.mask == 1)
    # Without a generator (inference) nothing is drawn.
    assert not torch.equal(gating(first, reference, noise, metric).latent, noise)


def test_pure_noise_is_drawn_for_about_its_probability_of_samples():
    batch = 4000
    first = torch.zeros(batch, 1, 2, 2)
    reference = torch.zeros(batch, 1, 2, 2)  # e = 0 everywhere: only drawn samples get noise
    noise, metric = torch.ones(batch, 1, 1, 1), torch.zeros(batch, 1, 1, 1)
    gate = NoiseAwareGating(pure_noise_probability=0.2)(
        first, reference, noise, metric, torch.Generator().manual_seed(1))
    fraction = gate.latent.mean().item()
    assert 0.18 < fraction < 0.22
    assert set(gate.latent.flatten().tolist()) == {0.0, 1.0}


def test_uniform_gating_always_starts_from_noise():
    first, reference, noise, metric = inputs()
    gate = NoiseAwareGating(gating="uniform", pure_noise_probability=0.0)(
        first, reference, noise, metric)
    assert torch.equal(gate.latent, noise)
    torch.testing.assert_close(gate.error, error_map(first, reference))


def test_error_scale_is_passed_to_the_error_map():
    first, reference, noise, metric = inputs()
    gate = NoiseAwareGating(error_scale=2.0)(first, reference, noise, metric)
    torch.testing.assert_close(gate.error, error_map(first, reference, 2.0))


@pytest.mark.parametrize("options, binding", [
    ({"gating": "soft"}, "gating"), ({"pure_noise_probability": 1.5}, "pure_noise_probability"),
    ({"error_scale": 0.0}, "error_scale")])
def test_bad_settings_are_refused(options, binding):
    with pytest.raises(UserError, match=f"NoiseAwareGating.{binding}"):
        NoiseAwareGating(**options)


def test_flat_and_agreeing_thresholds_are_inclusive():
    # A span or largest difference of exactly FLAT counts as zero.
    flat = torch.tensor([0.0, 1e-12], dtype=torch.float64).view(1, 1, 1, 2)
    assert normalise_per_image(flat).abs().sum().item() == 0.0
    assert error_map(flat, torch.zeros_like(flat)).abs().sum().item() == 0.0


def test_a_fixed_error_scale_divides():
    first, reference = row(0.0, 0.5, -1.0, 1.0), row(0.0, 0.0, 0.0, -1.0)
    assert error_map(first, reference, 4.0).flatten().tolist() == [0.0, 0.125, 0.25, 0.5]


def test_pure_noise_draws_come_from_the_generator_alone():
    first, reference, noise, metric = inputs(batch=64)
    gating = NoiseAwareGating(pure_noise_probability=0.5)
    masks = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)  # the global RNG must not matter
        masks.append(gating(first, reference, noise, metric,
                            torch.Generator().manual_seed(9)).mask)
    torch.testing.assert_close(masks[0], masks[1])
    assert 0 < (masks[0].amin(dim=(1, 2, 3)) == 1).sum() < 64


def test_no_draw_is_taken_when_the_probability_is_zero():
    first, reference, noise, metric = inputs()
    generator = torch.Generator().manual_seed(4)
    before = generator.get_state()
    NoiseAwareGating(pure_noise_probability=0.0)(first, reference, noise, metric, generator)
    assert torch.equal(generator.get_state(), before)  # the recipe's later draws are unchanged


def test_messages_name_the_choices_and_small_scales_are_allowed():
    with pytest.raises(UserError, match="expected one of error, uniform"):
        NoiseAwareGating(gating="soft")
    assert NoiseAwareGating(error_scale=0.5).error_scale == 0.5
