"""Vista and later, issue 7 items 5 and 7: namespaces that require encryption, Connection 2
(AllowAnonymousCallback, the anonymous callback, the ASync-In rule) and the per-OS default
DCOM limits, in the model and in the fixes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from conftest import CORP, make
from wmilab import flow, remedy, steps
from wmilab.model import namespaces, sids
from wmilab.model.dcom import DcomSecurity
from wmilab.model.security import (
    COM_RIGHTS_ACTIVATE_LOCAL,
    COM_RIGHTS_ACTIVATE_REMOTE,
    COM_RIGHTS_EXECUTE_LOCAL,
    COM_RIGHTS_EXECUTE_REMOTE,
)
from wmilab.scenario import ScenarioError, loads

TS = "root\\CIMV2\\TerminalServices"
WMI_ON = ('netsh advfirewall firewall set rule group="Windows Management Instrumentation (WMI)" '
          "new enable=yes")
ANON_REMOTE = {"ANONYMOUS LOGON": ["local access", "remote access"]}


def pair(os_a: str = "11", os_b: str = "2022", **b: Any) -> dict[str, Any]:
    """A and B in CORP, WMI's rule group on in both (so Connection 2's ASync-In rule too)."""
    return {
        "domains": {"CORP": copy.deepcopy(CORP)},
        "hosts": {
            "A": {"os": os_a, "domain": "CORP", "address": "10.7.0.1/24", "netsh": [WMI_ON]},
            "B": {"os": os_b, "domain": "CORP", "address": "10.7.0.2/24", "netsh": [WMI_ON],
                  **b},
        },
        "calls": [],
    }


def verdict(doc: dict[str, Any], i: int = 0) -> flow.Verdict:
    s = make(doc)
    return flow.evaluate(s.world, s.calls[i])


def c(mode: str = "semisync", **kw: Any) -> dict[str, Any]:
    return {"from": "A", "to": "B", "user": "CORP\\admin", "mode": mode, **kw}


# ---- namespaces that require encryption -------------------------------------------------


def test_terminal_services_requires_encryption_from_vista_on() -> None:
    spec = namespaces.BY_KEY[TS.lower()]
    assert spec.requires_encryption
    assert "xp-sp2" not in spec.oses and "2003-sp1" not in spec.oses
    assert {"vista-sp2", "2008-sp2", "7-sp1", "2022", "2025"} <= spec.oses


@pytest.mark.parametrize(("level", "expected"), [
    (None, "0x80041003"),  # Windows 11's WMI client: RPC_C_AUTHN_LEVEL_PKT by default
    ("connect", "0x80041003"), ("pkt", "0x80041003"), ("integrity", "0x80041003"),
    ("privacy", "ok"),
])
def test_encrypted_namespace_refuses_every_level_below_privacy(level: str | None,
                                                              expected: str) -> None:
    d = pair()
    d["calls"] = [c(namespace=TS, **({} if level is None else {"auth_level": level}))]
    v = verdict(d)
    assert v.result == expected
    if expected != "ok":
        failed = v.failed
        assert failed is not None and failed.id == steps.C1_NAMESPACE
        assert failed.where == "encryption"
        # The explanation names WMI's own event text.
        assert "WBEM_MC_WBEM_REQUIRES_ENCRYPTION_DENIED" in failed.detail
        assert "below Pkt_Privacy" in failed.detail


def test_kb5004442_raises_the_activation_not_the_namespace_call() -> None:
    # A hardened 2022 B: Windows 11 raises its default PKT activation to integrity, so the
    # activation passes; NTLMLogin stays at PKT and the encrypted namespace refuses it.
    d = pair()
    d["calls"] = [c(namespace=TS)]
    v = verdict(d)
    ids = [s.id for s in v.steps]
    assert steps.C1_ACTIVATION in ids and v.failed is not None
    assert v.failed.id == steps.C1_NAMESPACE
    assert "calls at RPC_C_AUTHN_LEVEL_PKT by default" in v.failed.detail


def test_the_fix_raises_the_client_to_privacy_and_is_proven() -> None:
    d = pair()
    d["calls"] = [c(namespace=TS)]
    s = make(d)
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven
    (change,) = fix.changes
    assert change.kind == "call" and "privacy" in change.commands[0]
    # Never by clearing the qualifier or touching B.
    assert all(ch.host != "B" for ch in fix.all_changes())


def test_a_scenario_marks_a_namespace_requires_encryption() -> None:
    d = pair(wmi={"root\\cimv2": {"requires_encryption": True}})
    d["calls"] = [c(), c(auth_level="privacy"), c(namespace="root\\cimv2\\TerminalServices"),
                  c(namespace="root\\default")]
    s = make(d)
    got = [flow.evaluate(s.world, x).result for x in s.calls]
    # The qualifier marks root\cimv2 itself; root\default is not affected.
    assert got == ["0x80041003", "ok", "0x80041003", "ok"]


def test_a_scenario_clears_requires_encryption() -> None:
    d = pair(wmi={TS: {"requires_encryption": False}})
    d["calls"] = [c(namespace=TS)]
    assert verdict(d).result == "ok"


def test_xp_has_no_terminal_services_namespace_and_no_qualifier() -> None:
    d = pair(os_a="xp-sp2", os_b="2003-sp1")
    d["hosts"]["B"]["netsh"] = ["netsh firewall set service RemoteAdmin enable",
                                "netsh firewall set opmode mode=ENABLE"]
    d["hosts"]["A"]["netsh"] = []
    d["calls"] = [c(namespace=TS)]
    assert verdict(d).result == "0x8004100E"  # WBEM_E_INVALID_NAMESPACE


HEAD = """
[domains.CORP]
dns = "corp.example"
accounts = { admin = "Adm1n!" }

