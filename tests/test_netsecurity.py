"""The PowerShell *-NetFirewallRule cmdlets, Group Policy WFAS rules, and the PowerShell fixes.

Most tests run `wmilab check` on a scenario file, as a user does, and read the verdict
(result, connection, step) or the exit-2 error (file, line, field, message).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import CORP, fresh_net, make, started_lab
from wmilab import flow, remedy
from wmilab.cli import app
from wmilab.lab.verify import impacket_query
from wmilab.model import advfirewall, netsecurity
from wmilab.model import wfas as wf
from wmilab.model.netsh import NetshEnv
from wmilab.scenario import loads

WMI = "Windows Management Instrumentation (WMI)"
GROUP_ON = f'Enable-NetFirewallRule -DisplayGroup "{WMI}"'
NODE = "Windows Settings/Security Settings/Windows Defender Firewall with Advanced Security"
A_IP = "10.77.0.1"


def pair(os_b: str = "2022", **b: Any) -> dict[str, Any]:
    return {
        "domains": {"CORP": copy.deepcopy(CORP)},
        "hosts": {
            "A": {"os": "11", "domain": "CORP", "address": f"{A_IP}/24"},
            "B": {"os": os_b, "domain": "CORP", "address": "10.77.0.2/24", **b},
        },
        "calls": [{"from": "A", "to": "B", "user": "CORP\\admin"}],
    }


def check(tmp_path: Path, doc: dict[str, Any]) -> Any:
    """`wmilab check --json` on ``doc``: the first call's verdict, or the CLI result."""
    path = tmp_path / "s.toml"
    path.write_text(tomlkit.dumps(doc))
    r = CliRunner().invoke(app, ["check", "--json", str(path)])
    if r.exit_code == 2:
        return r
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["calls"][0]


def bad(tmp_path: Path, doc: dict[str, Any]) -> tuple[str, str]:
    """(the error line, the file path) of a scenario that must exit 2."""
    r = check(tmp_path, doc)
    assert not isinstance(r, dict), r
    assert r.exit_code == 2 and "Traceback" not in r.output
    return r.output.strip().splitlines()[-1], str(tmp_path / "s.toml")


# ---- each cmdlet's effect on the verdict -----------------------------------------------------


@pytest.mark.parametrize(("commands", "result", "step"), [
    ([], "0x800706BA", "c1.rpcss-port"),
    ([GROUP_ON], "ok", None),
    # Name is the rule id; only DCOM-In (domain profile) is enabled: WMI's port stays shut.
    (["Enable-NetFirewallRule -Name WMI-RPCSS-In-TCP-NoScope"], "0x800706BA", "c1.wmi-port"),
    (["Enable-NetFirewallRule WMI-RPCSS-In-TCP-NoScope,WMI-WINMGMT-In-TCP-NoScope"], "ok", None),
    # DisplayName is the title netsh calls name=; it selects both profiles' rules.
    (['Enable-NetFirewallRule -DisplayName "Windows Management Instrumentation (DCOM-In)",'
      '"Windows Management Instrumentation (WMI-In)"'], "ok", None),
    ([GROUP_ON, f'Disable-NetFirewallRule -DisplayGroup "{WMI}" -Direction Inbound'],
     "0x800706BA", "c1.rpcss-port"),
    ([f'Set-NetFirewallRule -DisplayGroup "{WMI}" -Enabled True -RemoteAddress 10.77.0.9'],
     "0x800706BA", "c1.rpcss-port"),
    ([f'Set-NetFirewallRule -DisplayGroup "{WMI}" -Enabled True -RemoteAddress '
      "10.77.0.9, 10.77.0.0/255.255.255.252"], "ok", None),
    ([f"Set-NetFirewallRule -DisplayGroup '{WMI}' -Enabled:True -RemoteAddress "
      "10.77.0.0-10.77.0.3"], "ok", None),
    # A block rule wins over the enabled group (Learn: rule precedence).
    ([GROUP_ON, f"New-NetFirewallRule -DisplayName 'Block A' -Action Block -RemoteAddress {A_IP}"],
     "0x800706BA", "c1.rpcss-port"),
    ([GROUP_ON, f"New-NetFirewallRule -DisplayName 'Block A' -Action Block -RemoteAddress {A_IP}",
      "Remove-NetFirewallRule -DisplayName 'Block A'"], "ok", None),
    # Dedicated rules with the RPC keywords, in PowerShell's spelling (RPCEPMap).
    (["New-NetFirewallRule -DisplayName epmap -Protocol TCP -LocalPort RPCEPMap "
      f"-RemoteAddress {A_IP}",
      "New-NetFirewallRule -DisplayName wmi -Protocol TCP -LocalPort RPC -Program "
      '"%SystemRoot%\\system32\\svchost.exe" -Service winmgmt -RemoteAddress LocalSubnet'],
     "ok", None),
    # The rule is for the private profile; B (domain-joined) uses the domain profile.
    (["New-NetFirewallRule -DisplayName x -Prof Private,Public -Protocol TCP -LocalPort 135"],
     "0x800706BA", "c1.rpcss-port"),
    # -WhatIf changes nothing.
    ([GROUP_ON + " -WhatIf"], "0x800706BA", "c1.rpcss-port"),
    # A wildcard that matches nothing is silent; a disabled copy of the group stays off.
    (["Enable-NetFirewallRule -DisplayGroup 'Remote Admin*'", GROUP_ON,
      "Disable-NetFirewallRule -DisplayName '*ASync*'"], "ok", None),
])
def test_cmdlet_effect_on_the_verdict(tmp_path: Path, commands: list[str], result: str,
                                      step: str | None) -> None:
    v = check(tmp_path, pair(commands=commands))
    assert (v["result"], v["step"]) == (result, step), v


