"""Target spaces, Marigold's quantile normalisation and latent masks."""
import hypothesis.extra.numpy as hnp
import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from depthlab.targets import (Space, TargetEncoder, depth_to_space, latent_valid_mask,
                              quantile_normalise)

depths = hnp.arrays(np.float32, (1, 1, 8, 8), elements=st.floats(0.5, 50, width=32)).map(
    torch.from_numpy)


def test_spaces():
    depth = torch.tensor([[[[2.0, 4.0, 0.0]]]])
    assert torch.equal(depth_to_space(depth, "depth"), depth)
    assert torch.allclose(depth_to_space(depth, Space.DISPARITY),
                          torch.tensor([[[[0.5, 0.25, 0]]]]))
    assert torch.allclose(depth_to_space(depth, "sqrt_disparity"),
                          torch.tensor([[[[0.5 ** 0.5, 0.5, 0]]]]))


def test_quantile_normalisation_matches_formula():
    values = torch.arange(1, 101, dtype=torch.float32).view(1, 1, 10, 10)
    valid = torch.ones_like(values, dtype=torch.bool)
    q2, q98 = torch.quantile(values.flatten(), torch.tensor([0.02, 0.98]))
    expected = (2 * (values - q2) / (q98 - q2) - 1).clamp(-1, 1)
    assert torch.allclose(quantile_normalise(values, valid), expected)


@given(depth=depths, scale=st.floats(0.1, 10), shift=st.floats(0, 5))
@settings(max_examples=30, deadline=None)
def test_normalisation_is_affine_invariant(depth, scale, shift):
    valid = torch.ones_like(depth, dtype=torch.bool)
    assert torch.allclose(quantile_normalise(depth, valid),
                          quantile_normalise(depth * scale + shift, valid), atol=1e-4)


def test_invalid_pixels_do_not_change_quantiles():
    depth = torch.rand(1, 1, 8, 8) + 1
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[..., 0, 0] = False
    poisoned = depth.clone()
    poisoned[..., 0, 0] = 1e6
    assert torch.allclose(quantile_normalise(depth, valid)[valid],
                          quantile_normalise(poisoned, valid)[valid])


def test_latent_mask_voids_cells_with_one_invalid_pixel():
    valid = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    valid[0, 0, 9, 3] = False
    mask = latent_valid_mask(valid, 8)
    assert mask.shape == (1, 1, 2, 2)
    assert mask.tolist() == [[[[True, True], [False, True]]]]


def test_teacher_label_in_its_own_space_is_plain_normalisation():
    disparity = torch.rand(2, 1, 8, 8) + 0.1
    encoder = TargetEncoder(space="disparity")
    valid = torch.ones_like(disparity, dtype=torch.bool)
    assert torch.allclose(encoder.from_teacher(disparity, "disparity"),
                          quantile_normalise(disparity, valid))


def test_teacher_disparity_becomes_a_depth_label_with_the_same_order():
    disparity = torch.linspace(0.1, 1.0, 64).view(1, 1, 8, 8)
    label = TargetEncoder(space="depth").from_teacher(disparity, "disparity")
    assert label.min() >= -1 and label.max() <= 1
    flat = label.flatten()
    assert torch.all(flat[1:] <= flat[:-1])  # nearer (larger disparity) -> smaller depth
