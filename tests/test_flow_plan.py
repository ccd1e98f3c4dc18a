"""The compiled call plan (flow.HostPlan) answers exactly as the steps' own questions.

A host's firewall steps are compiled once into tables of finished steps per source address,
and the security steps are remembered per world without A's address. These tests draw random
hosts (every OS, XP and WFAS commands with scopes, restricted RPC ranges, standalone WMI,
the firewall off or without exceptions) and hold each table, for every address around its
edges, to the step's question asked directly; and every call between such hosts to a walk
that asks every step's question afresh.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import CORP, make
from wmilab import flow, steps
from wmilab.model import firewall as fwm
from wmilab.model import oses
from wmilab.model import wfas as wf
from wmilab.model.addresses import SourceTable
from wmilab.model.decision import Check
from wmilab.model.firewall import EffectiveFirewall
from wmilab.model.hardening import PKT_INTEGRITY
from wmilab.model.world import HostModel, World
from wmilab.scenario import Call, ScenarioError

UNSECAPP = r"%windir%\system32\wbem\unsecapp.exe"
APP = r"C:\Program Files\Tool\tool.exe"
SVCHOST = r"%SystemRoot%\system32\svchost.exe"
WMI_GROUP = 'netsh advfirewall firewall set rule group="Windows Management Instrumentation (WMI)"'
RA_GROUP = 'netsh advfirewall firewall set rule group="Remote Administration"'
# Addresses in, beside and far from the hosts' networks (10.60.0.0/24 and 10.60.1.0/24).
ADDRESSES = ["10.60.0.7", "10.60.0.0/25", "10.60.1.0/24", "10.60.0.200", "192.168.9.9",
             "10.0.0.0/8", "LocalSubnet"]
RESTRICTED = {"Ports": ["5000-5003"], "PortsInternetAvailable": "Y", "UseInternetPorts": "Y"}


@st.composite
def _xp_scope(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["", "ALL", "SUBNET", "CUSTOM", "CUSTOM"]))
    if kind != "CUSTOM":
        return f" scope={kind}" if kind else ""
    picked = draw(st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=3, unique=True))
    return " scope=CUSTOM addresses=" + ",".join(picked)


@st.composite
def _remoteip(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["", "any", "list", "list"]))
    if kind != "list":
        return f" remoteip={kind}" if kind else ""
    picked = draw(st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=3, unique=True))
    return " remoteip=" + ",".join(picked)


@st.composite
def _xp_command(draw: st.DrawFn) -> str:
    scope = draw(_xp_scope())
    port = draw(st.sampled_from([135, 5000, 5001, 5002, 5003, 1025]))
    return draw(st.sampled_from([
        f"netsh firewall set service RemoteAdmin enable{scope}",
        f"netsh firewall add portopening protocol=tcp port={port} name=P{port}{scope}",
        f"netsh firewall add allowedprogram program={UNSECAPP} name=U{scope}",
        f'netsh firewall add allowedprogram program="{APP}" name=Tool{scope}',
        f"netsh firewall add allowedprogram program={SVCHOST} name=Svc{scope}",
        "netsh firewall set opmode mode=DISABLE",
        "netsh firewall set opmode mode=ENABLE exceptions=DISABLE",
    ]))


@st.composite
def _wfas_command(draw: st.DrawFn) -> str:
    remote = draw(_remoteip())
    action = draw(st.sampled_from(["allow", "allow", "block"]))
    ports = draw(st.sampled_from(["135", "RPC", "RPC-EPMap", "5000-5001", "5000-5003",
                                  "5000-5001", "RPC", "49152-65535", "24158", "1025-5000"]))
    who = draw(st.sampled_from(["", "", f" program={SVCHOST} service=winmgmt",
                                f" program={SVCHOST} service=rpcss", f" program={UNSECAPP}",
                                f' program="{APP}"']))
    name = draw(st.integers(0, 99))
    return draw(st.sampled_from([
        f"{WMI_GROUP} new enable=yes{remote}",
        f"{RA_GROUP} new enable=yes{remote}",
        f"netsh advfirewall firewall add rule name=R{name} dir=in action={action} "
        f"protocol=TCP localport={ports}{who}{remote}",
        f"netsh advfirewall firewall add rule name=R{name} dir=in action={action} "
        f"protocol=TCP localport={ports}{who}{remote}",
        "netsh advfirewall set currentprofile state off",
        "netsh advfirewall set currentprofile firewallpolicy allowinbound,allowoutbound",
        f"netsh advfirewall firewall add rule name=O{name} dir=out action=block protocol=TCP"
        f"{draw(st.sampled_from(['', ' remoteport=135', ' remoteport=49152-65535']))}{remote}",
        "netsh advfirewall set currentprofile firewallpolicy blockinbound,blockoutbound",
        'netsh advfirewall firewall set rule name="Windows Management Instrumentation '
        '(WMI-Out)" new enable=yes',
    ]))


@st.composite
def _host(draw: st.DrawFn, i: int) -> dict[str, Any]:
    os = draw(st.sampled_from(oses.NAMES))
    modern = oses.get(os).modern
    commands = draw(st.lists(_wfas_command() if modern else _xp_command(), max_size=6))
    host: dict[str, Any] = {"os": os, "domain": "CORP",
                            "address": f"10.60.{i % 2}.{10 + i}/24", "netsh": commands}
    registry: dict[str, Any] = {}
    if draw(st.booleans()):
        registry.update(RESTRICTED)
    if modern:
        if draw(st.booleans()):
            registry["RequireIntegrityActivationAuthenticationLevel"] = draw(st.sampled_from([0, 1]))
        if draw(st.booleans()):
            registry["AllowAnonymousCallback"] = 1
        if draw(st.booleans()):
            registry["UnsecAppAccessControlDefault"] = 1
        if draw(st.booleans()):
            host["commands"] = ["winmgmt /standalonehost"]
    if registry:
        host["registry"] = registry
    return host


@st.composite
def fleet(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(2, 4))
    hosts = {f"H{i}": draw(_host(i)) for i in range(n)}
    if draw(st.booleans()):
        hosts["H0"]["domain"] = None
        del hosts["H0"]["domain"]
        hosts["H0"]["workgroup"] = "WORKGROUP"
    calls = []
    for _ in range(draw(st.integers(1, 8))):
        a, b = draw(st.sampled_from(sorted(hosts))), draw(st.sampled_from(sorted(hosts)))
        mode = draw(st.sampled_from(["sync", "semisync", "async", "async"]))
        call: dict[str, Any] = {
            "from": a, "to": b, "mode": mode,
            "user": draw(st.sampled_from(["CORP\\admin", "CORP\\bob", "CORP\\Admin"])),
            "namespace": draw(st.sampled_from(["root\\cimv2", "root\\cimv2", "ROOT\\CIMV2",
                                               "root\\default"])),
        }
        if mode == "async":
            call["sink"] = draw(st.sampled_from(["unsecapp", "unsecapp", APP]))
        level = draw(st.sampled_from([None, None, "connect", "integrity", "privacy"]))
        if level is not None:
            call["auth_level"] = level
        calls.append(call)
    return {"domains": {"CORP": copy.deepcopy(CORP)}, "hosts": hosts, "calls": calls}


def _load(doc: dict[str, Any]) -> Any:
    try:
        return make(doc)
    except ScenarioError:
        assume(False)
        raise


def _probes(*tables: SourceTable[Any]) -> list[int]:
    """Every address at and beside the edges of the tables' spans, and a few others."""
    out = {0, 0xFFFFFFFF, int(IPv4Address("10.60.0.7")), int(IPv4Address("10.60.1.77")),
           int(IPv4Address("172.16.0.1"))}
    for t in tables:
        for lo, hi, _ in t.spans:
            out.update(x for x in (lo - 1, lo, hi, hi + 1) if 0 <= x <= 0xFFFFFFFF)
    return sorted(out)


