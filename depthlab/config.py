"""Parsing gin files into a configuration, with errors a user can act on.

Every gin mistake (a misspelled configurable or parameter, an unknown block, a missing include,
a syntax error, a `%gin.REQUIRED` macro left unset) becomes a `UserError` naming the file or
binding, instead of a traceback.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
import tokenize
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import gin

import depthlab
from depthlab.errors import UserError

T = TypeVar("T")

REPO_ROOT = Path(depthlab.__file__).resolve().parent.parent
BLOCK_PACKAGES = ("models", "targets", "teachers", "encoders", "losses", "heads", "recipes",
                  "data", "world", "train", "inference", "eval")


def import_blocks() -> None:
    """Import every module under the block packages so their `@gin.configurable`s register."""
    for name in BLOCK_PACKAGES:
        module = importlib.import_module(f"depthlab.{name}")
        if hasattr(module, "__path__"):
            for info in pkgutil.walk_packages(module.__path__, prefix=f"depthlab.{name}."):
                if not info.name.endswith("__main__"):
                    importlib.import_module(info.name)


def _required_macros() -> list[str]:
    """Macros whose value is still `%gin.REQUIRED` after parsing."""
    config = gin.config._CONFIG  # gin exposes no public query for unset macros
    return sorted(scope for (scope, selector), params in config.items()
                  if selector == "gin.macro" and _is_required(params.get("value")))


def _is_required(value: Any) -> bool:
    """True for the parsed form of `%gin.REQUIRED` (a reference to gin's REQUIRED constant)."""
    return isinstance(value, gin.config.ConfigurableReference) and \
        value.scoped_selector == "gin.REQUIRED/gin.constant"


def macros_with_value(value: Any) -> list[str]:
    """Names of macros bound to `value` (used to point errors at the macro a user must fix)."""
    config = gin.config._CONFIG
    return sorted(scope for (scope, selector), params in config.items()
                  if selector == "gin.macro" and params.get("value") == value)


def _declaring_files(macro: str, files: Sequence[str]) -> list[str]:
    pattern = re.compile(rf"^\s*{re.escape(macro)}\s*=\s*%gin\.REQUIRED", re.MULTILINE)
    found = []
    for file in _with_includes(files):
        if pattern.search(file.read_text()):
            found.append(str(file))
    return found or list(files)


def _with_includes(files: Sequence[str]) -> list[Path]:
    seen: list[Path] = []
    pending = [Path(f) for f in files]
    while pending:
        path = pending.pop()
        resolved = path if path.exists() else REPO_ROOT / path
        if not resolved.exists() or resolved in seen:
            continue
        seen.append(resolved)
        pending += [Path(m) for m in re.findall(r"^\s*include\s+['\"](.+?)['\"]",
                                               resolved.read_text(), re.MULTILINE)]
    return seen


def parse_config(gin_files: Sequence[str], bindings: Sequence[str] = ()) -> None:
    """Clear gin, parse `gin_files` in order then `bindings`, and check REQUIRED macros are set."""
    import_blocks()
    gin.clear_config()
    gin.add_config_file_search_path(str(REPO_ROOT))
    for file in gin_files:
        if not Path(file).is_file():
            raise UserError(f"The gin file '{file}' does not exist (given with --gin).")
    try:
        gin.parse_config_files_and_bindings(list(gin_files), list(bindings),
                                            finalize_config=False)
    except (ValueError, TypeError, KeyError, SyntaxError, tokenize.TokenError, OSError,
            IndexError) as error:
        where = _describe(gin_files, bindings)
        raise UserError(f"Could not parse the configuration ({where}): {error} "
                        f"Check the spelling against the block's signature; `python -m "
                        f"depthlab.run --list-blocks` lists every registered block.") from None
    unset = _required_macros()
    if unset:
        details = "; ".join(f"{m} (declared in {', '.join(_declaring_files(m, gin_files))})"
                            for m in unset)
        raise UserError(
            f"These required macros are not set: {details}. Each names a local directory you "
            f"must provide (the recipe's header comment describes the expected layout); set it "
            f"with --bind \"{unset[0]} = '/path/to/dir'\" or in a gin file that includes the "
            f"recipe.")


def _describe(files: Sequence[str], bindings: Sequence[str]) -> str:
    parts = [f"files {', '.join(files)}"] if files else []
    if bindings:
        parts.append(f"bindings {'; '.join(bindings)}")
    return " and ".join(parts) or "no files"


def build(factory: Callable[..., T], what: str) -> T:
    """Call a gin-configured factory, turning gin's missing-binding errors into a `UserError`."""
    try:
        return factory()
    except UserError as error:  # gin appends "In call to configurable ..." lines: drop them
        lines = str(error).splitlines()
        raise UserError(" ".join(l for l in lines if not l.strip().startswith("In call to "
                                                                              "configurable"))
                        ) from None
    except (RuntimeError, ValueError, TypeError) as error:
        message = str(error)
        if "Required bindings" in message or "No bindings specified" in message or \
                "No configurable matching" in message or "doesn't have a parameter" in message:
            first_line = message.strip().splitlines()[0]
            raise UserError(f"Could not build the {what} from the configuration: {first_line} "
                            f"Add the missing binding to your gin file or pass it with "
                            f"--bind.") from None
        raise


def registered_blocks() -> list[str]:
    """`name  (module)` for every depthlab block registered with gin, for `--list-blocks`."""
    import_blocks()
    return sorted(f"{c.name:28s} {c.module}" for _, c in gin.config._REGISTRY.items()
                  if c.module.startswith("depthlab"))
