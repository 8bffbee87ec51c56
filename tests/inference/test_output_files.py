"""Output files: exact 16-bit PNGs, near-is-warm colours, and readable point clouds."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from depthlab.errors import UserError
from depthlab.inference.outputs import OutputWriter, colorize, parse_kinds
from depthlab.inference.pointcloud import Intrinsics, backproject, relative_depth
from depthlab.targets import Space

from inference_helpers import read_ply


def test_writer_outputs(tmp_path):
    unit = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    rgb = np.full((3, 4, 3), 0.5, np.float32)
    writer = OutputWriter(tmp_path, ["npy", "png16", "color", "ply"], Space.DEPTH)
    written = writer.write("photo", unit, rgb)
    assert [p.name for p in written] == ["photo.npy", "photo_16bit.png", "photo_color.png",
                                         "photo.ply"]
    np.testing.assert_array_equal(np.load(tmp_path / "photo.npy"), unit)
    png = np.asarray(Image.open(tmp_path / "photo_16bit.png"))
    assert png.dtype == np.uint16
    np.testing.assert_allclose(png / 65535.0, unit, atol=0.5 / 65535)
    color = Image.open(tmp_path / "photo_color.png")
    assert color.mode == "RGB" and color.size == (4, 3)
    header, vertices = read_ply(tmp_path / "photo.ply")
    assert "element vertex 12" in header and len(vertices) == 12
    assert (vertices["red"] == 128).all()


@pytest.mark.parametrize("space, near_value", [(Space.DEPTH, 0.0), (Space.DISPARITY, 1.0),
                                               (Space.SQRT_DISPARITY, 1.0)])
def test_near_points_are_warm(space, near_value):
    colors = colorize(np.array([[near_value, 1.0 - near_value]], np.float32), space)
    near, far = colors[0].astype(int)
    assert near[0] > near[2] and far[2] > far[0]  # red dominates near, blue far


def test_bad_choices_are_user_errors(tmp_path):
    with pytest.raises(UserError):
        parse_kinds("npy,jpeg")
    with pytest.raises(UserError):
        OutputWriter(tmp_path, ["color"], Space.DEPTH, colormap="no-such-map")
    assert parse_kinds(" npy, ply ") == ["npy", "ply"]


def test_relative_depth_spans_one_to_ratio():
    unit = np.array([0.0, 0.5, 1.0], np.float32)
    np.testing.assert_allclose(relative_depth(unit, Space.DEPTH, 10.0), [1.0, 5.5, 10.0])
    np.testing.assert_allclose(relative_depth(unit, Space.DISPARITY, 10.0), [10.0, 2.0, 1.0])
    np.testing.assert_allclose(relative_depth(unit, Space.SQRT_DISPARITY, 10.0), [10.0, 4.0, 1.0])


def test_backprojection_geometry():
    intrinsics = Intrinsics.from_fov(4, 2, 90.0)
    assert intrinsics.fx == pytest.approx(2.0) and (intrinsics.cx, intrinsics.cy) == (2.0, 1.0)
    points = backproject(np.full((2, 4), 3.0, np.float32), intrinsics)
    assert points.shape == (8, 3)
    np.testing.assert_allclose(points[0], [(0.5 - 2.0) / 2.0 * 3.0, (0.5 - 1.0) / 2.0 * 3.0, 3.0])
    assert Intrinsics.parse("500,500,320,240") == Intrinsics(500.0, 500.0, 320.0, 240.0)
    with pytest.raises(UserError):
        Intrinsics.parse("500,500")
