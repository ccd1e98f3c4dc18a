"""`pip install .` (not editable) gives a working `wmilab`, used from outside the checkout.

The package is built from a copy of the checkout and installed into a fresh virtualenv
with `--no-deps --no-build-isolation --no-index`: its dependencies (and the build backend)
come from the test's own environment through a path file, so no index is needed. The
outer environment's path files are not processed, so its editable wmilab stays out of
sight and the installed copy is the one that runs.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from wmilab import __version__, examples

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_pip_install_gives_examples_and_check_outside_the_checkout(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src" / "wmilab", source / "src" / "wmilab",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    cwd=tmp_path, env=dict(os.environ)).stdout.strip())
    (site / "outer.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    r = run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
            "--no-index", ".", cwd=source, env=env)
    assert r.returncode == 0, r.stderr

    user = tmp_path / "user"          # a directory with no checkout around it
    user.mkdir()
    r = run(python, "-c", "import wmilab; print(wmilab.__file__)", cwd=user, env=env)
    assert Path(r.stdout.strip()).is_relative_to(site), r.stdout   # the installed copy runs

    wmilab = venv / "bin" / "wmilab"
    r = run(wmilab, "--version", cwd=user, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"wmilab {__version__}"
    assert __version__ == importlib.metadata.version("wmilab")

    r = run(wmilab, "examples", cwd=user, env=env)
    assert r.returncode == 0, r.stderr
    listed = [line.split()[0] for line in r.stdout.splitlines()]
    assert listed == [ex.name for ex in examples.all_examples()]
    assert len(listed) >= 7

    r = run(wmilab, "examples", "03-async-a-unconfigured", "-o", "async.toml", cwd=user, env=env)
    assert r.returncode == 0, r.stderr
    assert (user / "async.toml").read_text(encoding="utf-8") == (
        examples.directory() / "03-async-a-unconfigured.toml").read_text(encoding="utf-8")

    r = run(wmilab, "check", "async.toml", cwd=user, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "c2.resolver-port" in r.stdout and "0x800706BA RPC_S_SERVER_UNAVAILABLE" in r.stdout
    assert "1 of 2 calls work; every expect matches" in r.stdout