def _hold(table: SourceTable[flow.Step], asked: Callable[[IPv4Address], flow.Step],
          probes: list[int]) -> int:
    """Every compiled answer equals the question's; returns how many were compiled."""
    compiled = 0
    for x in probes:
        expected = asked(IPv4Address(x))
        got = table.const or table.get(x)
        if table.const is not None:
            assert table.const == expected, (x, table.const, expected)
        if got is not None:
            assert got == expected, (IPv4Address(x), got, expected)
            compiled += 1
    return compiled


def _tables(h: HostModel) -> list[SourceTable[flow.Step]]:
    """The host's compiled tables (a plan compiles a table when it is asked the second time)."""
    p = flow.plan(h)
    for _ in range(2):
        tables = [p.rpcss(h), p.wmi(h), p.resolver(h), p.sink(h, "unsecapp"), p.sink(h, APP)]
    return tables


def _hold_host(h: HostModel) -> None:
    tables = _tables(h)
    probes = _probes(*tables)

    def asked(sid: str, question: Callable[[IPv4Address], Check]) -> Callable[
            [IPv4Address], flow.Step]:
        return lambda src: flow._step(sid, h, question(src))

    # TCP 135's table always answers some source itself (the scope's, or every source).
    assert _hold(tables[0], asked(steps.C1_RPCSS, lambda src: steps.rpcss_port(h, src)),
                 probes) > 0
    _hold(tables[1], asked(steps.C1_WMI_PORT, lambda src: steps.wmi_port(h, src)), probes)
    _hold(tables[2], asked(steps.C2_RESOLVER_PORT, lambda src: steps.rpcss_port(h, src)),
          probes)
    for table, sink in ((tables[3], "unsecapp"), (tables[4], APP)):
        program = steps.sink_program(sink)
        _hold(table, asked(steps.C2_SINK_PORT,
                           lambda src, prog=program: steps.sink_port(h, src, prog)), probes)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet())
