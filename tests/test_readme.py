"""The README's gin examples parse: every block, parameter and macro they name exists."""
from __future__ import annotations

import re

import gin
import pytest

from depthlab.config import REPO_ROOT, import_blocks

README = (REPO_ROOT / "README.md").read_text()
GIN_BLOCKS = re.findall(r"```gin\n(.*?)```", README, re.DOTALL)
# Macros the examples use that a user would define in the experiment file.
DEFINED = "STAGE1_RUN = '/runs/stage1'\n"


def test_the_readme_has_gin_examples():
    assert len(GIN_BLOCKS) >= 2


@pytest.mark.parametrize("block", GIN_BLOCKS, ids=[f"block{i}" for i in range(len(GIN_BLOCKS))])
def test_gin_example_parses(block, monkeypatch):
    import_blocks()
    monkeypatch.chdir(REPO_ROOT)
    gin.clear_config()
    try:
        gin.parse_config(DEFINED + block)
    finally:
        gin.clear_config()
