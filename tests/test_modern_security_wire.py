"""Vista and later on the wire: a namespace that requires encryption met by impacket, and
Connection 2 (AllowAnonymousCallback, the encrypted callback) met by wmilab's own client with
a real sink, each as the model predicts."""

from __future__ import annotations

import copy
import subprocess
import sys
import uuid
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from conftest import CORP, fresh_net, loopback_net, make, started_lab
from wmilab import flow, steps
from wmilab.host.callback import CallbackOutcome
from wmilab.lab.verify import CallCheck, ThreadedLab, impacket_query, verify_calls

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
    return started_lab(make(doc), network=IPv4Network(loopback_net()))


def _one_async_call(doc: dict[str, Any],
                    passwords: dict[str, str | None]) -> tuple[CallCheck, list[CallbackOutcome]]:
    """Make the scenario's one call on the wire; returns its check and B's callbacks."""
    lab = _lab(doc)
    try:
        (chk,) = verify_calls(lab, passwords)
        return chk, list(lab.lab.servers["B"].callbacks.outcomes)
    finally:
        lab.close()


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
    chk, outcomes = _one_async_call(doc, {"B\\Administrator": "Adm!n500"})
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


@pytest.mark.parametrize(("workgroup", "sink", "expected"), [
    # An anonymous callback: unsecapp with UnsecAppAccessControlDefault = 1 refuses it ...
    (True, "unsecapp", "0x80070005"),
    # ... but not an application's own sink, which does not read the value.
    (True, "C:\\Monitor\\sink.exe", "ok"),
    # B's machine account, the computer that obtained the sink: unsecapp takes it.
    (False, "unsecapp", "ok"),
])
def test_unsecapp_access_control_on_a_is_enforced_by_the_sink_on_the_wire(
        workgroup: bool, sink: str, expected: str) -> None:
    doc = pair(workgroup=workgroup, allow=1)
    a = doc["hosts"]["A"]
    a["registry"] = {"UnsecAppAccessControlDefault": 1}
    a["netsh"] = [*a["netsh"], "netsh advfirewall firewall add rule name=sink dir=in "
                  'action=allow program="C:\\Monitor\\sink.exe"']
    user = "B\\Administrator" if workgroup else "CORP\\admin"
    doc["calls"] = [{"from": "A", "to": "B", "user": user, "mode": "async", "sink": sink}]
    chk, outcomes = _one_async_call(doc, {user: "Adm!n500" if workgroup else "Adm1n!"})
    assert chk.wire == chk.predicted.result == expected, chk
    (outcome,) = outcomes
    if expected != "ok":
        failed = chk.predicted.failed
        assert failed is not None and (failed.id, failed.where) == (steps.C2_ACCESS, "unsecapp")
        # B dialled A and its call was refused with ERROR_ACCESS_DENIED: A's firewall let it
        # in and A's limits grant ANONYMOUS LOGON Remote Access (the application's own sink
        # gets it), so the refusal is unsecapp's.
        assert (outcome.attempts, outcome.identity, outcome.reason) == (
            1, "NT AUTHORITY\\ANONYMOUS LOGON", "fault 0x00000005")
    else:
        assert outcome.identity == ("NT AUTHORITY\\ANONYMOUS LOGON" if workgroup
                                    else "CORP\\B$")


def test_encrypted_namespace_callback_goes_at_privacy_as_the_machine_account() -> None:
    doc = pair()
    doc["calls"] = [{"from": "A", "to": "B", "user": "CORP\\admin", "mode": "async",
                     "namespace": TS, "auth_level": "privacy"}]
    chk, outcomes = _one_async_call(doc, {"CORP\\admin": "Adm1n!"})
    assert chk.wire == chk.predicted.result == "ok"
    (outcome,) = outcomes
    assert (outcome.identity, outcome.auth_level, outcome.attempts) == ("CORP\\B$", 6, 1)


def test_encrypted_namespace_callback_from_a_workgroup_is_refused() -> None:
    doc = pair(workgroup=True, allow=1)
    doc["calls"] = [{"from": "A", "to": "B", "user": "B\\Administrator", "mode": "async",
                     "namespace": TS, "auth_level": "privacy"}]
    chk, outcomes = _one_async_call(doc, {"B\\Administrator": "Adm!n500"})
    assert chk.wire == chk.predicted.result == "0x80070005"
    (outcome,) = outcomes
    assert outcome.attempts == 0 and "ASYNC_DENIED" in outcome.reason


async def _aiowmi_login_then_query(address: str, namespace: str,
                                   wql: str = "SELECT * FROM __NAMESPACE") -> str:
    from aiowmi.connection import Connection
    from aiowmi.query import Query

    from wmilab.host import client_errors

    conn = Connection(address, "admin", "Adm1n!", domain="CORP")
    try:
        await conn.connect(timeout=10)
        service = await conn.negotiate_ntlm()
        await conn.login_ntlm(service, namespace)  # the login itself is not refused
        try:
            query = Query(wql, namespace=namespace)
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


def test_aiowmi_issue_38_root_mscluster_login_works_the_query_is_refused_below_privacy(
        tmp_path: Path) -> None:
    import asyncio

    # A Server 2022 cluster node: root\MSCluster exists (Failover Clustering) and is marked
    # RequiresEncryption (KB 2590230).
    doc = pair()
    doc["hosts"]["B"]["features"] = ["Failover-Clustering"]
    call = {"from": "A", "to": "B", "user": "CORP\\admin", "namespace": "root\\MSCluster"}
    doc["calls"] = [call, {**call, "auth_level": "privacy"}]
    lab = _lab(doc)
    lab.act_as("B", "A")
    try:
        # aiowmi: NTLMLogin succeeds, ExecQuery (at integrity) gets WBEM_E_ACCESS_DENIED.
        got = asyncio.run(_aiowmi_login_then_query(lab.address("B"), "root/MSCluster",
                                                   "SELECT * FROM MSCluster_Node"))
        # Unmodified wmiquery.py at privacy reads the node.
        out = _wmiquery(lab.address("B"), "root\\MSCluster", "SELECT Name, State FROM "
                        "MSCluster_Node", "privacy", tmp_path)
    finally:
        lab.close()
    s = lab.scenario
    predicted = [flow.evaluate(s.world, c).result for c in s.calls]
    assert got == predicted[0] == "0x80041003"
    assert predicted[1] == "ok" and "Error" not in out, out
    rows = [line.split("|") for line in out.splitlines() if line.startswith("|")]
    assert [[cell.strip() for cell in r[1:3]] for r in rows] == [["B", "0"]], out


def _wmiquery(address: str, namespace: str, query: str, level: str, tmp: Path) -> str:
    """Unmodified impacket wmiquery.py (its default DCOMConnection level, then
    ``-rpc-auth-level`` set on the IWbemServices connection after NTLMLogin)."""
    qfile = tmp / "q.wql"
    qfile.write_text(query + "\n", encoding="utf-8")
    res = subprocess.run(
        [sys.executable, str(Path(sys.executable).parent / "wmiquery.py"), "-file", str(qfile),
         "-namespace", "//./" + namespace.replace("\\", "/"), "-rpc-auth-level", level,
         f"CORP/admin:Adm1n!@{address}"],
        capture_output=True, text=True, timeout=120, check=False)
    return res.stdout + res.stderr


