"""`wmilab host FILE HOST`: bad input, and a foreground run stopped with Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import needs_root
from wmilab.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
runner = CliRunner()


def test_host_with_a_bad_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[hosts.B]\nos = 'windows-95'\n", encoding="utf-8")
    res = runner.invoke(app, ["host", str(bad), "B"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["host", str(tmp_path / "missing.toml"), "B"])
    assert res.exit_code == 2


def test_host_with_an_unknown_host_or_client_exits_2() -> None:
    res = runner.invoke(app, ["host", str(EXAMPLES / "02-remote-admin.toml"), "Z"])
    assert res.exit_code == 2 and "no host 'Z'" in res.output
    res = runner.invoke(app, ["host", str(EXAMPLES / "02-remote-admin.toml"), "B",
                              "--client", "Q"])
    assert res.exit_code == 2 and "--client 'Q'" in res.output


@pytest.mark.slow
def test_host_runs_in_the_foreground_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from wmilab.cli import main; main()", "host",
         str(EXAMPLES / "02-remote-admin.toml"), "b", "--address", "127.201.7.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        first = ""
        while time.monotonic() < deadline:
            first = proc.stdout.readline()
            if "serving" in first or "error" in first or not first:
                break
        if "root" in first and "error" in first:
            proc.wait(10)
            needs_root(first.strip())
        m = re.search(r"B serving on 127\.201\.7\.2 \(RPCSS 135, WMI (\d+)\)", first)
        assert m is not None, first
        # WMI's port comes from B's dynamic RPC range, 1025-5000 on XP (KB 154596)
        assert 1025 <= int(m.group(1)) <= 5000
        assert "count as A" in first
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_binding_135_without_permission_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import errno
    from typing import Any

    from wmilab.host.server import HostBindError, HostServer
    from wmilab.scenario import load

    original = asyncio.BaseEventLoop.create_server

    async def create_server(self: Any, factory: Any, host: Any = None, port: Any = None,
                            **kw: Any) -> Any:
        if port == 135:
            raise PermissionError(errno.EACCES, "Permission denied")
        return await original(self, factory, host, port, **kw)

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_server", create_server)
    world = load(EXAMPLES / "02-remote-admin.toml").world

    async def go() -> str:
        server = HostServer(world, "B", address="127.201.7.4")
        with pytest.raises(HostBindError) as info:
            await server.start()
        assert not server._servers  # the WMI listener was closed again
        return str(info.value.strerror)

    message = asyncio.run(go())
    assert "127.201.7.4:135" in message
    assert "needs root or `sysctl net.ipv4.ip_unprivileged_port_start=135`" in message