def test_each_compiled_firewall_step_is_the_steps_own_answer(doc: dict[str, Any]) -> None:
    s = _load(doc)
    for name in s.world.configs:
        _hold_host(s.world.host(name))


def _dynamic_allowed(h: HostModel, src: IPv4Address, program: str, service: str) -> bool:
    """The dynamic-port rule from its parts, independently of the compiled Admission.

    XP SP2 / 2003: admitted on every port the program may get (KB 154596: a program exception,
    or port openings covering the range). WFAS: no block rule on any port of the range holds
    the source, and (default inbound Block) an allow rule that holds it covers every port."""
    ports, fw = h.rpc_ports, h.firewall
    if isinstance(fw, EffectiveFirewall):
        return all(h.inbound(src, port, program).allowed
                   for lo, hi in ports.spans for port in range(lo, hi + 1))
    assert isinstance(fw, wf.EffectiveWfas)
    if not fw.enabled:
        return True
    touching = [r for r in fw.rules if r.matches_identity("TCP", program, service)
                and r.local_ports.intersects(ports, fw.rpc)]
    if any(r.action == "block" and r.remote.matches(src, h.subnet) for r in touching):
        return False
    if not fw.inbound_block:
        return True
    return any(r.action == "allow" and r.remote.matches(src, h.subnet)
               and r.local_ports.covers(ports, fw.rpc) for r in touching)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet())
def test_dynamic_port_decisions_follow_the_rule(doc: dict[str, Any]) -> None:
    s = _load(doc)
    for name in s.world.configs:
        h = s.world.host(name)
        if isinstance(h.firewall, EffectiveFirewall) and len(h.rpc_ports) > 8:
            continue  # per-port oracle: only on a restricted range
        tables = _tables(h)
        for x in _probes(tables[1], tables[3]):
            src = IPv4Address(x)
            assert steps.sink_port(h, src, steps.sink_program("unsecapp")).ok == \
                _dynamic_allowed(h, src, steps.sink_program("unsecapp"), "")
            if not h.wmi_host.standalone:
                assert steps.wmi_port(h, src).ok == _dynamic_allowed(h, src, fwm.SVCHOST,
                                                                     "winmgmt")