@pytest.mark.parametrize("level", ["default", "privacy"])
def test_wmiquery_rpc_auth_level_privacy_reads_an_encrypted_namespace(
        level: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # wmiquery.py binds the WMI port at the authnHint (integrity) and NTLMLogin runs there;
    # -rpc-auth-level privacy raises the level of impacket's DCE object, and its next call on
    # another interface (RemRelease, ExecQuery, Next) opens a new security context with
    # alter_context at privacy, so the query meets RequiresEncryption at privacy.
    doc = pair()
    doc["calls"] = [{"from": "A", "to": "B", "user": "CORP\\admin", "namespace": TS,
                     "auth_level": "privacy" if level == "privacy" else "integrity"}]
    from wmilab.wire import ids
    from wmilab.wire.rpc_conn import Authenticated, CallReceived, server

    bound: dict[tuple[int, int], int] = {}  # (connection, auth_context_id) -> level
    calls: list[tuple[int, int, int, uuid.UUID]] = []
    original = server.ServerConnection.receive_data

    def spy(self: server.ServerConnection, data: bytes) -> Any:
        events = original(self, data)
        for e in events:
            if isinstance(e, Authenticated):
                bound[(id(self), e.auth_context_id)] = e.auth_level
            elif isinstance(e, CallReceived) and e.auth_context_id is not None:
                calls.append((id(self), e.auth_context_id, e.auth_level, e.interface.uuid))
        return events

    original_call = server.ServerConnection.receive_call

    def spy_call(self: server.ServerConnection, data: bytes) -> Any:
        # The host reads the usual request through receive_call first.
        call = original_call(self, data)
        if call is not None and call.auth_context_id is not None:
            calls.append((id(self), call.auth_context_id, call.auth_level, call.interface.uuid))
        return call

    monkeypatch.setattr(server.ServerConnection, "receive_data", spy)
    monkeypatch.setattr(server.ServerConnection, "receive_call", spy_call)
    lab = _lab(doc)
    lab.act_as("B", "A")
    try:
        out = _wmiquery(lab.address("B"), TS, "SELECT * FROM meta_class", level, tmp_path)
    finally:
        lab.close()
    s = lab.scenario
    predicted = flow.evaluate(s.world, s.calls[0]).result
    rows = [line for line in out.splitlines() if line.startswith("|")]
    # Every call ran at the level its own security context was bound at.
    assert calls and all(bound[(conn, ctx)] == lvl for conn, ctx, lvl, _ in calls)
    levels = {iid: {lvl for _, _, lvl, i in calls if i == iid}
              for iid in (ids.IID_IWBEMLEVEL1LOGIN, ids.IID_IWBEMSERVICES)}
    # NTLMLogin at the authnHint's integrity; with the option, the query at privacy on a
    # security context opened for it.
    assert levels[ids.IID_IWBEMLEVEL1LOGIN] == {5}
    assert levels[ids.IID_IWBEMSERVICES] == ({6} if level == "privacy" else {5})
    if level == "privacy":
        assert predicted == "ok" and "Error" not in out and len(rows) > 5, out
    else:
        assert predicted == "0x80041003" and "WBEM_E_ACCESS_DENIED" in out and not rows, out


def test_impacket_at_pkt_level_is_refused_by_its_own_unsigned_requests(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A non-hardened B (Server 2022 before KB 5004442 phase 2, 2022-06) takes a call at
    # RPC_C_AUTHN_LEVEL_PKT: the model says ok. impacket at authLevel=4 binds and
    # authenticates at level 4 but sends its requests without a sec_trailer (it signs only at
    # integrity and privacy), which the RPC runtime refuses with rpc_s_access_denied.
    from impacket.dcerpc.v5 import transport

    from wmilab.wire import rpc

    doc = pair()
    doc["hosts"]["B"]["updates"] = "2021-09"
    doc["calls"] = [{"from": "A", "to": "B", "user": "CORP\\admin", "auth_level": "pkt"}]
    sent: list[bytes] = []
    original = transport.TCPTransport.send

    def spy(self: Any, data: bytes, *args: Any, **kwargs: Any) -> Any:
        sent.append(bytes(data))
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(transport.TCPTransport, "send", spy)
    lab = _lab(doc)
    lab.act_as("B", "A")
    try:
        got, _ = impacket_query(lab.address("B"), "CORP\\admin", "Adm1n!", "root\\cimv2",
                                "SELECT * FROM Win32_OperatingSystem", auth_level=4)
    finally:
        lab.close()
    s = lab.scenario
    assert flow.evaluate(s.world, s.calls[0]).result == "ok"
    assert got == "0x80070005"
    pdus = [rpc.parse_pdu(d) for d in sent]
    (bind,) = [p for p in pdus if isinstance(p, rpc.Bind)]
    assert bind.auth is not None and bind.auth.auth_level == 4
    (request,) = [p for p in pdus if isinstance(p, rpc.Request)]
    assert request.auth is None  # impacket's, not the host's: no verifier at level 4


@pytest.mark.parametrize(("wmi_out", "expected"), [(False, "0x800706BA"), (True, "ok")])
def test_b_default_outbound_block_stops_the_callback_unless_wmi_out_admits_it(
        wmi_out: bool, expected: str) -> None:
    # WFAS filters outbound connections too: with firewallpolicy ...,blockoutbound only an
    # outbound allow rule lets B's WMI service call the sink back, the WMI group's WMI-Out
    # rule (Learn "Connecting to WMI Remotely Starting with Windows Vista"). The emulated B
    # asks the model before it dials, as the flow does at c2.resolver-port.
    doc = pair()
    b = doc["hosts"]["B"]
    b["netsh"] = [WMI_ON] if wmi_out else [
        f'netsh advfirewall firewall set rule name="Windows Management Instrumentation '
        f'({label})" new enable=yes' for label in ("DCOM-In", "WMI-In")]
    b["netsh"].append("netsh advfirewall set domainprofile firewallpolicy "
                      "blockinbound,blockoutbound")
    doc["calls"] = [{"from": "A", "to": "B", "user": "CORP\\admin", "mode": "async"}]
    chk, outcomes = _one_async_call(doc, {"CORP\\admin": "Adm1n!"})
    assert chk.wire == chk.predicted.result == expected
    (outcome,) = outcomes
    if wmi_out:
        assert outcome.attempts >= 1 and outcome.hresult == 0
    else:
        failed = chk.predicted.failed
        assert failed is not None and failed.id == steps.C2_RESOLVER_PORT and failed.host == "B"
        assert outcome.attempts == 0 and "blockoutbound" in outcome.reason
