"""Fixtures for the mini-world tests: a throwaway codec cache for the cache-mechanics tests."""
from pathlib import Path

import pytest


@pytest.fixture
def scratch_cache(tmp_path, monkeypatch) -> Path:
    """Point DEPTHLAB_CACHE at an empty directory for one test."""
    root = tmp_path / "depthlab_cache"
    monkeypatch.setenv("DEPTHLAB_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def default_codec():
    """The default mini codec, trained once per cache (DEPTHLAB_CACHE, else ~/.cache/depthlab).

    The repository's conftest points DEPTHLAB_CACHE at ~/.cache/depthlab unless it is set, so
    this shares the main job's cache: the first run trains (about 2 minutes), later runs load.
    """
    from depthlab.world.codec_pretrain import mini_codec

    return mini_codec()
