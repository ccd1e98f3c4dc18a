"""`--help` of every command reads as prose at 80 columns.

The commands are enumerated from the typer app, so a command added later is checked too.
Each help page must fit 80 columns, show no `<bool>` type on flags, give one example of
the command and state its exit codes. A sentence broken by a hard line break in the
source shows at any width; at 1000 columns nothing is wrapped by the terminal, so any
line there that ends mid-sentence and continues on the next line is such a break.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest
import typer._click as click  # typer carries its own click
from rich.cells import cell_len
from typer.main import get_command
from typer.testing import CliRunner

from wmilab.cli import app

runner = CliRunner()


def command_paths() -> list[tuple[str, ...]]:
    """Every command and subcommand of `wmilab`, the root included, as a path of names.

    Hidden commands are included: `wmilab lab FILE` is the hidden `lab run`, and its help
    is what `wmilab lab FILE --help` shows.
    """
    paths: list[tuple[str, ...]] = []

    def walk(cmd: click.Command, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*path, name))

    walk(get_command(app), ())
    return paths


def _hidden(path: tuple[str, ...]) -> bool:
    cmd: click.Command = get_command(app)
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    return bool(cmd.hidden)


def visible_name(path: tuple[str, ...]) -> str:
    """How a user types the command: a hidden last step (`lab run`) is left out."""
    return " ".join(("wmilab", *(path[:-1] if path and _hidden(path) else path)))


PATHS = command_paths()


def help_text(path: tuple[str, ...], columns: int) -> str:
    r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    return r.output


def test_every_command_is_enumerated() -> None:
    names = {p[0] for p in PATHS if p}
    assert {"examples", "check", "fix", "netsh", "host", "lab"} <= names
    assert () in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(("wmilab", *p)))
def test_help_fits_80_columns_has_an_example_and_exit_codes(path: tuple[str, ...]) -> None:
    text = help_text(path, 80)
    lines = text.splitlines()
    too_wide = [ln for ln in lines if cell_len(ln) > 80]
    assert not too_wide, "\n".join(too_wide)
    assert "<bool>" not in text
    prose = " ".join(text.split())
    command = visible_name(path)
    assert re.search(r"Example: " + re.escape(command) + r"\b", prose), \
        f"no 'Example: {command} ...' in the help"
    assert re.search(r"Exit codes?:[^.]*\b[0-9]\b", prose), "the exit codes are not stated"


def _content(line: str) -> str:
    """A line's text without the borders of rich's panels (a panel's top and bottom: none)."""
    line = line.strip()
    return "" if line.startswith(("╭", "╰")) else line.strip("│").strip()


def broken_sentences(text: str) -> list[str]:
    lines = [_content(ln) for ln in text.splitlines()]
    found = []
    for first, second in itertools.pairwise(lines):
        if first and second and re.search(r"[a-z0-9,]$", first) and re.match(r"[a-z]", second) \
                and not second.startswith("wmilab "):
            found.append(f"{first!r} / {second!r}")
    return found


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(("wmilab", *p)))
def test_help_has_no_hard_line_breaks_inside_sentences(path: tuple[str, ...]) -> None:
    assert broken_sentences(help_text(path, 1000)) == []


def test_the_check_finds_a_hard_break() -> None:
    # What `wmilab lab --help` printed before its docstring became Markdown.
    old = ("│ Without --verify it serves until Ctrl-C; real clients connecting from 127.0.0.1 count │\n"
           "│ as the `from` host of the first call to each host.                                   │\n")
    assert broken_sentences(old)


def test_help_in_a_real_process_at_80_columns() -> None:
    r = subprocess.run([sys.executable, "-m", "wmilab", "lab", "x.toml", "--help"],
                       capture_output=True, text=True, timeout=120,
                       env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert max(cell_len(ln) for ln in r.stdout.splitlines()) <= 80
    prose = " ".join(r.stdout.split())
    assert "Real clients connecting from 127.0.0.1 to the loopback lab count as the from host" in prose
    assert "<bool>" not in r.stdout
