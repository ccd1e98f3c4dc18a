"""XP SP2 / Server 2003 SP1 fidelity: dynamic RPC ports as a range, launch vs activation by
winmgmt's state, Guest-mapped callbacks, and the scenario fields behind them (issue 8).

Each test builds a scenario as a user writes it and asserts the verdict, the step, the
HRESULT and the fix that `wmilab check` gives.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import base_doc, call, make
from wmilab import flow, steps
from wmilab.errors import ConfigError
from wmilab.model.firewall import SVCHOST
from wmilab.model.ports import PortRange, dynamic_range
from wmilab.remedy import NetshAdd, ServiceState, apply, remedy
from wmilab.scenario import ScenarioError, loads

PORT135 = "netsh firewall add portopening protocol=TCP port=135 name=DCOM_TCP135"
RA = "netsh firewall set service RemoteAdmin enable"
GP_RA = ("Network/Network Connections/Windows Firewall/Domain Profile/"
         "Windows Firewall: Allow remote administration exception")
RESTRICTED = {"Ports": ["5000-5009"], "PortsInternetAvailable": "Y", "UseInternetPorts": "Y"}


def opening(port: int) -> str:
    return f"netsh firewall add portopening protocol=TCP port={port} name=RPC{port}"


def verdict(doc: dict[str, Any], i: int = 0) -> flow.Verdict:
    s = make(doc)
    return flow.evaluate(s.world, s.calls[i])


def fixed(doc: dict[str, Any]) -> tuple[list[Any], bool]:
    """The fix for the first call, and whether the fixed scenario works."""
    s = make(doc)
    r = remedy(s.world, s.calls[0])
    assert r.unfixable is None, r.unfixable
    w, c = apply(s.world, s.calls[0], r.changes)
    return r.changes, flow.evaluate(w, c).ok


def without_each(doc: dict[str, Any], changes: list[Any]) -> list[bool]:
    """Whether the call still works when each change is left out (least privilege)."""
    s = make(doc)
    out = []
    for skip in changes:
        w, c = apply(s.world, s.calls[0], [ch for ch in changes if ch is not skip])
        out.append(flow.evaluate(w, c).ok)
    return out


# ---- the range itself --------------------------------------------------------------------

def test_default_range_is_1025_to_5000_and_restricted_range_follows_rpc_internet() -> None:
    # KB 154596 / KB 929851: Windows Server 2003 and earlier use 1025-5000.
    for os_name in ("xp-sp2", "2003-sp1"):
        default = dynamic_range(os_name, {})
        assert default.describe() == "1025-5000" and len(default) == 3976
    restricted = dynamic_range("2003-sp1", {"Ports": ["5000-5009", "6000", "5005-5011"],
                                            "PortsInternetAvailable": "Y",
                                            "UseInternetPorts": "Y"})
    assert restricted.describe() == "5000-5011, 6000" and len(restricted) == 13
    # Both N: the listed ports are the intranet ports, which a default server uses too.
    both_n = dynamic_range("xp-sp2", {"Ports": ["7000-7001"], "PortsInternetAvailable": "N",
                                      "UseInternetPorts": "N"})
    assert list(both_n) == [7000, 7001]


@pytest.mark.parametrize(("registry", "message"), [
    ({"Ports": ["5000-5009"]}, "PortsInternetAvailable is not"),
    ({"Ports": ["5000-5009"], "PortsInternetAvailable": "Y"}, "UseInternetPorts is not"),
    ({"Ports": ["5000-5009"], "PortsInternetAvailable": "Y", "UseInternetPorts": "N"},
     "ports .not. listed"),
    ({"Ports": ["5009-5000"], "PortsInternetAvailable": "Y", "UseInternetPorts": "Y"},
     "ends before"),
    ({"Ports": ["70000"], "PortsInternetAvailable": "Y", "UseInternetPorts": "Y"},
     "outside 0-65535"),
    ({"Ports": ["ten"], "PortsInternetAvailable": "Y", "UseInternetPorts": "Y"},
     "not a port"),
])
def test_bad_rpc_internet_values_are_refused(registry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dynamic_range("xp-sp2", registry)


@given(st.lists(st.tuples(st.integers(1024, 65535), st.integers(0, 40)), min_size=1,
                max_size=5), st.integers(0, 2**32))
def test_a_drawn_port_is_always_in_the_range(spans: list[tuple[int, int]], seed: int) -> None:
    r = PortRange.of([(lo, min(lo + n, 65535)) for lo, n in spans], "test")
    rng = random.Random(seed)
    for _ in range(20):
        assert r.pick(rng) in r
    assert len(set(r)) == len(r)


# ---- point 1: the WMI service's port ------------------------------------------------------

def test_a_single_guessed_port_is_blocked() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [PORT135, opening(1025)]
    d["calls"] = [call()]
    v = verdict(d)
    assert v.result == "0x800706BA"
    assert v.failed is not None and v.failed.id == steps.C1_WMI_PORT
    assert "1 of the 3976 ports" in v.failed.detail


def test_the_fix_for_a_guessed_port_is_a_program_exception_not_another_port() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [PORT135, opening(1025)]
    d["calls"] = [call()]
    changes, ok = fixed(d)
    assert ok
    commands = [cmd for ch in changes for cmd in ch.commands]
    assert commands == ["netsh firewall set service type=REMOTEADMIN mode=ENABLE "
                        "scope=CUSTOM addresses=192.168.10.1"]
    assert not any("portopening" in cmd for cmd in commands)


def test_a_restricted_rpc_range_with_every_port_open_works() -> None:
    d = base_doc()
    d["hosts"]["B"]["registry"] = dict(RESTRICTED)
    d["hosts"]["B"]["netsh"] = [PORT135, *(opening(p) for p in range(5000, 5010))]
    d["calls"] = [call()]
    v = verdict(d)
    assert v.ok, v.failed
    wmi = next(s for s in v.steps if s.id == steps.C1_WMI_PORT)
    assert "cover every port of 5000-5009" in wmi.detail


def test_a_restricted_rpc_range_with_one_port_missing_is_blocked() -> None:
    d = base_doc()
    d["hosts"]["B"]["registry"] = dict(RESTRICTED)
    d["hosts"]["B"]["netsh"] = [PORT135, *(opening(p) for p in range(5000, 5009))]
    d["calls"] = [call()]
    v = verdict(d)
    assert v.result == "0x800706BA" and v.failed is not None
    assert v.failed.id == steps.C1_WMI_PORT and "9 of the 10 ports" in v.failed.detail


def test_restricted_range_openings_must_admit_the_caller() -> None:
    d = base_doc()
    d["hosts"]["B"]["registry"] = dict(RESTRICTED)
    d["hosts"]["B"]["netsh"] = [PORT135, *(opening(p) for p in range(5000, 5009)),
                                opening(5009) + " scope=CUSTOM addresses=10.0.0.9"]
    d["calls"] = [call()]
    assert verdict(d).result == "0x800706BA"


@pytest.mark.parametrize("gp_forbids_remote_admin", [False, True])
def test_restricted_range_fix_opens_the_whole_range(gp_forbids_remote_admin: bool) -> None:
    d = base_doc()
    d["hosts"]["B"]["registry"] = dict(RESTRICTED)
    if gp_forbids_remote_admin:
        d["hosts"]["B"]["policy"] = {GP_RA: {"state": "Disabled"}}
    d["calls"] = [call()]
    changes, ok = fixed(d)
    assert ok
    # TCP 135 and every port of the restricted range, for A only (KB 154596's pairing), and
    # no Remote Administration (it would open TCP 445 and every svchost/lsass port too).
    assert all(isinstance(ch.edit, NetshAdd) for ch in changes)
    commands = [cmd for ch in changes for cmd in ch.commands]
    assert not any("REMOTEADMIN" in c for c in commands)
    assert len(commands) == 11 and all("addresses=192.168.10.1" in c for c in commands)
    ports = sorted(int(c.split("port=")[1].split()[0]) for c in commands)
    assert ports == [135, *range(5000, 5010)]
    assert without_each(d, changes) == [False] * len(changes)


def test_default_range_is_never_opened_port_by_port() -> None:
    d = base_doc()
    d["hosts"]["B"]["policy"] = {GP_RA: {"state": "Disabled"}}
    d["hosts"]["B"]["netsh"] = [PORT135]
    d["calls"] = [call()]
    changes, ok = fixed(d)
    assert ok and [c.kind for c in changes] == ["policy"]


def test_the_sink_port_follows_a_s_range_too() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["hosts"]["A"]["netsh"] = [PORT135, opening(1026)]  # the old fixed "sink port"
    d["calls"] = [call("async")]
    v = verdict(d)
    assert v.result == "0x800706BA" and v.failed is not None
    assert v.failed.id == steps.C2_SINK_PORT
    d["hosts"]["A"]["registry"] = {"Ports": ["5000-5001"], "PortsInternetAvailable": "Y",
                                   "UseInternetPorts": "Y"}
    d["hosts"]["A"]["netsh"] = [PORT135, opening(5000), opening(5001)]
    assert verdict(d).ok


# ---- point 2: launch vs activation --------------------------------------------------------

def _bob(launch: list[str], winmgmt: str = "running", table: str = "launch_limits",
         ) -> dict[str, Any]:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["hosts"]["B"]["wmi"] = {"root\\cimv2": {"CORP\\bob": ["enable account", "remote enable"]}}
    dcom: dict[str, Any] = {"launch_limits": {"CORP\\bob": launch}}
    if table == "wmi_launch":
        dcom = {"launch_limits": {"CORP\\bob": ["remote launch", "remote activation"]},
                "wmi_launch": {"Authenticated Users": [], "CORP\\bob": launch}}
    d["hosts"]["B"]["dcom"] = dcom
    d["hosts"]["B"]["services"] = {"winmgmt": winmgmt}
    d["calls"] = [call(user="CORP\\bob")]
    return d


def test_remote_activation_alone_works_while_winmgmt_runs() -> None:
    assert verdict(_bob(["remote activation"])).ok


def test_remote_activation_alone_fails_when_winmgmt_is_stopped() -> None:
    v = verdict(_bob(["remote activation"], "stopped"))
    assert v.result == "0x80070005" and v.failed is not None
    assert v.failed.id == steps.C1_ACTIVATION and v.failed.where == "launch_limits"
    assert "stopped" in v.failed.detail


@pytest.mark.parametrize("table", ["launch_limits", "wmi_launch"])
@pytest.mark.parametrize("winmgmt", ["running", "stopped"])
def test_remote_launch_without_remote_activation_is_refused(table: str, winmgmt: str) -> None:
    v = verdict(_bob(["remote launch"], winmgmt, table))
    assert v.result == "0x80070005" and v.failed is not None
    assert v.failed.id == steps.C1_ACTIVATION
    assert v.failed.where == ("launch_limits" if table == "launch_limits" else "app_launch")


@pytest.mark.parametrize(("winmgmt", "granted"), [
    ("running", {"remote activation"}),
    ("stopped", {"remote launch", "remote activation"}),
])
def test_fixes_grant_the_narrower_right(winmgmt: str, granted: set[str]) -> None:
    # Bob starts with nothing remote; the fix adds Remote Activation, and Remote Launch
    # only when winmgmt has to be started.
    d = _bob(["local launch"], winmgmt)
    changes, ok = fixed(d)
    assert ok
    grant = changes[0].edit
    assert set(grant.rights) - {"local launch"} == granted
    assert without_each(d, changes) == [False] * len(changes)


def test_fix_in_the_wmi_appid_permissions() -> None:
    d = _bob(["remote launch"], "running", "wmi_launch")
    changes, ok = fixed(d)
    assert ok
    grant = changes[0].edit
    assert grant.table == "wmi_launch" and "remote activation" in grant.rights
    assert any("DCOM Config > Windows Management Instrumentation" in s
               for s in changes[0].commands)


def test_disabled_winmgmt_fails_with_the_service_error_and_is_fixed_by_starting_it() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["hosts"]["B"]["services"] = {"winmgmt": "disabled"}
    d["calls"] = [call()]
    v = verdict(d)
    assert v.result == "0x80070422" and v.failed is not None
    assert v.failed.id == steps.C1_ACTIVATION and v.failed.hresult is not None
    assert v.failed.hresult.symbol == "ERROR_SERVICE_DISABLED"
    changes, ok = fixed(d)
    assert ok and [c.kind for c in changes] == ["service"]
    assert changes[0].edit == ServiceState("winmgmt", "running")
    # Permission checks come first: a user without rights is denied before the service.
    d["calls"] = [call(user="CORP\\bob")]
    assert verdict(d).result == "0x80070005"


# ---- point 4: Guest-mapped callbacks ------------------------------------------------------

def _workgroup_a(guest: bool) -> dict[str, Any]:
    d = base_doc()
    a = d["hosts"]["A"]
    del a["domain"]
    a["workgroup"] = "WORKGROUP"
    a["netsh"] = [PORT135, "netsh firewall add allowedprogram "
                  "program=%windir%\\system32\\wbem\\unsecapp.exe name=UNSECAPP"]
    if guest:
        a["accounts"] = {"Guest": ""}
    d["hosts"]["B"]["netsh"] = [RA]
    d["calls"] = [call("async")]
    return d


def test_callback_to_a_workgroup_a_with_guest_enabled_arrives_as_guest() -> None:
    v = verdict(_workgroup_a(guest=True))
    ident = next(s for s in v.steps if s.id == steps.C2_IDENTITY)
    assert ident.where == "guest" and "A\\Guest" in ident.detail
    # Guest holds Everyone, which XP SP2's machine access limits give Remote Access.
    assert v.ok, v.failed


def test_callback_to_a_workgroup_a_with_guest_disabled_is_anonymous_and_refused() -> None:
    d = _workgroup_a(guest=False)
    v = verdict(d)
    ident = next(s for s in v.steps if s.id == steps.C2_IDENTITY)
    assert ident.where == "anonymous"
    assert v.result == "0x80070005" and v.failed is not None and v.failed.id == steps.C2_ACCESS
    changes, ok = fixed(d)
    assert ok and changes[0].edit.principal == "ANONYMOUS LOGON"


# ---- the scenario fields ------------------------------------------------------------------

SCENARIO = '''
[domains.CORP]
accounts = {{ admin = "Adm1n!" }}

[hosts.A]
os = "xp-sp2"
domain = "CORP"
address = "192.168.10.1/24"

[hosts.B]
os = "xp-sp2"
domain = "CORP"
address = "192.168.10.2/24"
{extra}

[[calls]]
from = "A"
to = "B"
user = "CORP\\\\admin"
'''


@pytest.mark.parametrize(("extra", "line", "field", "message"), [
    ('services = { winmgmt = "paused" }', 14, "hosts.B.services.winmgmt", "not one of"),
    ('services = { spooler = "running" }', 14, "hosts.B.services.spooler", "unknown service"),
    ('[hosts.B.registry]\nPorts = ["5000-5100"]\nPortsInternetAvailable = "Y"', 14,
     "hosts.B.registry.UseInternetPorts", "UseInternetPorts is not"),
    ('[hosts.B.registry]\nPorts = ["5000-5100", "x"]\nPortsInternetAvailable = "Y"\n'
     'UseInternetPorts = "Y"', 15, "hosts.B.registry.Ports[1]", "not a port"),
    ('[hosts.B.registry]\nUseInternetPorts = "yes"', 15, "hosts.B.registry.UseInternetPorts",
     "not \"Y\" or \"N\""),
    ('[hosts.B.registry]\nPorts = "5000-5100"', 15, "hosts.B.registry.Ports",
     "list of strings"),
])
def test_bad_fields_name_file_line_and_field(extra: str, line: int, field: str,
                                              message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        loads(SCENARIO.format(extra=extra), "net.toml")
    e = info.value
    assert (e.file, e.field) == ("net.toml", field)
    assert e.line == line, str(e)
    assert message in e.message


def test_services_and_rpc_registry_are_read() -> None:
    s = loads(SCENARIO.format(extra='services = { WinMgmt = "Stopped" }\n[hosts.B.registry]\n'
                              'Ports = ["5000-5100"]\nPortsInternetAvailable = "y"\n'
                              'UseInternetPorts = "Y"'), "net.toml")
    b = s.world.host("B")
    assert b.winmgmt == "stopped"
    assert b.rpc_ports.describe() == "5000-5100"
    assert s.world.host("A").winmgmt == "running"


# ---- the range question is the per-port rule, asked for every port ------------------------

@given(open_ports=st.sets(st.integers(4998, 5005)), scoped=st.sets(st.integers(4998, 5005)),
       program=st.sampled_from([None, "svchost", "svchost-elsewhere"]))
def test_range_verdict_is_the_per_port_rule_for_every_port(
        open_ports: set[int], scoped: set[int], program: str | None) -> None:
    """decide_dynamic admits exactly when the per-port rule (what the emulated host asks for
    the port it drew) admits every port of the range: one rule, two questions."""
    d = base_doc()
    b = d["hosts"]["B"]
    b["registry"] = {"Ports": ["5000-5003"], "PortsInternetAvailable": "Y",
                     "UseInternetPorts": "Y"}
    netsh = [opening(p) + (" scope=CUSTOM addresses=10.1.1.1" if p in scoped else "")
             for p in sorted(open_ports)]
    if program is not None:
        scope = "" if program == "svchost" else " scope=CUSTOM addresses=10.1.1.1"
        netsh.append("netsh firewall add allowedprogram program=%windir%\\system32\\svchost.exe "
                     "name=SVCHOST" + scope)
    b["netsh"] = netsh
    s = make(d)
    host = s.world.host("B")
    a_ip = s.world.host("A").ip
    per_port = [host.inbound(a_ip, p, SVCHOST).allowed
                for p in host.rpc_ports]
    assert host.wmi_inbound(a_ip).allowed is all(per_port)
