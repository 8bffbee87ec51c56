"""Shared fixtures: tiny pretrained directories, the repository root, ../shared when present."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_sd2_dir(tmp_path_factory) -> Path:
    from depthlab.testing.tiny_models import save_sd2_dir

    return save_sd2_dir(tmp_path_factory.mktemp("sd2"))


@pytest.fixture(scope="session")
def tiny_depth_anything_dir(tmp_path_factory) -> Path:
    from depthlab.testing.tiny_models import save_depth_anything_dir

    return save_depth_anything_dir(tmp_path_factory.mktemp("da2"))
