"""Fixes are minimal, least-privilege, placed on the right computer and proven."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import base_doc, call, make
from test_flow import A_CONN2, RA
from wmilab import flow
from wmilab.fixfile import fix
from wmilab.remedy import Change, apply, remedy
from wmilab.scenario import load

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.toml"))
GP_RA = ("Network/Network Connections/Windows Firewall/Domain Profile/"
         "Windows Firewall: Allow remote administration exception")


def _remedy(d: dict[str, Any], i: int = 0) -> tuple[Any, list[Change]]:
    s = make(d)
    r = remedy(s.world, s.calls[i])
    return r, r.changes


def _proves(d: dict[str, Any], changes: list[Change], i: int = 0) -> bool:
    s = make(d)
    w, c = apply(s.world, s.calls[i], changes)
    return flow.evaluate(w, c).ok


def test_default_blocked_is_fixed_by_remote_admin_for_a_only() -> None:
    d = base_doc()
    d["calls"] = [call()]
    r, ch = _remedy(d)
    assert r.proven and r.unfixable is None
    # One change: Remote Administration on B, scoped to A's address (not a port opening
    # plus the service: the minimization drops what the service already covers).
    assert [c.commands for c in ch] == [(
        "netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM "
        "addresses=192.168.10.1",)]
    assert ch[0].host == "B" and ch[0].kind == "netsh"
    assert _proves(d, ch)


def test_async_fix_offers_semisync_first_then_opens_a_narrowly() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["calls"] = [call("async")]
    r, ch = _remedy(d)
    assert r.semisync is not None and r.semisync[0].kind == "call"
    assert len(r.semisync) == 1  # semisync needs nothing else
    cmds = [c.commands[0] for c in ch]
    assert all(c.host == "A" for c in ch)
    # The documented procedure for Connection 2 (seed; KB 875605): Remote Administration on A
    # (it opens TCP 135) and unsecapp, both for B's address only (docs/choices.md).
    assert cmds == [
        "netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM "
        "addresses=192.168.10.2",
        "netsh firewall add allowedprogram program=%windir%\\system32\\wbem\\unsecapp.exe "
        "name=UNSECAPP scope=CUSTOM addresses=192.168.10.2"]
    assert _proves(d, ch)


def test_anonymous_callback_fix_grants_anonymous_remote_access_on_a_only() -> None:
    d = base_doc()
    d["domains"]["OTHER"] = {"accounts": {"o": "O!"}, "groups": {"Domain Admins": ["o"]}}
    d["hosts"]["B"] = {"os": "2003-sp1", "domain": "OTHER", "address": "192.168.10.2/24"}
    d["hosts"]["A"]["netsh"] = list(A_CONN2)
    d["calls"] = [call("async", user="OTHER\\o")]
    r, ch = _remedy(d)
    assert [(c.host, c.kind) for c in ch] == [("A", "dcom")]
    edit = ch[0].edit
    assert edit.principal == "ANONYMOUS LOGON"  # type: ignore[union-attr]
    assert "remote access" in edit.rights  # type: ignore[union-attr]
    assert r.semisync is not None  # the safer alternative comes first
    assert _proves(d, ch)


def test_group_policy_blocker_is_fixed_by_group_policy_not_netsh() -> None:
    d = base_doc()
    d["hosts"]["B"]["policy"] = {GP_RA: {"state": "Disabled"}}
    d["calls"] = [call()]
    r, ch = _remedy(d)
    assert r.proven
    assert [c.kind for c in ch] == ["policy"]
    assert ch[0].edit.value["state"] == "Enabled"  # type: ignore[union-attr]


def test_existing_scope_is_widened_not_replaced() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [
        "netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM "
        "addresses=192.168.10.99"]
    d["calls"] = [call()]
    _, ch = _remedy(d)
    assert len(ch) == 1
    assert "addresses=192.168.10.99,192.168.10.1" in ch[0].commands[0]


def test_non_admin_gets_exactly_the_seeds_grants() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["calls"] = [call(user="CORP\\bob")]
    r, ch = _remedy(d)
    kinds = [(c.host, c.kind) for c in ch]
    assert kinds == [("B", "dcom"), ("B", "wmi")]
    launch = ch[0].edit
    # winmgmt runs, so the narrower right suffices (Remote Launch is not granted)
    assert launch.rights == ("remote activation",)  # type: ignore[union-attr]
    assert launch.principal == "CORP\\bob"  # type: ignore[union-attr]
    assert set(ch[1].edit.rights) == {"enable account", "remote enable"}  # type: ignore[union-attr]
    assert r.proven


def test_wrong_password_is_unfixable() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["calls"] = [call(password="nope")]
    r, ch = _remedy(d)
    assert r.unfixable is not None and "password" in r.unfixable
    assert ch == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_fix_on_every_example_makes_every_fixable_call_work(path: Path, tmp_path: Path) -> None:
    s = load(path)
    outcome = fix(s)
    assert outcome.still_failing == []
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(outcome.text)
    s2 = load(fixed)
    unfixable = {c.index for c, _ in outcome.unfixable}
    for c in s2.calls:
        if c.index not in unfixable:
            assert flow.evaluate(s2.world, c).ok, c.name
    text = outcome.text.lower()
    added = [ln for ln in text.splitlines() if "wmilab fix" in ln]
    for line in added:
        assert "opmode mode=disable" not in line and "mode=disable" not in line
        assert '"everyone"' not in line
    # Every applied change is written with its reason.
    for _, changes in outcome.applied:
        assert len(added) >= len(changes) > 0


def test_guest_only_policy_is_fixed_by_policy_not_registry() -> None:
    from test_flow import test_sharing_model_policy_beats_the_forceguest_registry_value as _t
    del _t
    d: dict[str, Any] = {
        "hosts": {
            "A": {"os": "xp-sp2", "workgroup": "WORKGROUP", "address": "10.1.0.1/24"},
            "B": {"os": "xp-sp2", "workgroup": "WORKGROUP", "address": "10.1.0.2/24",
                  "netsh": [RA], "accounts": {"wmiadmin": "W1!"},
                  "groups": {"Administrators": ["B\\wmiadmin"]},
                  "policy": {"Windows Settings/Security Settings/Local Policies/Security "
                             "Options/Network access: Sharing and security model for local "
                             "accounts": {"state": "Enabled", "model": "Guest only"}}},
        },
        "calls": [{"from": "A", "to": "B", "user": "B\\wmiadmin"}],
    }
    r, ch = _remedy(d)
    assert [c.kind for c in ch] == ["policy"] and r.proven
    del d["hosts"]["B"]["policy"]
    r, ch = _remedy(d)
    assert [c.kind for c in ch] == ["registry"] and r.proven
    assert "forceguest" in ch[0].commands[0].lower()


def test_enable_dcom_off_on_a_is_fixed_on_a() -> None:
    d = base_doc("2003-sp1", "2003-sp1")
    d["hosts"]["A"]["dcom"] = {"enable_dcom": False}
    d["calls"] = [call()]
    r, ch = _remedy(d)
    assert [(c.host, c.kind) for c in ch] == [("A", "dcom")] and r.proven


def test_local_exceptions_disabled_is_fixed_with_a_valid_opmode_command() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA, "netsh firewall set opmode mode=ENABLE exceptions=DISABLE"]
    d["calls"] = [call()]
    r, ch = _remedy(d)
    assert r.proven
    assert [c.commands[0] for c in ch] == ["netsh firewall set opmode mode=ENABLE exceptions=ENABLE"]


def test_group_policy_program_list_gets_the_sink_when_local_lists_are_ignored() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["hosts"]["A"]["netsh"] = [A_CONN2[0]]
    d["hosts"]["A"]["policy"] = {
        "Network/Network Connections/Windows Firewall/Domain Profile/"
        "Windows Firewall: Define program exceptions": {
            "state": "Enabled", "programs": ["%windir%\\system32\\notepad.exe:*:Enabled:np"]}}
    d["calls"] = [call("async")]
    r, ch = _remedy(d)
    assert r.proven and [c.kind for c in ch] == ["policy"]
    programs = ch[0].edit.value["programs"]  # type: ignore[union-attr]
    assert programs[0].startswith("%windir%\\system32\\notepad.exe")  # kept
    assert "unsecapp.exe:192.168.10.2:Enabled:UNSECAPP" in programs[-1]


def test_disabled_program_exception_with_spaces_is_re_enabled_quoted() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    app = "C:\\Program Files\\Mon\\mon.exe"
    d["hosts"]["A"]["netsh"] = [
        A_CONN2[0], f'netsh firewall add allowedprogram program="{app}" name=MON mode=DISABLE']
    d["calls"] = [call("async", sink=app)]
    r, ch = _remedy(d)
    assert r.proven
    assert ch[0].commands[0].startswith(f'netsh firewall set allowedprogram program="{app}" '
                                        "mode=ENABLE")
