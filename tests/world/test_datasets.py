"""Mini-world datasets: item contract, disjoint seed ranges, and the labels-free view."""
import itertools

import pytest
import torch

from depthlab.errors import UserError
from depthlab.world.datasets import (DEFAULT_LENGTH, DOMAIN_SEED_BASE, SPLIT_CAPACITY,
                                     SPLIT_SEED_BASE, MiniWorldDataset, UnlabelledView,
                                     scene_seed)

CODEC_SEEDS = 900_000_000  # reserved for codec training scenes; no dataset split reaches it


def test_item_contract():
    dataset = MiniWorldDataset("real", "test")
    item = dataset[12]
    assert item["rgb"].shape == (3, 64, 64) and item["rgb"].dtype == torch.float32
    assert 0.0 <= item["rgb"].min() and item["rgb"].max() <= 1.0
    assert item["depth"].shape == (1, 64, 64) and item["depth"].dtype == torch.float32
    assert item["valid"].shape == (1, 64, 64) and item["valid"].dtype == torch.bool
    assert item["intrinsics"].shape == (3, 3) and item["intrinsics"].dtype == torch.float32
    assert item["name"] == "real/test/000012"
    assert (item["depth"][item["valid"]] > 0).all() and (item["depth"][~item["valid"]] == 0).all()
    torch.testing.assert_close(dataset[12]["depth"], item["depth"])


def test_default_lengths():
    assert {split: len(MiniWorldDataset("synthetic", split)) for split in DEFAULT_LENGTH} == {
        "train": 100_000, "pretrain": 100_000, "val": 64, "test": 128}
    assert len(MiniWorldDataset("synthetic", "val", length=5)) == 5


def test_seed_ranges_are_disjoint_across_domains_and_splits():
    ranges = [(DOMAIN_SEED_BASE[d] + SPLIT_SEED_BASE[s],
               DOMAIN_SEED_BASE[d] + SPLIT_SEED_BASE[s] + SPLIT_CAPACITY[s])
              for d, s in itertools.product(DOMAIN_SEED_BASE, SPLIT_SEED_BASE)]
    for (a0, a1), (b0, b1) in itertools.combinations(ranges, 2):
        assert a1 <= b0 or b1 <= a0
    assert max(end for _, end in ranges) <= CODEC_SEEDS


def test_pretrain_split_left_the_other_splits_seeds_unchanged():
    """`pretrain` took the top of the old train range; existing results depend on these seeds."""
    assert [scene_seed("synthetic", split, 12) for split in ("train", "val", "test")] == [
        12, 300_000_012, 350_000_012]
    assert [scene_seed("real", split, 12) for split in ("train", "val", "test")] == [
        400_000_012, 700_000_012, 750_000_012]
    assert scene_seed("synthetic", "pretrain", 0) == SPLIT_CAPACITY["train"] == 200_000_000
    assert MiniWorldDataset("real", "pretrain", length=3)[2]["name"] == "real/pretrain/000002"


def test_splits_render_different_scenes():
    first = [MiniWorldDataset(d, s)[0]["depth"] for d in ("synthetic", "real")
             for s in ("train", "pretrain", "val", "test")]
    for a, b in itertools.combinations(first, 2):
        assert not torch.equal(a, b)


def test_unlabelled_view_carries_images_only():
    dataset = MiniWorldDataset("real", "train", length=10)
    view = UnlabelledView(dataset)
    assert len(view) == 10
    item = view[3]
    assert set(item) == {"rgb", "name"}
    torch.testing.assert_close(item["rgb"], dataset[3]["rgb"])
    public = {k: v for k, v in vars(view).items() if not k.startswith("_UnlabelledView__")}
    assert not any(isinstance(v, MiniWorldDataset) for v in public.values())


@pytest.mark.parametrize("kwargs", [dict(domain="photo", split="test"),
                                    dict(domain="real", split="holdout"),
                                    dict(domain="real", split="val", length=0),
                                    dict(domain="real", split="val", length=10**9),
                                    dict(domain="real", split="val", size=60)])
def test_bad_arguments_are_user_errors(kwargs):
    with pytest.raises(UserError):
        MiniWorldDataset(**kwargs)


def test_index_past_the_end_raises_index_error():
    with pytest.raises(IndexError):
        MiniWorldDataset("synthetic", "val", length=4)[4]
