"""Fixtures for the mini-world tests: the shipped codec, loaded once with its gin architecture."""
from pathlib import Path

import gin
import pytest

from depthlab.config import parse_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def default_codec():
    """The mini codec with its shipped weights (depthlab/world/weights/codec.safetensors)."""
    from depthlab.world.mini_codec import mini_codec

    parse_config([str(REPO / "gin" / "codecs" / "mini_vae.gin")])
    try:
        return mini_codec()
    finally:
        gin.clear_config()
