"""User-facing errors: one clear paragraph, no traceback.

Anything a user can cause (a bad path, a typo in a binding, a corrupt file) is raised as
`UserError`; the command-line entry points catch it, print the message and exit non-zero.
"""
from __future__ import annotations

import functools
import sys
import textwrap
from typing import Callable, Sequence, TypeVar

F = TypeVar("F", bound=Callable[..., int | None])

EXIT_USER_ERROR = 2
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM / SIGUSR1 after a checkpoint; resume it
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A mistake in the user's input or configuration, explained in one paragraph."""


def check_choice(value: str, choices: Sequence[str], binding: str) -> str:
    """`value` if it is one of `choices`, else a `UserError` naming the `binding` and the choices."""
    if value not in choices:
        raise UserError(f"Unknown {binding} '{value}': expected one of {', '.join(choices)}.")
    return value


def format_error(message: str) -> str:
    """Wrap a message into one readable paragraph prefixed with 'error:'."""
    return textwrap.fill(" ".join(message.split()), width=100, initial_indent="error: ",
                         subsequent_indent="       ")


def cli_entry(main: F) -> F:
    """Decorate a CLI main so that a `UserError` prints a paragraph and exits with code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(format_error(str(error)), file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]
