"""The low-pass (ideal) teacher: blurred true disparity up to a positive affine map, once per
process; the oracle it reads is off until a teacher is built."""
from pathlib import Path

import gin
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from depthlab.errors import UserError
from depthlab.models.output_kind import OutputKind
from depthlab.teachers.base import clear_shared_instances
from depthlab.world.lowpass_teacher import LowPassTeacher, lowpass_teacher
from depthlab.world import oracle
from depthlab.world.datasets import MiniWorldDataset

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_oracle():
    """Each test starts with an empty, disabled oracle; the previous state is restored after."""
    was_enabled = oracle.is_enabled()
    oracle.disable()
    oracle.clear()
    yield
    oracle.clear()
    (oracle.enable if was_enabled else oracle.disable)()


def _batch(domain: str = "real", count: int = 4) -> dict:
    dataset = MiniWorldDataset(domain, "val")
    items = [dataset[i] for i in range(count)]
    return {key: torch.stack([item[key] for item in items]) for key in ("rgb", "depth", "valid")}


def _blurred_disparity(depth: torch.Tensor, sigma: float = 2.5) -> np.ndarray:
    d = depth.numpy()
    return gaussian_filter(np.where(d > 0, 1.0 / np.maximum(d, 1e-6), 0.0), sigma, mode="nearest")


def _affine_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and the largest residual (relative to y's range) of a least-squares line."""
    slope, intercept = np.polyfit(x.ravel(), y.ravel(), 1)
    residual = np.abs(slope * x + intercept - y).max() / (y.max() - y.min())
    return float(slope), float(residual)


@pytest.mark.parametrize("domain", ["synthetic", "real"])
def test_output_is_a_positive_affine_map_of_blurred_true_disparity(domain):
    teacher = LowPassTeacher()  # built before rendering, as gin builds a recipe
    batch = _batch(domain)
    out = teacher(batch["rgb"])
    assert out.shape == (4, 1, 64, 64) and out.dtype == torch.float32
    for prediction, depth in zip(out, batch["depth"]):
        slope, residual = _affine_fit(_blurred_disparity(depth[0]), prediction[0].numpy())
        assert slope > 0 and residual < 1e-4


def test_output_has_no_fine_detail():
    teacher = LowPassTeacher()
    batch = _batch(count=6)
    out = teacher(batch["rgb"])[:, 0].numpy()
    truth = np.where(batch["valid"][:, 0], 1.0 / batch["depth"][:, 0].clamp_min(1e-6), 0.0)

    def sharpest_step(x):  # largest neighbour difference, in units of the map's spread
        x = (x - x.mean()) / x.std()
        return max(np.abs(np.diff(x, axis=0)).max(), np.abs(np.diff(x, axis=1)).max())

    # Only scenes with an edge to lose count (a high camera over bare ground has none).
    pairs = [(p, d) for p, d in zip(out, truth) if sharpest_step(d) > 1.0]
    assert len(pairs) >= 3
    for prediction, disparity in pairs:
        assert sharpest_step(prediction) < 0.3 * sharpest_step(disparity)


def test_mirrored_images_are_known_and_deterministic():
    teacher = LowPassTeacher()
    batch = _batch()
    flipped = teacher(batch["rgb"].flip(-1))
    torch.testing.assert_close(teacher(batch["rgb"].flip(-1)), flipped)
    for prediction, depth in zip(flipped, batch["depth"]):
        slope, residual = _affine_fit(_blurred_disparity(depth[0].flip(-1)), prediction[0].numpy())
        assert slope > 0 and residual < 1e-4


def test_images_survive_float_round_trips():
    teacher = LowPassTeacher()
    rgb = _batch()["rgb"]
    wobbly = ((rgb * 2.0 - 1.0) * 0.5 + 0.5).double()  # as a recipe might reshape the range
    torch.testing.assert_close(teacher(wobbly).float(), teacher(rgb))


def test_foreign_images_are_a_clear_user_error():
    teacher = LowPassTeacher()
    with pytest.raises(UserError, match="only works on mini-world images"):
        teacher(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    resized = torch.nn.functional.interpolate(_batch()["rgb"], size=(32, 32), mode="bilinear")
    with pytest.raises(UserError, match="only works on mini-world images"):
        teacher(resized)


def test_oracle_is_off_until_a_teacher_is_built():
    dataset = MiniWorldDataset("synthetic", "val")
    before = dataset[0]["rgb"][None]
    assert not oracle.is_enabled() and oracle.size() == 0  # the default path stores nothing
    teacher = LowPassTeacher()
    assert oracle.is_enabled()
    after = dataset[1]["rgb"][None]
    assert oracle.size() == 2  # the image and its mirror
    assert teacher(after).shape == (1, 1, 64, 64)
    with pytest.raises(UserError, match="rendered before the teacher was built"):
        teacher(before)


def test_oracle_is_a_bounded_lru():
    try:
        oracle.set_capacity(2)
        teacher = LowPassTeacher()
        dataset = MiniWorldDataset("synthetic", "val")
        first = dataset[0]["rgb"][None]
        for index in range(1, 4):
            dataset[index]
        assert oracle.size() <= 4
        with pytest.raises(UserError):
            teacher(first)
    finally:
        oracle.set_capacity(oracle.DEFAULT_CAPACITY)


def test_declares_disparity_and_is_built_once_per_process():
    clear_shared_instances()
    teacher = lowpass_teacher()
    assert teacher.output_kind is OutputKind.DISPARITY
    assert lowpass_teacher() is teacher
    assert lowpass_teacher(sigma=1.0) is not teacher
    assert not any(True for _ in teacher.parameters())
    oracle.disable()
    assert lowpass_teacher() is teacher and oracle.is_enabled()  # the shared one re-enables


def test_gin_file_builds_one_shared_teacher():
    clear_shared_instances()
    gin.clear_config()
    try:
        gin.parse_config_file(str(REPO / "gin/teachers/lowpass.gin"))
        first, second = gin.query_parameter("%TEACHER"), gin.query_parameter("%TEACHER")
        assert first.scoped_configurable_fn() is second.scoped_configurable_fn()
        assert gin.query_parameter("lowpass_teacher.sigma") == 2.5
    finally:
        gin.clear_config()
