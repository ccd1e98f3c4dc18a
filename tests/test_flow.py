"""The seed's walk-through, step by step, on both OS versions."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import base_doc, call, make, results
from wmilab import flow, steps

OSES = ["xp-sp2", "2003-sp1"]
RA = "netsh firewall set service RemoteAdmin enable"
A_CONN2 = [
    "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135",
    "netsh firewall add allowedprogram program=%windir%\\system32\\wbem\\unsecapp.exe "
    "name=UNSECAPP",
]
FW_ON = "netsh firewall set opmode mode=ENABLE"


def fw_on(os: str) -> list[str]:
    # Server 2003 SP1 ships with the firewall off (seed); turn it on to test the rules.
    return [FW_ON] if os == "2003-sp1" else []


def failed(doc: dict[str, Any], i: int = 0) -> flow.Step:
    s = make(doc)
    v = flow.evaluate(s.world, s.calls[i])
    assert v.failed is not None, "the call unexpectedly works"
    return v.failed


def test_xp_sp2_defaults_block_connection_1() -> None:
    d = base_doc()
    d["calls"] = [call("sync"), call("semisync"), call("async")]
    assert results(d) == ["0x800706BA"] * 3
    step = failed(d)
    assert (step.connection, step.id, step.host) == (1, steps.C1_RPCSS, "B")


def test_2003_sp1_defaults_have_the_firewall_off() -> None:
    d = base_doc("2003-sp1", "2003-sp1")
    d["calls"] = [call("semisync"), call("async")]
    assert results(d) == ["ok", "ok"]


@pytest.mark.parametrize("os", OSES)
def test_remote_admin_on_b_fixes_sync_and_semisync(os: str) -> None:
    d = base_doc(os, os)
    d["hosts"]["B"]["netsh"] = [*fw_on(os), RA]
    d["hosts"]["A"]["netsh"] = fw_on(os)
    d["calls"] = [call("sync"), call("semisync")]
    assert results(d) == ["ok", "ok"]


@pytest.mark.parametrize("os", OSES)
def test_async_with_a_unconfigured_fails_on_connection_2(os: str) -> None:
    d = base_doc(os, os)
    d["hosts"]["B"]["netsh"] = [*fw_on(os), RA]
    d["hosts"]["A"]["netsh"] = fw_on(os)
    d["calls"] = [call("async")]
    assert results(d) == ["0x800706BA"]
    step = failed(d)
    assert (step.connection, step.id, step.host) == (2, steps.C2_RESOLVER_PORT, "A")


@pytest.mark.parametrize("os", OSES)
def test_a_with_remote_admin_port_135_and_unsecapp_succeeds(os: str) -> None:
    d = base_doc(os, os)
    d["hosts"]["B"]["netsh"] = [*fw_on(os), RA]
    d["hosts"]["A"]["netsh"] = [*fw_on(os), RA, *A_CONN2]
    d["calls"] = [call("async")]
    assert results(d) == ["ok"]


def test_port_135_alone_is_not_enough_for_connection_1() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [A_CONN2[0]]
    d["calls"] = [call()]
    step = failed(d)
    assert step.id == steps.C1_WMI_PORT and step.hresult is not None
    assert step.hresult.hex == "0x800706BA"


def test_port_135_alone_is_not_enough_for_connection_2() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["hosts"]["A"]["netsh"] = [A_CONN2[0]]
    d["calls"] = [call("async")]
    assert failed(d).id == steps.C2_SINK_PORT


def test_remote_admin_does_not_open_unsecapp() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["hosts"]["A"]["netsh"] = [RA]
    d["calls"] = [call("async")]
    assert failed(d).id == steps.C2_SINK_PORT


def test_the_applications_own_sink_must_be_allowed_instead_of_unsecapp() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["hosts"]["A"]["netsh"] = list(A_CONN2)
    app = "C:\\Program Files\\Monitor\\monitor.exe"
    d["calls"] = [call("async", sink=app)]
    assert failed(d).id == steps.C2_SINK_PORT
    d["hosts"]["A"]["netsh"] = [
        A_CONN2[0], f'netsh firewall add allowedprogram program="{app}" name=MONITOR']
    assert results(d) == ["ok"]


@pytest.mark.parametrize("os_b", OSES)
def test_workgroup_callback_is_anonymous_and_needs_remote_access_on_a(os_b: str) -> None:
    d = {
        "hosts": {
            "A": {"os": "xp-sp2", "workgroup": "WORKGROUP", "address": "10.1.0.1/24",
                  "netsh": list(A_CONN2)},
            "B": {"os": os_b, "workgroup": "WORKGROUP", "address": "10.1.0.2/24",
                  "netsh": [*fw_on(os_b), RA], "accounts": {"wmiadmin": "W1!"},
                  "registry": {"ForceGuest": 0},
                  "groups": {"Administrators": ["B\\wmiadmin"]}},
        },
        "calls": [{"from": "A", "to": "B", "user": "B\\wmiadmin", "mode": "semisync"},
                  {"from": "A", "to": "B", "user": "B\\wmiadmin", "mode": "async"}],
    }
    assert results(d) == ["ok", "0x80070005"]
    step = failed(d, 1)
    assert (step.id, step.host, step.connection) == (steps.C2_ACCESS, "A", 2)
    s = make(d)
    v = flow.evaluate(s.world, s.calls[1])
    ident = next(x for x in v.steps if x.id == steps.C2_IDENTITY)
    assert "ANONYMOUS LOGON" in ident.detail
    d["hosts"]["A"]["dcom"] = {"access_limits": {"ANONYMOUS LOGON": ["local access",
                                                                      "remote access"]}}
    assert results(d) == ["ok", "ok"]


def _two_domains(trusted: bool) -> dict[str, Any]:
    d = base_doc("xp-sp2", "2003-sp1")
    d["domains"]["OTHER"] = {"accounts": {"oadmin": "O!"}, "groups": {"Domain Admins": ["oadmin"]}}
    if trusted:
        d["domains"]["CORP"]["trusts"] = ["OTHER"]
    d["hosts"]["B"]["domain"] = "OTHER"
    d["hosts"]["A"]["netsh"] = list(A_CONN2)
    d["calls"] = [call("async", user="OTHER\\oadmin")]
    return d


def test_untrusted_domain_callback_is_anonymous_and_refused() -> None:
    d = _two_domains(trusted=False)
    assert results(d) == ["0x80070005"]
    assert failed(d).id == steps.C2_ACCESS


def test_trusted_domain_callback_works_without_the_anonymous_grant() -> None:
    assert results(_two_domains(trusted=True)) == ["ok"]


@pytest.mark.parametrize("os", OSES)
def test_non_admin_paths(os: str) -> None:
    d = base_doc(os, os)
    d["hosts"]["B"]["netsh"] = [*fw_on(os), RA]
    d["calls"] = [call(user="CORP\\bob")]
    # Without DCOM remote launch/activation: 0x80070005 at activation (seed).
    assert results(d) == ["0x80070005"]
    assert failed(d).id == steps.C1_ACTIVATION
    d["hosts"]["B"]["dcom"] = {"launch_limits": {
        "CORP\\bob": ["local launch", "remote launch", "local activation", "remote activation"]}}
    # With it but without Remote Enable: WBEM_E_ACCESS_DENIED at NTLMLogin.
    assert results(d) == ["0x80041003"]
    assert failed(d).id == steps.C1_NAMESPACE
    d["hosts"]["B"]["wmi"] = {"root\\cimv2": {"CORP\\bob": ["enable account", "remote enable"]}}
    assert results(d) == ["ok"]


def test_wrong_password_is_access_denied() -> None:
    d = base_doc("2003-sp1", "2003-sp1")
    d["calls"] = [call(password="nope")]
    assert results(d) == ["0x80070005"]
    assert failed(d).id == steps.C1_LOGON


def test_do_not_allow_exceptions_overrides_local_exceptions() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["hosts"]["B"]["policy"] = {
        "Network/Network Connections/Windows Firewall/Domain Profile/"
        "Windows Firewall: Do not allow exceptions": {"state": "Enabled"}}
    d["calls"] = [call()]
    assert results(d) == ["0x800706BA"]
    # The same setting in the standard profile does not apply to a domain member on its domain.
    d["hosts"]["B"]["policy"] = {
        "Network/Network Connections/Windows Firewall/Standard Profile/"
        "Windows Firewall: Do not allow exceptions": {"state": "Enabled"}}
    assert results(d) == ["ok"]


def test_remote_admin_scope_that_excludes_a_blocks() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [
        "netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM "
        "addresses=192.168.10.99"]
    d["calls"] = [call()]
    assert results(d) == ["0x800706BA"]
    d["hosts"]["B"]["netsh"] = ["netsh firewall set service REMOTEADMIN ENABLE SUBNET"]
    assert results(d) == ["ok"]
    d["hosts"]["A"]["address"] = "192.168.11.1/24"
    assert results(d) == ["0x800706BA"]


def test_exception_in_the_other_profile_does_not_apply() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = ["netsh firewall set service RemoteAdmin enable profile=STANDARD"]
    d["calls"] = [call()]
    assert results(d) == ["0x800706BA"]
    d["hosts"]["B"]["profile"] = "standard"
    assert results(d) == ["ok"]


def test_group_policy_remote_admin_disabled_beats_netsh() -> None:
    d = base_doc()
    d["hosts"]["B"]["netsh"] = [RA]
    d["hosts"]["B"]["policy"] = {
        "Network/Network Connections/Windows Firewall/Domain Profile/"
        "Windows Firewall: Allow remote administration exception": {"state": "Disabled"}}
    d["calls"] = [call()]
    assert results(d) == ["0x800706BA"]


def test_xp_workgroup_force_guest_denies_local_admin() -> None:
    d = {
        "hosts": {
            "A": {"os": "xp-sp2", "workgroup": "WORKGROUP", "address": "10.1.0.1/24"},
            "B": {"os": "xp-sp2", "workgroup": "WORKGROUP", "address": "10.1.0.2/24",
                  "netsh": [RA], "accounts": {"wmiadmin": "W1!"},
                  "groups": {"Administrators": ["B\\wmiadmin"]}},
        },
        "calls": [{"from": "A", "to": "B", "user": "B\\wmiadmin"}],
    }
    assert results(d) == ["0x80070005"]
    d["hosts"]["B"]["registry"] = {"ForceGuest": 0}
    assert results(d) == ["ok"]


def test_unknown_namespace() -> None:
    d = base_doc("2003-sp1", "2003-sp1")
    d["calls"] = [call(namespace="root\\nosuch")]
    assert results(d) == ["0x8004100E"]


def test_enable_dcom_off_on_b_denies() -> None:
    d = base_doc("2003-sp1", "2003-sp1")
    d["hosts"]["B"]["dcom"] = {"enable_dcom": False}
    d["calls"] = [call()]
    assert results(d) != ["ok"]


def test_enable_dcom_off_on_a_stops_outgoing_calls() -> None:
    d = base_doc("2003-sp1", "2003-sp1")
    d["hosts"]["A"]["dcom"] = {"enable_dcom": False}
    d["calls"] = [call()]
    step = failed(d)
    assert (step.id, step.host) == (steps.C1_CLIENT_DCOM, "A")


def test_sharing_model_policy_beats_the_forceguest_registry_value() -> None:
    d = {
        "hosts": {
            "A": {"os": "xp-sp2", "workgroup": "WORKGROUP", "address": "10.1.0.1/24"},
            "B": {"os": "xp-sp2", "workgroup": "WORKGROUP", "address": "10.1.0.2/24",
                  "netsh": [RA], "accounts": {"wmiadmin": "W1!"},
                  "registry": {"ForceGuest": 0},
                  "groups": {"Administrators": ["B\\wmiadmin"]},
                  "policy": {"Windows Settings/Security Settings/Local Policies/Security "
                             "Options/Network access: Sharing and security model for local "
                             "accounts": {"state": "Enabled", "model": "Guest only"}}},
        },
        "calls": [{"from": "A", "to": "B", "user": "B\\wmiadmin"}],
    }
    assert results(d) == ["0x80070005"]
    assert failed(d).id == steps.C1_LOGON


@pytest.mark.parametrize("os", OSES)
def test_custom_scoped_sink_program_refuses_a_source_outside_its_list(os: str) -> None:
    # A CUSTOM-scoped program exception admits exactly the addresses listed (netsh firewall
    # add allowedprogram ... scope=CUSTOM addresses=...; TechNet cc737332 "Scope").
    d = base_doc(os_a=os, os_b=os)
    d["hosts"]["B"]["netsh"] = [*fw_on(os), RA]
    unsecapp = "%windir%\\system32\\wbem\\unsecapp.exe"
    for listed, ok in (("192.168.10.7", False), ("192.168.10.2", True),
                       ("10.0.0.0/8,192.168.10.9", False), ("192.168.10.0/255.255.255.0", True)):
        d["hosts"]["A"]["netsh"] = [
            *fw_on(os), A_CONN2[0],
            f"netsh firewall add allowedprogram program={unsecapp} name=UNSECAPP "
            f"scope=CUSTOM addresses={listed}"]
        d["calls"] = [call("async")]
        if ok:
            assert results(d) == ["ok"], listed
        else:
            step = failed(d)
            assert (step.id, step.host, step.hresult) == (
                steps.C2_SINK_PORT, "A", flow.hr.RPC_S_SERVER_UNAVAILABLE), listed
