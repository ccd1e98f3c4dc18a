"""Scenarios for Windows Vista to Server 2025, written as an administrator writes them.

Every file of tests/scenarios/modern is a scenario whose calls carry ``expect``; a call that
should fail ends its name with the step where it fails, in brackets ("... [c1.wmi-port]").
Each file goes through the CLI the way a user runs it: ``wmilab check --json`` must meet
every expectation (result, step, connection), every failing call must get a fix that the
model proved and that is least privilege, and ``wmilab fix`` must write a scenario whose
calls then all work. The sources each file follows are in its header comment.
"""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from wmilab.cli import app
from wmilab.model import oses
from wmilab.scenario import load

DIR = Path(__file__).parent / "scenarios" / "modern"
FILES = sorted(DIR.glob("*.toml"))
STEP = re.compile(r"\[(c[12]\.[a-z0-9-]+)\]$")

# What a least-privilege fix never does (brief, "Security"; issue 7, "Fixes"): turn a
# firewall profile off or open it to all inbound traffic, grant Everyone, turn remote UAC
# off, or weaken the DCOM hardening on the server.
FORBIDDEN = [
    re.compile(p, re.I) for p in (
        r"\bstate\s+off\b", r"opmode\s+(mode\s*=\s*)?disable", r"allowinbound",
        r"\beveryone\b", r"LocalAccountTokenFilterPolicy", r"FilterAdministratorToken",
        r"RequireIntegrityActivationAuthenticationLevel", r"remoteip\s*=\s*any\b",
        r"-RemoteAddress\s+Any\b", r"advfirewall\s+reset")
]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def check_json(path: Path) -> dict[str, Any]:
    code, out = run("check", "--json", str(path))
    assert code in (0, 1), out
    data: dict[str, Any] = json.loads(out)
    return data


def test_the_suite_covers_every_modern_os_as_server_and_as_client() -> None:
    modern = {n for n in oses.NAMES if oses.get(n).modern}
    servers: set[str] = set()
    clients: set[str] = set()
    for path in FILES:
        s = load(path)
        for call in s.calls:
            servers.add(s.world.configs[call.target].os)
            clients.add(s.world.configs[call.source].os)
    assert modern <= servers and modern <= clients


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_check_meets_every_expectation(path: Path) -> None:
    data = check_json(path)
    assert data["calls"], path
    for c in data["calls"]:
        want = STEP.search(c["name"])
        assert c["matches"] is True, (c["name"], c["result"], c["step"], c["explanation"])
        if c["result"] == "ok":
            assert want is None and c["step"] is None and c["connection"] is None, c["name"]
            continue
        assert want is not None, f"{c['name']}: fails at {c['step']} but names no step"
        assert c["step"] == want.group(1), (c["name"], c["step"], c["explanation"])
        assert c["connection"] == int(want.group(1)[1]), c["name"]
        assert c["symbol"] and c["explanation"], c["name"]


def _caller_address(path: Path, call_name: str) -> tuple[IPv4Address, IPv4Address]:
    s = load(path)
    call = next(c for c in s.calls if c.name == call_name)
    a = s.world.configs[call.source].address.ip
    b = s.world.configs[call.target].address.ip
    return a, b


def _admits(remote: str, address: IPv4Address) -> bool:
    for part in remote.split(","):
        p = part.strip()
        if p.lower() == "localsubnet":
            continue
        if address in IPv4Network(p, strict=False):
            return True
    return False


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_failing_call_gets_a_proven_least_privilege_fix(path: Path) -> None:
    data = check_json(path)
    for c in data["calls"]:
        if c["result"] == "ok":
            continue
        if c["unfixable"]:
            # Only a logon no setting can repair (an untrusted domain, a wrong password).
            assert c["step"] == "c1.logon", (c["name"], c["unfixable"])
            continue
        assert c["fixes"] and c["fix_proven"] is True, (c["name"], c["fixes"])
        a, b = _caller_address(path, c["name"])
        for f in c["fixes"]:
            for command in f["commands"]:
                for bad in FORBIDDEN:
                    assert not bad.search(command), (c["name"], command)
                m = re.search(r"\bremoteip=(\S+)", command)
                if "new enable=yes" in command or "action=allow" in command:
                    # An opening is scoped: the caller's address, never any computer. The
                    # listener is B, or A for Connection 2 (then B calls in).
                    assert m is not None, (c["name"], command)
                    caller = a if f["host"] != c["from"] or c["from"] == c["to"] else b
                    assert _admits(m.group(1), caller), (c["name"], command)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_fix_writes_a_scenario_whose_calls_all_work(path: Path, tmp_path: Path) -> None:
    out = tmp_path / path.name
    code, text = run("fix", str(path), "-o", str(out))
    assert code == 0, text
    before = {c["name"]: c for c in check_json(path)["calls"]}
    after = check_json(out)
    for c in after["calls"]:
        if before[c["name"]]["unfixable"]:
            assert c["result"] != "ok", c["name"]
            continue
        assert c["result"] == "ok", (c["name"], c["step"], c["explanation"])
