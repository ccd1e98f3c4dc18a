"""The firewall compiled into nftables admits exactly the sources the model admits
(no root, no kernel: the rule list is read as nft reads it; test_lab_netns.py runs it)."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import base_doc, make
from wmilab import examples, steps
from wmilab.lab import nft
from wmilab.model import firewall as fw
from wmilab.model.addresses import Scope
from wmilab.model.world import HostModel
from wmilab.scenario import load

EX = examples.directory()
GP = "Network/Network Connections/Windows Firewall/Domain Profile/Windows Firewall: {}"
APP = r"C:\Program Files\Monitor\agent.exe"

# Sources: B's own subnet, the custom networks below, and addresses outside all of them.
SOURCES = [IPv4Address(a) for a in (
    "192.168.10.1", "192.168.10.77", "10.0.0.5", "10.0.1.5", "172.16.4.4", "8.8.4.4")]

NETSH = [
    "netsh firewall set service RemoteAdmin enable",
    "netsh firewall set service RemoteAdmin enable scope=SUBNET",
    "netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM "
    "addresses=10.0.0.0/24,LocalSubnet",
    "netsh firewall add portopening TCP 135 DCOM scope=CUSTOM addresses=172.16.4.4",
    "netsh firewall add portopening TCP 1025 WMI enable SUBNET",
    "netsh firewall add portopening TCP 1026 Sink enable CUSTOM 10.0.1.0/255.255.255.0",
    f'netsh firewall add allowedprogram "{APP}" Agent ENABLE CUSTOM 10.0.0.5',
    r"netsh firewall add allowedprogram %windir%\system32\wbem\unsecapp.exe UnsecApp ENABLE",
    r'netsh firewall add allowedprogram "%windir%\system32\svchost.exe" SvcHost DISABLE',
    "netsh firewall set opmode mode=ENABLE exceptions=DISABLE",
    "netsh firewall set opmode mode=DISABLE",
]
POLICIES: list[dict[str, Any]] = [
    {},
    {GP.format("Allow remote administration exception"):
     {"state": "Enabled", "addresses": "10.0.0.0/16"}},
    {GP.format("Allow remote administration exception"): {"state": "Disabled"}},
    {GP.format("Do not allow exceptions"): {"state": "Enabled"}},
    {GP.format("Define port exceptions"):
     {"state": "Enabled", "ports": ["1025:TCP:localsubnet:enabled:WMI"]}},
]


def kernel_admits(rules: list[nft.Rule], model: HostModel, source: IPv4Address,
                  port: int) -> bool:
    """What the compiled input chain does with a SYN (policy drop unless the firewall is off)."""
    if not model.firewall.enabled:
        return True
    for r in rules:  # the first rule that matches decides; no match: the drop policy
        if r.protocol == "tcp" and r.port == port and (
                r.sources is None or any(source in n for n in r.sources)):
            return r.verdict == "accept"
    return False


def _check(model: HostModel, sink: str, wmi_port: int, sink_port: int) -> None:
    rules = nft.compile_rules(model, wmi_port, (sink_port, sink))
    for port, program in model.listeners(wmi_port, (sink_port, sink)):
        for source in SOURCES:
            expected = model.inbound(source, port, program).allowed
            assert kernel_admits(rules, model, source, port) is expected, (
                port, program, source, model.inbound(source, port, program).rule)


def _ports(model: HostModel, rnd: random.Random) -> tuple[int, int]:
    """A WMI and a sink port as the host's RPC runtime would draw them (two listeners never
    share a port)."""
    wmi = model.rpc_ports.pick(rnd)
    return wmi, next(p for p in model.rpc_ports if p != wmi)


@pytest.mark.parametrize("path", sorted(EX.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_host_s_ruleset_admits_what_the_model_admits(path: Path) -> None:
    s = load(path)
    rnd = random.Random(path.name)
    for name in s.world.configs:
        model = s.world.host(name)
        for sink in (fw.UNSECAPP, fw.normalize_program(APP)):
            _check(model, sink, *_ports(model, rnd))


def _host_b(netsh: list[str], policy: dict[str, Any], os: str,
            ports: list[str] | None) -> HostModel:
    doc = base_doc(os_b=os)
    doc["hosts"]["B"]["netsh"] = netsh
    if policy:
        doc["hosts"]["B"]["policy"] = policy
    if ports:
        doc["hosts"]["B"]["registry"] = {"Ports": ports, "PortsInternetAvailable": "Y",
                                         "UseInternetPorts": "Y"}
    return make(doc).world.host("B")


# B's dynamic RPC range: the OS default, or restricted so that openings may cover it.
RANGES = [None, ["1025-1026"], ["1026", "1028"], ["1024-1027"]]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(NETSH), max_size=4), st.sampled_from(POLICIES),
       st.sampled_from(["xp-sp2", "2003-sp1"]), st.sampled_from([fw.UNSECAPP, APP]),
       st.sampled_from(RANGES), st.randoms(use_true_random=False))
def test_generated_firewalls_compile_to_the_model_s_decisions(
        netsh: list[str], policy: dict[str, Any], os: str, sink: str,
        ports: list[str] | None, rnd: random.Random) -> None:
    model = _host_b(netsh, policy, os, ports)
    _check(model, fw.normalize_program(sink), *_ports(model, rnd))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(NETSH), max_size=4), st.sampled_from(POLICIES),
       st.sampled_from(["xp-sp2", "2003-sp1"]), st.sampled_from([fw.SVCHOST, APP]),
       st.sampled_from(RANGES[1:]))
def test_a_dynamic_port_is_admitted_for_sure_when_every_port_of_its_range_is(
        netsh: list[str], policy: dict[str, Any], os: str, program: str,
        ports: list[str]) -> None:
    """The flow's question for a dynamic port (``decide_dynamic``) says yes exactly when
    the admission of every port the RPC runtime may draw says yes: so whatever port the
    netns lab's host draws, its nftables rule (an admission) agrees with `check`."""
    model = _host_b(netsh, policy, os, ports)
    prog = fw.normalize_program(program)
    for source in SOURCES:
        dynamic = model.firewall.decide_dynamic(source, model.rpc_ports, prog, model.subnet)
        every = all(model.inbound(source, p, prog).allowed for p in model.rpc_ports)
        assert dynamic.allowed is every, (source, dynamic.rule)


