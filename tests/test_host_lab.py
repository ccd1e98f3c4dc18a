"""Loopback address map, firewall gate and client-error mapping (no sockets, no root)."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import base_doc, call, make
from wmilab import flow, steps
from wmilab.errors import ConfigError
from wmilab.host import client_errors
from wmilab.host.gate import Gate, default_client
from wmilab.host.service_sockets import is_service_socket, service_socket
from wmilab.lab.loopback import LoopbackMap


def test_loopback_keeps_the_last_three_octets() -> None:
    m = LoopbackMap({"A": IPv4Address("192.168.10.1"), "B": IPv4Address("192.168.10.2")})
    assert m.loopback("B") == IPv4Address("127.168.10.2")
    assert m.host_at("127.168.10.2") == "B"
    assert m.scenario_address("127.168.10.2") == IPv4Address("192.168.10.2")
    assert m.host_at("127.0.0.1") is None and m.scenario_address("127.0.0.1") is None


def test_loopback_collisions_move_to_the_next_free_address_deterministically() -> None:
    addrs = {"B": IPv4Address("10.1.2.3"), "A": IPv4Address("192.1.2.3"),
             "C": IPv4Address("10.0.0.1")}
    m1, m2 = LoopbackMap(addrs), LoopbackMap(dict(reversed(list(addrs.items()))))
    assert m1.items() == m2.items()
    assert m1.loopback("A") == IPv4Address("127.1.2.3")  # hosts are placed in name order
    assert m1.loopback("B") == IPv4Address("127.1.2.4")
    # 127.0.0.0/24 (127.0.0.1) is left to unconfigured clients.
    assert m1.loopback("C") == IPv4Address("127.0.1.0")
    with pytest.raises(ConfigError, match="no host 'D'"):
        m1.loopback("D")


@given(st.dictionaries(st.text("ABCDEFGH", min_size=1, max_size=3),
                       st.integers(0, 2**32 - 1).map(IPv4Address), max_size=12))
def test_loopback_map_is_one_to_one_and_reversible(addrs: dict[str, IPv4Address]) -> None:
    m = LoopbackMap(addrs)
    loops = [m.loopback(h) for h in addrs]
    assert len(set(loops)) == len(loops)
    for host, loop in zip(addrs, loops, strict=True):
        assert loop.packed[0] == 127 and loop.packed[:3] != b"\x7f\x00\x00"
        assert m.host_at(loop) == host and m.scenario_address(loop) == addrs[host]


def _doc(netsh_b: list[str]) -> dict[str, Any]:
    from conftest import base_doc

    doc = base_doc()
    doc["hosts"]["B"]["netsh"] = netsh_b
    doc["hosts"]["D"] = {"os": "xp-sp2", "domain": "CORP", "address": "10.9.9.9/24"}
    doc["calls"] = [call(), {**call(), "from": "D"}]
    return doc


def test_gate_asks_the_firewall_model_with_the_peer_s_scenario_address() -> None:
    s = make(_doc(["netsh firewall set service RemoteAdmin enable scope=SUBNET"]))
    gate = Gate(s.world, "B", client_host="A")
    # A (same subnet) via its loopback address, and an unknown peer standing for A.
    for peer in ("127.168.10.1", "127.0.0.1"):
        d = gate.decide(peer, 135)
        assert d.allowed and d.source == IPv4Address("192.168.10.1") and d.source_host == "A"
    # D is on another subnet: the same scope the model applies refuses it, on both ports.
    for port in (135, 1025):
        d = gate.decide("127.9.9.9", port)
        assert not d.allowed and d.source_host == "D"
    # The gate and flow agree for both calls.
    for c in s.calls:
        failed = flow.evaluate(s.world, c).failed
        blocked = failed is not None and failed.id == steps.C1_RPCSS
        assert gate.decide(str(gate.addresses.loopback(c.source)), 135).allowed is not blocked


def test_gate_asks_the_caller_s_outbound_rules_but_not_of_the_emulated_callback() -> None:
    # A (Server 2019) blocks its outbound RPC to B (Learn "Netsh AdvFirewall Firewall
    # Commands", dir=out action=block); B (2022) admits A inbound.
    doc = base_doc(os_a="2019", os_b="2022")
    doc["hosts"]["A"]["commands"] = [
        "netsh advfirewall firewall add rule name=NoRpc dir=out action=block protocol=TCP "
        "remoteport=135 remoteip=192.168.10.2"]
    doc["hosts"]["B"]["commands"] = [
        'netsh advfirewall firewall set rule group="Windows Management Instrumentation (WMI)" '
        "new enable=yes"]
    doc["calls"] = [call()]
    s = make(doc)
    gate = Gate(s.world, "B", client_host="A")
    failed = flow.evaluate(s.world, s.calls[0]).failed
    assert failed is not None and failed.id == steps.C1_RPCSS and failed.host == "A"
    # From A's loopback address, and from an unknown address standing for A: refused on 135,
    # with the rule named; the WMI range is not in the rule.
    wmi = s.world.host("B").wmi_ports.spans[0][0]
    for peer in ("127.168.10.1", "127.0.0.1"):
        d = gate.decide(peer, 135, 50000)
        assert not d.allowed and "A's outbound rules" in d.rule and "NoRpc" in d.rule
        assert gate.decide(peer, wmi, 50000).allowed
    # B's inbound rules alone admit it: the netns lab leaves A's side to nftables.
    assert Gate(s.world, "B", client_host="A", outbound=False).decide("127.168.10.1", 135).allowed
    # An emulated service's own connection (the callback) is not the calling program.
    with service_socket("127.168.10.1") as sock:
        host, port = sock.getsockname()[:2]
        assert is_service_socket(host, port)
        assert gate.decide(host, 135, port).allowed
    assert not is_service_socket(host, port)
    assert not gate.decide(host, 135, port).allowed


def test_gate_default_client_and_bad_client() -> None:
    s = make(_doc([]))
    assert default_client(s.world, "B", [(c.source, c.target) for c in s.calls]) == "A"
    assert default_client(s.world, "A", [(c.source, c.target) for c in s.calls]) is None
    assert not Gate(s.world, "B", client_host="A").decide("127.0.0.1", 135).allowed
    with pytest.raises(ConfigError, match="--client 'Z'"):
        Gate(s.world, "B", client_host="Z")


@pytest.mark.parametrize(("exc", "code"), [
    (ConnectionResetError(104, "Connection reset by peer"), 0x800706BA),
    (ConnectionRefusedError(111, "refused"), 0x800706BA),
    (TimeoutError(), 0x800706BA),
    (OSError(113, "No route to host"), 0x800706BA),  # the caller's output chain rejects
    (Exception("Could not connect: [Errno 113] No route to host"), 0x800706BA),
    (Exception("Could not connect: [Errno 104] Connection reset by peer"), 0x800706BA),
    (Exception("rpc_s_access_denied"), 0x80070005),
    (Exception("WMI Session Error: code: 0x80041003 - WBEM_E_ACCESS_DENIED"), 0x80041003),
    (Exception("something else"), None),
])
def test_client_errors_map_exceptions(exc: BaseException, code: int | None) -> None:
    assert client_errors.from_exception(exc) == code


def test_client_errors_map_impacket_and_aiowmi_exceptions() -> None:
    from aiowmi.exceptions import RpcSecPkgError, WbemExAccessDenied
    from impacket.dcerpc.v5.dcom.wmi import DCERPCSessionError
    from impacket.dcerpc.v5.rpcrt import DCERPCException

    assert client_errors.from_exception(DCERPCException(error_code=5)) == 0x80070005
    assert client_errors.from_exception(DCERPCSessionError(error_code=0x8004100E)) == 0x8004100E
    assert client_errors.from_exception(WbemExAccessDenied(0x80041003)) == 0x80041003
    assert client_errors.from_exception(RpcSecPkgError(1825)) == 0x80070721


def test_lab_for_scenario_gives_each_host_the_first_caller_as_client() -> None:
    from wmilab.lab.loopback import LoopbackLab

    doc = _doc([])
    doc["calls"].append({**call(), "from": "B", "to": "A"})
    lab = LoopbackLab.for_scenario(make(doc))
    assert lab.servers["B"].gate.client_host == "A"
    assert lab.servers["A"].gate.client_host == "B"
    assert lab.servers["D"].gate.client_host is None
    assert lab.servers["B"].address == "127.168.10.2"
    forced = LoopbackLab.for_scenario(make(doc), client_host="D")
    assert {s.gate.client_host for s in forced.servers.values()} == {"D"}