[hosts.A]
os = "11"
domain = "CORP"
address = "10.1.0.1/24"

[hosts.B]
os = "{os}"
domain = "CORP"
address = "10.1.0.2/24"

[hosts.B.wmi."root\\\\cimv2"]
requires_encryption = {value}

[[calls]]
from = "A"
to = "B"
user = "CORP\\\\admin"
"""


@pytest.mark.parametrize(("os", "value", "words"), [
    ("2003-sp1", "true", "Windows Vista and later"),
    ("2022", '"yes"', "must be true or false"),
])
def test_bad_requires_encryption_names_line_and_field(os: str, value: str, words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        loads(HEAD.replace("{os}", os).replace("{value}", value), "f.toml")
    e = info.value
    assert e.line == 17, str(e)
    assert e.field.startswith('hosts.B.wmi."root\\cimv2".requires_encryption'), e.field
    assert words in e.message


# ---- root\MSCluster: a feature's namespace, marked RequiresEncryption -----------------------

CLUSTER = "root\\MSCluster"
FC = ["Failover-Clustering"]


def test_mscluster_exists_only_with_failover_clustering() -> None:
    d = pair()
    d["calls"] = [c(namespace=CLUSTER, auth_level="privacy")]
    without = verdict(d)
    d["hosts"]["B"]["features"] = FC
    assert (without.result, verdict(d).result) == ("0x8004100E", "ok")


@pytest.mark.parametrize(("level", "expected"), [
    (None, "0x80041003"), ("integrity", "0x80041003"), ("privacy", "ok")])
def test_mscluster_refuses_below_privacy_as_terminal_services_does(level: str | None,
                                                                  expected: str) -> None:
    d = pair(features=FC)
    call = c(namespace=CLUSTER, **({} if level is None else {"auth_level": level}))
    d["calls"] = [call, {**call, "namespace": TS}]
    s = make(d)
    got = [flow.evaluate(s.world, x) for x in s.calls]
    assert [v.result for v in got] == [expected, expected]
    if expected != "ok":
        failed = got[0].failed
        assert failed is not None and (failed.id, failed.where) == (steps.C1_NAMESPACE,
                                                                   "encryption")
        assert "WBEM_MC_WBEM_REQUIRES_ENCRYPTION_DENIED" in failed.detail
        # The same fix as for TerminalServices: the program asks for privacy, proven.
        fix = remedy.remedy(s.world, s.calls[0])
        assert fix.proven and [ch.kind for ch in fix.changes] == ["call"]
        assert "privacy" in fix.changes[0].commands[0]


FEATURES_HEAD = """
[domains.CORP]
dns = "corp.example"
accounts = { admin = "Adm1n!" }

[hosts.B]
os = "{os}"
domain = "CORP"
address = "10.1.0.2/24"
features = {value}
"""


@pytest.mark.parametrize(("os", "value", "field", "words"), [
    ("2003-sp1", '["Failover-Clustering"]', "features[0]", "Windows Server 2008 and later"),
    ("11", '["Failover-Clustering"]', "features[0]", "Windows 11"),
    ("2022", '["Hyper-V"]', "features[0]", "unknown feature 'Hyper-V'"),
    ("2022", '["Failover-Clustering", 3]', "features[1]", "a feature name"),
    ("2022", '"Failover-Clustering"', "features", "must be a list"),
])
def test_bad_features_name_file_line_and_field(os: str, value: str, field: str,
                                               words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        loads(FEATURES_HEAD.replace("{os}", os).replace("{value}", value), "f.toml")
    e = info.value
    assert (e.file, e.line) == ("f.toml", 10), str(e)
    assert e.field == f"hosts.B.{field}", e.field
    assert words in e.message, e.message


# ---- Connection 2 on Vista and later ----------------------------------------------------


def workgroup_pair(os_a: str = "11", os_b: str = "2022", *,
                   allow: int | None = None, anonymous_on_a: bool = True) -> dict[str, Any]:
    """B in a workgroup calls back anonymously; A lets ANONYMOUS LOGON call its sink."""
    registry: dict[str, Any] = {}
    if allow is not None:
        registry["AllowAnonymousCallback"] = allow
    d = pair(os_a, os_b, registry=registry, accounts={"monitor": "M0n!tor"},
             groups={"Administrators": ["B\\monitor"]})
    del d["hosts"]["B"]["domain"]
    d["hosts"]["B"]["workgroup"] = "WORKGROUP"
    # The built-in Administrator is not filtered by remote UAC; a dedicated local account is,
    # so the call uses the RID-500 account to reach Connection 2.
    d["hosts"]["B"]["accounts"] = {"Administrator": "Adm!n500"}
    d["hosts"]["B"]["groups"] = {}
    if anonymous_on_a:
        d["hosts"]["A"]["dcom"] = {"access_limits": ANON_REMOTE}
    d["calls"] = [{"from": "A", "to": "B", "user": "B\\Administrator", "mode": "async"}]
    return d


def test_vista_and_later_make_no_anonymous_callback_by_default() -> None:
    v = verdict(workgroup_pair())
    assert v.result == "0x80070005"
    failed = v.failed
    assert failed is not None and failed.id == steps.C2_IDENTITY
    assert failed.where == "anonymous-callback"
    assert "AllowAnonymousCallback is absent" in failed.detail


@pytest.mark.parametrize(("allow", "expected"), [(0, "0x80070005"), (1, "ok")])
def test_allow_anonymous_callback_on_b_decides(allow: int, expected: str) -> None:
    assert verdict(workgroup_pair(allow=allow)).result == expected


def test_an_anonymous_callback_still_needs_anonymous_remote_access_on_a() -> None:
    # Vista and later: MachineAccessRestriction gives ANONYMOUS LOGON local access only.
    v = verdict(workgroup_pair(allow=1, anonymous_on_a=False))
    assert v.result == "0x80070005"
    assert v.failed is not None and v.failed.id == steps.C2_ACCESS


def test_xp_b_falls_back_to_anonymous_without_the_value() -> None:
    d = workgroup_pair(os_a="xp-sp2", os_b="xp-sp2")
    d["hosts"]["A"]["netsh"] = ["netsh firewall set service RemoteAdmin enable",
                                "netsh firewall add allowedprogram "
                                "program=%windir%\\system32\\wbem\\unsecapp.exe name=UNSECAPP"]
    d["hosts"]["B"]["netsh"] = ["netsh firewall set service RemoteAdmin enable"]
    d["hosts"]["B"]["registry"] = {"ForceGuest": 0}
    assert verdict(d).result == "ok"


def test_allow_anonymous_callback_warns_on_xp() -> None:
    d = workgroup_pair(os_a="xp-sp2", os_b="xp-sp2", allow=1)
    d["hosts"]["A"]["netsh"] = d["hosts"]["B"]["netsh"] = []
    s = make(d)
    assert any("AllowAnonymousCallback has no effect on xp-sp2" in w
               for w in s.world.host("B").warnings())


# ---- UnsecAppAccessControlDefault on A: unsecapp's own check of its callers ----------------

UNSECAPP_CHECK = {"UnsecAppAccessControlDefault": 1}


def _unsecapp_on(d: dict[str, Any], value: int | None = 1) -> dict[str, Any]:
    if value is not None:
        d["hosts"]["A"].setdefault("registry", {})["UnsecAppAccessControlDefault"] = value
    return d


@pytest.mark.parametrize(("value", "expected"), [(None, "ok"), (0, "ok"), (1, "0x80070005")])
def test_unsecapp_access_control_refuses_the_anonymous_callback(value: int | None,
                                                                expected: str) -> None:
    v = verdict(_unsecapp_on(workgroup_pair(allow=1), value))
    assert v.result == expected
    if expected != "ok":
        failed = v.failed
        assert failed is not None and (failed.id, failed.where) == (steps.C2_ACCESS, "unsecapp")
        assert "UnsecAppAccessControlDefault = 1 on A" in failed.detail
        assert "ANONYMOUS LOGON" in failed.detail


def test_unsecapp_access_control_takes_b_s_machine_account() -> None:
    d = _unsecapp_on(pair())
    d["calls"] = [c("async")]
    v = verdict(d)
    assert v.ok, v.failed
    access = next(s for s in v.steps if s.id == steps.C2_ACCESS)
    assert access.ok


def test_unsecapp_access_control_refuses_a_guest_mapped_callback() -> None:
    # B in a domain A does not trust; A's Guest is enabled, so B's machine account arrives as
    # Guest (KB 103390), which A's limits admit but unsecapp's check does not.
    d = pair()
    d["domains"]["OTHER"] = {"dns": "other.example", "accounts": {"admin": "0ther!"}}
    d["hosts"]["B"]["domain"] = "OTHER"
    d["hosts"]["B"]["groups"] = {"Administrators": ["OTHER\\admin"]}
    d["hosts"]["A"]["accounts"] = {"Guest": ""}
    d["calls"] = [{"from": "A", "to": "B", "user": "OTHER\\admin", "mode": "async"}]
    before = verdict(d)
    after = verdict(_unsecapp_on(copy.deepcopy(d)))
    identity = next(s for s in before.steps if s.id == steps.C2_IDENTITY)
    assert identity.where == "guest" and before.ok, before.failed
    assert after.failed is not None and after.failed.where == "unsecapp"
    assert "is not it" in after.failed.detail


def test_unsecapp_access_control_does_not_apply_to_an_application_s_own_sink() -> None:
    d = _unsecapp_on(workgroup_pair(allow=1))
    d["calls"][0]["sink"] = "C:\\Monitor\\sink.exe"
    d["hosts"]["A"]["netsh"] = [*d["hosts"]["A"]["netsh"], "netsh advfirewall firewall add "
                                'rule name=sink dir=in action=allow program="C:\\Monitor\\sink.exe"']
    assert verdict(d).result == "ok"


def test_unsecapp_refusal_gets_the_semisynchronous_call_never_the_value_back_to_0() -> None:
    s = make(_unsecapp_on(workgroup_pair(allow=1)))
    fix = remedy.remedy(s.world, s.calls[0])
    assert not fix.changes and fix.unfixable is not None
    assert "does not set UnsecAppAccessControlDefault back to 0" in fix.unfixable
    assert [ch.kind for ch in fix.semisync] == ["call"]
    assert all(not (isinstance(ch.edit, remedy.RegistrySet)
                    and ch.edit.name == "UnsecAppAccessControlDefault")
               for ch in fix.all_changes())


def test_unsecapp_with_a_refused_machine_account_gets_its_remote_access_fixed() -> None:
    # A's limits refuse everyone remotely but ANONYMOUS LOGON: B's machine account is refused
    # by COM, and the anonymous retry by unsecapp. The fix grants B$ Remote Access, proven.
    d = _unsecapp_on(pair())
    d["hosts"]["A"]["dcom"] = {"access_limits": {"Everyone": ["local access"], **ANON_REMOTE}}
    d["calls"] = [c("async")]
    s = make(d)
    assert flow.evaluate(s.world, s.calls[0]).failed.id == steps.C2_ACCESS  # type: ignore[union-attr]
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven and [ch.kind for ch in fix.changes] == ["dcom"], fix
    assert "CORP\\B$" in fix.changes[0].summary


def test_unsecapp_access_control_warns_on_xp_and_a_bad_value_is_refused() -> None:
    d = workgroup_pair(os_a="xp-sp2", os_b="xp-sp2")
    d["hosts"]["A"]["netsh"] = d["hosts"]["B"]["netsh"] = []
    s = make(_unsecapp_on(d))
    assert any("UnsecAppAccessControlDefault has no effect on xp-sp2" in w
               for w in s.world.host("A").warnings())
    with pytest.raises(ScenarioError) as info:
        make(_unsecapp_on(pair(), 2))
    assert info.value.field == "hosts.A.registry.UnsecAppAccessControlDefault"
    assert "0 (no access check" in info.value.message


def test_async_in_rule_on_a_is_connection_2s_firewall_step() -> None:
    d = pair()
    d["hosts"]["A"]["netsh"] = []  # WFAS default: inbound blocked, WMI group off
    d["calls"] = [c("async")]
    v = verdict(d)
    assert v.failed is not None and v.failed.id == steps.C2_RESOLVER_PORT
    s = make(d)
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven
    text = " ".join(cmd for ch in fix.changes for cmd in ch.commands)
    # DCOM-In and ASync-In of the WMI group, each for B's address only.
    assert "remoteip=10.7.0.2" in text and "ASync-In" in text


def test_untrusted_fix_prefers_semisync_and_otherwise_allows_anonymous_callback() -> None:
    s = make(workgroup_pair(anonymous_on_a=False))
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven and fix.semisync is not None
    assert [ch.kind for ch in fix.semisync] == ["call"]
    kinds = {(ch.host, ch.kind): ch for ch in fix.changes}
    assert ("B", "registry") in kinds and "AllowAnonymousCallback" in \
        kinds[("B", "registry")].commands[0]
    assert ("A", "dcom") in kinds  # ANONYMOUS LOGON Remote Access on A


def test_same_domain_fix_never_allows_anonymous_callback() -> None:
    d = pair(os_a="10", os_b="2019")
    # A admits nobody remotely: B's machine account must be granted, not anonymity.
    d["hosts"]["A"]["dcom"] = {"access_limits": {"Everyone": ["local access"]}}
    d["calls"] = [c("async")]
    s = make(d)
    v = flow.evaluate(s.world, s.calls[0])
    assert v.failed is not None and v.failed.id == steps.C2_ACCESS
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.proven
    for ch in fix.all_changes():
        assert "AllowAnonymousCallback" not in " ".join(ch.commands)
        assert "ANONYMOUS" not in ch.summary
    assert any("CORP\\B$" in ch.summary for ch in fix.changes)


def test_encrypted_namespace_callback_needs_a_trusted_machine_account() -> None:
    # Same domain: B calls back as CORP\B$ at privacy only, and A admits it.
    d = pair()
    d["calls"] = [c("async", namespace=TS, auth_level="privacy")]
    assert verdict(d).result == "ok"
    s = make(d)
    (rung,) = steps.callback_ladder(s.world, "B", "A", TS)
    assert rung.level == 6 and rung.token.name == "CORP\\B$"
    # A workgroup B: no identity A recognizes, so no encrypted callback even with
    # AllowAnonymousCallback = 1; the semisynchronous call is the fix.
    w = workgroup_pair(allow=1)
    w["calls"][0].update(namespace=TS, auth_level="privacy")
    s = make(w)
    v = flow.evaluate(s.world, s.calls[0])
    assert v.result == "0x80070005"
    assert v.failed is not None and v.failed.where == "encryption-callback"
    assert "WBEM_MC_WBEM_REQUIRES_ENCRYPTION_ASYNC_DENIED" in v.failed.detail
    fix = remedy.remedy(s.world, s.calls[0])
    assert fix.unfixable is not None and fix.semisync is not None
    assert fix.semisync[0].kind == "call"


# ---- the default DCOM limits of Vista and later ------------------------------------------

_LAUNCH_ALL = (COM_RIGHTS_EXECUTE_LOCAL | COM_RIGHTS_EXECUTE_REMOTE | COM_RIGHTS_ACTIVATE_LOCAL
               | COM_RIGHTS_ACTIVATE_REMOTE)


@pytest.mark.parametrize(("os", "perf", "packages"), [
    ("xp-sp2", False, False), ("2003-sp1", False, False), ("vista-sp2", True, False),
    ("2008r2-sp1", True, False), ("8.1", True, True), ("2022", True, True), ("11", True, True),
])
def test_default_machine_limits_per_os(os: str, perf: bool, packages: bool) -> None:
    s = make(pair())
    d = DcomSecurity.defaults(os, s.world.directory, "B")
    launch, access = d.launch_limits, d.access_limits
    assert (launch.rights_of(sids.PERFORMANCE_LOG_USERS) & _LAUNCH_ALL == _LAUNCH_ALL) is perf
    assert bool(access.rights_of(sids.PERFORMANCE_LOG_USERS) & COM_RIGHTS_EXECUTE_REMOTE) is perf
    got = launch.rights_of(sids.ALL_APP_PACKAGES)
    assert bool(got) is packages
    # ALL APPLICATION PACKAGES gets local rights only.
    assert not got & (COM_RIGHTS_EXECUTE_REMOTE | COM_RIGHTS_ACTIVATE_REMOTE)
    assert not access.rights_of(sids.ALL_APP_PACKAGES) & COM_RIGHTS_EXECUTE_REMOTE
    # ANONYMOUS LOGON: local access only, from XP SP2 on (2003 SP1 alone gives remote too).
    remote = bool(access.rights_of(sids.ANONYMOUS) & COM_RIGHTS_EXECUTE_REMOTE)
    assert remote is (os == "2003-sp1")


@pytest.mark.parametrize(("os", "expected"), [("2022", "ok"), ("2003-sp1", "0x80070005")])
def test_performance_log_users_pass_the_launch_limits_from_vista_on(os: str,
                                                                   expected: str) -> None:
    d = pair(os_b=os, accounts={"perf": "P3rf!"},
             groups={"Performance Log Users": ["B\\perf"]},
             wmi={"root\\cimv2": {"B\\perf": ["enable account", "remote enable"]}})
    if os == "2003-sp1":
        d["hosts"]["B"]["netsh"] = ["netsh firewall set service RemoteAdmin enable"]
    d["calls"] = [{"from": "A", "to": "B", "user": "B\\perf", "auth_level": "privacy"}]
    v = verdict(d)
    assert v.result == expected
    if expected != "ok":
        assert v.failed is not None and v.failed.where == "launch_limits"


@pytest.mark.parametrize(("command", "expected"), [
    (None, "0x80041003"),  # the shared svchost.exe: PKT, below privacy
    ("winmgmt /standalonehost", "0x80041003"),  # standalone at its default level 4
    ("winmgmt /standalonehost 6", "ok"),  # default clients negotiate up to privacy
])
def test_default_clients_negotiate_up_to_a_standalone_wmi_s_level(command: str | None,
                                                                  expected: str) -> None:
    d = pair(**({} if command is None else {"commands": [command]}))
    d["calls"] = [c(namespace=TS)]
    v = verdict(d)
    assert v.result == expected
    if command is None:
        assert v.failed is not None and "negotiated" not in v.failed.detail