@given(st.sampled_from(["ALL", "SUBNET", "CUSTOM"]),
       st.lists(st.sampled_from(["LocalSubnet", "10.0.0.0/8", "10.1.2.3", "172.16.0.0/12",
                                 "192.168.10.0/255.255.255.128"]), min_size=1, max_size=3),
       st.one_of(st.sampled_from([*SOURCES, IPv4Address("192.168.10.200")]),
                 st.integers(0, 2**32 - 1).map(IPv4Address)))
def test_scope_networks_hold_exactly_the_addresses_it_matches(
        kind: str, addresses: list[str], source: IPv4Address) -> None:
    scope = Scope.parse(kind, ",".join(addresses) if kind == "CUSTOM" else None)
    subnet = IPv4Network("192.168.10.0/24")
    assert scope.matches(source, subnet) is any(source in n for n in scope.networks(subnet))


def test_the_ruleset_drops_by_default_and_names_the_rule() -> None:
    doc = base_doc()
    doc["hosts"]["B"]["netsh"] = [
        "netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM "
        "addresses=10.0.0.0/24"]
    text = nft.ruleset(make(doc).world.host("B"))
    assert "policy drop;" in text and "reject" not in text
    assert "ip saddr { 10.0.0.0/24 } tcp dport 135 accept" in text
    assert 'comment "svchost.exe: allowed by the Remote Administration exception' in text
    # The firewall off (2003 SP1's default): nothing is filtered.
    off = make(base_doc(os_b="2003-sp1")).world.host("B")
    assert "policy accept;" in nft.ruleset(off)


def test_a_program_exception_opens_the_ports_its_listener_uses() -> None:
    doc = base_doc()
    doc["hosts"]["A"]["netsh"] = [f'netsh firewall add allowedprogram "{APP}" Agent ENABLE']
    a = make(doc).world.host("A")
    sink = (2345, fw.normalize_program(APP))
    ports = {r.port for r in nft.compile_rules(a, 1500, sink) if r.protocol == "tcp"}
    assert ports == {2345}  # the sink listens there; 135 and WMI are svchost's
    assert not nft.compile_rules(a, 1500, (2345, fw.UNSECAPP))  # another sink program


