"""Windows Vista to Server 2025: the OS catalogue, WFAS, netsh advfirewall, and their fixes."""

from __future__ import annotations

import copy
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest
import tomlkit
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import CORP, make
from wmilab import flow, remedy
from wmilab.cli import app
from wmilab.model import advfirewall, hardening, namespaces, oses, sids
from wmilab.model import firewall as fw
from wmilab.model import wfas as wf
from wmilab.model.netsh import NetshEnv, NetshError
from wmilab.model.ports import dynamic_range
from wmilab.scenario import ScenarioError, loads

MODERN = tuple(n for n in oses.NAMES if oses.get(n).modern)
WMI_GROUP_ON = ('netsh advfirewall firewall set rule group="Windows Management Instrumentation '
                '(WMI)" new enable=yes')


def pair(os_b: str = "2022", os_a: str = "11", **b: Any) -> dict[str, Any]:
    return {
        "domains": {"CORP": copy.deepcopy(CORP)},
        "hosts": {
            "A": {"os": os_a, "domain": "CORP", "address": "10.77.0.1/24"},
            "B": {"os": os_b, "domain": "CORP", "address": "10.77.0.2/24", **b},
        },
        "calls": [{"from": "A", "to": "B", "user": "CORP\\admin"}],
    }


# ---- the catalogue ------------------------------------------------------------------------


def test_the_catalogue_has_every_os_of_the_contract() -> None:
    assert set(MODERN) == {"vista-sp2", "2008-sp2", "7-sp1", "2008r2-sp1", "8.1", "2012r2", "10",
                           "2016", "2019", "11", "2022", "2025"}


@pytest.mark.parametrize("name", MODERN)
def test_modern_defaults(name: str) -> None:
    spec = oses.get(name)
    assert spec.dynamic_ports == range(49152, 65536)  # KB 929851
    assert spec.profiles == ("domain", "private", "public")
    assert spec.namespace_users == sids.AUTHENTICATED_USERS
    assert spec.distributed_com_users and spec.remote_uac
    assert spec.version.endswith("." + spec.build)
    assert spec.released <= spec.last_update
    # "Remote Administration" ships up to 2008 R2 only.
    assert spec.remote_admin_group == (int(spec.build) < 9200)


def test_versions_of_well_known_builds() -> None:
    assert (oses.get("2022").version, oses.get("2022").caption) == (
        "10.0.20348", "Microsoft Windows Server 2022 Standard")
    assert oses.get("7-sp1").csd_version == "Service Pack 1"
    assert oses.get("2019").build == "17763"


def test_namespace_defaults_use_authenticated_users_from_vista() -> None:
    s = make(pair(os_a="xp-sp2"))
    xp = s.world.host("A").wmi.descriptor("root\\cimv2")
    modern = s.world.host("B").wmi.descriptor("root\\cimv2")
    assert any(a.sid == sids.EVERYONE for a in xp.dacl)
    assert not any(a.sid == sids.EVERYONE for a in modern.dacl)
    assert any(a.sid == sids.AUTHENTICATED_USERS for a in modern.dacl)


def test_standardcimv2_only_from_windows_8() -> None:
    have = {n for n in oses.NAMES
            if any(ns.key == "root\\standardcimv2" for ns in namespaces.for_os(n))}
    assert have == {"8.1", "2012r2", "10", "2016", "2019", "11", "2022", "2025"}


# ---- scenario fields ----------------------------------------------------------------------


def _error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        loads(text, "bad.toml")
    return info.value


_BASE = """
[domains.CORP]
accounts = { admin = "x" }
[hosts.B]
os = "{os}"
domain = "CORP"
address = "10.0.0.2/24"
{extra}
"""


