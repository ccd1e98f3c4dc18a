"""`wmilab examples`: list the shipped scenarios, print one, copy one out; bad input exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wmilab import examples
from wmilab.scenario import load


def wmilab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wmilab", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_every_shipped_example_is_listed_with_its_title() -> None:
    files = sorted(examples.directory().glob("*.toml"))
    r = wmilab("examples")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(files) >= 7
    for line, path in zip(lines, files, strict=True):
        name, title = line.split(None, 1)
        assert name == path.stem
        assert title.strip() == load(path).title.split(". ", 1)[1]


@pytest.mark.parametrize("name", ["03-async-a-unconfigured", "03-async-a-unconfigured.toml", "3", "03"])
def test_an_example_is_copied_byte_for_byte_and_checks(tmp_path: Path, name: str) -> None:
    r = wmilab("examples", name, "-o", "mine.toml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote mine.toml" in r.stdout
    original = examples.directory() / "03-async-a-unconfigured.toml"
    assert (tmp_path / "mine.toml").read_bytes() == original.read_bytes()
    r = wmilab("check", "mine.toml", cwd=tmp_path)
    assert r.returncode == 0 and "c2.resolver-port" in r.stdout


def test_without_output_the_example_is_printed() -> None:
    r = wmilab("examples", "07")
    assert r.returncode == 0
    assert r.stdout == (examples.directory() / "07-non-admin.toml").read_text(encoding="utf-8")


def test_unknown_name_exits_2_and_lists_the_names() -> None:
    r = wmilab("examples", "99-nothing")
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith("error: no example called '99-nothing'")
    assert "03-async-a-unconfigured" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_existing_output_is_never_overwritten(tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("# my own work\n")
    r = wmilab("examples", "01", "-o", str(mine))
    assert r.returncode == 2
    assert r.stderr == f"error: --output {mine}: the file exists already; choose another name\n"
    assert mine.read_text() == "# my own work\n"


def test_an_output_in_a_missing_directory_exits_2(tmp_path: Path) -> None:
    r = wmilab("examples", "01", "-o", str(tmp_path / "no" / "such" / "x.toml"))
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: --output {tmp_path / 'no' / 'such' / 'x.toml'}: cannot write it")
    assert "Traceback" not in r.stderr


def test_output_without_a_name_exits_2(tmp_path: Path) -> None:
    r = wmilab("examples", "-o", str(tmp_path / "x.toml"))
    assert r.returncode == 2
    assert "needs the NAME" in r.stderr
    assert not (tmp_path / "x.toml").exists()


def test_an_output_below_a_file_exits_2(tmp_path: Path) -> None:
    # Unwritable also for root: a path whose parent is a file.
    (tmp_path / "plain").write_text("")
    r = wmilab("examples", "01", "-o", str(tmp_path / "plain" / "x.toml"))
    assert r.returncode == 2
    assert "cannot write it: Not a directory" in r.stderr