def test_a_wfas_block_rule_narrower_than_the_allow_rule_is_dropped_first() -> None:
    # WFAS: a block rule wins over an allow rule (MSDocs windows/security/operating-system-
    # security/network-security/windows-firewall/rules: "block ... takes precedence").
    doc = base_doc(os_b="2022")
    doc["hosts"]["B"]["netsh"] = [
        'netsh advfirewall firewall set rule group="Windows Management Instrumentation (WMI)" '
        "new enable=yes",
        "netsh advfirewall firewall add rule name=NoA dir=in action=block protocol=TCP "
        "localport=135 remoteip=192.168.10.1"]
    model = make(doc).world.host("B")
    blocked, other = IPv4Address("192.168.10.1"), IPv4Address("192.168.10.3")
    assert not model.inbound(blocked, 135, fw.SVCHOST).allowed
    assert model.inbound(other, 135, fw.SVCHOST).allowed
    rnd = random.Random(7)
    wmi, sink = _ports(model, rnd)
    rules = nft.compile_rules(model, wmi, (sink, fw.UNSECAPP))
    assert not kernel_admits(rules, model, blocked, 135)
    assert kernel_admits(rules, model, other, 135)
    assert "ip saddr { 192.168.10.1/32 } tcp dport 135 drop" in nft.ruleset(model, wmi)
    _check(model, fw.UNSECAPP, wmi, sink)


WFAS_GROUP = ('netsh advfirewall firewall set rule group="Windows Management Instrumentation '
              '(WMI)" new enable=yes')


def _wfas_world(tmp_path: Path) -> Any:
    """Server 2022 hosts whose WFAS rules include block rules narrower than the allow rules
    (Learn "Windows Firewall with Advanced Security": a block rule wins over an allow rule),
    one with the default inbound action Allow, and three callers."""
    import tomlkit

    from conftest import CORP

    hosts: dict[str, Any] = {
        "B": {"os": "2022", "domain": "CORP", "address": "10.61.0.2/24", "netsh": [
            WFAS_GROUP,
            "netsh advfirewall firewall add rule name=NoS1 dir=in action=block protocol=TCP "
            "localport=135 remoteip=10.61.0.11",
            "netsh advfirewall firewall add rule name=NoS2 dir=in action=block protocol=TCP "
            "localport=49152-65535 remoteip=10.61.0.12"]},
        "C": {"os": "2019", "domain": "CORP", "address": "10.61.0.3/24", "netsh": [
            "netsh advfirewall set currentprofile firewallpolicy allowinbound,allowoutbound",
            "netsh advfirewall firewall add rule name=NoS3 dir=in action=block protocol=TCP "
            "localport=135 remoteip=10.61.0.13"]},
    }
    for i in (11, 12, 13):
        hosts[f"S{i - 10}"] = {"os": "11", "domain": "CORP", "address": f"10.61.0.{i}/24"}
    path = tmp_path / "wfas.toml"
    path.write_text(tomlkit.dumps({"domains": {"CORP": dict(CORP)}, "hosts": hosts,
                                   "calls": []}))
    return load(path).world


def test_wfas_block_rules_and_default_allow_compile_in_the_model_s_order(
        tmp_path: Path) -> None:
    world = _wfas_world(tmp_path)
    rnd = random.Random(5)
    for name in ("B", "C"):
        model = world.host(name)
        wmi, sink = _ports(model, rnd)
        rules = nft.compile_rules(model, wmi, (sink, fw.UNSECAPP))
        for src in ("S1", "S2", "S3"):
            ip = world.configs[src].address.ip
            for port, program in model.listeners(wmi, (sink, fw.UNSECAPP)):
                assert kernel_admits(rules, model, ip, port) is \
                    model.inbound(ip, port, program).allowed, (name, src, port)
    b, c = world.host("B"), world.host("C")
    s1, s2, s3 = (world.configs[s].address.ip for s in ("S1", "S2", "S3"))
    assert not b.rpcss_inbound(s1).allowed and b.rpcss_inbound(s2).allowed
    assert not b.wmi_inbound(s2).allowed and b.wmi_inbound(s1).allowed
    assert c.rpcss_inbound(s1).allowed and not c.rpcss_inbound(s3).allowed
    assert "ip saddr { 10.61.0.13/32 } tcp dport 135 drop" in nft.ruleset(c)