@pytest.mark.parametrize(("os_name", "extra", "field", "words"), [
    ("2022", 'updates = "2023-3"', "hosts.B.updates", "is not a month"),
    ("2022", 'updates = "2023-13"', "hosts.B.updates", "is not a month"),
    ("2022", 'updates = "2020-01"', "hosts.B.updates", "released in 2021-08"),
    ("7-sp1", 'updates = "2022-06"', "hosts.B.updates", "newest update"),
    ("xp-sp2", 'updates = "2004-08"', "hosts.B.updates", "Vista and later"),
    ("xp-sp2", 'profile = "private"', "hosts.B.profile", "not a profile"),
    ("2022", 'profile = "office"', "hosts.B.profile", "not a profile"),
    ("2022", 'netsh = ["netsh advfirewall firewall add rule name=x dir=in action=allow '
     'protocol=tcp localport=70000"]', "hosts.B.netsh", "localport"),
])
def test_bad_fields_name_file_line_and_field(os_name: str, extra: str, field: str,
                                             words: str) -> None:
    e = _error(_BASE.replace("{os}", os_name).replace("{extra}", extra))
    assert e.file == "bad.toml" and e.line == 8
    assert e.field.startswith(field), e
    assert words in str(e)


def test_updates_default_and_profiles() -> None:
    s = make(pair(updates="2023-03"))
    assert s.world.configs["B"].month == "2023-03"
    assert s.world.configs["A"].month == oses.CURRENT_MONTH
    doc = pair()
    doc["hosts"]["B"].pop("domain")
    doc["hosts"]["B"]["workgroup"] = "WG"
    doc["calls"] = []
    assert make(doc).world.host("B").wfas_profile is wf.WfProfile.PUBLIC
    doc["hosts"]["B"]["profile"] = "standard"  # means private on Vista and later
    assert make(doc).world.host("B").wfas_profile is wf.WfProfile.PRIVATE


# ---- WFAS decisions -----------------------------------------------------------------------


def _eff(rules: list[wf.Rule], profile: wf.WfProfile = wf.WfProfile.DOMAIN,
         os: str = "2022") -> wf.EffectiveWfas:
    local = wf.LocalWfas.defaults(os)
    local.rules.extend(rules)
    return wf.effective(local, wf.WfasPolicy(), profile, dynamic_range(os, {}),
                        IPv4Network("10.0.0.0/24"))


SRC = IPv4Address("10.0.0.9")
FAR = IPv4Address("172.16.0.9")


def test_default_inbound_is_block_and_names_the_disabled_builtin_rule() -> None:
    v = _eff([]).decide(fw.Inbound(SRC, 135, fw.SVCHOST), None, "rpcss")
    assert not v.allowed
    assert "default inbound action is Block" in v.rule
    assert "Windows Management Instrumentation (DCOM-In)" in v.rule and "disabled" in v.rule


def test_block_wins_over_allow_whatever_the_order() -> None:
    allow = wf.Rule("allow 135", protocol="TCP", local_ports=wf.PortSpec(((135, 135),)))
    block = wf.Rule("block far", action="block", remote=wf.Scope.custom("172.16.0.0/16"))
    for rules in ([allow, block], [block, allow]):
        e = _eff(rules)
        assert e.decide(fw.Inbound(SRC, 135, fw.SVCHOST)).allowed
        v = e.decide(fw.Inbound(FAR, 135, fw.SVCHOST))
        assert not v.allowed and "block rule wins" in v.rule


def test_service_rules_match_only_their_service() -> None:
    rule = wf.Rule("wmi", protocol="TCP", program=fw.SVCHOST, service="winmgmt")
    e = _eff([rule])
    assert e.decide(fw.Inbound(SRC, 50000, fw.SVCHOST), None, "winmgmt").allowed
    assert not e.decide(fw.Inbound(SRC, 135, fw.SVCHOST), None, "rpcss").allowed


def test_rpc_keyword_covers_the_dynamic_range_and_a_guessed_port_does_not() -> None:
    rpc = dynamic_range("2022", {})
    by_keyword = wf.Rule("rpc", protocol="TCP", local_ports=wf.PortSpec.parse("RPC"))
    guessed = wf.Rule("one port", protocol="TCP", local_ports=wf.PortSpec.parse("49152"))
    assert _eff([by_keyword]).decide_dynamic(SRC, rpc, fw.SVCHOST, None, "winmgmt").allowed
    v = _eff([guessed]).decide_dynamic(SRC, rpc, fw.SVCHOST, None, "winmgmt")
    assert not v.allowed and "guessed" in v.rule
    whole = wf.Rule("range", protocol="TCP", local_ports=wf.PortSpec.parse("49152-65535"))
    assert _eff([whole]).decide_dynamic(SRC, rpc, fw.SVCHOST, None, "winmgmt").allowed


def test_wmi_group_scopes_by_profile() -> None:
    for profile, far_ok in ((wf.WfProfile.DOMAIN, True), (wf.WfProfile.PUBLIC, False)):
        local = wf.LocalWfas.defaults("2022")
        advfirewall.run(local, WMI_GROUP_ON, NetshEnv("2022", "B"), profile)
        e = wf.effective(local, wf.WfasPolicy(), profile, dynamic_range("2022", {}),
                         IPv4Network("10.0.0.0/24"))
        assert e.decide(fw.Inbound(SRC, 135, fw.SVCHOST), None, "rpcss").allowed
        assert e.decide(fw.Inbound(FAR, 135, fw.SVCHOST), None, "rpcss").allowed is far_ok


def test_group_policy_rules_merge_unless_local_rules_are_off() -> None:
    local = wf.LocalWfas.defaults("2022")
    local.rules.append(wf.Rule("local 135", protocol="TCP", local_ports=wf.PortSpec.parse("135")))
    gp_rule = wf.Rule("gp 445", protocol="TCP", local_ports=wf.PortSpec.parse("445"),
                      origin="policy")
    rpc, net = dynamic_range("2022", {}), IPv4Network("10.0.0.0/24")
    merged = wf.effective(local, wf.WfasPolicy((gp_rule,)), wf.WfProfile.DOMAIN, rpc, net)
    assert merged.decide(fw.Inbound(SRC, 135, "x")).allowed
    assert merged.decide(fw.Inbound(SRC, 445, "x")).origin == "policy"
    gp_only = wf.effective(local, wf.WfasPolicy((gp_rule,), local_rules=False),
                           wf.WfProfile.DOMAIN, rpc, net)
    v = gp_only.decide(fw.Inbound(SRC, 135, "x"))
    assert not v.allowed and "Group Policy turns local rules off" in v.rule
    off = wf.effective(local, wf.WfasPolicy(enabled=False), wf.WfProfile.DOMAIN, rpc, net)
    assert off.decide(fw.Inbound(FAR, 1, "x")).origin == "off"


_addr = st.builds(lambda a, b: IPv4Address(f"10.0.{a}.{b}"), st.integers(0, 3),
                  st.integers(1, 254))
_rule = st.builds(
    lambda action, scope, port: wf.Rule(
        f"r{port}", action=action, protocol="TCP",
        remote=wf.Scope.custom(scope) if scope not in ("any", "LocalSubnet") else (
            wf.Scope.all() if scope == "any" else wf.Scope.subnet()),
        local_ports=wf.PortSpec.parse(str(port))),
    st.sampled_from(["allow", "block"]),
    st.sampled_from(["any", "LocalSubnet", "10.0.1.0/24", "10.0.2.7", "10.0.3.0/25"]),
    st.sampled_from([135, 445]))


@settings(max_examples=80, deadline=None)
@given(st.lists(_rule, max_size=5), _addr, st.sampled_from([135, 445]))
def test_admission_is_the_decision_for_every_source(rules: list[wf.Rule],
                                                    src: IPv4Address, port: int) -> None:
    """The nftables compiler's question and the per-source decision walk the same list: the
    first rule whose scope holds the source decides, block rules before allow rules."""
    e = _eff(rules)
    adm = e.admission(port, "c:\\p.exe")
    first = next((r.allow.allowed for r in adm.rules if r.scope.matches(src, e.subnet)), False)
    assert e.decide(fw.Inbound(src, port, "c:\\p.exe")).allowed is first
    blocks = [r for r in rules if r.action == "block" and r.remote.matches(src, e.subnet)
              and r.local_ports.matches(port, e.rpc)]
    allows = [r for r in rules if r.action == "allow" and r.remote.matches(src, e.subnet)
              and r.local_ports.matches(port, e.rpc)]
    assert first is (not blocks and bool(allows))
    # The scopes the compiler accepts are those of the allow rules only.
    assert len(adm.scopes) == sum(1 for r in adm.rules if r.allow.allowed)


# ---- netsh ---------------------------------------------------------------------------------


def test_set_rule_group_updates_its_eight_rules_and_show_prints_them() -> None:
    local = wf.LocalWfas.defaults("2019")
    env = NetshEnv("2019", "B")
    out = advfirewall.run(local, WMI_GROUP_ON, env, wf.WfProfile.DOMAIN)
    assert out == "\nUpdated 8 rule(s).\nOk."
    shown = advfirewall.run(local, 'advfirewall firewall show rule name="Windows Management '
                            'Instrumentation (WMI-In)"', env, wf.WfProfile.DOMAIN)
    assert shown.count("Rule Name:") == 2
    assert "Enabled:                              Yes" in shown
    assert "RemoteIP:                             LocalSubnet" in shown
    assert advfirewall.run(local, "advfirewall firewall show rule name=nosuch", env,
                           wf.WfProfile.DOMAIN).strip() == "No rules match the specified criteria."


def test_remote_administration_group_only_where_the_os_has_it() -> None:
    for name, has in (("2008r2-sp1", True), ("2012r2", False)):
        local = wf.LocalWfas.defaults(name)
        out = advfirewall.run(local, 'advfirewall firewall set rule group="Remote '
                              'Administration" new enable=yes', NetshEnv(name, "B"),
                              wf.WfProfile.DOMAIN)
        assert ("Updated 6 rule(s)." in out) is has


def test_legacy_netsh_firewall_prints_the_notice_and_maps_onto_wfas() -> None:
    local = wf.LocalWfas.defaults("10")
    out = advfirewall.run(local, "netsh firewall add portopening TCP 135 DCOM scope=CUSTOM "
                          "addresses=10.0.0.9", NetshEnv("10", "B"), wf.WfProfile.DOMAIN)
    assert '"netsh firewall" is deprecated' in out and "947709" in out and out.endswith("Ok.")
    e = wf.effective(local, wf.WfasPolicy(), wf.WfProfile.DOMAIN, dynamic_range("10", {}),
                     IPv4Network("10.0.0.0/24"))
    assert e.decide(fw.Inbound(SRC, 135, fw.SVCHOST)).allowed
    assert not e.decide(fw.Inbound(IPv4Address("10.0.0.8"), 135, fw.SVCHOST)).allowed


@pytest.mark.parametrize("command", [
    "advfirewall firewall add rule name=x dir=sideways action=allow",
    "advfirewall firewall add rule name=x dir=in action=allow localport=135",
    "advfirewall firewall add rule name=x dir=in action=allow protocol=tcp remoteip=1.2.3",
    "advfirewall firewall add rule name=x dir=in",
    "advfirewall set allprofiles state sideways",
])
def test_bad_advfirewall_commands_are_refused(command: str) -> None:
    with pytest.raises(NetshError):
        advfirewall.run(wf.LocalWfas.defaults("2022"), command, NetshEnv("2022", "B"),
                        wf.WfProfile.DOMAIN)


def test_cli_netsh_show_rule_and_advfirewall_on_xp(tmp_path: Any) -> None:
    doc = pair(os_a="xp-sp2")
    path = tmp_path / "s.toml"
    path.write_text(tomlkit.dumps(doc))
    runner = CliRunner()
    ok = runner.invoke(app, ["netsh", str(path), "B", "advfirewall firewall show rule name=all"])
    assert ok.exit_code == 0 and "Windows Management Instrumentation (ASync-In)" in ok.stdout
    bad = runner.invoke(app, ["netsh", str(path), "A", "advfirewall firewall show rule name=all"])
    assert bad.exit_code == 2 and "no netsh advfirewall context" in bad.output


# ---- flow and fixes ---------------------------------------------------------------------------


