"""Camera-space surface normals of the mini world (x right, y down, z forward, facing the camera,
0 where invalid): contract, agreement with the depth map, known surfaces, and horizontal flips."""
import numpy as np
import pytest
import torch

from depthlab.data.augment import flip_normals, hflip
from depthlab.data.mixing import MixedBatches
from depthlab.world.datasets import MiniWorldDataset, scene_seed
from depthlab.world.geometry import Primitives, cast
from depthlab.world.layout import MAX_DEPTH, Camera, look_axes, sample_layout
from depthlab.world.scenes import camera_normals, render_scene

SCENES = [(seed, domain) for seed in range(6) for domain in ("synthetic", "real")]


def camera_rays(intrinsics: np.ndarray, size: int) -> np.ndarray:
    """[H, W, 3] camera-space rays through pixel centres, forward component 1."""
    k, centres = intrinsics.astype(float), np.arange(size)
    u, v = np.meshgrid((centres - k[0, 2]) / k[0, 0], (centres - k[1, 2]) / k[1, 1])
    return np.stack([u, v, np.ones_like(u)], -1)


@pytest.mark.parametrize("seed,domain", SCENES)
def test_normals_are_unit_facing_the_camera_and_zero_where_invalid(seed, domain):
    scene = render_scene(seed, domain)
    assert scene.normals.shape == (64, 64, 3) and scene.normals.dtype == np.float32
    length = np.linalg.norm(scene.normals, axis=-1)
    np.testing.assert_allclose(length[scene.valid], 1.0, atol=1e-6)
    assert (scene.normals[~scene.valid] == 0).all()
    facing = np.einsum("hwc,hwc->hw", scene.normals, camera_rays(scene.intrinsics, 64))
    assert (facing[scene.valid] <= 1e-6).all()


@pytest.mark.parametrize("seed,domain", SCENES)
def test_normals_are_perpendicular_to_the_depth_surface(seed, domain):
    """Neighbouring pixels with the same normal lie (almost always) on one plane: the step
    between their back-projected points is perpendicular to that normal."""
    scene = render_scene(seed, domain)
    points = scene.depth[..., None].astype(float) * camera_rays(scene.intrinsics, 64)
    n = scene.normals.astype(float)
    agree, total = 0, 0
    for axis in (0, 1):
        a, b = [slice(None)] * 2, [slice(None)] * 2
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        same = scene.valid[a] & scene.valid[b] & (np.abs(n[a] - n[b]).max(-1) < 1e-6)
        step = points[b] - points[a]
        off_plane = np.abs(np.einsum("hwc,hwc->hw", n[a], step))
        agree += int((off_plane[same] <= 1e-4 * (1 + np.linalg.norm(step, axis=-1)[same])).sum())
        total += int(same.sum())
    assert total > 500 and agree >= 0.95 * total


def _room_view(yaw: float, pitch: float, size: int = 33):
    prims = Primitives(room=np.array([[-2.0, 0.0, 0.0], [2.0, 3.0, 10.0]]))
    camera = Camera(np.array([0.0, 1.5, 1.0]), look_axes(yaw, pitch, 0.0), 60.0)
    hits, _ = cast(camera.view(size), prims)
    valid = np.isfinite(hits.t) & (hits.t <= MAX_DEPTH)
    return camera_normals(hits.normal, camera.axes, valid).reshape(size, size, 3)


def test_walls_floor_and_ceiling_of_a_room_seen_straight_on():
    # Camera 1.5 m up, looking along +z at the back wall 9 m ahead (60 degree FOV): the centre
    # sees the back wall, the middle of the left and right edges the side walls, the top and
    # bottom edges the ceiling and the floor.
    normals = _room_view(0.0, 0.0)
    assert normals[16, 16].tolist() == [0.0, 0.0, -1.0]  # back wall faces the camera: -z
    assert normals[32, 16].tolist() == [0.0, -1.0, 0.0]  # floor points up: -y (y is down)
    assert normals[0, 16].tolist() == [0.0, 1.0, 0.0]  # ceiling points down: +y
    assert normals[16, 0].tolist() == [1.0, 0.0, 0.0]  # left wall faces right: +x
    assert normals[16, 32].tolist() == [-1.0, 0.0, 0.0]  # right wall faces left: -x


