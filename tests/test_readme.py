"""The README's first screen shows what `wmilab check` prints today, not a memory of it.

The first `console` block of README.md is a transcript: lines starting with `$ wmilab`
are commands, the lines after each are what it printed. The test runs every command in
an empty directory and compares the output line by line. When the output changes on
purpose, `.venv/bin/python tests/test_readme.py` writes the new transcript into README.md.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def transcript() -> list[tuple[str, list[str]]]:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^```console\n(.*?)^```", text, re.S | re.M)
    assert match, "README.md has no ```console block"
    steps: list[tuple[str, list[str]]] = []
    for line in match.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, "the console block must start with a command"
            steps[-1][1].append(line)
    return steps


def run(command: str, cwd: Path) -> list[str]:
    args = shlex.split(command)
    assert args[0] == "wmilab", command
    r = subprocess.run([sys.executable, "-m", "wmilab", *args[1:]], cwd=cwd,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [ln.rstrip() for ln in (r.stdout + r.stderr).splitlines()]


def test_the_first_screen_comes_before_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    block = text.index("```console")
    assert block < text.index("bash scripts/walkthrough.sh") < text.index("bash scripts/test.sh")
    assert text.count("\n", 0, block) < 15            # on the first screen
    commands = [command for command, _ in transcript()]
    assert any(c.startswith("wmilab check ") for c in commands)


def test_the_readme_transcript_is_what_wmilab_prints(tmp_path: Path) -> None:
    steps = transcript()
    shown_check = "\n".join(next(out for cmd, out in steps if cmd.startswith("wmilab check")))
    assert "Connection 2 · c2.resolver-port" in shown_check     # the seed's async call fails there
    for command, shown in steps:
        printed = run(command, tmp_path)
        assert printed == [ln.rstrip() for ln in shown], (
            f"README.md shows other output for `{command}` than it prints today; "
            "`.venv/bin/python tests/test_readme.py` updates it")


def update() -> None:
    """Run the transcript's commands and write what they print into README.md."""
    import tempfile

    text = README.read_text(encoding="utf-8")
    match = re.search(r"^```console\n(.*?)^```", text, re.S | re.M)
    assert match
    lines = []
    with tempfile.TemporaryDirectory() as scratch:
        for command, _ in transcript():
            lines += [f"$ {command}", *run(command, Path(scratch))]
    README.write_text(text[:match.start(1)] + "\n".join(lines) + "\n" + text[match.end(1):],
                      encoding="utf-8")


if __name__ == "__main__":
    update()


def test_the_readme_picture_is_what_wmilab_draws(tmp_path: Path) -> None:
    # The picture under the transcript is `wmilab draw` of the same call, regenerated with
    # `wmilab draw async.toml -o docs/img/async-call.svg` when the drawing changes on purpose.
    run("wmilab examples 03-async-a-unconfigured -o async.toml", tmp_path)
    run("wmilab draw async.toml -o call.svg", tmp_path)
    committed = README.parent / "docs" / "img" / "async-call.svg"
    assert "docs/img/async-call.svg" in README.read_text(encoding="utf-8")
    assert (tmp_path / "call.svg").read_bytes() == committed.read_bytes(), (
        "docs/img/async-call.svg is not what `wmilab draw` draws today")
