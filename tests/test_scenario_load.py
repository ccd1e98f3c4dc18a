"""Loading scenario files: the fast parser reads what tomllib reads; errors keep their place."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

from wmilab import flow
from wmilab.scenario import ScenarioError, loads, parse_toml

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"


def _fleet_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_fleet", ROOT / "bench" / "fleet.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_fleet"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("path", sorted(EX.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_reads_the_same_as_with_tomllib(path: Path) -> None:
    text = path.read_text()
    assert parse_toml(text) == tomllib.loads(text)


def test_the_bench_fleet_reads_the_same_and_a_third_of_its_calls_fail() -> None:
    fleet = _fleet_module()
    text = fleet.fleet_text(210)
    assert parse_toml(text) == tomllib.loads(text)
    s = loads(text, "fleet.toml")
    results = [flow.evaluate(s.world, c) for c in s.calls]
    failing = [v for v in results if not v.ok]
    assert len(s.calls) == 210 and len(failing) == 70
    # Each kind of failure fails as its name says, and only those.
    for v in results:
        kind = v.call.name.split()[0]
        assert v.ok == kind.startswith("ok-"), (v.call.name, v.result)


HEAD = """
[domains.CORP.accounts]
admin = "A!"

[hosts.A]
os = "xp-sp2"
domain = "CORP"
address = "10.1.0.1/24"

[hosts.B]
os = "xp-sp2"
domain = "CORP"
address = "10.1.0.2/24"
"""
CALL = """
[[calls]]
from = "A"
to = "B"
user = "CORP\\\\admin"
"""


@pytest.mark.parametrize("extra, line, field, words", [
    # A host that no call uses is checked all the same (its model is built only on use).
    ('[hosts.C]\nos = "xp-sp2"\ndomain = "CORP"\naddress = "10.1.0.3/24"\n'
     'netsh = ["netsh firewall add portopening TCP 70000 X"]\n',
     18, "hosts.C.netsh[0]", "70000"),
    ('[hosts.C]\nos = "xp-sp2"\ndomain = "CORP"\naddress = "10.1.0.3/24"\n'
     '[hosts.C.dcom.launch_limits]\n"CORP\\\\nobody" = ["remote launch"]\n',
     19, 'hosts.C.dcom.launch_limits."CORP\\nobody"', "nobody"),
    ('[hosts.C]\nos = "xp-sp2"\ndomain = "CORP"\naddress = "10.1.0.3/24"\n'
     '[hosts.C.policy."Network/Network Connections/Windows Firewall/Domain Profile/'
     'Windows Firewall: Do not allow exceptions"]\nstate = "Maybe"\n',
     19, "hosts.C.policy", "Maybe"),
    ('[hosts.C]\nos = "xp-sp2"\ndomain = "CORP"\naddress = "10.1.00.3/24"\n',
     17, "hosts.C.address", "10.1.00.3"),
    # A number the fast parser refuses is read by tomllib, and the scenario's own check
    # names the field.
    ("[hosts.C]\nos = 1e999\n", 15, "hosts.C.os", "must be a string"),
])
def test_errors_name_the_line_and_field(extra: str, line: int, field: str, words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        loads(HEAD + extra + CALL, "f.toml")
    e = info.value
    assert e.line == line and e.field.startswith(field), str(e)
    assert words in e.message


def test_a_syntax_error_names_its_line() -> None:
    with pytest.raises(ScenarioError) as info:
        loads(HEAD + "[hosts.C\n" + CALL, "f.toml")
    assert info.value.line == 14 and "not valid TOML" in info.value.message