def test_the_floor_under_a_pitched_and_yawed_camera():
    # Up is (0, 1, 0) in the world; in camera coordinates it is (right.up, down.up, fwd.up)
    # = (0, -cos pitch, -sin pitch) for any yaw (no roll).
    pitch = 0.3
    normals = _room_view(0.4, pitch)
    np.testing.assert_allclose(normals[32, 16], [0.0, -np.cos(pitch), -np.sin(pitch)], atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_the_floor_or_ground_of_eye_level_scenes_points_up(seed):
    layout = sample_layout(seed, "synthetic")
    scene = render_scene(seed, "synthetic")
    hits, _ = cast(layout.camera.view(64), layout.prims)
    floor_material = layout.prims.room_mat[0] if layout.kind == "room" else layout.prims.ground_mat
    floor = (hits.material == floor_material).reshape(64, 64) & scene.valid
    assert floor.sum() > 50
    up = layout.camera.axes @ np.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(scene.normals[floor], np.broadcast_to(up, (floor.sum(), 3)),
                               atol=1e-6)
    assert (scene.normals[floor][:, 1] < -0.8).all()  # eye level: pitch < 0.35 rad, roll tiny


def _mirrored(prims: Primitives) -> Primitives:
    """The scene reflected in the plane x = 0."""
    room = None if prims.room is None else np.array([[-prims.room[1][0], *prims.room[0][1:]],
                                                     [-prims.room[0][0], *prims.room[1][1:]]])
    mirror = Primitives(room=room, room_mat=prims.room_mat)
    for x, y, z, r in prims.spheres:
        mirror.add_sphere([-x, y, z], r, 3)
    for x, y, z, hx, hy, hz, yaw in prims.boxes:
        mirror.add_box([-x, y, z], [hx, hy, hz], -yaw, 4)
    for x, y0, z, r, h in prims.cylinders:
        mirror.add_cylinder(-x, z, r, h, 5, y0=y0)
    return mirror


def test_a_mirrored_scene_has_the_flipped_normals():
    prims = Primitives(room=np.array([[-2.0, 0.0, 0.0], [2.7, 3.0, 10.0]]))
    prims.add_sphere([0.7, 1.0, 5.0], 0.6, 3)
    prims.add_box([-0.9, 0.5, 6.0], [0.3, 0.5, 0.4], 0.5, 4)
    prims.add_cylinder(0.4, 4.0, 0.2, 2.0, 5)
    camera = Camera(np.array([0.0, 1.4, 0.5]), look_axes(0.0, 0.15, 0.0), 70.0)
    images = []
    for scene in (prims, _mirrored(prims)):
        hits, _ = cast(camera.view(48), scene)
        valid = np.isfinite(hits.t) & (hits.t <= MAX_DEPTH)
        images.append(torch.from_numpy(
            camera_normals(hits.normal, camera.axes, valid).reshape(48, 48, 3)).permute(2, 0, 1))
    original, mirrored = images
    assert (original[0] > 0.5).any() and (original[0] < -0.5).any()  # both sides are seen
    torch.testing.assert_close(mirrored, flip_normals(original), atol=1e-6, rtol=0)


def test_camera_normals_rotates_normalises_and_masks():
    axes = look_axes(0.3, 0.2, 0.1)
    world = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 0.0, 0.0]])
    valid = np.array([True, True, False, True])
    camera = camera_normals(world, axes, valid)
    assert camera.dtype == np.float32 and camera.shape == (4, 3)
    np.testing.assert_allclose(camera[0], axes @ [0.0, 1.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(camera[1], axes[:, 0], atol=1e-7)
    assert camera[2].tolist() == [0.0, 0.0, 0.0]  # invalid
    assert camera[3].tolist() == [0.0, 0.0, 0.0]  # no normal (a miss): stays 0, no nan


def test_dataset_normals_are_opt_in():
    plain = MiniWorldDataset("real", "val", length=3)
    with_normals = MiniWorldDataset("real", "val", length=3, normals=True)
    item, extended = plain[1], with_normals[1]
    assert "normals" not in item and set(extended) == set(item) | {"normals"}
    for key in ("rgb", "depth", "valid", "intrinsics"):
        assert torch.equal(extended[key], item[key])
    assert extended["normals"].shape == (3, 64, 64) and extended["normals"].dtype == torch.float32
    expected = render_scene(scene_seed("real", "val", 1), "real").normals
    assert torch.equal(extended["normals"], torch.from_numpy(expected).permute(2, 0, 1))
    assert repr(plain) == "MiniWorldDataset(domain='real', split='val', size=64, length=3)"
    assert "normals=True" in repr(with_normals)


def test_normals_travel_through_batches_and_flips():
    data = MiniWorldDataset("synthetic", "val", size=16, length=4, normals=True)
    flipped = hflip(data[2])
    torch.testing.assert_close(flipped["normals"], flip_normals(data[2]["normals"]))
    batches = MixedBatches(labelled=[data], batch_size=4, flip_probability=0.5,
                           extra_targets=("normals",), seed=1)
    batch = batches[0].labelled
    assert batch.extras["normals"].shape == (4, 3, 16, 16)
    length = batch.extras["normals"].norm(dim=1, keepdim=True)
    torch.testing.assert_close(length[batch.valid], torch.ones(int(batch.valid.sum())))