def test_closed_wmi_group_fails_at_tcp_135_and_the_fix_is_scoped_advfirewall() -> None:
    s = make(pair())
    call = s.calls[0]
    v = flow.evaluate(s.world, call)
    assert v.result == "0x800706BA" and v.failed is not None
    assert v.failed.id == "c1.rpcss-port"
    fix = remedy.remedy(s.world, call)
    assert fix.proven
    cmds = [c for ch in fix.changes for c in ch.commands]
    assert all("advfirewall" in c or c.startswith("PowerShell: ") for c in cmds), cmds
    assert all("remoteip=10.77.0.1" in c for c in cmds if c.startswith("netsh")), cmds
    assert any("Set-NetFirewallRule -Name WMI-RPCSS-In-TCP-NoScope" in c for c in cmds)
    assert not any("state off" in c or "Everyone" in c for c in cmds)


def test_group_enabled_server_2022_works_for_a_domain_admin() -> None:
    s = make(pair(netsh=[WMI_GROUP_ON]))
    assert flow.evaluate(s.world, s.calls[0]).result == "ok"


def test_vista_without_cmdlets_gets_netsh_only() -> None:
    s = make(pair(os_b="2008-sp2"))
    fix = remedy.remedy(s.world, s.calls[0])
    cmds = [c for ch in fix.changes for c in ch.commands]
    assert fix.proven and cmds and not any(c.startswith("PowerShell") for c in cmds)


# ---- remote UAC (KB 951016) ----------------------------------------------------------------


def _workgroup_b(registry: dict[str, int] | None = None, user: str = "B\\monitor") -> dict[str, Any]:
    doc = pair(netsh=[WMI_GROUP_ON], accounts={"monitor": "M0n!", "Administrator": "Adm!"},
               groups={"Administrators": ["B\\monitor", "B\\Administrator"]})
    b = doc["hosts"]["B"]
    b.pop("domain")
    b["workgroup"] = "WG"
    if registry:
        b["registry"] = registry
    doc["calls"] = [{"from": "A", "to": "B", "user": user}]
    return doc


@pytest.mark.parametrize(("registry", "user", "expected"), [
    ({}, "B\\monitor", "0x80070005"),  # filtered: Administrators deny-only
    ({"LocalAccountTokenFilterPolicy": 1}, "B\\monitor", "ok"),
    ({}, "B\\Administrator", "ok"),  # RID 500 is not filtered by default
    ({"FilterAdministratorToken": 1}, "B\\Administrator", "0x80070005"),
])
def test_remote_uac(registry: dict[str, int], user: str, expected: str) -> None:
    s = make(_workgroup_b(registry, user))
    v = flow.evaluate(s.world, s.calls[0])
    assert v.result == expected
    if expected != "ok":
        logon = next(st_ for st_ in v.steps if st_.id == "c1.logon")
        assert "remote UAC" in logon.detail


def test_domain_administrators_are_not_filtered() -> None:
    s = make(pair(netsh=[WMI_GROUP_ON]))
    assert flow.evaluate(s.world, s.calls[0]).ok


def test_remote_uac_fix_grants_rights_and_never_disables_filtering() -> None:
    s = make(_workgroup_b())
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven
    kinds = {ch.kind for ch in fix.changes}
    assert kinds <= {"dcom", "wmi"}, fix.changes
    assert not any("LocalAccountTokenFilterPolicy" in c for ch in fix.changes for c in ch.commands)


# ---- DCOM hardening (KB 5004442) ------------------------------------------------------------


@pytest.mark.parametrize(("month", "require", "enforced"), [
    ("2021-05", None, False), ("2021-06", None, False), ("2021-06", 1, True),
    ("2022-06", None, True), ("2022-06", 0, False), ("2023-02", 0, False),
    ("2023-03", 0, True), ("2023-03", None, True),
])
def test_hardening_stage_follows_updates(month: str, require: int | None,
                                         enforced: bool) -> None:
    reg = {} if require is None else {hardening.REQUIRE: require}
    assert hardening.server_hardening("2019", month, reg).enforced is enforced


@pytest.mark.parametrize(("os_a", "month", "requested", "raise_", "level"), [
    ("xp-sp2", "", None, None, 2),  # NT..2003 clients activate at CONNECT
    ("10", "2021-05", None, None, 4),  # no update: Vista+ WMI default PKT
    ("10", "2022-06", None, None, 5),  # default 1 raises the default level
    ("10", "2022-06", 2, None, 2),  # ... but not an explicit one
    ("10", "2022-11", 2, None, 5),  # default 2 from November 2022 raises that too
    ("10", "2022-06", 2, 2, 5),
    ("10", "2025-10", 1, None, 1),  # anonymous (none) is never raised
])
def test_client_level(os_a: str, month: str, requested: int | None, raise_: int | None,
                      level: int) -> None:
    reg = {} if raise_ is None else {hardening.RAISE: raise_}
    assert hardening.client_level(os_a, month, reg, requested)[0] == level


def test_hardened_host_refuses_connect_and_the_fix_raises_the_client() -> None:
    doc = pair(os_a="10", netsh=[WMI_GROUP_ON])
    doc["hosts"]["A"]["updates"] = "2022-06"
    doc["calls"][0]["auth_level"] = "connect"
    s = make(doc)
    v = flow.evaluate(s.world, s.calls[0])
    assert v.result == "0x80070005" and v.failed is not None and v.failed.id == "c1.activation"
    assert "Event 10036" in v.failed.detail and "10.77.0.1" in v.failed.detail
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven
    text = " ".join(c for ch in fix.changes for c in ch.commands)
    assert "integrity" in text
    assert "RequireIntegrityActivationAuthenticationLevel" not in text


def test_hardening_off_before_june_2022_lets_connect_in() -> None:
    doc = pair(os_a="xp-sp2", netsh=[WMI_GROUP_ON], updates="2022-05")
    assert flow.evaluate(make(doc).world, make(doc).calls[0]).ok
    doc["hosts"]["B"]["updates"] = "2022-06"
    assert flow.evaluate(make(doc).world, make(doc).calls[0]).result == "0x80070005"


def test_unknown_auth_level_is_refused_with_its_line() -> None:
    text = tomlkit.dumps(pair())
    text += '\n[[calls]]\nfrom = "A"\nto = "B"\nuser = "CORP\\\\admin"\nauth_level = "high"\n'
    e = _error(text)
    assert e.field == "calls[1].auth_level" and e.line is not None and "not an authentication level" in e.message


# ---- commands (scenario-format.md "Commands") ----------------------------------------------

_APPCOMPAT = r"HKLM\SOFTWARE\Microsoft\Ole\AppCompat"


def test_commands_reg_add_acts_like_the_registry_field() -> None:
    doc = pair(os_a="xp-sp2", updates="2022-09", commands=[
        WMI_GROUP_ON, f"reg add {_APPCOMPAT} /v RequireIntegrityActivationAuthenticationLevel "
        "/t REG_DWORD /d 0 /f"])
    s = make(doc)
    assert s.world.configs["B"].registry == {hardening.REQUIRE: 0}
    assert flow.evaluate(s.world, s.calls[0]).ok
    doc["hosts"]["B"]["commands"].append(
        f"reg delete {_APPCOMPAT} /v RequireIntegrityActivationAuthenticationLevel /f")
    s = make(doc)
    assert flow.evaluate(s.world, s.calls[0]).result == "0x80070005"


def test_commands_net_stop_winmgmt() -> None:
    s = make(pair(commands=[WMI_GROUP_ON, "net stop winmgmt"]))
    assert s.world.configs["B"].services == {"winmgmt": "stopped"}


@pytest.mark.parametrize(("command", "words"), [
    ("ping 10.0.0.1", "not a command wmilab models"),
    (f"reg add {_APPCOMPAT} /v RaiseActivationAuthenticationLevel /t REG_SZ /d 2 /f",
     "is a REG_DWORD"),
    (r"reg add HKLM\SOFTWARE\Elsewhere /v RaiseActivationAuthenticationLevel /t REG_DWORD /d 2",
     "lives under"),
    (f"reg add {_APPCOMPAT} /v NoSuchValue /t REG_DWORD /d 2 /f", "not a registry value"),
    (r"reg add HKCU\Software /v ForceGuest /t REG_DWORD /d 0", "Invalid key name"),
    ("net stop spooler", "winmgmt service only"),
])
def test_bad_commands_name_the_command(command: str, words: str) -> None:
    doc = pair(commands=[command])
    with pytest.raises(ScenarioError) as info:
        make(doc)
    assert info.value.field == "hosts.B.commands[0]" and words in info.value.message
