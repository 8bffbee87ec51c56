"""Split lists: the protocol's shipped copies in `depthlab/splits/`, or a user's file."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from depthlab.errors import UserError


def shipped_split(rel_path: str) -> str:
    """Text of a split list shipped with the package, e.g. `nyu_depth/labeled/...txt`."""
    return resources.files("depthlab").joinpath("splits", rel_path).read_text()


def read_split(split_file: str | None, shipped: str, dataset: str,
               min_columns: int = 1) -> list[list[str]]:
    """Rows (whitespace-separated columns) of `split_file`, or of the shipped list `shipped`."""
    if split_file is None:
        text, where = shipped_split(shipped), f"the shipped split {shipped}"
    else:
        path = Path(split_file).expanduser()
        if not path.is_file():
            raise UserError(f"split file for '{dataset}' does not exist: {path}")
        text, where = path.read_text(), str(path)
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        row = line.split()
        if not row or row[0].startswith("#"):
            continue
        if len(row) < min_columns:
            raise UserError(f"split list {where} for '{dataset}', line {number}: expected at "
                            f"least {min_columns} columns (rgb_path depth_path ...), got {row}")
        rows.append(row)
    if not rows:
        raise UserError(f"split list {where} for '{dataset}' is empty")
    return rows
