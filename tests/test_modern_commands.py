"""Commands as administrators type them (scenario-format.md "Commands"): netsh int ipv4
dynamicport, winmgmt /standalonehost|/sharedhost, net localgroup, and the RPC restriction
values, each through the scenario, the flow, the fixes and the CLI."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import CORP, make
from wmilab import flow, remedy, steps
from wmilab.cli import app
from wmilab.model import dynamicport, oses, rpcpolicy, sids, wmihost
from wmilab.model import firewall as fw
from wmilab.scenario import ScenarioError

WMI_ON = ('netsh advfirewall firewall set rule group="Windows Management Instrumentation (WMI)" '
          "new enable=yes")
RA_ON = 'netsh advfirewall firewall set rule group="Remote Administration" new enable=yes'
MODERN = tuple(n for n in oses.NAMES if oses.get(n).modern)
LEGACY = tuple(n for n in oses.NAMES if not oses.get(n).modern)


def pair(commands: list[str], os_b: str = "2022", os_a: str = "11", **b: Any) -> dict[str, Any]:
    return {
        "domains": {"CORP": copy.deepcopy(CORP)},
        "hosts": {
            "A": {"os": os_a, "domain": "CORP", "address": "10.78.0.1/24"},
            "B": {"os": os_b, "domain": "CORP", "address": "10.78.0.2/24",
                  "commands": commands, **b},
        },
        "calls": [{"from": "A", "to": "B", "user": "CORP\\admin"}],
    }


def verdict(doc: dict[str, Any], i: int = 0) -> flow.Verdict:
    s = make(doc)
    return flow.evaluate(s.world, s.calls[i])


def failed(v: flow.Verdict) -> flow.Step:
    return next(s for s in v.steps if not s.ok)


def bad(doc: dict[str, Any]) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        make(doc)
    return info.value


def rule(name: str, ports: str) -> str:
    return (f'netsh advfirewall firewall add rule name="{name}" dir=in action=allow protocol=TCP '
            rf"localport={ports} program=%SystemRoot%\system32\svchost.exe service=winmgmt")


# DCOM-In alone: TCP 135 to RPCSS, so that the WMI port is the step that decides.
DCOM_IN = ('netsh advfirewall firewall set rule name="Windows Management Instrumentation '
           '(DCOM-In)" new enable=yes')


# ---- netsh int ipv4 set|show dynamicport (KB 929851) ---------------------------------------


def test_dynamicport_moves_wmi_and_a_rule_for_the_old_range_no_longer_admits_it() -> None:
    old = rule("WMI old range", "49152-65535")
    assert verdict(pair([DCOM_IN, old])).ok
    v = verdict(pair([DCOM_IN, old, "netsh int ipv4 set dynamicport tcp start=10000 num=1000"]))
    step = failed(v)
    assert (v.result, step.id) == ("0x800706BA", steps.C1_WMI_PORT)
    assert "10000-10999" in step.detail
    s = make(pair([DCOM_IN, "netsh int ipv4 set dynamicport tcp start=10000 num=1000",
                   rule("WMI new range", "10000-10999")]))
    b = s.world.host("B")
    assert (b.rpc_ports.spans, b.wmi_ports.spans) == (((10000, 10999),), ((10000, 10999),))
    assert flow.evaluate(s.world, s.calls[0]).ok


def test_dynamicport_sets_the_sink_range_of_a_too() -> None:
    doc = pair([WMI_ON])
    doc["hosts"]["A"]["commands"] = ["netsh int ipv4 set dynamicport tcp start=20000 num=255"]
    a = make(doc).world.host("A")
    assert (min(a.rpc_ports), max(a.rpc_ports)) == (20000, 20254)


def test_the_last_dynamicport_wins_and_udp_leaves_tcp_alone() -> None:
    s = make(pair(["netsh int ipv4 set dynamicport tcp start=10000 num=1000",
                   "netsh interface ipv4 set dynamicport udp start=30000 num=500",
                   "netsh int ipv4 set dynamicport tcp start=40000 num=300 store=persistent"]))
    assert s.world.host("B").rpc_ports.spans == ((40000, 40299),)


def test_rpc_internet_ports_win_over_the_tcp_range() -> None:
    doc = pair(["netsh int ipv4 set dynamicport tcp start=10000 num=1000"],
               registry={"Ports": ["5000-5100"], "PortsInternetAvailable": "Y",
                         "UseInternetPorts": "Y"})
    assert make(doc).world.host("B").rpc_ports.spans == ((5000, 5100),)


@settings(max_examples=60, deadline=None)
@given(start=st.integers(0, 70000), num=st.integers(0, 70000))
def test_dynamicport_bounds_follow_kb_929851(start: int, num: int) -> None:
    words = ["netsh", "int", "ipv4", "set", "dynamicport", "tcp", f"start={start}", f"num={num}"]
    valid = start >= 1025 and num >= 255 and start + num - 1 <= 65535
    if valid:
        cmd = dynamicport.parse(words, "2022")
        assert cmd.ports == dynamicport.DynamicPorts(start, num)
        assert cmd.ports.end <= 65535
    else:
        with pytest.raises(Exception, match="The parameter is incorrect"):
            dynamicport.parse(words, "2022")


@pytest.mark.parametrize(("command", "words"), [
    ("netsh int ipv4 set dynamicport tcp start=10000 num=100", "The parameter is incorrect"),
    ("netsh int ipv4 set dynamicport tcp start=1000 num=1000", "The parameter is incorrect"),
    ("netsh int ipv4 set dynamicport tcp start=65000 num=1000", "past 65535"),
    ("netsh int ipv4 set dynamicport tcp start=10000", "both start= and num="),
    ("netsh int ipv4 set dynamicport sctp start=10000 num=1000", "tcp or udp"),
    ("netsh int ipv4 set dynamicport tcp start=x num=1000", "whole numbers"),
    ("netsh int ipv4 set dynamicport tcp begin=10000 num=1000", "not valid"),
    ("netsh int ipv4 set address name=x", "was not found"),
])
def test_bad_dynamicport_commands_name_the_command(command: str, words: str) -> None:
    e = bad(pair([WMI_ON, command]))
    assert e.field == "hosts.B.commands[1]" and words in e.message and command in e.message


@pytest.mark.parametrize("os_b", LEGACY)
def test_dynamicport_does_not_exist_on_xp_and_2003(os_b: str) -> None:
    e = bad(pair(["netsh int ipv4 set dynamicport tcp start=10000 num=1000"], os_b=os_b))
    assert e.field == "hosts.B.commands[0]" and "does not exist" in e.message


def test_cli_netsh_shows_the_dynamic_range(tmp_path: Path) -> None:
    doc = pair(["netsh int ipv4 set dynamicport tcp start=10000 num=1000"])
    doc["hosts"]["A"]["os"] = "xp-sp2"
    path = tmp_path / "s.toml"
    path.write_text(tomlkit.dumps(doc))
    runner = CliRunner()
    r = runner.invoke(app, ["netsh", str(path), "B", "int ipv4 show dynamicport tcp"])
    assert r.exit_code == 0, r.output
    assert "Protocol tcp Dynamic Port Range" in r.stdout
    assert "Start Port      : 10000" in r.stdout and "Number of Ports : 1000" in r.stdout
    r = runner.invoke(app, ["netsh", str(path), "B", "netsh int ipv4 show dynamicport udp"])
    assert "Start Port      : 49152" in r.stdout and "Number of Ports : 16384" in r.stdout
    r = runner.invoke(app, ["netsh", str(path), "A", "int ipv4 show dynamicport tcp"])
    assert r.exit_code == 2 and "does not exist" in r.output


# ---- winmgmt /standalonehost | /sharedhost ---------------------------------------------------


def test_standalone_wmi_listens_on_24158_and_sharedhost_returns() -> None:
    b = make(pair([WMI_ON, "winmgmt /standalonehost"])).world.host("B")
    assert b.wmi_host == wmihost.WmiHost(True, 4)
    assert list(b.wmi_ports) == [24158]
    source = b.ip  # a rule naming service=winmgmt and only port 24158 admits WMI there
    only = ('netsh advfirewall firewall add rule name=x dir=in action=allow protocol=TCP '
            r'localport=24158 program=%SystemRoot%\system32\svchost.exe service=winmgmt')
    b2 = make(pair([only, "winmgmt /standalonehost"])).world.host("B")
    assert b2.wmi_inbound(source).allowed and not b.inbound(
        source, 24158, r"%windir%\system32\svchost.exe", "rpcss").allowed
    b = make(pair([WMI_ON, "winmgmt -standalonehost 6", "winmgmt /sharedhost"])).world.host("B")
    assert not b.wmi_host.standalone and b.wmi_ports is b.rpc_ports


def test_wmi_in_admits_standalone_wmi_because_it_is_still_svchost_winmgmt() -> None:
    # WMI-In: svchost.exe, service winmgmt, any local port (model/wfas.py).
    v = verdict(pair([WMI_ON, "winmgmt /standalonehost"]))
    assert v.ok
    wmi = next(s for s in v.steps if s.id == steps.C1_WMI_PORT)
    assert "WMI-In" in wmi.detail


def test_remote_administration_rpc_rule_does_not_admit_the_fixed_port() -> None:
    # 2008 R2 still has "Remote Administration": its RPC rule admits the dynamic range only.
    assert verdict(pair([RA_ON], os_b="2008r2-sp1")).ok
    v = verdict(pair([RA_ON, "winmgmt /standalonehost"], os_b="2008r2-sp1"))
    assert (v.result, failed(v).id) == ("0x800706BA", steps.C1_WMI_PORT)
    assert "24158" in failed(v).detail
    fixed = ("netsh advfirewall firewall add rule name=WMIFixedPort dir=in action=allow "
             "protocol=TCP localport=24158")
    assert verdict(pair([RA_ON, "winmgmt /standalonehost", fixed], os_b="2008r2-sp1")).ok


def test_the_fix_for_standalone_wmi_opens_24158_for_the_caller_only() -> None:
    s = make(pair([RA_ON, "winmgmt /standalonehost"], os_b="2008r2-sp1"))
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven
    text = " ".join(c for ch in fix.changes for c in ch.commands)
    assert "remoteip=10.78.0.1" in text and "localport=RPC" not in text
    # The dedicated rule (after the built-in WMI-In) names the fixed port, and works alone.
    a = s.world.host("A").ip
    candidates = remedy._firewall_candidates(s.world, "B", a, 24158, fw.SVCHOST, "wmi")
    dedicated = candidates[-1]
    assert "localport=24158" in dedicated.commands[0] and "service=winmgmt" in dedicated.commands[0]
    world, call = remedy.apply(s.world, s.calls[0], [dedicated])
    assert flow.evaluate(world, call).ok


@pytest.mark.parametrize(("commands", "os_b"), [
    ([], "2022"), ([DCOM_IN], "2022"), ([RA_ON], "2008r2-sp1"), (["winmgmt /standalonehost"],
                                                                 "2019"),
    (["netsh int ipv4 set dynamicport tcp start=10000 num=1000"], "2016"),
])
def test_fixes_never_move_wmi_to_a_standalone_host(commands: list[str], os_b: str) -> None:
    # docs/choices.md: WMI-In names the service winmgmt, so it admits the WMI service and
    # nothing else whatever its port; pinning the port opens nothing narrower.
    s = make(pair(commands, os_b=os_b))
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven
    assert not any("winmgmt /" in c for ch in fix.all_changes() for c in ch.commands)


@pytest.mark.parametrize(("level", "auth_level", "expected"), [
    (None, None, "ok"),  # 4 (packet)
    ("6", None, "ok"),  # no level set by the program: COM negotiates the higher one
    ("6", "privacy", "ok"),
    ("6", "integrity", "0x80070005"),  # set with CoSetProxyBlanket: not negotiated
    ("5", "pkt", "0x80070005"),
    ("2", "connect", "ok"),
])
def test_the_standalone_level_refuses_calls_set_below_it(level: str | None,
                                                         auth_level: str | None,
                                                         expected: str) -> None:
    cmd = "winmgmt /standalonehost" + ("" if level is None else f" {level}")
    doc = pair([WMI_ON, cmd], os_b="2019", updates="2021-05")  # before KB 5004442
    if auth_level is not None:
        doc["calls"][0]["auth_level"] = auth_level
    v = verdict(doc)
    assert v.result == expected
    if expected != "ok":
        step = failed(v)
        assert (step.id, step.where) == (steps.C1_ACCESS, "standalone-level")
        s = make(doc)
        fix = remedy.remedy(s.world, s.calls[0])
        assert fix.proven and [ch.kind for ch in fix.changes] == ["call"]


def test_the_standalone_level_is_the_authn_hint_clients_follow() -> None:
    assert make(pair([WMI_ON])).world.host("B").wmi_authn_hint == 5
    assert make(pair([WMI_ON, "winmgmt /standalonehost"])).world.host("B").wmi_authn_hint == 5
    assert make(pair([WMI_ON, "winmgmt /standalonehost 6"])).world.host("B").wmi_authn_hint == 6


def test_an_xp_client_at_connect_is_refused_only_when_the_program_sets_connect() -> None:
    doc = pair([WMI_ON, "winmgmt /standalonehost"], os_b="2019", os_a="xp-sp2",
               updates="2021-05")
    assert verdict(doc).ok
    doc["calls"][0]["auth_level"] = "connect"
    v = verdict(doc)
    assert (v.result, failed(v).where) == ("0x80070005", "standalone-level")
    doc["hosts"]["B"]["commands"].pop()
    assert verdict(doc).ok


@pytest.mark.parametrize(("command", "words"), [
    ("winmgmt /standalonehost 9", "not an authentication level"),
    ("winmgmt /standalonehost 0", "not an authentication level"),
    ("winmgmt /standalonehost high", "not an authentication level"),
    ("winmgmt /sharedhost 4", "takes no argument"),
    ("winmgmt /resetrepository", "not a switch"),
    ("winmgmt", "give /standalonehost"),
])
def test_bad_winmgmt_commands(command: str, words: str) -> None:
    e = bad(pair([command]))
    assert e.field == "hosts.B.commands[0]" and words in e.message


@pytest.mark.parametrize("os_b", LEGACY)
def test_winmgmt_standalonehost_does_not_exist_on_xp_and_2003(os_b: str) -> None:
    e = bad(pair(["winmgmt /standalonehost"], os_b=os_b))
    assert "does not exist" in e.message


# ---- net localgroup ----------------------------------------------------------------------------


def test_net_localgroup_add_makes_bob_an_administrator() -> None:
    doc = pair([WMI_ON])
    doc["calls"][0]["user"] = "CORP\\bob"
    assert verdict(doc).result == "0x80070005"
    doc["hosts"]["B"]["commands"].append("net localgroup Administrators CORP\\bob /add")
    s = make(doc)
    bob = s.world.directory.resolve("CORP\\bob", "B")
    assert bob in s.world.directory.local_group_members("B", "Administrators")
    assert flow.evaluate(s.world, s.calls[0]).ok


def test_net_localgroup_delete_removes_domain_admins() -> None:
    v = verdict(pair([WMI_ON, 'net localgroup "Administrators" "CORP\\Domain Admins" /delete']))
    assert v.result == "0x80070005"


def test_distributed_com_users_and_namespace_rights_let_a_monitoring_account_in() -> None:
    # The least-privilege way (issue 7 item 8): DCOM Users + Remote Enable, no administrator.
    doc = pair([WMI_ON, 'net localgroup "Distributed COM Users" CORP\\bob /add'],
               wmi={"root\\cimv2": {"CORP\\bob": ["enable account", "remote enable"]}})
    doc["calls"][0]["user"] = "CORP\\bob"
    s = make(doc)
    members = s.world.directory.local_group_members("B", "Distributed COM Users")
    assert s.world.directory.resolve("CORP\\bob", "B") in members
    assert flow.evaluate(s.world, s.calls[0]).ok
    doc["hosts"]["B"]["commands"].pop()
    assert verdict(doc).result == "0x80070005"


def test_net_localgroup_edits_a_group_listed_in_the_groups_table() -> None:
    doc = pair(["net localgroup Monitors CORP\\bob /add", "net localgroup Monitors CORP\\admin "
                "/delete"], groups={"Monitors": ["CORP\\admin"]})
    s = make(doc)
    members = s.world.directory.local_group_members("B", "Monitors")
    assert members == {s.world.directory.resolve("CORP\\bob", "B")}


@pytest.mark.parametrize(("command", "words"), [
    ("net localgroup Wizards CORP\\bob /add", "System error 1376 has occurred. The specified "
     "local group does not exist."),
    ('net localgroup Administrators "CORP\\Domain Admins" /add', "System error 1378 has "
     "occurred. The specified account name is already a member of the group."),
    ("net localgroup Administrators CORP\\bob /delete", "System error 1377 has occurred."),
    ("net localgroup Administrators CORP\\nobody /add", "There is no such global user or group: "
     "CORP\\nobody."),
    ("net localgroup Administrators Users /add", "System error 1388 has occurred."),
    ("net localgroup Administrators CORP\\bob", "exactly one of /add and /delete"),
    ("net localgroup Administrators /add", "at least one member"),
    ("net localgroup Administrators CORP\\bob /add /comment:x", "not an option"),
])
def test_bad_net_localgroup_commands_give_net_s_errors(command: str, words: str) -> None:
    e = bad(pair([WMI_ON, command]))
    assert e.field == "hosts.B.commands[1]" and words in e.message, e


def test_distributed_com_users_does_not_exist_on_xp_sp2() -> None:
    e = bad(pair(['net localgroup "Distributed COM Users" CORP\\bob /add'], os_b="xp-sp2"))
    assert "1376" in e.message
    assert sids.DISTRIBUTED_COM_USERS  # exists from Server 2003 SP1 on


# ---- RestrictRemoteClients and EnableAuthEpResolution --------------------------------------


_REG_RPC = r'reg add "HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Rpc"'


def _anonymous_callback(a_registry: dict[str, int] | None = None,
                        a_commands: list[str] | None = None) -> dict[str, Any]:
    """The seed's workgroup case: B calls A's sink back as ANONYMOUS LOGON, which A allows."""
    a: dict[str, Any] = {
        "os": "xp-sp2", "workgroup": "WORKGROUP", "address": "10.79.0.1/24",
        "netsh": ["netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135",
                  "netsh firewall add allowedprogram program=%windir%\\system32\\wbem\\"
                  "unsecapp.exe name=UNSECAPP"],
        "dcom": {"access_limits": {"ANONYMOUS LOGON": ["local access", "remote access"]}}}
    if a_registry is not None:
        a["registry"] = a_registry
    if a_commands is not None:
        a["commands"] = a_commands
    return {
        "hosts": {
            "A": a,
            "B": {"os": "xp-sp2", "workgroup": "WORKGROUP", "address": "10.79.0.2/24",
                  "netsh": ["netsh firewall set service RemoteAdmin enable"],
                  "accounts": {"wmiadmin": "W1!"}, "registry": {"ForceGuest": 0},
                  "groups": {"Administrators": ["B\\wmiadmin"]}},
        },
        "calls": [{"from": "A", "to": "B", "user": "B\\wmiadmin", "mode": "async"}],
    }


@pytest.mark.parametrize(("value", "expected"), [(None, "ok"), (0, "ok"), (1, "ok"),
                                                 (2, "0x80070005")])
def test_restrict_remote_clients_2_rejects_the_anonymous_callback(value: int | None,
                                                                   expected: str) -> None:
    v = verdict(_anonymous_callback(None if value is None else
                                    {rpcpolicy.RESTRICT_REMOTE_CLIENTS: value}))
    assert v.result == expected
    if expected != "ok":
        step = failed(v)
        assert (step.id, step.host, step.where) == (steps.C2_ACCESS, "A",
                                                    "restrict-remote-clients")


def test_restrict_remote_clients_by_reg_add_and_its_fixes() -> None:
    doc = _anonymous_callback(a_commands=[
        f"{_REG_RPC} /v RestrictRemoteClients /t REG_DWORD /d 2 /f"])
    s = make(doc)
    assert s.world.host("A").restrict_remote_clients == rpcpolicy.HIGH
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven and fix.semisync is not None  # semisync first: no callback at all
    kinds = [(ch.kind, getattr(ch.edit, "name", None)) for ch in fix.changes]
    assert ("registry", "RestrictRemoteClients") in kinds


def test_restrict_remote_clients_leaves_authenticated_calls_alone() -> None:
    # Domain-joined: every call of both connections is authenticated (NTLM).
    for value in (0, 1, 2):
        doc = pair([WMI_ON], registry={rpcpolicy.RESTRICT_REMOTE_CLIENTS: value})
        doc["hosts"]["A"]["registry"] = {rpcpolicy.RESTRICT_REMOTE_CLIENTS: value}
        assert verdict(doc).ok


@pytest.mark.parametrize("os_name", ["xp-sp2", "2003-sp1", "11", "2022"])
def test_restrict_remote_clients_defaults_by_edition(os_name: str) -> None:
    # TechNet cc781010: 0 on server editions, 1 on client editions.
    expected = 0 if oses.get(os_name).server else 1
    assert rpcpolicy.restrict_remote_clients(os_name, {}) == expected


@pytest.mark.parametrize("value", [0, 1])
def test_enable_auth_ep_resolution_is_accepted_and_changes_no_verdict(value: int) -> None:
    # DCOM resolves bindings with ResolveOxid2 on 135, never the endpoint mapper.
    for doc in (pair([WMI_ON]), pair([]), _anonymous_callback()):
        before = verdict(doc)
        after_doc = copy.deepcopy(doc)
        for h in after_doc["hosts"].values():
            h.setdefault("commands", []).append(
                f"{_REG_RPC} /v EnableAuthEpResolution /t REG_DWORD /d {value} /f")
        s = make(after_doc)
        assert all(s.world.configs[h].registry["EnableAuthEpResolution"] == value
                   for h in s.world.configs)
        after = flow.evaluate(s.world, s.calls[0])
        assert [(x.id, x.ok) for x in after.steps] == [(x.id, x.ok) for x in before.steps]


@pytest.mark.parametrize(("registry", "field"), [
    ({"RestrictRemoteClients": 3}, "hosts.B.registry.RestrictRemoteClients"),
    ({"EnableAuthEpResolution": 2}, "hosts.B.registry.EnableAuthEpResolution"),
])
def test_bad_rpc_restriction_values(registry: dict[str, int], field: str) -> None:
    e = bad(pair([], registry=registry))
    assert e.field == field


def test_bad_rpc_restriction_value_by_reg_add_names_the_key() -> None:
    e = bad(pair([r"reg add HKLM\SOFTWARE\Microsoft\Rpc /v RestrictRemoteClients /t REG_DWORD "
                  "/d 2 /f"]))
    assert e.field == "hosts.B.commands[0]" and "lives under" in e.message


# ---- the CLI: exit 2 with file and line ----------------------------------------------------


@pytest.mark.parametrize(("bad_command", "words"), [
    ("ping 10.0.0.1", "not a command wmilab models"),
    ("netsh int ipv4 set dynamicport tcp start=10 num=1000", "The parameter is incorrect"),
    ("winmgmt /standalonehost 7", "not an authentication level"),
    ("net localgroup Wizards CORP\\\\bob /add", "System error 1376"),
])
def test_check_exits_2_naming_file_line_and_command(tmp_path: Path, bad_command: str,
                                                    words: str) -> None:
    text = f"""[domains.CORP]
