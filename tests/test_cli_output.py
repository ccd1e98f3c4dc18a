"""What reaches the user's screen: order of output and errors, colour only where it belongs.

Every test runs `wmilab` in a child process, with stdout and stderr on one pipe or on one
pseudo-terminal, as a shell gives them.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from wmilab import examples

pytestmark = pytest.mark.slow   # several child processes per test

ASYNC = str(examples.directory() / "03-async-a-unconfigured.toml")
SEED = str(examples.directory() / "04-async-configured.toml")
ESC = "\x1b["


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def base_env(**extra: str) -> dict[str, str]:
    # As a user's shell has it: stdout buffered by Python (no PYTHONUNBUFFERED), no colour
    # settings unless a test sets them.
    env = {k: v for k, v in os.environ.items() if k not in {
        "PYTHONUNBUFFERED", "NO_COLOR", "FORCE_COLOR", "PY_COLORS", "COLUMNS", "TERM", "CLICOLOR_FORCE"}}
    env.update(TERM="xterm-256color", **extra)
    return env


def on_one_pipe(args: list[str], **extra: str) -> tuple[int, str]:
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=base_env(**extra), timeout=120)
    return r.returncode, r.stdout


def on_a_terminal(args: list[str], **extra: str) -> tuple[int, str]:
    """Run with stdin, stdout and stderr on one pseudo-terminal of 80 columns."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=base_env(**extra),
                            close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError as e:      # EIO: the child closed the terminal
            if e.errno != errno.EIO:
                raise
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode().replace("\r\n", "\n")


WMILAB = [sys.executable, "-m", "wmilab.cli"]

# Two commands in one process, as in a script that drives wmilab's app: the first prints the
# firewall configuration, the second fails. The error must come after the whole output.
TWO_COMMANDS = [sys.executable, "-c", f"""
from wmilab.cli import app
for command in ("firewall show config", "firewall show nonsense"):
    try:
        app(["netsh", {SEED!r}, "A", command], standalone_mode=False)
    except SystemExit:
        pass
"""]

# Plain print() is buffered when stdout is a pipe; an error still may not overtake it.
PRINT_THEN_ERROR = [sys.executable, "-c", """
from wmilab.terminal import error, out
print("first: plain print")
error("second: an error")
out.print("third: rich output")
"""]


@pytest.mark.parametrize("run", [on_one_pipe, on_a_terminal], ids=["pipe", "terminal"])
def test_an_error_comes_after_the_output_printed_before_it(run: object) -> None:
    rc, text = run(TWO_COMMANDS)  # type: ignore[operator]
    assert rc == 0, text
    lines = [ln for ln in plain(text).splitlines() if ln.strip()]
    assert lines[0].startswith("Domain profile configuration")
    assert "Log configuration:" in lines
    assert lines[-1] == (f"error: {SEED}: A: 'firewall show nonsense': The following command "
                         "was not found: firewall show nonsense.")
    assert sum(ln.startswith("error:") for ln in lines) == 1

    rc, text = run(PRINT_THEN_ERROR)  # type: ignore[operator]
    assert rc == 0, text
    lines = [ln for ln in plain(text).splitlines() if ln.strip()]
    assert lines == ["first: plain print", "error: second: an error", "third: rich output"]


def test_colour_on_a_terminal_and_none_with_no_color() -> None:
    rc, coloured = on_a_terminal([*WMILAB, "check", ASYNC])
    assert rc == 0, coloured
    assert ESC in coloured                          # the terminal case does colour ...
    rc, plain = on_a_terminal([*WMILAB, "check", ASYNC], NO_COLOR="1")
    assert rc == 0, plain
    assert ESC not in plain                         # ... and NO_COLOR turns all of it off
    assert "0x800706BA RPC_S_SERVER_UNAVAILABLE" in plain
    for args in (["check", "--help"], ["check", "/nonexistent.toml"], ["examples", "nope"]):
        rc, text = on_a_terminal([*WMILAB, *args], NO_COLOR="1")
        assert ESC not in text, args
        assert rc == (0 if "--help" in args else 2)


def test_no_colour_when_stdout_is_not_a_terminal() -> None:
    for args in (["check", ASYNC], ["examples"], ["check", "--help"], ["check", "/nonexistent.toml"]):
        _, text = on_one_pipe([*WMILAB, *args])
        assert ESC not in text, args


@pytest.mark.parametrize("force", [{}, {"FORCE_COLOR": "1"}], ids=["terminal", "FORCE_COLOR"])
def test_json_never_carries_colour(force: dict[str, str]) -> None:
    rc, text = on_a_terminal([*WMILAB, "check", "--json", ASYNC], **force)
    assert rc == 0, text
    assert ESC not in text
    data = json.loads(text)
    assert data["calls"][0]["step"] == "c2.resolver-port"


def test_version_is_the_package_version() -> None:
    from importlib.metadata import version

    from wmilab import __version__
    rc, text = on_one_pipe([*WMILAB, "--version"])
    assert rc == 0
    assert text.strip() == f"wmilab {__version__}" == f"wmilab {version('wmilab')}"


def test_shell_completion_offers_commands_and_example_names() -> None:
    def complete(words: str) -> list[str]:
        env = base_env(_WMILAB_COMPLETE="complete_bash", COMP_WORDS=words,
                       COMP_CWORD=str(len(words.split()) - 1))
        # The installed `wmilab` script: completion is keyed by the program's name.
        script = Path(sys.executable).parent / "wmilab"
        r = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=120)
        return r.stdout.split()

    assert complete("wmilab ex") == ["examples"]
    assert complete("wmilab check --js") == ["--json"]
    assert complete("wmilab examples 03") == ["03-async-a-unconfigured"]
    _, script = on_one_pipe([*WMILAB, "--show-completion", "bash"])
    assert "_WMILAB_COMPLETE=complete_bash" in script