def test_netsh_and_cmdlets_edit_one_rule_set(tmp_path: Path) -> None:
    # netsh enables the group; PowerShell removes one of its rules; netsh shows the result.
    doc = pair(commands=[
        f'netsh advfirewall firewall set rule group="{WMI}" new enable=yes',
        "Remove-NetFirewallRule -Name WMI-WINMGMT-In-TCP-NoScope"])
    v = check(tmp_path, doc)
    assert (v["result"], v["step"]) == ("0x800706BA", "c1.wmi-port")
    s = loads(tomlkit.dumps(doc))
    out = s.world.host("B").netsh_show(f'advfirewall firewall show rule group="{WMI}" dir=in')
    assert out.count("Windows Management Instrumentation (WMI-In)") == 1  # the other profile's


def test_vista_to_2008r2_have_no_cmdlets(tmp_path: Path) -> None:
    for os in ("7-sp1", "2008r2-sp1"):
        line, path = bad(tmp_path, pair(os_b=os, commands=["reg delete HKLM\\SOFTWARE\\Microsoft"
                                                           "\\Ole\\AppCompat /v RaiseActivation"
                                                           "AuthenticationLevel /f", GROUP_ON]))
        assert line.startswith(f"error: {path}:")
        assert "hosts.B.commands[1]" in line
        assert "The term 'Enable-NetFirewallRule' is not recognized as the name of a cmdlet" in line
    v = check(tmp_path, pair(os_b="2012r2", commands=[GROUP_ON]))
    assert v["result"] == "ok"


