"""The pytest plugin: its entry point, the documented example test, and its errors.

The example (examples/pytest/test_my_tool.py) runs in a pytest of its own, in a subprocess,
exactly as a tool author runs it: the plugin comes from wmilab's installed entry point, with
no conftest.py and no import of wmilab in the test file.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from conftest import loopback_net
from wmilab.lab.verify import ThreadedLab
from wmilab.pytest_plugin import Lab
from wmilab.scenario import load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pytest" / "test_my_tool.py"


def run_pytest(*args: str, cwd: Path, prefix: tuple[str, ...] = (),
               net: str | None = None) -> subprocess.CompletedProcess[str]:
    # No PYTEST_* variable of this run: the plugin must load as installed.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WMILAB_"))}
    if net is not None:  # this machine may run other suites: their labs are elsewhere
        env["WMILAB_LOOPBACK_NET"] = net
    return subprocess.run([*prefix, sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "-q", "-rfs", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240)


def mapped(net: str, scenario: str) -> str:
    """The loopback address a scenario address gets on ``net``: the network keeps the host
    bits (as lab/loopback.py maps it)."""
    n = ipaddress.IPv4Network(net)
    return str(n.network_address + (int(ipaddress.IPv4Address(scenario)) & int(n.hostmask)))


def can_bind_135() -> bool:
    if os.geteuid() == 0:
        return True
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 135
    except (OSError, ValueError):
        return False


def test_the_plugin_is_registered_as_pytest11_wmilab() -> None:
    found = [ep for ep in entry_points(group="pytest11") if ep.name == "wmilab"]
    assert [ep.value for ep in found] == ["wmilab.pytest_plugin"]
    assert found[0].load().wmilab_lab is not None


@pytest.mark.slow
def test_the_documented_example_passes_as_a_tool_author_runs_it(tmp_path: Path) -> None:
    # From another folder: the fixture finds lab.toml beside the test file.
    r = run_pytest(str(EXAMPLE), cwd=tmp_path, net=loopback_net())
    out = r.stdout + r.stderr
    if not can_bind_135():
        assert r.returncode == 0 and "3 skipped" in out and "135" in out, out
        pytest.skip("port 135 needs root here; the example skipped, with the reason, as it should")
    assert r.returncode == 0, out
    assert "3 passed" in out, out


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="dropping the right to bind port 135 needs root and setpriv")
def test_without_the_right_to_bind_135_the_example_is_skipped_with_the_reason(tmp_path: Path) -> None:
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 135:
        pytest.skip("every user may bind port 135 on this machine")
    # Root without CAP_NET_BIND_SERVICE cannot bind ports below 1024, as an ordinary user.
    drop = ("setpriv", "--bounding-set=-net_bind_service", "--inh-caps=-net_bind_service")
    r = run_pytest(str(EXAMPLE), cwd=tmp_path, prefix=drop, net=loopback_net())
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "3 skipped" in out and "passed" not in out, out
    assert "port 135 needs root or" in out and "ip_unprivileged_port_start" in out, out


BAD = '''
def test_missing_file(wmilab_lab):
    wmilab_lab("no-such-scenario.toml")

def test_bad_scenario(wmilab_lab, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[hosts.A]\\nos = 'windows-99'\\naddress = '10.9.9.1/24'\\n")
    wmilab_lab(bad)

def test_netns(wmilab_lab):
    wmilab_lab("{example}", netns=True)

def test_loopback_net(wmilab_lab):
    wmilab_lab("{example}", loopback_net="10.0.0.0/8")
'''


def test_bad_input_fails_the_test_with_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "test_bad.py").write_text(
        BAD.replace("{example}", str(EXAMPLE.with_name("lab.toml"))))
    r = run_pytest("-p", "no:randomly", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "4 failed" in out, out
    assert "Traceback" not in out and "During handling" not in out, out
    parts = re.split(r"_{3,} (test_\w+) _{3,}", out.split("= FAILURES =")[1])
    report = {name: body.split("short test summary")[0].strip()
              for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    assert sorted(report) == ["test_bad_scenario", "test_loopback_net", "test_missing_file",
                              "test_netns"], out
    for name, body in report.items():  # one line each, the fixture's own
        assert len(body.strip("= \n").splitlines()) == 1 and body.startswith("wmilab_lab"), (name, out)
    assert "no-such-scenario.toml: no such file" in report["test_missing_file"]
    assert "bad.toml:2: hosts.A.os: unknown OS 'windows-99'" in report["test_bad_scenario"]
    assert "netns=True" in report["test_netns"] and "loopback" in report["test_netns"]
    assert "loopback_net: '10.0.0.0/8' must be a network" in report["test_loopback_net"]


def test_address_credentials_and_verdict_name_what_is_wrong() -> None:
    s = load(EXAMPLE.with_name("lab.toml"))
    running = ThreadedLab(s)  # not started: nothing listens
    try:
        lab = Lab(s, running)
        assert lab.address("srv1") == lab.address("SRV1") == "127.168.77.21"
        assert lab.credentials("CORP\\admin") == ("CORP", "admin", "Adm1n!")
        assert lab.credentials("corp\\Monitor") == ("corp", "Monitor", "M0nitor!")
        with pytest.raises(KeyError, match="'SRV9' is not a host"):
            lab.address("SRV9")
        with pytest.raises(KeyError, match="no password"):
            lab.credentials("CORP\\nobody")
        with pytest.raises(KeyError, match="no password"):
            lab.credentials("admin")
        assert lab.verdict("admin reads SRV2").result == "0x800706BA"
        with pytest.raises(KeyError, match="no call 'x'"):
            lab.verdict("x")
    finally:
        running.loop.call_soon_threadsafe(running.loop.stop)
        running.thread.join(5)
        running.loop.close()


def test_a_port_in_use_fails_instead_of_skipping(tmp_path: Path) -> None:
    if not can_bind_135():
        pytest.skip("port 135 needs root here")
    import socket

    # Another program holds 135 on the host's address: the test must fail, not skip. The lab
    # runs on a loopback network of its own, so nothing else in the suite is on that address.
    net = loopback_net()
    mon = mapped(net, "192.168.77.10")  # MON
    (tmp_path / "test_busy.py").write_text(
        f"def test_busy(wmilab_lab):\n"
        f"    lab = wmilab_lab({str(EXAMPLE.with_name('lab.toml'))!r}, loopback_net='{net}')\n")
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind((mon, 135))
        except OSError as e:
            pytest.skip(f"cannot hold the port for the test: {errno.errorcode.get(e.errno or 0)}")
        holder.listen()
        r = run_pytest(cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "1 failed" in out and "skipped" not in out, out
    assert f"MON: cannot listen on {mon}:135" in out, out


@pytest.mark.slow
def test_a_lab_on_a_loopback_network_of_its_own_listens_there(tmp_path: Path) -> None:
    if not can_bind_135():
        pytest.skip("port 135 needs root here")
    # The variable gives the default network; loopback_net= in the call wins over it.
    net, other = loopback_net(), loopback_net()
    srv1, srv1_other = mapped(net, "192.168.77.21"), mapped(other, "192.168.77.21")
    (tmp_path / "test_net.py").write_text(
        "import socket\n"
        f"LAB = {str(EXAMPLE.with_name('lab.toml'))!r}\n"
        "def test_net(wmilab_lab):\n"
        f"    lab = wmilab_lab(LAB, loopback_net={net!r})\n"
        f"    assert lab.address('SRV1') == {srv1!r}\n"
        "    socket.create_connection((lab.address('SRV1'), 135), timeout=5).close()\n"
        "def test_variable(wmilab_lab):\n"
        "    lab = wmilab_lab(LAB)\n"
        f"    assert lab.address('SRV1') == {srv1_other!r}\n")
    r = run_pytest(cwd=tmp_path, net=other)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr
