"""Vista and later on the wire: a namespace that requires encryption met by impacket, and
Connection 2 (AllowAnonymousCallback, the encrypted callback) met by wmilab's own client with
a real sink, each as the model predicts."""

from __future__ import annotations

import copy
from ipaddress import IPv4Network
from typing import Any

import pytest

from conftest import CORP, fresh_net, loopback_net, make, needs_root
from wmilab import flow, steps
from wmilab.host.server import HostBindError
from wmilab.lab.verify import ThreadedLab, impacket_query, verify_calls

pytestmark = pytest.mark.slow

TS = "root\\CIMV2\\TerminalServices"
WMI_ON = ('netsh advfirewall firewall set rule group="Windows Management Instrumentation (WMI)" '
          "new enable=yes")


def pair(*, workgroup: bool = False, allow: int | None = None) -> dict[str, Any]:
    net = fresh_net()
    b: dict[str, Any] = {"os": "2022", "address": f"{net}.2/24", "netsh": [WMI_ON]}
    if workgroup:
        # The built-in Administrator (RID 500): remote UAC leaves it unfiltered.
        b.update(workgroup="WORKGROUP", accounts={"Administrator": "Adm!n500"})
    else:
        b["domain"] = "CORP"
    if allow is not None:
        b["registry"] = {"AllowAnonymousCallback": allow}
    return {
        "domains": {"CORP": copy.deepcopy(CORP)},
        "hosts": {
            # A: the WMI group on (ASync-In lets the callback reach unsecapp.exe) and
            # ANONYMOUS LOGON allowed Remote Access, so that only B's choice decides.
            "A": {"os": "11", "domain": "CORP", "address": f"{net}.1/24", "netsh": [WMI_ON],
                  "dcom": {"access_limits": {
                      "ANONYMOUS LOGON": ["local access", "remote access"]}}},
            "B": b,
        },
        "calls": [],
    }


def _lab(doc: dict[str, Any]) -> ThreadedLab:
    # Loopback addresses of this lab's own (the machine may run other labs).
    lab = ThreadedLab(make(doc), client_host="A", network=IPv4Network(loopback_net()))
    try:
        lab.start()
    except HostBindError as e:
        needs_root(f"the emulated hosts need port 135: {e.strerror}")
    return lab


@pytest.mark.parametrize(("level", "expected"), [(5, "0x80041003"), (6, "ok")])
def test_impacket_meets_an_encrypted_namespace_as_the_model_says(level: int,
                                                                 expected: str) -> None:
    doc = pair()
    doc["calls"] = [{"from": "A", "to": "B", "user": "CORP\\admin", "namespace": TS,
                     "auth_level": {5: "integrity", 6: "privacy"}[level]}]
    lab = _lab(doc)
    lab.act_as("B", "A")
    try:
        # Integrity passes the DCOM hardening of the activation; NTLMLogin at the same level
        # is below privacy, and the RequiresEncryption namespace refuses it.
        got, _ = impacket_query(lab.address("B"), "CORP\\admin", "Adm1n!", TS,
                                "SELECT * FROM __NAMESPACE", auth_level=level)
    finally:
        lab.close()
    s = lab.scenario
    assert got == flow.evaluate(s.world, s.calls[0]).result == expected


@pytest.mark.parametrize(("allow", "expected"), [(None, "0x80070005"), (1, "ok")])
def test_wmilab_client_gets_the_anonymous_callback_only_if_b_allows_it(
        allow: int | None, expected: str) -> None:
    doc = pair(workgroup=True, allow=allow)
    doc["calls"] = [{"from": "A", "to": "B", "user": "B\\Administrator", "mode": "async"}]
    lab = _lab(doc)
    try:
        (chk,) = verify_calls(lab, {"B\\Administrator": "Adm!n500"})
        outcomes = list(lab.lab.servers["B"].callbacks.outcomes)
    finally:
        lab.close()
    assert chk.note == "wmilab client + sink"
    assert chk.wire == chk.predicted.result == expected
    (outcome,) = outcomes
    if allow is None:
        # B never dialled A: the refusal is c2.identity's, with the model's reason.
        failed = chk.predicted.failed
        assert failed is not None and failed.id == steps.C2_IDENTITY
        assert outcome.attempts == 0 and "AllowAnonymousCallback" in outcome.reason
    else:
        assert outcome.identity == "NT AUTHORITY\\ANONYMOUS LOGON" and outcome.auth_level == 1
        assert chk.rows == 1


def test_encrypted_namespace_callback_goes_at_privacy_as_the_machine_account() -> None:
    doc = pair()
    doc["calls"] = [{"from": "A", "to": "B", "user": "CORP\\admin", "mode": "async",
                     "namespace": TS, "auth_level": "privacy"}]
    lab = _lab(doc)
    try:
        (chk,) = verify_calls(lab, {"CORP\\admin": "Adm1n!"})
        outcomes = list(lab.lab.servers["B"].callbacks.outcomes)
    finally:
        lab.close()
    assert chk.wire == chk.predicted.result == "ok"
    (outcome,) = outcomes
    assert (outcome.identity, outcome.auth_level, outcome.attempts) == ("CORP\\B$", 6, 1)


def test_encrypted_namespace_callback_from_a_workgroup_is_refused() -> None:
    doc = pair(workgroup=True, allow=1)
    doc["calls"] = [{"from": "A", "to": "B", "user": "B\\Administrator", "mode": "async",
                     "namespace": TS, "auth_level": "privacy"}]
    lab = _lab(doc)
    try:
        (chk,) = verify_calls(lab, {"B\\Administrator": "Adm!n500"})
        outcomes = list(lab.lab.servers["B"].callbacks.outcomes)
    finally:
        lab.close()
    assert chk.wire == chk.predicted.result == "0x80070005"
    (outcome,) = outcomes
    assert outcome.attempts == 0 and "ASYNC_DENIED" in outcome.reason


async def _aiowmi_login_then_query(address: str, namespace: str) -> str:
    from aiowmi.connection import Connection
    from aiowmi.query import Query

    from wmilab.host import client_errors

    conn = Connection(address, "admin", "Adm1n!", domain="CORP")
    try:
        await conn.connect(timeout=10)
        service = await conn.negotiate_ntlm()
        await conn.login_ntlm(service, namespace)  # the login itself is not refused
        try:
            query = Query("SELECT * FROM __NAMESPACE", namespace=namespace)
            async with query.context(conn, service) as qc:
                async for _props in qc.results():
                    pass
        except Exception as e:
            code = client_errors.from_exception(e)
            return f"0x{code:08X}" if code is not None else repr(e)
        return "ok"
    finally:
        conn.close()


def test_aiowmi_logs_in_and_is_refused_at_the_query_as_in_its_issue_38() -> None:
    import asyncio

    doc = pair()
    doc["calls"] = [{"from": "A", "to": "B", "user": "CORP\\admin", "namespace": TS}]
    lab = _lab(doc)
    lab.act_as("B", "A")
    try:
        got = asyncio.run(_aiowmi_login_then_query(lab.address("B"), "root/cimv2/TerminalServices"))
        plain = asyncio.run(_aiowmi_login_then_query(lab.address("B"), "root/cimv2"))
    finally:
        lab.close()
    s = lab.scenario
    # aiowmi calls the WMI port at max(authnHint, integrity): below privacy.
    assert got == flow.evaluate(s.world, s.calls[0]).result == "0x80041003"
    assert plain == "ok"