def _walk(world: World, call: Call) -> tuple[flow.Step, ...]:
    """Every step's question asked afresh, in the order of the step table (no plan, no memo)."""
    a, b = world.host(call.source), world.host(call.target)
    out: list[flow.Step] = []

    def add(sid: str, host: HostModel, c: Check) -> bool:
        out.append(flow._step(sid, host, c))
        return c.ok

    if not steps.client_dcom(a).ok:  # the step is listed only when it refuses
        add(steps.C1_CLIENT_DCOM, a, steps.client_dcom(a))
        return tuple(out)
    if not steps.outbound(a, b.ip, steps.EPM_PORTS).ok:  # A's own firewall first
        add(steps.C1_RPCSS, a, steps.outbound(a, b.ip, steps.EPM_PORTS))
        return tuple(out)
    if not add(steps.C1_RPCSS, b, steps.rpcss_port(b, a.ip)):
        return tuple(out)
    password = world.password_of(call.user) if call.password is None else call.password
    logon = steps.logon(world, b.name, call.user, lambda p: password is not None and p == password)
    if not add(steps.C1_LOGON, b, Check(logon.ok, logon.reason, logon.kind)) or logon.token is None:
        return tuple(out)
    level = a.activation_level(call.auth_level_value)[0]
    if not add(steps.C1_ACTIVATION, b, steps.activation(b, logon.token, level, str(a.ip))):
        return tuple(out)
    if not steps.outbound(a, b.ip, b.wmi_ports).ok:
        add(steps.C1_WMI_PORT, a, steps.outbound(a, b.ip, b.wmi_ports))
        return tuple(out)
    if not add(steps.C1_WMI_PORT, b, steps.wmi_port(b, a.ip)):
        return tuple(out)
    call_level = call.auth_level_value if b.wmi_host.standalone else None
    if not add(steps.C1_ACCESS, b, steps.access(b, logon.token, "wmi", call_level)):
        return tuple(out)
    request, how = b.wmi_call_level(a, call.auth_level_value)
    encrypted = b.wmi.requires_encryption(call.namespace)
    check = steps.namespace_login(b, logon.token, call.namespace, request if encrypted else None)
    if not check.ok and check.where == "encryption":
        check = Check(False, f"{check.reason} ({how})", check.where)
    if not add(steps.C1_NAMESPACE, b, check) or call.mode != "async":
        return tuple(out)
    rungs = steps.callback_ladder(world, b.name, a.name, call.namespace)
    refusal = steps.callback_identity(world, b.name, a.name, call.namespace, rungs)
    if not refusal.ok:
        add(steps.C2_IDENTITY, b, refusal)
        return tuple(out)
    out.append(flow.evaluate(world, call).steps[len(out)])  # the identity's wording: flow's
    assert out[-1].id == steps.C2_IDENTITY and out[-1].ok
    out_b = steps.outbound(b, a.ip, steps.EPM_PORTS, fwm.SVCHOST, "winmgmt")
    if not out_b.ok:
        add(steps.C2_RESOLVER_PORT, b, out_b)
        return tuple(out)
    if not add(steps.C2_RESOLVER_PORT, a, steps.rpcss_port(a, b.ip)):
        return tuple(out)
    out_b = steps.outbound(b, a.ip, a.rpc_ports, fwm.SVCHOST, "winmgmt")
    if not out_b.ok:
        add(steps.C2_SINK_PORT, b, out_b)
        return tuple(out)
    if not add(steps.C2_SINK_PORT, a, steps.sink_port(a, b.ip, steps.sink_program(call.sink))):
        return tuple(out)
    add(steps.C2_ACCESS, a, steps.callback_access(a, rungs, steps.sink_program(call.sink), b.name))
    return tuple(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet())
def test_every_verdict_is_the_walk_of_the_steps_questions(doc: dict[str, Any]) -> None:
    s = _load(doc)
    for c in s.calls:
        v = flow.evaluate(s.world, c)
        fresh = World(s.world.domain_specs, dict(s.world.configs))
        assert v.steps == _walk(fresh, c), c
        # Asked again (memo and plans warm) and in a world that shares the plans: the same.
        assert flow.evaluate(s.world, c) == v
        edited = s.world.edit_host(c.target, netsh=s.world.configs[c.target].netsh)
        assert flow.evaluate(edited, c).steps == v.steps
        assert v.ok == all(x.ok for x in v.steps)
        assert (v.failed is None) == v.ok


