"""Shared pieces of the teacher tests: one thread and a fresh teacher cache per test, and a batch
of mini-world validation scenes."""
from __future__ import annotations

import pytest
import torch

from depthlab.teachers.base import clear_shared_instances
from depthlab.world.datasets import MiniWorldDataset


@pytest.fixture(autouse=True)
def one_thread_fresh_teachers():
    """Autouse in every module that imports it: tiny networks run fastest on one thread, and
    each test builds its teachers afresh."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    clear_shared_instances()
    yield
    clear_shared_instances()
    torch.set_num_threads(threads)


def val_batch(domain: str = "real", count: int = 4) -> dict:
    """The first `count` validation scenes of `domain`, stacked: rgb, depth and valid."""
    dataset = MiniWorldDataset(domain, "val")
    items = [dataset[i] for i in range(count)]
    return {key: torch.stack([item[key] for item in items]) for key in ("rgb", "depth", "valid")}
