"""End-to-end tests start `python -m depthlab.run` in subprocesses: train the mini codec once, in
this process, so each subprocess loads it from the cache instead of racing to train it."""
import gin
import pytest

from depthlab.config import parse_config


@pytest.fixture(scope="session", autouse=True)
def mini_codec_cached(repo_root):
    parse_config([str(repo_root / "gin" / "codecs" / "mini.gin")])
    try:
        from depthlab.world.codec_pretrain import mini_codec

        mini_codec()
    finally:
        gin.clear_config()
