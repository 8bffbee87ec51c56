"""Dataset loaders: layouts, decoding, valid ranges and crops, folder and tar sources."""
from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from PIL import Image
from scipy import io as scipy_io

from eval_fixtures import (KITTI_DEMO, NYU_DEMO, OPEN3D, build_folder_redwood, build_kitti,
                           build_nyu, make_tar, png_bytes, put, requires_shared, write_split)
from depthlab.errors import UserError
from depthlab.eval import (EvalSample, SampleError, build_dataset, dataset_names,
                           evaluate_predictor, register_dataset)
from depthlab.eval.metrics import PROTOCOL_METRICS


def redwood_frame(index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A CC BY Redwood frame: RGB uint8 and depth in metres (0 = invalid)."""
    rgb = np.asarray(Image.open(OPEN3D / "color" / f"{index:05d}.jpg").convert("RGB"))
    depth = (np.asarray(Image.open(OPEN3D / "depth" / f"{index:05d}.png")) / 1000).astype(
        np.float32)
    return rgb, depth


@pytest.mark.parametrize("name, rows, res", [("nyu", 654, 0), ("kitti", 652, 0),
                                             ("eth3d", 454, 756), ("scannet", 800, 0),
                                             ("diode", 771, 640)])
def test_shipped_splits_load_without_decoding(tmp_path, name, rows, res):
    dataset = build_dataset(name, str(tmp_path))
    assert len(dataset) == rows
    assert dataset.processing_res == res
    assert tuple(dataset.default_metrics) == PROTOCOL_METRICS
    assert dataset.sample_id(0).endswith((".png", ".jpg", ".JPG"))
    assert getattr(dataset, "prediction_clip", None) == ((0.6, 350.0) if name == "diode" else None)


def test_all_sets_are_registered():
    assert {"nyu", "kitti", "eth3d", "scannet", "diode", "folder", "sintel", "ibims",
            "da2k"} <= set(dataset_names())


@requires_shared
def test_nyu_decoding_range_and_eigen_crop(tmp_path):
    data, split = build_nyu(tmp_path)
    sample = build_dataset("nyu", str(data), str(split))[0]
    raw = np.asarray(Image.open(NYU_DEMO / "depth" / "sync_depth_00050.png"))
    np.testing.assert_array_equal(sample.depth, (raw / 1000.0).astype(np.float32))
    assert sample.rgb.shape == (480, 640, 3) and sample.rgb.dtype == np.uint8
    outside = np.ones_like(sample.valid)
    outside[45:471, 41:601] = False
    assert not sample.valid[outside].any()
    inside = ~outside
    np.testing.assert_array_equal(sample.valid[inside], (raw[inside] > 1) & (raw[inside] < 10000))


@requires_shared
@pytest.mark.parametrize("variant", ["folder", "tar", "tar_in_folder"])
def test_kitti_benchmark_and_eigen_crop(tmp_path, variant):
    data, split = build_kitti(tmp_path)
    if variant == "tar":
        data = make_tar(data, tmp_path / "kitti_eigen_split_test.tar")
    elif variant == "tar_in_folder":  # --data-dir names the base folder holding kitti/*.tar
        (tmp_path / "base" / "kitti").mkdir(parents=True)
        make_tar(data, tmp_path / "base" / "kitti" / "kitti_eigen_split_test.tar")
        data = tmp_path / "base"
    dataset = build_dataset("kitti", str(data), str(split))
    sample = dataset[0]
    raw_rgb = np.asarray(Image.open(KITTI_DEMO / "rgb" / "0000000005.png").convert("RGB"))
    raw_depth = np.asarray(Image.open(KITTI_DEMO / "depth" / "0000000005.png"))
    assert raw_rgb.shape[:2] == (375, 1242)
    top, left = 375 - 352, int((1242 - 1216) / 2)
    np.testing.assert_array_equal(sample.rgb, raw_rgb[top:top + 352, left:left + 1216])
    np.testing.assert_array_equal(sample.depth, (raw_depth[top:top + 352, left:left + 1216]
                                                 / 256.0).astype(np.float32))
    rows, cols = np.nonzero(sample.valid)
    assert rows.min() >= int(0.3324324 * 352) and rows.max() < int(0.91351351 * 352)
    assert cols.min() >= int(0.0359477 * 1216) and cols.max() < int(0.96405229 * 1216)
    assert (sample.depth[sample.valid] < 80).all() and sample.valid.sum() > 1000


def test_kitti_rows_without_ground_truth_are_dropped(tmp_path):
    split = write_split(tmp_path / "s.txt", [["a/rgb.png", "None", "721.5"],
                                             ["b/rgb.png", "b/gt.png", "721.5"]])
    dataset = build_dataset("kitti", str(tmp_path), str(split))
    assert len(dataset) == 1 and dataset.sample_id(0) == "b/rgb.png"


@requires_shared
def test_eth3d_raw_float32_depth(tmp_path):
    rgb, depth = redwood_frame()
    depth[0, :5] = np.inf
    rows = [[f"rgb/office/images/dslr_images/DSC_000{i}.JPG",
             f"depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_000{i}.JPG"]
            for i in (1, 2)]
    for row, raw in zip(rows, (depth, depth[:10])):  # the second has a wrong size
        put(tmp_path, row[0], _jpeg(rgb))
        put(tmp_path, row[1], raw.tobytes())
    split = write_split(tmp_path / "s.txt", rows)
    dataset = build_dataset("eth3d", str(tmp_path), str(split))
    sample = dataset[0]
    assert sample.depth.shape == rgb.shape[:2] and (sample.depth[0, :5] == 0).all()
    np.testing.assert_array_equal(sample.valid, np.where(np.isinf(depth), 0, depth) > 1e-5)
    with pytest.raises(SampleError, match="DSC_0002"):
        dataset[1]


@requires_shared
def test_scannet_and_diode(tmp_path):
    rgb, depth = redwood_frame(1)
    put(tmp_path / "scannet", "scene0000_00/color/000000.jpg", _jpeg(rgb))
    put(tmp_path / "scannet", "scene0000_00/depth/000000.png",
        png_bytes(np.round(depth * 1000).astype(np.uint16)))
    split = write_split(tmp_path / "scannet.txt", [["scene0000_00/color/000000.jpg",
                                                    "scene0000_00/depth/000000.png"]])
    sample = build_dataset("scannet", str(tmp_path / "scannet"), str(split))[0]
    np.testing.assert_allclose(sample.depth, depth, atol=1e-6)
    np.testing.assert_array_equal(sample.valid, (depth > 1e-3) & (depth < 10))

    mask = depth > 1.5
    put(tmp_path / "diode", "indoors/a.png", png_bytes(rgb))
    put(tmp_path / "diode", "indoors/a_depth.npy", _npy(depth[..., None]))
    put(tmp_path / "diode", "indoors/a_depth_mask.npy", _npy(mask.astype(np.float32)))
    split = write_split(tmp_path / "diode.txt", [["indoors/a.png", "indoors/a_depth.npy",
                                                  "indoors/a_depth_mask.npy"]])
    sample = build_dataset("diode", str(tmp_path / "diode"), str(split))[0]
    np.testing.assert_array_equal(sample.depth, depth)
    np.testing.assert_array_equal(sample.valid, mask)
    short = write_split(tmp_path / "short.txt", [["indoors/a.png", "indoors/a_depth.npy"]])
    with pytest.raises(UserError, match="third column"):
        build_dataset("diode", str(tmp_path / "diode"), str(short))


@requires_shared
def test_folder_layout_and_its_errors(tmp_path):
    data = build_folder_redwood(tmp_path, count=2)
    with pytest.raises(UserError, match="--depth-scale"):
        build_dataset("folder", str(data))
    dataset = build_dataset("folder", str(data), depth_scale=1000)
    assert [dataset.sample_id(i) for i in range(2)] == ["rgb/00000.jpg", "rgb/00001.jpg"]
    assert "boundary_recall" in dataset.default_metrics and "boundary_f1" in dataset.default_metrics
    sample = dataset[0]
    np.testing.assert_allclose(sample.depth, redwood_frame(0)[1], atol=1e-6)
    assert sample.mask is not None and sample.mask.max() == 1.0
    # float .npy depth in metres wins over a PNG of the same name
    np.save(data / "depth" / "00001.npy", np.full((480, 640), 2.0, np.float32))
    assert (build_dataset("folder", str(data), depth_scale=1000)[1].depth == 2.0).all()
    (data / "depth" / "00001.png").unlink()
    (data / "depth" / "00001.npy").unlink()
    with pytest.raises(SampleError, match="rgb/00001.jpg.*missing file"):
        build_dataset("folder", str(data), depth_scale=1000)[1]


@requires_shared
def test_corrupt_image_names_sample_and_file(tmp_path):
    data, split = build_nyu(tmp_path)
    dataset = build_dataset("nyu", str(data), str(split))
    (data / dataset.sample_id(1)).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(SampleError, match=f"{dataset.sample_id(1)}.*corrupt or unreadable"):
        dataset[1]


@requires_shared
def test_sintel_dpt(tmp_path):
    rgb, depth = redwood_frame(2)
    depth[depth == 0] = 100.0  # Sintel is dense; far sky beyond the valid range
    put(tmp_path, "training/final/alley_1/frame_0001.png", png_bytes(rgb))
    put(tmp_path, "training/depth/alley_1/frame_0001.dpt",
        struct.pack("<fii", 202021.25, 640, 480) + depth.astype("<f4").tobytes())
    put(tmp_path, "training/depth/alley_1/frame_0002.dpt", struct.pack("<fii", 1.0, 1, 1) + b"0000")
    put(tmp_path, "training/final/alley_1/frame_0002.png", png_bytes(rgb))
    dataset = build_dataset("sintel", str(tmp_path))
    assert [dataset.sample_id(i) for i in range(2)] == [
        "training/final/alley_1/frame_0001.png", "training/final/alley_1/frame_0002.png"]
    sample = dataset[0]
    np.testing.assert_array_equal(sample.depth, depth)
    assert not sample.valid[depth == 100.0].any()
    with pytest.raises(SampleError, match="frame_0002.*bad .dpt tag"):
        dataset[1]


@requires_shared
@pytest.mark.parametrize("layout", ["raw", "mat"])
def test_ibims_layouts(tmp_path, layout):
    rgb, depth = redwood_frame(3)
    edges = np.zeros(depth.shape, bool)
    edges[100, 50:200] = True
    invalid = np.ones(depth.shape, np.uint8)
    invalid[:10] = 0
    if layout == "raw":
        root = tmp_path / "ibims1_core_raw"
        put(root, "rgb/corridor_01.png", png_bytes(rgb))
        stored = np.round(depth * 65535 / 50).astype(np.uint16)
        put(root, "depth/corridor_01.png", png_bytes(stored))
        put(root, "edges/corridor_01.png", png_bytes(edges.astype(np.uint8) * 255))
        put(root, "mask_invalid/corridor_01.png", png_bytes(invalid * 255))
        put(root, "mask_transp/corridor_01.png", png_bytes(np.full_like(invalid, 255)))
    else:
        buffer = io.BytesIO()
        scipy_io.savemat(buffer, {"data": {"rgb": rgb, "depth": depth, "edges": edges.astype(
            np.uint8), "mask_invalid": invalid, "mask_transp": np.ones_like(invalid)}})
        put(tmp_path / "ibims1_core_mat", "corridor_01.mat", buffer.getvalue())
    dataset = build_dataset("ibims", str(tmp_path))
    assert len(dataset) == 1
    sample = dataset[0]
    np.testing.assert_allclose(sample.depth, depth, atol=50 / 65535)
    np.testing.assert_array_equal(sample.edges, edges)
    assert not sample.valid[:10].any() and sample.valid[10:].sum() == (depth[10:] > 1e-3).sum()


@requires_shared
def test_da2k_pairs_and_accuracy(tmp_path):
    rgb, depth = redwood_frame(0)
    put(tmp_path, "images/indoor/a.jpg", _jpeg(rgb))
    rows, cols = np.nonzero(depth > 0)
    pick = np.random.default_rng(0).choice(len(rows), size=(20, 2))
    annotations = []
    for i, j in pick:
        p, q = [int(rows[i]), int(cols[i])], [int(rows[j]), int(cols[j])]
        if depth[p[0], p[1]] == depth[q[0], q[1]]:
            continue
        closer, farther = (p, q) if depth[p[0], p[1]] < depth[q[0], q[1]] else (q, p)
        annotations.append({"point1": closer, "point2": farther, "closer_point": "point1"})
    (tmp_path / "annotations.json").write_text(json.dumps({"images/indoor/a.jpg": annotations}))
    dataset = build_dataset("da2k", str(tmp_path))
    assert dataset.default_metrics == ("da2k_acc",)
    lookup = {dataset[0].rgb.tobytes(): depth}  # the predictor sees the decoded JPEG
    perfect = evaluate_predictor(lambda image: lookup[image.tobytes()], dataset, "depth",
                                 progress=False)
    assert perfect.means["da2k_acc"] == 1.0 and perfect.count == 1
    flipped = evaluate_predictor(lambda image: 1 / np.clip(lookup[image.tobytes()], 0.1, None),
                                 dataset, "depth", progress=False)
    assert flipped.means["da2k_acc"] == 0.0


def test_registry_is_open_and_needs_no_data_dir():
    @register_dataset("test_tiny_world")
    class Tiny:
        name, min_depth, max_depth, processing_res = "test_tiny_world", 0.1, 10.0, 0
        default_metrics = ("abs_rel", "delta1")

        def __init__(self, data_dir, split_file=None, size=8):
            self.size = size

        def __len__(self):
            return 2

        def sample_id(self, index):
            return f"tiny/{index}.png"

        def __getitem__(self, index):
            depth = np.linspace(1, 5, self.size ** 2, dtype=np.float32).reshape(self.size, -1)
            return EvalSample(self.sample_id(index), np.zeros((self.size, self.size, 3), np.uint8),
                              depth, np.ones_like(depth, bool))

    dataset = build_dataset("test_tiny_world", None, size=4)
    result = evaluate_predictor(lambda rgb: np.linspace(0, 1, 16).reshape(4, 4), dataset, "depth",
                                progress=False)
    assert result.count == 2 and result.means["abs_rel"] == pytest.approx(0, abs=1e-5)
    with pytest.raises(UserError, match="does not accept"):
        build_dataset("test_tiny_world", None, colour="red")
    with pytest.raises(UserError, match="unknown dataset 'nope'"):
        build_dataset("nope", None)
    with pytest.raises(UserError, match="needs a data directory"):
        build_dataset("nyu", None)


def _jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
