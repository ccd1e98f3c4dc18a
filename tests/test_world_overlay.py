"""Edited worlds are overlays: they share what they do not change and answer like a new world."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CORP, make
from wmilab import flow, steps
from wmilab.model.world import World
from wmilab.remedy import apply, remedy
from wmilab.scenario import Call

RA = "netsh firewall set service RemoteAdmin enable"
CONN2 = ["netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135",
         "netsh firewall add allowedprogram program=%windir%\\system32\\wbem\\unsecapp.exe "
         "name=UNSECAPP"]


def _fleet() -> dict[str, Any]:
    """Five hosts: a domain member without exceptions, open ones, an XP workgroup computer."""
    return {
        "domains": {"CORP": copy.deepcopy(CORP)},
        "hosts": {
            "A": {"os": "xp-sp2", "domain": "CORP", "address": "10.4.0.1/16", "netsh": CONN2},
            "B": {"os": "xp-sp2", "domain": "CORP", "address": "10.4.0.2/16"},
            "C": {"os": "xp-sp2", "domain": "CORP", "address": "10.4.0.3/16", "netsh": [RA]},
            "D": {"os": "2003-sp1", "domain": "CORP", "address": "10.4.0.4/16"},
            "W": {"os": "xp-sp2", "workgroup": "WORKGROUP", "address": "10.4.0.5/16",
                  "netsh": [RA], "accounts": {"local": "L!"},
                  "groups": {"Administrators": ["W\\local"]}},
        },
        "calls": [
            {"from": "A", "to": "B", "user": "CORP\\admin"},
            {"from": "A", "to": "C", "user": "CORP\\admin", "mode": "async"},
            {"from": "C", "to": "D", "user": "CORP\\bob"},
            {"from": "A", "to": "W", "user": "W\\local"},
        ],
    }


def _fresh(world: World) -> World:
    """The same configuration, built from scratch (no overlay, nothing shared)."""
    return World(world.domain_specs, dict(world.configs))


def _results(world: World, calls: list[Call]) -> list[tuple[str, tuple[flow.Step, ...]]]:
    return [(v.result, v.steps) for v in (flow.evaluate(world, c) for c in calls)]


def test_an_edit_shares_the_other_hosts_and_leaves_its_base_alone() -> None:
    s = make(_fleet())
    w = s.world
    before = _results(w, s.calls)
    b = w.configs["B"]
    w2 = w.with_host(replace(b, netsh=(RA,)))
    # Models of hosts the edit does not touch are the base world's own objects.
    for name in ("A", "C", "D", "W"):
        assert w2.host(name) is w.host(name)
    assert w2.host("B") is not w.host("B")
    assert w2.directory is w.directory
    # The base world still has B as it was, and answers as before.
    assert w.configs["B"] is b
    assert _results(w, s.calls) == before
    assert flow.evaluate(w, s.calls[0]).result == "0x800706BA"
    assert flow.evaluate(w2, s.calls[0]).ok
    # The host table of the overlay reads like a full one.
    assert list(w2.configs) == list(w.configs) and len(w2.configs) == 5
    assert w2.configs["B"].netsh == (RA,) and "B" in w2.configs and "Z" not in w2.configs


def test_edits_on_an_overlay_stack_up_and_equal_a_world_built_anew() -> None:
    s = make(_fleet())
    w = s.world
    w2 = w.edit_host("B", netsh=(RA,))
    w3 = w2.edit_host("D", netsh=(RA,))
    w4 = w3.edit_host("B", netsh=())
    assert w3.configs["B"].netsh == (RA,) and w3.configs["D"].netsh == (RA,)
    assert w4.configs["B"].netsh == () and w4.configs["D"].netsh == (RA,)
    for world in (w2, w3, w4):
        assert _results(world, s.calls) == _results(_fresh(world), s.calls)


def test_a_sharing_model_change_replaces_one_directory_entry() -> None:
    s = make(_fleet())
    w = s.world
    call = s.calls[3]
    assert flow.evaluate(w, call).failed.id == steps.C1_LOGON  # type: ignore[union-attr]
    wcfg = w.configs["W"]
    w2 = w.with_host(replace(wcfg, registry={"ForceGuest": 0}))
    assert w2.directory is not w.directory
    assert w2.directory.force_guest("W") is False and w.directory.force_guest("W") is True
    # The rest of the directory is shared, not rebuilt.
    assert w2.directory.machine_sid("B") == w.directory.machine_sid("B")
    assert w2.host("A") is w.host("A")
    assert flow.evaluate(w2, call).ok
    assert _results(w2, s.calls) == _results(_fresh(w2), s.calls)
    # Editing another host on top keeps the sharing model change.
    w3 = w2.edit_host("B", netsh=(RA,))
    assert w3.directory.force_guest("W") is False
    assert _results(w3, s.calls) == _results(_fresh(w3), s.calls)


def test_an_accounts_change_builds_a_new_world() -> None:
    s = make(_fleet())
    w = s.world
    w2 = w.edit_host("W", accounts={"local": "L!", "other": "O!"})
    assert w2.directory is not w.directory
    assert w2.directory.resolve("W\\other", "W").startswith(w.directory.machine_sid("W"))
    assert _results(w2, s.calls) == _results(_fresh(w2), s.calls)


def test_a_candidate_that_comes_back_is_built_once() -> None:
    s = make(_fleet())
    w = s.world
    first = w.edit_host("B", netsh=(RA,)).host("B")
    again = w.edit_host("B", netsh=(RA,)).host("B")
    assert again is first
    other = w.edit_host("B", netsh=(RA, CONN2[0])).host("B")
    assert other is not first


def test_hosts_set_up_alike_share_one_firewall() -> None:
    doc = _fleet()
    doc["hosts"]["E"] = {"os": "xp-sp2", "domain": "CORP", "address": "10.4.0.6/16",
                         "netsh": [RA]}
    w = make(doc).world
    assert w.host("E").firewall is w.host("C").firewall
    assert w.host("E").name == "E" and w.host("E").dcom.host == "E"
    assert w.host("B").firewall is not w.host("C").firewall


NETSH = [RA, *CONN2,
         "netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM addresses=10.9.9.9",
         "netsh firewall set opmode mode=ENABLE exceptions=DISABLE"]
GP = "Network/Network Connections/Windows Firewall/Domain Profile/Windows Firewall: "


@st.composite
def _edits(draw: st.DrawFn) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        host = draw(st.sampled_from(["A", "B", "C", "D", "W"]))
        kind = draw(st.sampled_from(["netsh", "registry", "dcom", "policy", "wmi"]))
        if kind == "netsh":
            change: dict[str, Any] = {"netsh": tuple(draw(st.lists(st.sampled_from(NETSH),
                                                                   max_size=3)))}
        elif kind == "registry":
            change = {"registry": {"ForceGuest": draw(st.integers(0, 1))}}
        elif kind == "dcom":
            change = {"dcom": {"enable_dcom": draw(st.booleans())}}
        elif kind == "policy":
            change = {"policy": {GP + "Do not allow exceptions":
                                 {"state": draw(st.sampled_from(["Enabled", "Disabled"]))}}
                      if host != "W" else {}}
        else:
            change = {"wmi": {"root\\cimv2": {"CORP\\bob": ["enable account", "remote enable"]}}}
        out.append((host, change))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_edits())
def test_any_chain_of_edits_answers_like_a_world_built_anew(
        edits: list[tuple[str, dict[str, Any]]]) -> None:
    s = make(_fleet())
    w = s.world
    for host, change in edits:
        w = w.edit_host(host, **change)
    assert _results(w, s.calls) == _results(_fresh(w), s.calls)
    # And the world it started from is untouched.
    assert _results(s.world, s.calls) == _results(_fresh(s.world), s.calls)


def test_fixes_found_on_overlays_hold_on_a_world_built_anew() -> None:
    s = make(_fleet())
    for c in s.calls:
        r = remedy(s.world, c)
        if r.unfixable is not None:
            continue
        w, c2 = apply(s.world, c, r.changes)
        assert flow.evaluate(_fresh(w), c2).ok, (c.name, r.changes)