@pytest.mark.parametrize(("command", "words"), [
    ("Enable-NetFirewallRule -DisplayName Nope",
     "No MSFT_NetFirewallRule objects found with property 'DisplayName' equal to 'Nope'."),
    ("Enable-NetFirewallRule -Name WMI-WINMGMT-In",
     "No MSFT_NetFirewallRule objects found with property 'Name' equal to 'WMI-WINMGMT-In'."),
    ("New-NetFirewallRule -DisplayName x -Direction Sideways",
     "Cannot convert value \"Sideways\" to type \"Microsoft.PowerShell.Cmdletization."
     "GeneratedTypes.NetSecurity.Direction\""),
    ("New-NetFirewallRule -DisplayName x -Action Permit", "enumerator names and try again: "
     "NotConfigured, Allow, Block"),
    ("Set-NetFirewallRule -Name WMI-RPCSS-In-TCP -Enabled Yes", "try again: True, False"),
    ("New-NetFirewallRule -DisplayName x -Profile Domain,Office", "Private, Public"),
    ("New-NetFirewallRule -DisplayName x -RemoteAddress 10.0.0.300", "The address is invalid."),
    ("New-NetFirewallRule -DisplayName x -Protocol TCP -LocalPort RPC-EPMap",
     "One of the port keywords is invalid."),
    ("New-NetFirewallRule -DisplayName x -Protocol UDP -LocalPort RPC",
     "One of the port keywords is invalid."),
    ("New-NetFirewallRule -DisplayName x -LocalPort 135", "need -Protocol TCP or UDP"),
    ("New-NetFirewallRule -DisplayName x -Colour red",
     "A parameter cannot be found that matches parameter name 'Colour'."),
    ("Set-NetFirewallRule -Name x -D y", "the parameter name 'D' is ambiguous"),
    ("New-NetFirewallRule -Direction Inbound", "missing mandatory parameters: DisplayName"),
    ("Enable-NetFirewallRule -DisplayName x -Direction Inbound",
     "Parameter set cannot be resolved"),
    ("Set-NetFirewallRule -Enabled True", "Parameter set cannot be resolved"),
    ("New-NetFirewallRule -DisplayName 'x", "The string is missing the terminator"),
    ("New-NetFirewallRule -DisplayName x -Name WMI-RPCSS-In-TCP",
     "Cannot create a file when that file already exists."),
    ("New-NetFirewallRule -DisplayName x -PolicyStore corp.example\\WMI", "Group Policy rules"),
    ("New-NetFirewallRule -DisplayName x -RemoteAddress DNS", "not modelled by wmilab"),
    ("Enable-NetFirewallRule -Description WMI", "as a filter is not modelled"),
    ("Remove-NetFirewallRule -DisplayName x -PolicyStore localhost", "Group Policy rules"),
])
def test_bad_cmdlets_exit_2_with_file_line_field(tmp_path: Path, command: str,
                                                 words: str) -> None:
    line, path = bad(tmp_path, pair(commands=[GROUP_ON, command]))
    assert line.startswith(f"error: {path}:") and " hosts.B.commands[1]: " in line, line
    assert words in line, line


def test_error_action_silently_continue_ignores_a_missing_rule(tmp_path: Path) -> None:
    v = check(tmp_path, pair(commands=[
        "Disable-NetFirewallRule -DisplayName Nope -ErrorAction SilentlyContinue", GROUP_ON]))
    assert v["result"] == "ok"


# ---- netsh form == cmdlet form (hypothesis) --------------------------------------------------

_ADDRS = st.lists(st.sampled_from(["10.77.0.1", "10.77.0.0/24", "192.168.5.0/255.255.255.0",
                                   "LocalSubnet", "172.16.0.9"]), min_size=1, max_size=3,
                  unique=True)


@st.composite
def _rules(draw: st.DrawFn) -> tuple[str, str]:
    """One rule as netsh advfirewall and as New-NetFirewallRule."""
    name = draw(st.sampled_from(["r1", "Rule Two", "WMI custom"]))
    direction = draw(st.sampled_from(["in", "out"]))
    action = draw(st.sampled_from(["allow", "block"]))
    enabled = draw(st.booleans())
    profiles = draw(st.lists(st.sampled_from(["domain", "private", "public"]), min_size=1,
                             max_size=3, unique=True))
    protocol = draw(st.sampled_from(["TCP", "UDP", "any"]))
    ports: list[str] = []
    if protocol == "TCP":
        ports = draw(st.lists(st.sampled_from(["135", "RPC", "RPC-EPMap", "5000-5100"]),
                              max_size=2, unique=True))
    elif protocol == "UDP":
        ports = draw(st.lists(st.sampled_from(["137", "5000-5100"]), max_size=2, unique=True))
    addrs = draw(st.one_of(st.just(["any"]), _ADDRS))
    program = draw(st.sampled_from([None, "%SystemRoot%\\system32\\svchost.exe",
                                    "C:\\Program Files\\Mon\\mon.exe"]))
    service = draw(st.sampled_from([None, "winmgmt", "rpcss"]))
    netsh = (f'netsh advfirewall firewall add rule name="{name}" dir={direction} '
             f"action={action} enable={'yes' if enabled else 'no'} "
             f"profile={','.join(profiles)} protocol={protocol} remoteip={','.join(addrs)}")
    ps = (f'New-NetFirewallRule -DisplayName "{name}" '
          f"-Direction {'Inbound' if direction == 'in' else 'Outbound'} "
          f"-Action {action.capitalize()} -Enabled {enabled} "
          f"-Profile {','.join(p.capitalize() for p in profiles)} -Protocol {protocol} "
          f"-RemoteAddress {','.join(addrs)}")
    if ports:
        netsh += f" localport={','.join(ports)}"
        ps += " -LocalPort " + ",".join("RPCEPMap" if p == "RPC-EPMap" else p for p in ports)
    if program:
        netsh += f' program="{program}"'
        ps += f" -Program '{program}'"
    if service:
        netsh += f" service={service}"
        ps += f" -Service {service}"
    return netsh, ps


