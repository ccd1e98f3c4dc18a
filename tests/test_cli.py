"""The `wmilab` command as a user runs it: output, JSON contract, exit codes, bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import loopback_net, needs_root
from wmilab import examples
from wmilab.scenario import load

EX = examples.directory()


def wmilab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wmilab.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_check_text_names_connection_step_hresult_and_fix() -> None:
    r = wmilab("check", str(EX / "03-async-a-unconfigured.toml"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Connection 2" in out and "c2.resolver-port" in out
    assert "0x800706BA RPC_S_SERVER_UNAVAILABLE" in out
    # Connection 2 on A follows the seed and KB 875605: Remote Administration (which opens
    # TCP 135) and unsecapp, scoped to B (docs/choices.md)
    ra = "netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM addresses="
    assert ra in out and "allowedprogram program=%windir%\\system32\\wbem\\unsecapp.exe" in out
    assert out.index('mode = "semisync"') < out.index(ra)


def test_check_json_follows_the_contract() -> None:
    r = wmilab("check", "--json", str(EX / "07-non-admin.toml"))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    keys = {"name", "from", "to", "mode", "result", "symbol", "connection", "step",
            "explanation", "expect", "matches", "fixes"}
    by_name = {c["name"]: c for c in data["calls"]}
    for c in data["calls"]:
        assert keys <= set(c)
        assert c["matches"] is True
        for f in c["fixes"]:
            assert set(f) == {"host", "kind", "summary", "commands"}
            assert f["kind"] in {"netsh", "policy", "dcom", "wmi", "registry", "call"}
    bob = by_name["bob: Remote Enable but no DCOM remote launch"]
    assert (bob["result"], bob["symbol"], bob["connection"]) == ("0x80070005", "E_ACCESSDENIED", 1)
    assert bob["fixes"][0]["kind"] == "dcom" and bob["fixes"][0]["host"] == "B"
    dave = by_name["dave: both"]
    assert dave["result"] == "ok" and dave["connection"] is None and dave["fixes"] == []


def test_check_exit_1_when_an_expect_does_not_match(tmp_path: Path) -> None:
    text = (EX / "01-default-blocked.toml").read_text().replace(
        'expect = "0x800706BA"', 'expect = "ok"')
    f = tmp_path / "s.toml"
    f.write_text(text)
    r = wmilab("check", str(f))
    assert r.returncode == 1
    assert "expected ok" in r.stdout


@pytest.mark.parametrize(("mutate", "line", "field", "words"), [
    (lambda t: t.replace('os = "xp-sp2"\ndomain = "CORP"\naddress = "192.168.10.2/24"',
                         'os = "xp-sp2"\ndomain = "CORP"\naddress = "192.168.10.2/24"\ncolour = 1'),
     21, "hosts.B.colour", "unknown field"),
    (lambda t: t.replace('address = "192.168.10.2/24"', 'address = "192.168.300.2/24"'),
     20, "hosts.B.address", "not an IPv4 address"),
    (lambda t: t.replace('to = "B"', 'to = "Q"'), 25, "calls[0].to", "unknown host"),
    (lambda t: t.replace('[hosts.B]', '[hosts.B'), 17, "", "not valid TOML"),
    (lambda t: t.replace('mode = "semisync"', 'mode = "fast"'), 27, "calls[0].mode",
     "is not one of"),
    (lambda t: t.replace('os = "xp-sp2"\ndomain = "CORP"\naddress = "192.168.10.2/24"',
                         'os = "xp-sp2"\ndomain = "CORP"\naddress = "192.168.10.2/24"\n'
                         'netsh = ["netsh firewall add portopening TCP 70000 X"]'),
     21, "hosts.B.netsh[0]", "70000"),
])
def test_bad_scenario_exits_2_naming_file_line_and_field(
    tmp_path: Path, mutate: object, line: int, field: str, words: str,
) -> None:
    text = mutate((EX / "01-default-blocked.toml").read_text())  # type: ignore[operator]
    f = tmp_path / "bad.toml"
    f.write_text(text)
    r = wmilab("check", str(f))
    assert r.returncode == 2, r.stdout
    assert "Traceback" not in r.stderr
    assert f"{f}:{line}:" in r.stderr, r.stderr
    if field:
        assert f" {field}: " in r.stderr
    assert words in r.stderr


def test_missing_file_exits_2() -> None:
    r = wmilab("check", "/nonexistent/x.toml")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr


def test_fix_writes_a_file_that_checks_clean(tmp_path: Path) -> None:
    out = tmp_path / "fixed.toml"
    r = wmilab("fix", str(EX / "03-async-a-unconfigured.toml"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "wmilab fix" in out.read_text()
    r2 = wmilab("check", "--json", str(out))
    assert r2.returncode == 0
    assert all(c["result"] == "ok" for c in json.loads(r2.stdout)["calls"])


def test_fix_semisync_changes_the_call_not_computer_a(tmp_path: Path) -> None:
    out = tmp_path / "fixed.toml"
    r = wmilab("fix", "--semisync", str(EX / "03-async-a-unconfigured.toml"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert 'mode = "semisync" # wmilab fix' in text
    assert "DCOM_TCP135" not in text


def test_netsh_show_config_prints_the_hosts_configuration() -> None:
    r = wmilab("netsh", str(EX / "04-async-configured.toml"), "A", "firewall show config")
    assert r.returncode == 0, r.stderr
    assert "DCOM_TCP135" in r.stdout and "UNSECAPP" in r.stdout
    assert "Domain profile configuration" in r.stdout


def test_netsh_bad_command_and_unknown_host() -> None:
    r = wmilab("netsh", str(EX / "04-async-configured.toml"), "A", "firewall frobnicate")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip()
    r = wmilab("netsh", str(EX / "04-async-configured.toml"), "Z", "firewall show config")
    assert r.returncode == 2 and "no host 'Z'" in r.stderr


@pytest.mark.parametrize("cmd", ["check", "fix", "netsh"])
def test_help(cmd: str) -> None:
    r = wmilab(cmd, "--help")
    assert r.returncode == 0 and "Usage" in r.stdout


# The examples, and the scenario of outbound rules (A's own firewall refuses Connection 1:
# the loopback gate asks A's outbound rules too).
OUTBOUND = Path(__file__).parent / "scenarios" / "modern" / "17-outbound-rules.toml"


@pytest.mark.slow
@pytest.mark.parametrize("path", [*sorted(EX.glob("*.toml")), OUTBOUND], ids=lambda p: p.name)
def test_lab_verify_every_example_the_wire_agrees_with_check(path: Path) -> None:
    r = wmilab("lab", str(path), "--verify", "--loopback-net", loopback_net())
    if r.returncode == 2 and "135" in r.stderr:
        needs_root(f"the emulated hosts need port 135: {r.stderr.strip()}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "DIFFERS" not in r.stdout and "not run" not in r.stdout
    assert r.stdout.count("agrees") == len(load(path).calls)
