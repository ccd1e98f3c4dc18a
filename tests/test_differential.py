"""The model and the wire held together: for generated networks, the HRESULT impacket gets
from an emulated host equals the one `flow` (and so `wmilab check`) predicts.

impacket is driven in-process as its wmiquery.py does (DCOMConnection, CoCreateInstanceEx of
WbemLevel1Login, NTLMLogin, ExecQuery, Next); the lab runs in a background event loop.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import CORP, fresh_net, make, started_lab
from wmilab import flow
from wmilab.lab.verify import impacket_query, verify_calls
from wmilab.model import namespaces, oses
from wmilab.scenario import Call

pytestmark = pytest.mark.slow

RA = "netsh firewall set service RemoteAdmin enable"
B_NETSH = [
    RA,
    "netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM addresses=10.99.0.9",
    "netsh firewall add portopening protocol=TCP port=135 name=DCOM_TCP135",
    "netsh firewall set opmode mode=ENABLE exceptions=DISABLE",
    "netsh firewall set opmode mode=ENABLE",
]
GP = "Network/Network Connections/Windows Firewall/Domain Profile/Windows Firewall: {}"
LAUNCH = ["local launch", "remote launch", "local activation", "remote activation"]
# Bob's machine launch limits: everything, Remote Activation only, Remote Launch only (issue 8).
LAUNCH_SETS = {True: LAUNCH, "activation": ["remote activation"], "launch": ["remote launch"]}
# B's dynamic RPC range restricted to a few ports, every one of them opened (KB 154596).
RESTRICTED = {"Ports": ["5000-5003"], "PortsInternetAvailable": "Y", "UseInternetPorts": "Y"}

network = st.fixed_dictionaries({
    "os": st.sampled_from(["xp-sp2", "2003-sp1"]),
    "ra": st.sampled_from([True, True, True, False]),
    "netsh": st.lists(st.sampled_from(B_NETSH[1:]), max_size=2),
    "gp": st.sampled_from([None, "no-exceptions", "ra-disabled", "ra-enabled"]),
    "enable_dcom": st.sampled_from([True, True, True, False]),
    "user": st.sampled_from(["CORP\\admin", "CORP\\bob", "B\\local"]),
    "wrong_password": st.sampled_from([False, False, False, True]),
    "launch_bob": st.sampled_from([False, True, "activation", "launch"]),
    "winmgmt": st.sampled_from(["running", "running", "stopped", "disabled"]),
    "rpc": st.sampled_from([None, None, "restricted-open"]),
    "remote_enable_bob": st.booleans(),
    "mode": st.sampled_from(["sync", "semisync"]),
    "namespace": st.sampled_from(["root\\cimv2", "root\\cimv2", "root\\default", "root\\nosuch"]),
})

_BOB: dict[str, Any] = {"os": "xp-sp2", "ra": True, "netsh": [], "gp": None, "enable_dcom": True,
           "user": "CORP\\bob", "wrong_password": False, "launch_bob": True,
           "remote_enable_bob": False, "namespace": "root\\cimv2", "mode": "semisync",
           "winmgmt": "running", "rpc": None}
_PASSWORDS = {"CORP\\admin": "Adm1n!", "CORP\\bob": "B0b!", "B\\local": "L0cal!"}


def _doc(n: dict[str, Any]) -> dict[str, Any]:
    net = fresh_net()
    b: dict[str, Any] = {"os": n["os"], "domain": "CORP", "address": f"{net}.2/24",
                         "netsh": ([RA] if n["ra"] else []) + n["netsh"], "accounts": {"local": "L0cal!"},
                         "groups": {"Administrators": ["B\\local", "CORP\\Domain Admins"]}}
    policy = {
        "no-exceptions": {GP.format("Do not allow exceptions"): {"state": "Enabled"}},
        "ra-disabled": {GP.format("Allow remote administration exception"): {"state": "Disabled"}},
        "ra-enabled": {GP.format("Allow remote administration exception"):
                       {"state": "Enabled", "addresses": f"{net}.0/24"}},
    }.get(n["gp"])
    if policy:
        b["policy"] = policy
    dcom: dict[str, Any] = {}
    if not n["enable_dcom"]:
        dcom["enable_dcom"] = False
    if n["launch_bob"]:
        dcom["launch_limits"] = {"CORP\\bob": LAUNCH_SETS[n["launch_bob"]]}
    if n["winmgmt"] != "running":
        b["services"] = {"winmgmt": n["winmgmt"]}
    if n["rpc"] == "restricted-open":
        b["registry"] = dict(RESTRICTED)
        b["netsh"] = b["netsh"] + [
            f"netsh firewall add portopening protocol=TCP port={p} name=RPC{p}"
            for p in range(5000, 5004)]
    if dcom:
        b["dcom"] = dcom
    wmi = {"enable account", "remote enable"} if n["remote_enable_bob"] else None
    if wmi:
        b["wmi"] = {"root": {"CORP\\bob": sorted(wmi)}}
    call: dict[str, Any] = {"from": "A", "to": "B", "user": n["user"],
                            "namespace": n["namespace"], "mode": n["mode"]}
    if n["wrong_password"]:
        call["password"] = "not-it"
    return {
        "domains": {"CORP": copy.deepcopy(CORP)},
        "hosts": {"A": {"os": "xp-sp2", "domain": "CORP", "address": f"{net}.1/24"},
                  "B": b},
        "calls": [call],
    }


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(network)
# Always cover the seed's non-admin paths and a wrong password.
@example({**_BOB, "launch_bob": True, "remote_enable_bob": False})  # 0x80041003
@example({**_BOB, "launch_bob": False, "remote_enable_bob": True})  # 0x80070005
@example({**_BOB, "launch_bob": True, "remote_enable_bob": True})  # ok
@example({**_BOB, "user": "CORP\\admin", "wrong_password": True})  # 0x80070005
# Issue 8: Remote Activation alone while winmgmt runs (ok) and when it is stopped (denied);
# Remote Launch alone (denied); a disabled winmgmt; a restricted range, every port open.
@example({**_BOB, "launch_bob": "activation", "remote_enable_bob": True})  # ok
@example({**_BOB, "launch_bob": "activation", "remote_enable_bob": True,
          "winmgmt": "stopped"})  # 0x80070005
@example({**_BOB, "launch_bob": "launch", "remote_enable_bob": True})  # 0x80070005
@example({**_BOB, "user": "CORP\\admin", "winmgmt": "disabled"})  # 0x80070422
@example({**_BOB, "user": "CORP\\admin", "ra": False, "rpc": "restricted-open",
          "netsh": [B_NETSH[2]]})  # ok
def test_impacket_gets_what_the_flow_predicts(n: dict[str, Any]) -> None:
    s = make(_doc(n))
    call = s.calls[0]
    predicted = flow.evaluate(s.world, call)
    running = started_lab(s)
    try:
        password = call.password or _PASSWORDS[call.user]
        query = ("SELECT * FROM Win32_OperatingSystem" if call.namespace == "root\\cimv2"
                 else "SELECT * FROM __NAMESPACE")
        got, _ = impacket_query(running.address("B"), call.user, password, call.namespace, query,
                                call.mode)
    finally:
        running.close()
    failed = predicted.failed
    assert got == predicted.result, (
        f"flow predicts {predicted.result} at {failed.id if failed else '-'} "
        f"({failed.detail if failed else ''}); impacket got {got}")


# ------------------------------------------------------------------------------------------
# Every call of a generated scenario, every namespace the model knows, all three modes


_UNSECAPP = "%windir%\\system32\\wbem\\unsecapp.exe"
_A_CONN2 = {
    "closed": [],
    "135 only": ["netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135"],
    "135 and unsecapp": [
        "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135",
        f"netsh firewall add allowedprogram program={_UNSECAPP} name=UNSECAPP"],
}
_NAMESPACE_NAMES = sorted({ns.path for ns in namespaces.CATALOGUE})
# Vista and later: the WMI rule group (its DCOM-In and ASync-In rules let Connection 2 in),
# or only the ASync-In rule with TCP 135 (Learn "Connecting to WMI Remotely Starting with
# Windows Vista").
_WFAS_CONN2 = {
    "WMI group": ['netsh advfirewall firewall set rule group="Windows Management '
                  'Instrumentation (WMI)" new enable=yes'],
    "DCOM-In and ASync-In": [
        'netsh advfirewall firewall set rule name="Windows Management Instrumentation '
        '(DCOM-In)" new enable=yes',
        'netsh advfirewall firewall set rule name="Windows Management Instrumentation '
        '(ASync-In)" new enable=yes'],
}
_ENCRYPTED = [ns.path for ns in namespaces.CATALOGUE if ns.requires_encryption]


def _spelling(draw: st.DrawFn, name: str) -> str:
    # Names compare case-insensitively, and clients write both separators.
    style = draw(st.sampled_from(["as is", "lower", "upper", "slashes"]))
    return {"as is": name, "lower": name.lower(), "upper": name.upper(),
            "slashes": name.replace("\\", "/")}[style]


@st.composite
def mixed_scenario(draw: st.DrawFn) -> dict[str, Any]:
    net = fresh_net()
    os_a, os_b = draw(st.sampled_from(oses.NAMES)), draw(st.sampled_from(oses.NAMES))
    # B's membership decides who calls A's sink back: its machine account (CORP), or
    # ANONYMOUS LOGON (a workgroup, or a domain A does not trust).
    b_home = draw(st.sampled_from(["CORP", "CORP", "WORKGROUP", "OTHER"]))
    b: dict[str, Any] = {"os": os_b, "address": f"{net}.2/24",
                         "netsh": ["netsh firewall set opmode mode=ENABLE", RA],
                         "accounts": {"local": "L0cal!"},
                         "groups": {"Administrators": ["B\\local", "CORP\\Domain Admins"]}}
    if b_home == "WORKGROUP":
        b["workgroup"] = "WORKGROUP"
        # Classic sharing, so B's local administrator logs on as itself (not as Guest).
        b["registry"] = {"ForceGuest": 0}
        b["groups"] = {"Administrators": ["B\\local"]}
    else:
        b["domain"] = b_home
    modern_b = oses.get(os_b).modern
    if modern_b:
        # Vista and later: B calls back anonymously only with AllowAnonymousCallback = 1, and
        # may mark a namespace RequiresEncryption; the built-in Administrator (RID 500) is the
        # local account remote UAC leaves unfiltered.
        if draw(st.booleans()):
            b.setdefault("registry", {})["AllowAnonymousCallback"] = 1
        b["accounts"]["Administrator"] = "Adm!n500"
        b["groups"]["Administrators"] = [*b["groups"]["Administrators"], "B\\Administrator"]
        if oses.get(os_b).server and draw(st.booleans()):
            # A cluster node: root\MSCluster exists, marked RequiresEncryption (KB 2590230).
            b["features"] = ["Failover-Clustering"]
    # bob may log on to exactly one namespace (rights there, and by inheritance below it).
    bob_ns = draw(st.sampled_from([ns.path for ns in namespaces.for_os(os_b) if ns.key != "root"]))
    bob_launch = draw(st.booleans())
    if b_home == "CORP":
        b["wmi"] = {bob_ns: {"CORP\\bob": ["enable account", "remote enable"]}}
        if bob_launch:
            b["dcom"] = {"launch_limits": {"CORP\\bob": LAUNCH}}
    conn2 = {**_A_CONN2, **(_WFAS_CONN2 if oses.get(os_a).modern else {})}
    a: dict[str, Any] = {"os": os_a, "domain": "CORP", "address": f"{net}.1/24",
                         "netsh": list(conn2[draw(st.sampled_from(sorted(conn2)))])}
    if os_a == "2003-sp1":
        a["netsh"].insert(0, "netsh firewall set opmode mode=ENABLE")
    if oses.get(os_a).modern and draw(st.booleans()):
        # unsecapp's own check: only B's machine account may call the sink back.
        a["registry"] = {"UnsecAppAccessControlDefault": 1}
    # A's Access Permissions limits decide which rung of B's callback ladder gets in: the
    # defaults (Everyone: remote access), ANONYMOUS LOGON added, or Everyone cut to local access
    # so that only the anonymous fallback (or nothing) passes.
    a_limits = draw(st.sampled_from(["default", "anonymous", "anonymous only", "nobody"]))
    anonymous = {"ANONYMOUS LOGON": ["local access", "remote access"]}
    local_only = {"Everyone": ["local access"]}
    a["dcom"] = {"access_limits": {"default": {}, "anonymous": anonymous,
                                   "anonymous only": {**local_only, **anonymous},
                                   "nobody": local_only}[a_limits]}
    users = ["B\\local"] + (["CORP\\admin", "CORP\\bob"] if b_home == "CORP" else [])
    if modern_b:
        # Weighted: the account that reaches Connection 2 from any membership of B.
        users += ["B\\Administrator", "B\\Administrator"]
        if draw(st.booleans()):
            # A namespace the scenario marks RequiresEncryption (docs/scenario.md).
            marked = draw(st.sampled_from(["root\\default", "root\\subscription"]))
            b.setdefault("wmi", {}).setdefault(marked, {})["requires_encryption"] = True
    calls = []
    for _ in range(draw(st.integers(1, 3))):
        ns = draw(st.sampled_from([*_NAMESPACE_NAMES, *_ENCRYPTED, bob_ns, "root\\nosuch",
                                   "root\\cimv2\\x"]))
        call: dict[str, Any] = {
            "from": "A", "to": "B", "user": draw(st.sampled_from(users)),
            "mode": draw(st.sampled_from(["sync", "semisync", "async", "async"])),
            "namespace": _spelling(draw, ns)}
        level = draw(st.sampled_from([None, None, "integrity", "privacy"]))
        if level is not None:
            call["auth_level"] = level
        calls.append(call)
    domains = {"CORP": copy.deepcopy(CORP)}
    if b_home == "OTHER":
        domains["OTHER"] = {"dns": "other.example", "accounts": {}}
    return {"domains": domains, "hosts": {"A": a, "B": b}, "calls": calls}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mixed_scenario())
# Always cover the callback ladder's fallback: A refuses B's machine account (Everyone has
# only local access) and admits ANONYMOUS LOGON, so only the last rung gets in.
@example({"domains": {"CORP": CORP},
          "hosts": {"A": {"os": "xp-sp2", "domain": "CORP", "address": "10.250.250.1/24",
                          "netsh": _A_CONN2["135 and unsecapp"],
                          "dcom": {"access_limits": {
                              "Everyone": ["local access"],
                              "ANONYMOUS LOGON": ["local access", "remote access"]}}},
                    "B": {"os": "2003-sp1", "domain": "CORP", "address": "10.250.250.2/24",
                          "netsh": ["netsh firewall set opmode mode=ENABLE", RA]}},
          "calls": [{"from": "A", "to": "B", "user": "CORP\\admin", "mode": "async"},
                    {"from": "A", "to": "B", "user": "CORP\\admin", "mode": "async",
                     "namespace": "ROOT/SUBSCRIPTION"}]})
# Vista and later, Connection 2: a workgroup B calls back anonymously only with
# AllowAnonymousCallback = 1; an encrypted namespace is called back at privacy as B's machine
# account, and refused below privacy (issue 7).
@example({"domains": {"CORP": CORP},
          "hosts": {"A": {"os": "11", "domain": "CORP", "address": "10.250.251.1/24",
                          "netsh": _WFAS_CONN2["WMI group"],
                          "dcom": {"access_limits": {
                              "ANONYMOUS LOGON": ["local access", "remote access"]}}},
                    "B": {"os": "2022", "workgroup": "WORKGROUP",
                          "address": "10.250.251.2/24", "netsh": _WFAS_CONN2["WMI group"],
                          "accounts": {"Administrator": "Adm!n500"}}},
          "calls": [{"from": "A", "to": "B", "user": "B\\Administrator", "mode": "async"}]})
@example({"domains": {"CORP": CORP},
          "hosts": {"A": {"os": "10", "domain": "CORP", "address": "10.250.252.1/24",
                          "netsh": _WFAS_CONN2["DCOM-In and ASync-In"],
                          "dcom": {"access_limits": {
                              "ANONYMOUS LOGON": ["local access", "remote access"]}}},
                    "B": {"os": "2019", "workgroup": "WORKGROUP",
                          "address": "10.250.252.2/24", "netsh": _WFAS_CONN2["WMI group"],
                          "registry": {"AllowAnonymousCallback": 1},
                          "accounts": {"Administrator": "Adm!n500"}}},
          "calls": [{"from": "A", "to": "B", "user": "B\\Administrator", "mode": "async"},
                    {"from": "A", "to": "B", "user": "B\\Administrator", "mode": "async",
                     "namespace": "root\\CIMV2\\TerminalServices", "auth_level": "privacy"}]})
@example({"domains": {"CORP": CORP},
          "hosts": {"A": {"os": "2016", "domain": "CORP", "address": "10.250.253.1/24",
                          "netsh": _WFAS_CONN2["WMI group"]},
                    "B": {"os": "2025", "domain": "CORP", "address": "10.250.253.2/24",
                          "netsh": _WFAS_CONN2["WMI group"]}},
          "calls": [{"from": "A", "to": "B", "user": "CORP\\admin", "mode": "async",
                     "namespace": "root\\CIMV2\\TerminalServices", "auth_level": "privacy"},
                    {"from": "A", "to": "B", "user": "CORP\\admin", "mode": "semisync",
                     "namespace": "root/cimv2/terminalservices"},
                    {"from": "A", "to": "B", "user": "CORP\\admin", "mode": "sync",
                     "namespace": "root\\CIMV2\\TerminalServices", "auth_level": "privacy"}]})
# UnsecAppAccessControlDefault = 1 on A: the anonymous callback of a workgroup B is refused
# by the sink, the callback of a domain B (its machine account) is taken.
@example({"domains": {"CORP": CORP},
          "hosts": {"A": {"os": "11", "domain": "CORP", "address": "10.250.249.1/24",
                          "netsh": _WFAS_CONN2["WMI group"],
                          "registry": {"UnsecAppAccessControlDefault": 1},
                          "dcom": {"access_limits": {
                              "ANONYMOUS LOGON": ["local access", "remote access"]}}},
                    "B": {"os": "2019", "workgroup": "WORKGROUP",
                          "address": "10.250.249.2/24", "netsh": _WFAS_CONN2["WMI group"],
                          "registry": {"AllowAnonymousCallback": 1},
                          "accounts": {"Administrator": "Adm!n500"}},
                    "C": {"os": "2022", "domain": "CORP", "address": "10.250.249.3/24",
                          "netsh": _WFAS_CONN2["WMI group"]}},
          "calls": [{"from": "A", "to": "B", "user": "B\\Administrator", "mode": "async"},
                    {"from": "A", "to": "C", "user": "CORP\\admin", "mode": "async"}]})
# A cluster node (Failover Clustering): root\MSCluster refuses below privacy (aiowmi issue 38).
@example({"domains": {"CORP": CORP},
          "hosts": {"A": {"os": "11", "domain": "CORP", "address": "10.250.254.1/24",
                          "netsh": _WFAS_CONN2["WMI group"]},
                    "B": {"os": "2022", "domain": "CORP", "address": "10.250.254.2/24",
                          "netsh": _WFAS_CONN2["WMI group"],
                          "features": ["Failover-Clustering"]}},
          "calls": [{"from": "A", "to": "B", "user": "CORP\\admin", "mode": "semisync",
                     "namespace": "root\\MSCluster"},
                    {"from": "A", "to": "B", "user": "CORP\\admin", "mode": "async",
                     "namespace": "root/mscluster", "auth_level": "privacy"}]})
def test_every_call_of_a_mixed_scenario_agrees_with_check_on_the_wire(doc: dict[str, Any]) -> None:
    _every_call_agrees(doc, lambda c: f"{c.mode} {c.user} {c.namespace}")


def _every_call_agrees(doc: dict[str, Any], label: Callable[[Call], str]) -> None:
    """Each call of ``doc`` on the wire of a lab of it gives what check predicts."""
    s = make(doc)
    running = started_lab(s)
    try:
        checks = verify_calls(running, {c.user: s.world.password_of(c.user) for c in s.calls})
    finally:
        running.close()
    for chk in checks:
        failed = chk.predicted.failed
        assert chk.agrees, (
            f"{label(chk.call)}: check predicts "
            f"{chk.predicted.result} at {failed.id if failed else '-'} "
            f"({failed.detail if failed else ''}); the wire gave {chk.wire} {chk.note}")


# ---- Vista to Server 2025: WFAS, remote UAC and the DCOM hardening, on the wire -----------

MODERN = [n for n in oses.NAMES if oses.get(n).modern]
WMI_GROUP_ON = ('netsh advfirewall firewall set rule group="Windows Management Instrumentation '
                '(WMI)" new enable=yes')


@st.composite
def modern_scenario(draw: st.DrawFn) -> dict[str, Any]:
    """A Vista-or-later B whose WFAS, remote UAC and DCOM hardening vary as administrators
    set them (Learn "Connecting to WMI Remotely Starting with Windows Vista", KB 951016,
    KB 5004442), called by a Windows or XP client at its default or an explicit level."""
    net = fresh_net()
    os_b = draw(st.sampled_from(MODERN))
    spec = oses.get(os_b)
    a_ip = f"{net}.1"
    netsh = draw(st.sampled_from([
        [], [WMI_GROUP_ON], [WMI_GROUP_ON.replace("enable=yes", f"enable=yes remoteip={a_ip}")],
        [WMI_GROUP_ON.replace("enable=yes", "enable=yes remoteip=10.254.0.0/16")],
        [WMI_GROUP_ON, "netsh advfirewall firewall add rule name=NoA dir=in action=block "
         f"protocol=TCP localport=135 remoteip={a_ip}"],
        [WMI_GROUP_ON, "netsh advfirewall firewall add rule name=NoDyn dir=in action=block "
         "protocol=TCP localport=49152-65535 remoteip=localsubnet"],
        ["netsh advfirewall firewall add rule name=EPM dir=in action=allow protocol=TCP "
         "localport=RPC-EPMap", "netsh advfirewall firewall add rule name=RPC dir=in "
         "action=allow protocol=TCP localport=RPC"],
        ["netsh advfirewall firewall add rule name=EPM dir=in action=allow protocol=TCP "
         "localport=135", "netsh advfirewall firewall add rule name=Guess dir=in "
         "action=allow protocol=TCP localport=49152-49200"],
        ["netsh advfirewall set currentprofile firewallpolicy allowinbound,allowoutbound"],
        ["netsh firewall set service type=REMOTEADMIN mode=ENABLE"],
    ]))
    registry: dict[str, Any] = {}
    if draw(st.booleans()):
        registry["LocalAccountTokenFilterPolicy"] = 1
    if draw(st.booleans()):
        registry["FilterAdministratorToken"] = 1
    require = draw(st.sampled_from([None, 0, 1]))
    if require is not None:
        registry["RequireIntegrityActivationAuthenticationLevel"] = require
    months = [m for m in ("2021-05", "2021-09", "2022-08", "2023-04", spec.last_update)
              if spec.released <= m <= spec.last_update]
    b: dict[str, Any] = {"os": os_b, "domain": "CORP", "address": f"{net}.2/24",
                         "netsh": netsh, "registry": registry,
                         "updates": draw(st.sampled_from(months)),
                         "accounts": {"local": "L0cal!", "Administrator": "Adm1n!"},
                         "groups": {"Administrators": ["B\\local", "B\\Administrator",
                                                       "CORP\\Domain Admins"]}}
    os_a = draw(st.sampled_from(["xp-sp2", "10", "11", "7-sp1"]))
    call: dict[str, Any] = {"from": "A", "to": "B", "mode": draw(st.sampled_from(
        ["sync", "semisync"])), "user": draw(st.sampled_from(
            ["CORP\\admin", "B\\local", "B\\Administrator"]))}
    level = draw(st.sampled_from([None, None, "connect", "pkt", "integrity", "privacy"]))
    if level is not None:
        call["auth_level"] = level
    return {"domains": {"CORP": copy.deepcopy(CORP)},
            "hosts": {"A": {"os": os_a, "domain": "CORP", "address": f"{a_ip}/24"}, "B": b},
            "calls": [call]}


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(modern_scenario())
def test_modern_hosts_agree_with_check_on_the_wire(doc: dict[str, Any]) -> None:
    _every_call_agrees(doc, lambda c: f"{doc['hosts']['B']} {c.user} {c.auth_level}")
