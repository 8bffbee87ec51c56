"""The procedural renderer: determinism, the depth contract, and the synthetic/real domain shift."""
import colorsys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import laplace

from depthlab.errors import UserError
from depthlab.world.geometry import Primitives, View, cast
from depthlab.world.layout import MAX_DEPTH
from depthlab.world.scenes import render_scene

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, domain=st.sampled_from(["synthetic", "real"]))
def test_rendering_is_deterministic_from_the_seed(seed, domain):
    a, b = render_scene(seed, domain), render_scene(seed, domain)
    for name in ("rgb", "depth", "valid", "intrinsics"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, domain=st.sampled_from(["synthetic", "real"]))
def test_scene_contract(seed, domain):
    scene = render_scene(seed, domain)
    assert scene.rgb.shape == (64, 64, 3) and scene.rgb.dtype == np.float32
    assert scene.depth.shape == (64, 64) and scene.depth.dtype == np.float32
    assert scene.valid.shape == (64, 64) and scene.valid.dtype == bool
    assert scene.intrinsics.shape == (3, 3) and scene.intrinsics.dtype == np.float32
    assert 0.0 <= scene.rgb.min() and scene.rgb.max() <= 1.0
    np.testing.assert_array_equal(np.round(scene.rgb * 255) / 255, scene.rgb)  # 8-bit levels
    assert scene.valid.any()
    assert (scene.depth[scene.valid] > 0.2).all() and (scene.depth[scene.valid] <= MAX_DEPTH).all()
    assert (scene.depth[~scene.valid] == 0).all()


@pytest.mark.parametrize("size", [32, 96])
def test_other_sizes_scale_the_intrinsics(size):
    scene, reference = render_scene(3, size=size), render_scene(3)
    assert scene.rgb.shape == (size, size, 3) and scene.depth.shape == (size, size)
    assert scene.intrinsics[0, 0] == pytest.approx(reference.intrinsics[0, 0] * size / 64)
    assert scene.intrinsics[0, 2] == scene.intrinsics[1, 2] == pytest.approx((size - 1) / 2)


def test_depth_is_planar_and_matches_the_intrinsics():
    """A wall facing the camera has constant planar depth; a sphere's silhouette is where the
    pinhole model puts it."""
    size, f = 33, 20.0
    k = np.array([[f, 0, 16], [0, f, 16], [0, 0, 1]], np.float32)
    prims = Primitives()
    prims.add_box([0.0, 0.0, 10.0], [100.0, 100.0, 0.5], 0.0, 0)
    prims.add_sphere([1.0, 0.0, 4.0], 0.5, 1)
    hits, _ = cast(View(np.zeros(3), np.eye(3), k, size), prims)
    depth, material = hits.t.reshape(size, size), hits.material.reshape(size, size)
    np.testing.assert_allclose(depth[material == 0], 9.5, rtol=1e-9)
    assert depth[16, 16 + 5] == pytest.approx(4.0 - 0.5, abs=0.02)  # x = f * 1 / 4 = 5 px
    assert material[16, 16 + 5] == 1 and material[16, 16] == 0


def test_scenes_include_rooms_and_outdoor_views_with_sky():
    scenes = [render_scene(seed) for seed in range(40)]
    with_sky = sum((~s.valid).any() for s in scenes)
    assert 5 <= with_sky <= 35
    depths = np.concatenate([s.depth[s.valid] for s in scenes])
    assert depths.min() < 1.5 and depths.max() > 10.0


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_domains_share_geometry_but_not_appearance(seed):
    synthetic, real = render_scene(seed, "synthetic"), render_scene(seed, "real")
    np.testing.assert_array_equal(synthetic.depth, real.depth)
    np.testing.assert_array_equal(synthetic.valid, real.valid)
    np.testing.assert_array_equal(synthetic.intrinsics, real.intrinsics)
    assert np.abs(synthetic.rgb - real.rgb).mean() > 0.05


def _appearance(rgb: np.ndarray) -> tuple[float, float, float]:
    """Mean saturation, contrast, and the share of exactly flat pixels (none under sensor noise)."""
    saturation = np.mean([colorsys.rgb_to_hsv(*p)[1] for p in rgb.reshape(-1, 3)[::7]])
    flat = np.abs(laplace(rgb.mean(axis=2))) < 1e-6
    return saturation, float(rgb.std()), float(flat.mean())


def test_real_domain_is_visibly_shifted():
    stats = {domain: np.array([_appearance(render_scene(seed, domain).rgb)
                               for seed in range(100, 132)]) for domain in ("synthetic", "real")}
    synthetic, real = stats["synthetic"].mean(axis=0), stats["real"].mean(axis=0)
    assert synthetic[0] > 1.5 * real[0]  # saturated CG palettes vs muted photos
    assert synthetic[1] > 1.3 * real[1]  # full-contrast renders vs hazy, lifted-black exposures
    assert synthetic[2] > 0.1 and real[2] < 0.02  # clean flat shading vs sensor noise


def test_unknown_domain_is_a_user_error():
    with pytest.raises(UserError, match="domain"):
        render_scene(0, "photo")
