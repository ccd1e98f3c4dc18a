"""Where the `wmilab` command writes: one console for output, one for errors, kept in order.

Output and errors reach the user in the order they happened, also when both go to one
terminal or one pipe: every write is flushed at once, and an error first flushes whatever
is pending on stdout. Colour appears only on a terminal, and never when `NO_COLOR` is set
(https://no-color.org: any non-empty value). JSON is written as plain text, never through
rich, so it cannot carry colour codes.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


def no_color() -> bool:
    """True when the user asked for no colour (no-color.org: set and not empty)."""
    return os.environ.get("NO_COLOR", "") != ""


class _ErrorConsole(Console):
    """A stderr console that first flushes stdout, so an error never overtakes output."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        sys.stdout.flush()
        super().print(*objects, **kwargs)


def _consoles() -> tuple[Console, Console]:
    colour: Literal["auto"] | None = None if no_color() else "auto"
    # Piped output (CI logs, files) gets 120 columns instead of rich's 80, so tables stay legible.
    width = None if sys.stdout.isatty() else 120
    stdout = Console(highlight=False, soft_wrap=True, width=width, color_system=colour)
    stderr = _ErrorConsole(stderr=True, highlight=False, soft_wrap=True, color_system=colour)
    return stdout, stderr


out, err = _consoles()


def error(message: str) -> None:
    """Print one error line: `error: MESSAGE` (the message is text, never markup)."""
    err.print(f"[red]error:[/] {escape(message)}")


def write(text: str) -> None:
    """Write text to stdout exactly as given (a newline is added if missing), then flush."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def write_json(data: Any) -> None:
    """Write one JSON document to stdout: plain text, never coloured."""
    write(json.dumps(data, indent=2))
