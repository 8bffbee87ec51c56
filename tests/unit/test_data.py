"""Training data: Marigold layouts, mixing by ratio, and the GT-free real-image stream."""
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthlab.data.batch import UnlabelledBatch
from depthlab.data.image_folder import ImageFolder
from depthlab.data.mixing import MixedBatches
from depthlab.data.splits import read_split, shipped_split
from depthlab.data.synthetic_sets import hypersim, vkitti
from depthlab.errors import UserError


def write_pair(root: Path, rgb_rel: str, depth_rel: str, size, depth_value: int) -> None:
    for rel in (rgb_rel, depth_rel):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 128, np.uint8)).save(root / rgb_rel)
    depth = np.full(size, depth_value, np.uint16)
    depth[0, 0] = 0
    Image.fromarray(depth).save(root / depth_rel)


def test_shipped_splits_have_the_documented_sizes():
    assert len(read_split(shipped_split("nyu_depth/labeled/filename_list_test.txt"))) == 654
    assert len(read_split(shipped_split("kitti_depth/eigen_test_files_with_gt.txt"))) == 697


def test_hypersim_layout_decoding_and_valid_range(tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("a/rgb_0.png a/depth_0.png\na/rgb_1.png a/depth_1.png\n")
    write_pair(tmp_path, "a/rgb_0.png", "a/depth_0.png", (6, 8), 2500)
    write_pair(tmp_path, "a/rgb_1.png", "a/depth_1.png", (6, 8), 65500)  # 65.5 m: invalid
    data = hypersim(data_dir=str(tmp_path), split_file=str(split))
    first, second = data[0], data[1]
    assert first["rgb"].shape == (3, 6, 8) and first["depth"].shape == (1, 6, 8)
    assert torch.allclose(first["depth"][first["valid"]], torch.tensor(2.5))
    assert not first["valid"][0, 0, 0] and not second["valid"].any()


def test_vkitti_crop_and_centimetres(tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("rgb/s/rgb_0.jpg depth/s/depth_0.png\n")
    write_pair(tmp_path, "rgb/s/rgb_0.jpg", "depth/s/depth_0.png", (375, 1242), 1234)
    sample = vkitti(data_dir=str(tmp_path), split_file=str(split))[0]
    assert sample["rgb"].shape == (3, 352, 1216) and sample["valid"].shape == (1, 352, 1216)
    assert torch.allclose(sample["depth"][sample["valid"]], torch.tensor(12.34))


def test_missing_dataset_directory_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="Hypersim"):
        hypersim(data_dir=str(tmp_path / "missing"))


class Labelled(torch.utils.data.Dataset):
    def __init__(self, value: float):
        self.value = value

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return {"rgb": torch.full((3, 4, 4), self.value), "depth": torch.full((1, 4, 4), i + 1.0),
                "valid": torch.ones(1, 4, 4, dtype=torch.bool), "name": str(i)}


def test_mixed_batches_split_ratio_whole_batches_and_determinism():
    batches = MixedBatches(labelled=[Labelled(0.0), Labelled(1.0)], labelled_weights=[0.9, 0.1],
                           unlabelled=Labelled(0.5), batch_size=8, labelled_fraction=0.5, seed=3)
    sources = []
    for step in range(200):
        batch = batches[step]
        assert batch.labelled.rgb.shape[0] == 4 and batch.unlabelled.rgb.shape[0] == 4
        values = batch.labelled.rgb.flatten().unique()
        assert len(values) == 1  # whole batches from one dataset
        sources.append(float(values))
    assert 0.8 < sources.count(0.0) / len(sources) < 0.97
    assert torch.equal(batches[17].labelled.depth, batches[17].labelled.depth)


def test_real_stream_cannot_carry_ground_truth():
    assert [f.name for f in fields(UnlabelledBatch)] == ["rgb", "names"]  # no label field
    batch = MixedBatches(unlabelled=Labelled(0.5), batch_size=4)[0]
    assert batch.labelled is None and not hasattr(batch.unlabelled, "depth")


def test_image_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(tmp_path / "sub" / "a.jpg")
    Image.fromarray(np.zeros((40, 40, 4), np.uint8)).save(tmp_path / "b.png")
    folder = ImageFolder(data_dir=str(tmp_path), resolution=(16, 24))
    assert len(folder) == 2 and set(folder[0]) == {"rgb", "name"}
    assert folder[1]["rgb"].shape == (3, 16, 24)
    with pytest.raises(UserError, match="no images"):
        ImageFolder(data_dir=str(tmp_path / "sub" / "none"))
