"""The protocol's split lists, shipped inside the package (copies of Marigold's `data_split/`)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from depthlab.errors import UserError


def shipped_split(relative: str) -> Path:
    """Path of a shipped split list, e.g. `hypersim_depth/filename_list_train_filtered.txt`."""
    path = Path(str(resources.files("depthlab") / "splits" / relative))
    if not path.is_file():
        raise UserError(f"No shipped split list '{relative}' (looked in {path.parent}).")
    return path


def read_split(path: str | Path) -> list[list[str]]:
    """Rows of a split list: whitespace-separated columns, blank lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The split list '{path}' does not exist.")
    return [line.split() for line in path.read_text().splitlines() if line.strip()]