def _same(r: wf.Rule) -> wf.Rule:
    # The rule id is PowerShell's -Name (netsh gives none); everything else must agree.
    return wf.Rule(**{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "rule_id": ""})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_rules(), min_size=1, max_size=4))
def test_netsh_and_cmdlet_forms_give_the_same_rule_set(rules: list[tuple[str, str]]) -> None:
    by_netsh = wf.LocalWfas.defaults("2022")
    by_ps = wf.LocalWfas.defaults("2022")
    for netsh, ps in rules:
        advfirewall.run(by_netsh, netsh, NetshEnv("2022", "B"), wf.WfProfile.DOMAIN)
        netsecurity.run(by_ps, ps, "2022")
    assert [_same(r) for r in by_netsh.rules] == [_same(r) for r in by_ps.rules]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["Name", "DisplayName", "DisplayGroup"]),
       st.lists(st.sampled_from(["Direction", "Enabled", "RemoteAddress", "Profile", "Action"]),
                max_size=4, unique=True), st.data())
def test_parameter_prefixes_bind_like_full_names(selector: str, props: list[str],
                                                 data: st.DataObject) -> None:
    names = [selector, *props]
    values = {"Name": "x", "DisplayName": "y", "DisplayGroup": "g", "Direction": "Inbound",
              "Enabled": "True", "RemoteAddress": "10.0.0.1", "Profile": "Domain",
              "Action": "Allow"}
    full = netsecurity.parse("Set-NetFirewallRule " + " ".join(f"-{n} {values[n]}"
                                                               for n in names))
    params = netsecurity._PARAMS[netsecurity.SET]
    short: list[str] = []
    for n in names:
        # The shortest unambiguous prefix or longer, in any case.
        k = next(k for k in range(1, len(n) + 1)
                 if [p for p in params if p.lower().startswith(n[:k].lower())] == [n])
        cut = data.draw(st.integers(k, len(n)))
        short.append(data.draw(st.sampled_from([n[:cut], n[:cut].lower(), n[:cut].upper()])))
    line = "sEt-NeTfIrEwAlLrUlE " + " ".join(f"-{s} {values[n]}" for s, n in zip(short, names, strict=True))
    assert netsecurity.parse(line).params == full.params


# ---- Group Policy WFAS rules -----------------------------------------------------------------


def gp(**parts: dict[str, Any]) -> dict[str, Any]:
    return {f"{NODE}/{k.replace('_', ' ')}": v for k, v in parts.items()}


@pytest.mark.parametrize(("b", "result"), [
    # A GP block rule beats a local allow (block wins, whatever the store).
    (dict(commands=[GROUP_ON], policy=gp(Inbound_Rules={"rules": [
        f"New-NetFirewallRule -DisplayName 'GP block A' -Action Block -RemoteAddress {A_IP}"]})),
     "0x800706BA"),
    # ... and only the caller: a block rule for another address leaves the group working.
    (dict(commands=[GROUP_ON], policy=gp(Inbound_Rules={"rules": [
        "New-NetFirewallRule -DisplayName 'GP block' -Action Block -RemoteAddress 10.9.9.9"]})),
     "ok"),
    # Local rules off: the locally enabled group no longer applies.
    (dict(commands=[GROUP_ON], policy=gp(Domain_Profile={"apply_local_firewall_rules": "No"})),
     "0x800706BA"),
    # ... but only in the profile the GPO says (B is in the domain profile).
    (dict(commands=[GROUP_ON], policy=gp(Public_Profile={"apply_local_firewall_rules": "No"})),
     "ok"),
    # Local rules off, the GPO's own rules (made with netsh in a GPO store session) apply.
    (dict(policy={**gp(Domain_Profile={"apply_local_firewall_rules": "No"}),
                  **gp(Inbound_Rules={"rules": [
                      f'netsh advfirewall firewall add rule name="GP DCOM" dir=in action=allow '
                      f"protocol=TCP localport=135 remoteip={A_IP}",
                      "New-NetFirewallRule -DisplayName 'GP WMI' -Protocol TCP -LocalPort RPC "
                      f"-Service winmgmt -RemoteAddress {A_IP}"]})}), "ok"),
    # Firewall state Off from Group Policy wins over the local state.
    (dict(policy=gp(Domain_Profile={"firewall_state": "Off"})), "ok"),
    (dict(commands=["netsh advfirewall set allprofiles state off"],
          policy=gp(Domain_Profile={"firewall_state": "On"})), "0x800706BA"),
])
def test_group_policy_rules_merge(tmp_path: Path, b: dict[str, Any], result: str) -> None:
    assert check(tmp_path, pair(**b))["result"] == result


def test_the_old_node_name_is_accepted(tmp_path: Path) -> None:
    old = NODE.replace("Windows Defender Firewall", "Windows Firewall")
    v = check(tmp_path, pair(commands=[GROUP_ON],
                             policy={f"{old}/Domain Profile": {"firewall_state": "Off"}}))
    assert v["result"] == "ok"


def test_explanation_names_the_group_policy_rule(tmp_path: Path) -> None:
    v = check(tmp_path, pair(commands=[GROUP_ON], policy=gp(Inbound_Rules={"rules": [
        f"New-NetFirewallRule -DisplayName 'GP block A' -Action Block -RemoteAddress {A_IP}"]})))
    assert 'block rule "GP block A" (Group Policy' in v["explanation"]


def test_show_rule_lists_group_policy_rules_and_local_commands_cannot_edit_them() -> None:
    doc = pair(commands=["netsh advfirewall firewall set rule name=\"GP rule\" new enable=no"],
               policy=gp(Inbound_Rules={"rules": [
                   "New-NetFirewallRule -DisplayName 'GP rule' -Protocol TCP -LocalPort 135"]}))
    host = loads(tomlkit.dumps(doc)).world.host("B")
    out = host.netsh_show('advfirewall firewall show rule name="GP rule"')
    assert "GP rule" in out and "Enabled:                              Yes" in out
    allrules = host.netsh_show("advfirewall firewall show rule name=all")
    assert allrules.index("GP rule") < allrules.index("Windows Management Instrumentation")


@pytest.mark.parametrize(("policy", "field", "words"), [
    (gp(Domain_Profile={"firewall_state": "Maybe"}),
     "Domain Profile\".firewall_state", "is not one of"),
    (gp(Domain_Profile={"colour": "red"}), "Domain Profile\".colour", "unknown option"),
    (gp(Lobby={"rules": []}), "Lobby\"", "unknown part"),
    (gp(Inbound_Rules={"rules": ["New-NetFirewallRule -DisplayName x -Action Deny"]}),
     "Inbound Rules\".rules[0]", "NotConfigured, Allow, Block"),
    (gp(Inbound_Rules={"rules": ["New-NetFirewallRule -DisplayName x -Direction Outbound"]}),
     "Inbound Rules\".rules[0]", "give it under Outbound Rules"),
    (gp(Inbound_Rules={"rules": ["netsh advfirewall reset"]}), "Inbound Rules\".rules[0]",
     "a Group Policy rule is made with New-NetFirewallRule"),
    (gp(Inbound_Rules={"rules": "New-NetFirewallRule -DisplayName x"}),
     "Inbound Rules\".rules", "must be a list"),
])
def test_bad_group_policy_exits_2(tmp_path: Path, policy: dict[str, Any], field: str,
                                  words: str) -> None:
    line, path = bad(tmp_path, pair(policy=policy))
    assert line.startswith(f"error: {path}:") and "hosts.B.policy." in line, line
    assert field in line and words in line, line


def test_wfas_policy_on_xp_is_refused(tmp_path: Path) -> None:
    line, _ = bad(tmp_path, pair(os_b="2003-sp1",
                                 policy=gp(Domain_Profile={"firewall_state": "Off"})))
    assert "hosts.B.policy" in line and "no Windows Firewall with Advanced Security" in line


# ---- fixes: the PowerShell form proves itself like the netsh form ----------------------------


def _failing_cases() -> list[dict[str, Any]]:
    cases = [
        pair(),  # the WMI group as shipped: off
        pair(commands=[f'Set-NetFirewallRule -DisplayGroup "{WMI}" -Enabled True '
                       "-RemoteAddress 10.77.0.200"]),  # enabled for someone else
        pair(commands=["Enable-NetFirewallRule -Name WMI-RPCSS-In-TCP-NoScope"]),
        pair(os_b="2016", profile="private", commands=[GROUP_ON]),  # A outside LocalSubnet?
        pair(os_b="2019", workgroup="WG", commands=[]),
    ]
    for c in cases[3:]:
        b = c["hosts"]["B"]
        if "workgroup" in b:
            del b["domain"]
            b["accounts"] = {"Administrator": "Adm!"}
            c["calls"][0]["user"] = "B\\Administrator"
    cases[3]["hosts"]["B"]["address"] = "10.78.0.2/24"
    async_doc = pair(commands=[GROUP_ON])
    async_doc["hosts"]["A"]["os"] = "2022"
    async_doc["calls"][0]["mode"] = "async"
    cases.append(async_doc)
    return cases


@pytest.mark.parametrize("case", range(6))
def test_each_powershell_fix_applied_as_commands_proves_itself(case: int) -> None:
    doc = _failing_cases()[case]
    s = loads(tomlkit.dumps(doc))
    call = s.calls[0]
    before = flow.evaluate(s.world, call)
    assert before.result != "ok", before
    fix = remedy.remedy(s.world, call)
    assert fix.proven, fix
    fw_changes = [ch for ch in fix.all_changes() if ch.kind == "netsh"]
    assert fw_changes, fix
    # The same fix, typed in PowerShell: each firewall change's PowerShell line, run as the
    # host's commands; the other changes (none here but a call mode) as the fix gives them.
    extra: dict[str, list[str]] = {}
    for ch in fw_changes:
        ps = [c.removeprefix("PowerShell: ") for c in ch.commands if c.startswith("PowerShell: ")]
        assert len(ps) == 1 and ps[0].split()[0].endswith("-NetFirewallRule"), ch.commands
        assert "Everyone" not in ps[0] and "-Enabled False" not in ps[0]
        extra.setdefault(ch.host or "", []).extend(ps)
    fixed = copy.deepcopy(doc)
    for host, cmds in extra.items():
        b = fixed["hosts"][host]
        b["commands"] = [*b.get("commands", []), *cmds]
    for ch in fix.all_changes():
        if ch.kind == "call" and isinstance(ch.edit, remedy.CallMode):
            fixed["calls"][0]["mode"] = ch.edit.mode
        else:
            assert ch.kind == "netsh", ch
    s2 = loads(tomlkit.dumps(fixed))
    after = flow.evaluate(s2.world, s2.calls[0])
    assert after.result == "ok", (after, extra)
    # Scoped to the caller: a third computer still cannot connect.
    s3 = copy.deepcopy(fixed)
    s3["hosts"]["C"] = {"os": "11", "domain": "CORP", "address": "10.77.0.50/24"}
    if "workgroup" in s3["hosts"]["B"]:
        s3["hosts"]["C"] = {"os": "11", "workgroup": "WG", "address": "10.77.0.50/24"}
    s3["calls"].append({**s3["calls"][0], "from": "C", "mode": "semisync"})
    s3w = loads(tomlkit.dumps(s3))
    if set(extra) == {"B"}:
        third = flow.evaluate(s3w.world, s3w.calls[1])
        assert third.result != "ok" or "LocalSubnet" in json.dumps(extra), third
    peer = {"A": "10.77.0.2", "B": A_IP}
    assert all(peer[h] in c.split("-RemoteAddress ")[1] for h, cs in extra.items() for c in cs)


def test_no_powershell_form_on_2008r2(tmp_path: Path) -> None:
    v = check(tmp_path, pair(os_b="2008r2-sp1"))
    cmds = [c for f in v["fixes"] for c in f["commands"]]
    assert cmds and not any("NetFirewallRule" in c for c in cmds)


def test_local_rules_off_gets_a_group_policy_fix_that_proves_itself(tmp_path: Path) -> None:
    doc = pair(commands=[GROUP_ON], policy=gp(Domain_Profile={
        "apply_local_firewall_rules": "No"}))
    s = loads(tomlkit.dumps(doc))
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven
    assert {ch.kind for ch in fix.changes} == {"policy"}, fix.changes
    # One GPO rule per listener, each its own change (DCOM-In for TCP 135, WMI-In for WMI).
    assert [ch.edit.command.split('"')[1] for ch in fix.changes  # type: ignore[union-attr]
            ] == ["WMI DCOM-In from 10.77.0.1", "WMI WMI-In from 10.77.0.1"]
    # The proposed GPO (the scenario's policy after the fix) as a scenario file: ok.
    world, _ = remedy.apply(s.world, s.calls[0], fix.changes)
    fixed = copy.deepcopy(doc)
    fixed["hosts"]["B"]["policy"] = {k: dict(v) for k, v in world.configs["B"].policy.items()}
    v = check(tmp_path, fixed)
    assert v["result"] == "ok"
    rules = [r for k, t in fixed["hosts"]["B"]["policy"].items() if k.endswith("Inbound Rules")
             for r in t["rules"]]
    assert rules and all(f"-RemoteAddress {A_IP}" in r for r in rules), rules


@pytest.mark.parametrize(("remote", "kept", "edit"), [
    # The caller among others: the GPO's rule is narrowed, and still blocks the others.
    (f"{A_IP},10.77.0.9", "10.77.0.9", "Set-NetFirewallRule"),
    ("10.77.0.0/24", "10.77.0.0,10.77.0.2-10.77.0.255", "Set-NetFirewallRule"),
    # A keyword: the addresses it covers on this network, without the caller.
    ("Any", "0.0.0.0-10.77.0.0,10.77.0.2-255.255.255.255", "Set-NetFirewallRule"),
    ("LocalSubnet", "10.77.0.0,10.77.0.2-10.77.0.255", "Set-NetFirewallRule"),
    # Only the caller: the rule is removed from the GPO.
    (A_IP, None, "Remove-NetFirewallRule"),
])
def test_a_group_policy_block_rule_gets_a_group_policy_fix(
        tmp_path: Path, remote: str, kept: str | None, edit: str) -> None:
    doc = pair(commands=[GROUP_ON], policy=gp(Inbound_Rules={"rules": [
        f"New-NetFirewallRule -DisplayName 'GP block' -Action Block -RemoteAddress {remote}"]}))
    doc["hosts"]["C"] = {"os": "11", "domain": "CORP", "address": "10.77.0.9/24"}
    doc["calls"].append({"from": "C", "to": "B", "user": "CORP\\admin"})
    s = loads(tomlkit.dumps(doc))
    first = flow.evaluate(s.world, s.calls[0]).failed
    assert first is not None and first.id == "c1.rpcss-port"
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven and [ch.kind for ch in fix.changes] == ["policy"], fix.changes
    command = fix.changes[0].edit.command  # type: ignore[union-attr]
    assert command.startswith(f'{edit} -DisplayName "GP block"'), command
    if kept is not None:
        assert command.endswith(f"-RemoteAddress {kept}")
    # The GPO after the fix, as a scenario file: the caller gets through; a computer the
    # narrowed rule still names stays blocked (the fix removes no more than the caller).
    world, _ = remedy.apply(s.world, s.calls[0], fix.changes)
    fixed = copy.deepcopy(doc)
    fixed["hosts"]["B"]["policy"] = {k: dict(v) for k, v in world.configs["B"].policy.items()}
    after = loads(tomlkit.dumps(fixed))
    assert flow.evaluate(after.world, after.calls[0]).ok
    assert flow.evaluate(after.world, after.calls[1]).ok == (kept is None)


