"""Checks that a user-supplied pretrained directory has the files a loader expects."""
from __future__ import annotations

from pathlib import Path

from depthlab.errors import UserError


def macro_hint(value: object) -> str:
    """Name the gin macro(s) whose value is `value`, so errors can point at the binding."""
    from depthlab.config import macros_with_value  # local import: config imports blocks

    names = macros_with_value(value)
    return f" (set by the gin macro {', '.join(names)})" if names else ""


def require_layout(path: str | Path | None, expected: list[str], what: str) -> Path:
    """Return `path` as a Path if every relative file in `expected` exists under it.

    Raises a `UserError` naming the macro that set the path and the layout it should have.
    """
    if path is None or str(path) == "":
        raise UserError(f"No directory was given for {what}; set it in your gin file.")
    root = Path(path).expanduser()
    missing = [rel for rel in expected if not (root / rel).exists()]
    if not root.is_dir() or missing:
        problem = "does not exist" if not root.is_dir() else f"lacks {', '.join(missing)}"
        raise UserError(
            f"The {what} directory '{root}'{macro_hint(str(path))} {problem}. Expected a local "
            f"directory containing: {', '.join(expected)}. depthlab never downloads weights: "
            f"save the model there first (for example with `save_pretrained`).")
    return root