accounts = {{ admin = "Adm1n!", bob = "B0b!" }}

[hosts.A]
os = "11"
domain = "CORP"
address = "10.80.0.1/24"

[hosts.B]
os = "2022"
domain = "CORP"
address = "10.80.0.2/24"
commands = [
    '{WMI_ON}',
    "{bad_command}",
]

[[calls]]
from = "A"
to = "B"
user = "CORP\\\\admin"
"""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    r = CliRunner().invoke(app, ["check", str(path)])
    assert r.exit_code == 2, r.output
    assert f"{path}:15:" in r.output and "hosts.B.commands[1]" in r.output
    assert words in r.output and "Traceback" not in r.output


def test_every_modern_os_takes_the_commands() -> None:
    for os_b in MODERN:
        s = make(pair([WMI_ON, "netsh int ipv4 set dynamicport tcp start=30000 num=300",
                       "winmgmt /standalonehost", 'net localgroup "Distributed COM Users" '
                       "CORP\\bob /add"], os_b=os_b))
        b = s.world.host(os_b and "B")
        assert list(b.wmi_ports) == [24158] and b.rpc_ports.spans == ((30000, 30299),)


def test_wmilab_fix_appends_to_commands_so_nothing_typed_undoes_the_fix(tmp_path: Path) -> None:
    doc = _anonymous_callback(a_commands=[
        f"{_REG_RPC} /v RestrictRemoteClients /t REG_DWORD /d 2 /f"])
    path = tmp_path / "s.toml"
    path.write_text(tomlkit.dumps(doc))
    out = tmp_path / "fixed.toml"
    r = CliRunner().invoke(app, ["fix", str(path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    fixed = make(tomlkit.parse(out.read_text()).unwrap())
    assert fixed.world.host("A").restrict_remote_clients == rpcpolicy.DEFAULT
    assert flow.evaluate(fixed.world, fixed.calls[0]).ok
    commands = fixed.world.configs["A"].registry
    assert commands["RestrictRemoteClients"] == 1
    assert "RestrictRemoteClients /t REG_DWORD /d 1" in out.read_text()