def test_wmilab_fix_narrows_the_group_policy_block_rule_in_the_gpo(tmp_path: Path) -> None:
    doc = pair(commands=[GROUP_ON], policy=gp(Inbound_Rules={"rules": [
        f"New-NetFirewallRule -DisplayName 'GP block' -Action Block -RemoteAddress "
        f"{A_IP},10.77.0.9"]}))
    src, out = tmp_path / "in.toml", tmp_path / "out.toml"
    src.write_text(tomlkit.dumps(doc))
    r = CliRunner().invoke(app, ["fix", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    fixed = loads(out.read_text())
    assert flow.evaluate(fixed.world, fixed.calls[0]).ok
    rules = fixed.world.configs["B"].policy[f"{NODE}/Inbound Rules"]["rules"]  # type: ignore[index]
    assert rules[-1] == 'Set-NetFirewallRule -DisplayName "GP block" -RemoteAddress 10.77.0.9'
    # No local command: a local one cannot edit a Group Policy rule.
    assert fixed.world.configs["B"].netsh == loads(tomlkit.dumps(doc)).world.configs["B"].netsh


def test_wmilab_fix_writes_the_group_policy_rules(tmp_path: Path) -> None:
    doc = pair(commands=[GROUP_ON], policy=gp(Domain_Profile={
        "apply_local_firewall_rules": "No"}))
    src, out = tmp_path / "in.toml", tmp_path / "out.toml"
    src.write_text(tomlkit.dumps(doc))
    r = CliRunner().invoke(app, ["fix", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    fixed = loads(out.read_text())
    assert flow.evaluate(fixed.world, fixed.calls[0]).ok
    text = out.read_text()
    assert text.count("New-NetFirewallRule") == 2 and "wmilab fix:" in text


# ---- on the wire: the emulated host's gate reads the same rules ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("b", "expected"), [
    (dict(commands=[GROUP_ON]), "ok"),
    (dict(commands=[GROUP_ON], policy=gp(Domain_Profile={"apply_local_firewall_rules": "No"})),
     "0x800706BA"),
])
def test_impacket_meets_the_cmdlets_and_group_policy(b: dict[str, Any], expected: str) -> None:
    net = fresh_net()
    doc = pair(**b)
    doc["hosts"]["A"]["address"] = f"{net}.1/24"
    doc["hosts"]["B"]["address"] = f"{net}.2/24"
    lab = started_lab(make(doc))
    lab.act_as("B", "A")
    try:
        got, _ = impacket_query(lab.address("B"), "CORP\\admin", "Adm1n!", "root\\cimv2",
                                "SELECT * FROM Win32_OperatingSystem")
    finally:
        lab.close()
    s = lab.scenario
    assert got == flow.evaluate(s.world, s.calls[0]).result == expected


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(netsecurity.CMDLETS),
       st.lists(st.one_of(
           st.sampled_from(["-Name", "-DisplayName", "-DisplayGroup", "-Direction", "-Enabled",
                            "-RemoteAddress", "-LocalPort", "-Protocol", "-Profile", "-Action",
                            "-Program", "-Service", "-WhatIf", "-D", "-Re", "-E:True", ",",
                            "'", '"', "`", "Inbound", "True", "RPC", "RPCEPMap", "TCP",
                            "10.77.0.1", "LocalSubnet", "10.0.0.1-10.0.0.9", "Any",
                            '"Windows Management Instrumentation (WMI)"', "WMI-*", "*"]),
           st.text(max_size=8)), max_size=8))
def test_any_cmdlet_line_runs_or_is_refused_cleanly(cmdlet: str, words: list[str]) -> None:
    """Whatever follows the cmdlet name, the result is a rule set or a NetSecurityError."""
    local = wf.LocalWfas.defaults("2022")
    try:
        netsecurity.run(local, " ".join([cmdlet, *words]), "2022")
    except netsecurity.NetSecurityError as e:
        assert e.message and "\n" not in e.message
    for r in local.rules:
        assert r.local_ports.any or r.protocol in ("TCP", "UDP")