def test_a_hardening_refusal_names_each_caller_without_a_memo_per_pair() -> None:
    """B enforces KB 5004442; XP callers at connect level are refused, each named in B's event
    10036 text, and the world remembers one entry for B and the account, not one per caller;
    Windows 11 callers, before and after them, get in."""
    hosts: dict[str, Any] = {f"A{i}": {"os": "xp-sp2" if 0 < i < 6 else "11", "domain": "CORP",
                                       "address": f"10.61.0.{10 + i}/24"} for i in range(7)}
    hosts["B"] = {"os": "2022", "domain": "CORP", "address": "10.61.0.2/24",
                  "netsh": [f"{WMI_GROUP} new enable=yes"]}
    s = make({"domains": {"CORP": copy.deepcopy(CORP)}, "hosts": hosts,
              "calls": [{"from": f"A{i}", "to": "B", "user": "CORP\\admin"} for i in range(7)]})
    before = len(s.world.memo)
    for i, c in enumerate(s.calls):
        v = flow.evaluate(s.world, c)
        if i in (0, 6):
            assert v.ok
            continue
        assert v.failed is not None and v.failed.id == steps.C1_ACTIVATION
        assert v.failed.where == "hardening" and f"10.61.0.{10 + i}" in v.failed.detail
        assert s.world.host(c.source).activation_level(None)[0] < PKT_INTEGRITY
    # The account's password, and B's entries for refused and admitted callers.
    assert len(s.world.memo) - before <= 3


def test_an_allow_rule_that_covers_the_range_admits_past_one_that_covers_part() -> None:
    """WFAS, dynamic port: a source held by an allow rule for part of the range and by a later
    one for all of it gets in (the covering rule admits); one held by the partial rule alone
    is refused, the partial rule named."""
    hosts = {"A": {"os": "11", "domain": "CORP", "address": "10.63.0.1/24"},
             "C": {"os": "11", "domain": "CORP", "address": "10.63.0.3/24"},
             "B": {"os": "2022", "domain": "CORP", "address": "10.63.0.2/24",
                   "registry": RESTRICTED, "netsh": [
                       "netsh advfirewall firewall add rule name=EPM dir=in action=allow "
                       "protocol=TCP localport=135",
                       "netsh advfirewall firewall add rule name=Part dir=in action=allow "
                       "protocol=TCP localport=5000-5001",
                       "netsh advfirewall firewall add rule name=Whole dir=in action=allow "
                       "protocol=TCP localport=RPC remoteip=10.63.0.1"]}}
    s = make({"domains": {"CORP": copy.deepcopy(CORP)}, "hosts": hosts,
              "calls": [{"from": a, "to": "B", "user": "CORP\\admin"} for a in "AC"]})
    assert flow.evaluate(s.world, s.calls[0]).ok
    v = flow.evaluate(s.world, s.calls[1])
    assert v.failed is not None and v.failed.id == steps.C1_WMI_PORT and "Part" in v.failed.detail


def test_a_plan_is_kept_with_its_model_and_leaves_no_cycle() -> None:
    hosts = {"A": {"os": "11", "domain": "CORP", "address": "10.62.0.1/24"},
             "B": {"os": "2022", "domain": "CORP", "address": "10.62.0.2/24"}}
    s = make({"domains": {"CORP": copy.deepcopy(CORP)}, "hosts": hosts,
              "calls": [{"from": "A", "to": "B", "user": "CORP\\admin"}]})
    flow.evaluate(s.world, s.calls[0])
    b = s.world.host("B")
    assert isinstance(b.plan, flow.HostPlan)
    edited = s.world.edit_host("B", netsh=(f"{WMI_GROUP} new enable=yes",))
    assert flow.evaluate(edited, s.calls[0]).ok and not flow.evaluate(s.world, s.calls[0]).ok
    assert edited.host("A").plan is s.world.host("A").plan  # shared with the model
    assert edited.host("B").plan is not b.plan
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            w = s.world.edit_host("B", netsh=(f"{WMI_GROUP} new enable=yes remoteip=10.62.0.1",))
            assert flow.evaluate(w, s.calls[0]).ok
            del w
        assert gc.collect() == 0
    finally:
        gc.enable()
