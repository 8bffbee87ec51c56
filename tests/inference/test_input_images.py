"""Input handling: every image kind a user may point at becomes HxWx3 float32 in [0, 1]."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from depthlab.errors import UserError
from depthlab.inference.images import list_inputs, load_image, to_rgb_array


def test_rgba_is_composited_over_white(tmp_path):
    pixels = np.zeros((4, 6, 4), np.uint8)
    pixels[..., 0] = 255          # red ...
    pixels[:, :3, 3] = 255        # ... opaque on the left, transparent on the right
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.png")
    rgb = load_image(tmp_path / "a.png")
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb[0, 0], [1, 0, 0])
    np.testing.assert_allclose(rgb[0, 5], [1, 1, 1])


def test_grayscale_and_palette(tmp_path):
    Image.fromarray(np.full((3, 5), 128, np.uint8), "L").save(tmp_path / "g.png")
    Image.new("P", (5, 3), 0).save(tmp_path / "p.gif")
    gray = load_image(tmp_path / "g.png")
    assert gray.shape == (3, 5, 3)
    np.testing.assert_allclose(gray, 128 / 255)
    assert load_image(tmp_path / "p.gif").shape == (3, 5, 3)


def test_sixteen_bit_png_keeps_its_range(tmp_path):
    values = np.array([[0, 32768, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "d.png")
    rgb = load_image(tmp_path / "d.png")
    np.testing.assert_allclose(rgb[0, :, 0], values[0] / 65535, atol=1e-6)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(pixels).save(tmp_path / "r.jpg", exif=exif, quality=100)
    rgb = load_image(tmp_path / "r.jpg")
    assert rgb.shape == (40, 20, 3)
    assert rgb[2, 10].mean() > 0.9 and rgb[-3, 10].mean() < 0.1  # the white half is now on top


@pytest.mark.parametrize("array, expected", [
    (np.full((2, 2, 3), 255, np.uint8), 1.0),
    (np.full((2, 2), 65535, np.uint16), 1.0),
    (np.full((2, 2, 1), 0.25, np.float32), 0.25),
    (np.full((2, 2, 3), 2.0, np.float64), 1.0),
])
def test_array_inputs(array, expected):
    rgb = to_rgb_array(array)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb, expected)


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 3), np.int64), np.zeros((2, 2, 2), np.uint8),
                                 "image.png"])
def test_unsupported_inputs_are_user_errors(bad):
    with pytest.raises(UserError):
        to_rgb_array(bad)


def test_list_inputs(tmp_path):
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in list_inputs([tmp_path])] == ["a.JPG", "b.png"]
    assert list_inputs([tmp_path / "notes.txt"]) == [tmp_path / "notes.txt"]
    with pytest.raises(UserError, match="does not exist"):
        list_inputs([tmp_path / "missing.png"])
    with pytest.raises(UserError, match="No images"):
        list_inputs([tmp_path / "sub"])
