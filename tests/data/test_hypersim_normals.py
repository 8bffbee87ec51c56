"""Hypersim surface normals in Marigold's layout (`normal_cam_XX_frXXXX.npy` next to each RGB,
Hypersim's camera frame x right, y up, z backward), read opt-in into depthlab's frame (x right,
y down, z forward) on a tiny fake Hypersim directory."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthlab.data.augment import flip_normals, hflip
from depthlab.data.mixing import MixedBatches
from depthlab.data.synthetic_sets import hypersim, hypersim_normals_path, read_hypersim_normals
from depthlab.errors import UserError

SIZE = (2, 3)
ROWS = [("ai_001_001/rgb_cam_00_fr0000.png", "ai_001_001/depth_plane_cam_00_fr0000.png"),
        ("ai_001_001/rgb_cam_01_fr0007.png", "ai_001_001/depth_plane_cam_01_fr0007.png")]
NORMALS = ["ai_001_001/normal_cam_00_fr0000.npy", "ai_001_001/normal_cam_01_fr0007.npy"]
# Hypersim camera frame (x right, y up, z backward = towards the viewer): a wall facing the
# camera is +z, a floor +y, a wall on the left (facing right) +x. Pixel (1, 2) has no depth.
HYPERSIM = np.array([[[0, 0, 1], [0, 1, 0], [1, 0, 0]],
                     [[-0.6, 0, 0.8], [0, 0.8, 0.6], [0, 0, 1]]], dtype=np.float32)
# The same normals in depthlab's frame (y and z negated): the wall is (0, 0, -1), the floor
# (0, -1, 0) (up is -y); the invalid pixel is 0.
DEPTHLAB = torch.tensor([[[0, 0, -1], [0, -1, 0], [1, 0, 0]],
                         [[-0.6, 0, -0.8], [0, -0.8, -0.6], [0, 0, 0]]]).permute(2, 0, 1)


def fake_hypersim(root: Path, normals: bool = True) -> Path:
    """Two frames of Marigold-preprocessed Hypersim; returns the split list."""
    for (rgb_rel, depth_rel), normal_rel in zip(ROWS, NORMALS):
        (root / rgb_rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((*SIZE, 3), 128, np.uint8)).save(root / rgb_rel)
        depth = np.full(SIZE, 2500, np.uint16)
        depth[1, 2] = 0
        Image.fromarray(depth).save(root / depth_rel)
        if normals:
            np.save(root / normal_rel, HYPERSIM)
    split = root / "split.txt"
    split.write_text("".join(f"{rgb} {depth}\n" for rgb, depth in ROWS))
    return split


def test_normal_file_names_follow_marigold():
    assert hypersim_normals_path(ROWS[0][0]) == NORMALS[0]
    assert hypersim_normals_path("a/b/rgb_cam_03_fr0012.png") == "a/b/normal_cam_03_fr0012.npy"
    with pytest.raises(UserError, match="depth_plane_cam_00"):
        hypersim_normals_path("ai_001_001/depth_plane_cam_00_fr0000.png")


def test_normals_are_read_in_depthlab_camera_frame(tmp_path):
    data = hypersim(data_dir=str(tmp_path), split_file=str(fake_hypersim(tmp_path)),
                    normals=True)
    item = data[1]
    assert item["normals"].shape == (3, *SIZE) and item["normals"].dtype == torch.float32
    torch.testing.assert_close(item["normals"], DEPTHLAB.float())
    assert item["valid"][0].tolist() == [[True, True, True], [True, True, False]]
    assert torch.allclose(item["depth"][item["valid"]], torch.tensor(2.5))
    assert item["name"] == ROWS[1][0]


def test_normals_are_opt_in_and_never_required_without_the_flag(tmp_path):
    split = fake_hypersim(tmp_path, normals=False)
    item = hypersim(data_dir=str(tmp_path), split_file=str(split))[0]
    assert set(item) == {"rgb", "depth", "valid", "name"}
    fake_hypersim(tmp_path)
    with_normals = hypersim(data_dir=str(tmp_path), split_file=str(split), normals=True)[0]
    for key in ("rgb", "depth", "valid"):
        assert torch.equal(with_normals[key], item[key])


def test_a_missing_normal_file_is_a_user_error_naming_it(tmp_path):
    split = fake_hypersim(tmp_path, normals=False)
    with pytest.raises(UserError, match="normal_cam_00_fr0000.npy"):
        hypersim(data_dir=str(tmp_path), split_file=str(split), normals=True)
    np.save(tmp_path / NORMALS[0], HYPERSIM)  # the first is there, the second is not
    data = hypersim(data_dir=str(tmp_path), split_file=str(split), normals=True)
    data[0]
    with pytest.raises(UserError, match="normal_cam_01_fr0007.npy"):
        data[1]


def test_unreadable_or_misshapen_normal_files_are_user_errors(tmp_path):
    split = fake_hypersim(tmp_path)
    data = hypersim(data_dir=str(tmp_path), split_file=str(split), normals=True)
    (tmp_path / NORMALS[0]).write_bytes(b"not a numpy file")
    with pytest.raises(UserError, match="normal_cam_00_fr0000.npy"):
        data[0]
    np.save(tmp_path / NORMALS[0], HYPERSIM[..., :2])
    with pytest.raises(UserError, match=r"normal_cam_00_fr0000.npy.*\[H, W, 3\]"):
        data[0]
    np.save(tmp_path / NORMALS[0], np.zeros((4, 5, 3), np.float32))
    with pytest.raises(UserError, match="must match"):
        data[0]


def test_unusable_normals_make_their_pixels_invalid_and_normals_are_renormalised(tmp_path):
    split = fake_hypersim(tmp_path)
    stored = HYPERSIM.copy() * 3.0  # not unit length
    stored[0, 0] = np.nan
    stored[0, 1] = 0.0
    np.save(tmp_path / NORMALS[0], stored.astype(np.float16))
    item = hypersim(data_dir=str(tmp_path), split_file=str(split), normals=True)[0]
    assert item["valid"][0].tolist() == [[False, False, True], [True, True, False]]
    assert (item["depth"][~item["valid"]] == 0).all()
    assert (item["normals"][:, ~item["valid"][0]] == 0).all()
    length = item["normals"].norm(dim=0)
    torch.testing.assert_close(length[item["valid"][0]], torch.ones(3), atol=1e-3, rtol=0)


def test_read_hypersim_normals_negates_y_and_z_only(tmp_path):
    path = tmp_path / "normal_cam_00_fr0000.npy"
    np.save(path, np.array([[[0.36, 0.48, 0.8]]], np.float64))
    assert read_hypersim_normals(path).flatten().tolist() == pytest.approx([0.36, -0.48, -0.8])
    with pytest.raises(UserError, match="missing.npy"):
        read_hypersim_normals(tmp_path / "missing.npy")


def test_flips_and_batches_carry_the_normals(tmp_path):
    data = hypersim(data_dir=str(tmp_path), split_file=str(fake_hypersim(tmp_path)),
                    normals=True)
    flipped = hflip(data[0])
    assert torch.equal(flipped["normals"], flip_normals(data[0]["normals"]))
    assert flipped["normals"][:, 0, 0].tolist() == [-1.0, 0.0, 0.0]  # the left wall, mirrored
    batch = MixedBatches(labelled=[data], batch_size=2, extra_targets=("normals",))[0].labelled
    assert batch.extras["normals"].shape == (2, 3, *SIZE)