def test_the_kernel_enforces_wfas_block_rules_before_allow_rules(tmp_path: Path) -> None:
    """In network namespaces (root): a SYN from each caller to B's and C's listeners is
    dropped by nftables exactly when the model refuses it, block rules first."""
    import json
    import os
    import subprocess
    import sys

    from test_lab_netns import KERNEL_PROBE
    from wmilab.lab import netns
    from wmilab.lab.state import LabState, lab_key

    if os.geteuid() != 0:
        pytest.skip(f"needs root: {netns.root_problem()}")
    world = _wfas_world(tmp_path)
    rnd = random.Random(9)
    listeners: dict[str, list[tuple[int, str]]] = {}
    for name in ("B", "C"):
        model = world.host(name)
        wmi, sink = _ports(model, rnd)
        listeners[name] = list(model.listeners(wmi, (sink, fw.UNSECAPP)))
    path = tmp_path / "wfas.toml"
    state = LabState(scenario=str(path), key=lab_key(path), mode="netns",
                     directory=str(tmp_path))
    try:
        netns.create_network(state, world)
        for name, ls in listeners.items():
            (_rpcss, wmi_l, sink_l) = ls
            nft.apply(nft.ruleset(world.host(name), wmi_l[0], sink_l),
                      state.hosts[name]["namespace"])
        results = {}
        for src in ("S1", "S2", "S3"):
            targets = [[str(world.configs[dst].address.ip), port]
                       for dst, ls in listeners.items() for port, _prog in ls]
            done = subprocess.run(
                ["ip", "netns", "exec", state.hosts[src]["namespace"], sys.executable, "-c",
                 KERNEL_PROBE, json.dumps(targets)], capture_output=True, text=True,
                timeout=60, check=True)
            results[src] = json.loads(done.stdout)
    finally:
        netns.remove_namespaces(state)
    by_ip = {str(cfg.address.ip): name for name, cfg in world.configs.items()}
    seen = set()
    for src, rows in results.items():
        source = world.configs[src].address.ip
        for addr, port, got in rows:
            dst = world.host(by_ip[addr])
            verdict = dst.inbound(source, port, dict(listeners[dst.name])[port])
            seen.add(verdict.allowed)
            assert (got != "dropped") is verdict.allowed, (src, dst.name, port, got,
                                                          verdict.rule)
    assert seen == {True, False}


# ---- the output chain: A's outbound rules, asked per peer -----------------------------------

def _outbound_world(*commands: str) -> Any:
    doc = base_doc(os_a="2019", os_b="2022")
    doc["hosts"]["A"]["commands"] = list(commands)
    doc["hosts"]["C"] = {"os": "2022", "domain": "CORP", "address": "10.70.0.3/24"}
    return make(doc).world


def test_an_outbound_block_rule_becomes_a_drop_in_the_output_chain() -> None:
    # Learn "Netsh AdvFirewall Firewall Commands": dir=out action=block remoteip=, remoteport=.
    world = _outbound_world("netsh advfirewall firewall add rule name=NoRpc dir=out "
                            "action=block protocol=TCP remoteport=135 remoteip=192.168.10.0/24")
    a, b, c = (world.host(n) for n in "ABC")
    rules = nft.compile_outbound(a, [a, b, c])
    # Only B's 135 is refused: C is outside the rule's remoteip, the WMI range not named.
    assert [(r.dest, r.spans) for r in rules] == [(b.ip, ((135, 135),))]
    assert "NoRpc" in rules[0].why and rules[0].why.startswith("to B: ")
    text = nft.ruleset(a, peers=[b, c])
    chain = text[text.index("chain output"):]
    assert "policy accept;" in chain and "ct state established,related accept" in chain
    assert "ip daddr 192.168.10.2 tcp dport { 135 } reject with icmpx type admin-prohibited" in chain
    assert "10.70.0.3" not in chain
    # B's own rules (none outbound) compile to no drop; without peers there is none either.
    assert not nft.compile_outbound(b, [a, c])
    assert "daddr" not in nft.ruleset(a)


def test_blockoutbound_drops_the_peers_wmi_range_unless_a_rule_admits_it() -> None:
    # INetFwPolicy2::DefaultOutboundAction Block: only what an allow rule names goes out.
    world = _outbound_world(
        "netsh advfirewall set allprofiles firewallpolicy blockinbound,blockoutbound",
        "netsh advfirewall firewall add rule name=Epm dir=out action=allow protocol=TCP "
        "remoteport=135 remoteip=192.168.10.2")
    a, b, c = (world.host(n) for n in "ABC")
    rules = {(str(r.dest), r.spans) for r in nft.compile_outbound(a, [b, c])}
    assert rules == {("192.168.10.2", b.wmi_ports.spans), ("10.70.0.3", ((135, 135),)),
                     ("10.70.0.3", c.wmi_ports.spans)}
    # The rule list is the flow's answer: the same questions give the same verdicts.
    purposes: tuple[Literal["rpcss", "wmi"], ...] = ("rpcss", "wmi")
    for peer in (b, c):
        for purpose in purposes:
            refused = not steps.caller_outbound(a, peer, purpose).ok
            spans = ((135, 135),) if purpose == "rpcss" else peer.wmi_ports.spans
            assert ((str(peer.ip), spans) in rules) is refused
