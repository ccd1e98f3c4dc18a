"""Issue 8 on the wire: impacket (and wmilab's own sink for async calls) against emulated
hosts gets what `flow` predicts for dynamic ports, launch vs activation and Guest callbacks.

impacket dials port 135, so these tests need root (or a low ip_unprivileged_port_start); they
are skipped otherwise, and fail under root. The WMI service's port is drawn from B's range by
the emulated host; a scripted random source makes the draw known to the test.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from conftest import make, needs_root, remote_admin_pair, started_lab
from test_host_async import check_against_flow, run_async
from test_xp_fidelity import PORT135, RESTRICTED, _bob, _workgroup_a, opening
from wmilab import flow
from wmilab.host.server import HostBindError
from wmilab.lab.verify import ThreadedLab, impacket_query
from wmilab.scenario import Scenario

pytestmark = pytest.mark.slow

PASSWORDS = {"CORP\\admin": "Adm1n!", "CORP\\bob": "B0b!"}


class LastPort(random.Random):
    """Always draws the last port of a range (so the test knows B's WMI port)."""

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        stop = args[0] if len(args) == 1 else args[1]
        return int(stop) - 1


def _fresh(doc: dict[str, Any]) -> dict[str, Any]:
    """Move A and B of ``doc`` onto a subnet of their own (tests may run in parallel)."""
    pair = remote_admin_pair()
    for h in ("A", "B"):
        doc["hosts"][h]["address"] = pair["hosts"][h]["address"]
    return doc


def wire(s: Scenario, rng: random.Random | None = None) -> tuple[str, ThreadedLab]:
    """Run the scenario's first call with impacket; returns (result, lab) - close the lab."""
    c = s.calls[0]
    lab = started_lab(s, c.source, rng=rng)
    got, _ = impacket_query(lab.address(c.target), c.user, c.password or PASSWORDS[c.user],
                            c.namespace, c.query, c.mode)
    return got, lab


def agrees(doc: dict[str, Any], rng: random.Random | None = None) -> tuple[str, int]:
    """impacket's result equals flow's; returns it and the port B's WMI service got."""
    s = make(_fresh(doc))
    predicted = flow.evaluate(s.world, s.calls[0])
    got, lab = wire(s, rng)
    try:
        port = lab.lab.servers["B"].ports["wmi"]
    finally:
        lab.close()
    assert port in s.world.host("B").rpc_ports
    assert got == predicted.result, (predicted.failed, got)
    return got, port


class FirstPort(random.Random):
    """Always draws the first port of a range: the port a rule for its start would guess."""

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        return 0 if len(args) == 1 else int(args[0])


def test_a_single_guessed_port_is_blocked_on_the_wire() -> None:
    doc = remote_admin_pair(netsh=[PORT135, opening(1025)])
    got, port = agrees(doc, LastPort())
    assert got == "0x800706BA" and port != 1025


@pytest.mark.parametrize("os_b, netsh, guessed", [
    ("xp-sp2", [PORT135, opening(1025)], range(1025, 1026)),
    ("2022", ["netsh advfirewall firewall add rule name=EPM dir=in action=allow protocol=TCP "
              "localport=135",
              "netsh advfirewall firewall add rule name=Guess dir=in action=allow "
              "protocol=TCP localport=49152-49200"], range(49152, 49201)),
])
def test_the_wmi_port_is_never_one_a_rule_guessed(os_b: str, netsh: list[str],
                                                  guessed: range) -> None:
    # The draw would land on the range's first port, which the rule opens; check refuses
    # (a rule for part of the range is no rule for WMI, KB 154596), and so must the wire.
    doc = remote_admin_pair(os=os_b, netsh=netsh)
    if os_b != "xp-sp2":
        doc["hosts"]["B"]["updates"] = "2021-09"
        doc["hosts"]["A"]["os"] = "10"
    got, port = agrees(doc, FirstPort())
    assert got == "0x800706BA" and port not in guessed


def test_a_restricted_range_with_every_port_open_works_on_the_wire() -> None:
    doc = remote_admin_pair(registry=dict(RESTRICTED),
                            netsh=[PORT135, *(opening(p) for p in range(5000, 5010))])
    got, port = agrees(doc, random.Random(8))
    assert got == "ok" and 5000 <= port <= 5009


def test_a_restricted_range_with_the_drawn_port_closed_is_blocked_on_the_wire() -> None:
    # 5009 (the port LastPort draws) is the one left closed.
    doc = remote_admin_pair(registry=dict(RESTRICTED),
                            netsh=[PORT135, *(opening(p) for p in range(5000, 5009))])
    assert agrees(doc, LastPort()) == ("0x800706BA", 5009)


@pytest.mark.parametrize(("launch", "winmgmt", "table", "expected"), [
    (["remote activation"], "running", "launch_limits", "ok"),
    (["remote activation"], "stopped", "launch_limits", "0x80070005"),
    (["remote launch", "remote activation"], "stopped", "launch_limits", "ok"),
    (["remote launch"], "running", "launch_limits", "0x80070005"),
    (["remote launch"], "running", "wmi_launch", "0x80070005"),
    (["remote activation"], "running", "wmi_launch", "ok"),
])
def test_launch_and_activation_on_the_wire(launch: list[str], winmgmt: str, table: str,
                                           expected: str) -> None:
    got, _ = agrees(_bob(launch, winmgmt, table))
    assert got == expected


def test_a_disabled_winmgmt_on_the_wire() -> None:
    doc = remote_admin_pair(services={"winmgmt": "disabled"})
    got, _ = agrees(doc)
    assert got == "0x80070422"


@pytest.mark.parametrize("guest", [True, False])
def test_guest_mapped_callback_on_the_wire(guest: bool) -> None:
    s = make(_fresh(_workgroup_a(guest)))
    c = s.calls[0]
    try:
        run = asyncio.run(run_async(s, c))
    except HostBindError as e:
        needs_root(str(e))
    verdict = check_against_flow(s, c, run)
    assert verdict.ok is guest
    callers = set(run.result.callers)
    assert callers == ({"A\\Guest"} if guest else set()), callers
