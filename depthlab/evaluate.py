"""Command line: `python -m depthlab.evaluate --help`. The work is in `depthlab.eval`."""
from __future__ import annotations

from typing import Sequence

from depthlab.errors import cli_entry
from depthlab.eval.cli import run


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
