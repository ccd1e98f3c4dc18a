"""Connection 2 on the wire: B calls the sink on A back, and the result is what `flow` says.

A and B are both emulated in one LoopbackLab (a free port for 135, dynamic ports for WMI and the
sink from each host's RPC range; B finds A's
OXID resolver through the lab, as it would on 135). A small client made of the wire codecs
(activation, NTLMLogin, ExecQueryAsync with the OBJREF of a sink exported by A's sink role)
plays the WMI client on A.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import CORP, fresh_net, make, needs_root
from wmilab import examples, flow, steps
from wmilab.client.session import login
from wmilab.errors import ConfigError
from wmilab.host.callback import (
    CallbackOutcome,
    build_resolve_oxid2_request,
    parse_resolve_oxid2_reply,
)
from wmilab.host.sink import SinkExporter, SinkResult
from wmilab.lab.loopback import LoopbackLab
from wmilab.model import sids
from wmilab.scenario import Call, Scenario, load
from wmilab.transport import RpcCallError, RpcClient
from wmilab.wire import dcom, ids, wmi, wmio
from wmilab.wire.dcom import NdrWriter, ObjRefStandard
from wmilab.wire.rpc import AuthLevel

EXAMPLES = examples.directory()
PORTS = {135: 0}
OS_QUERY = "SELECT * FROM Win32_OperatingSystem"


# ------------------------------------------------------------------------------------------
# The client on A (Connection 1) and one asynchronous call


async def _login(lab: LoopbackLab, s: Scenario, call: Call) -> tuple[RpcClient, ObjRefStandard]:
    """Activation on B:135 and NTLMLogin on the WMI port, from A's address."""
    b = lab.servers[call.target]
    return await login(b.address, b.ports["rpcss"], local_address=str(lab.map.loopback(call.source)),
                       user=call.user, password=call.password or s.world.password_of(call.user) or "",
                       namespace=call.namespace)


def _path_request(path: str, sink: ObjRefStandard, flags: int = 0) -> bytes:
    """GetObjectAsync / CreateInstanceEnumAsync: strObjectPath, lFlags, pCtx, pResponseHandler."""
    w = NdrWriter()
    dcom.write_orpcthis(w, dcom.OrpcThis())
    wmi._write_bstr(w, path)
    w.u32(flags)
    w.u32(0)
    dcom.write_unique_mip(w, sink)
    return w.getvalue()


@dataclass
class AsyncRun:
    reply: int  # the HRESULT the asynchronous call itself returned (Connection 1)
    result: SinkResult  # what A's sink received (Connection 2)
    outcome: CallbackOutcome | None  # what B logged for its callback


async def run_async(s: Scenario, call: Call, *, opnum: int = ids.WbemServicesOp.EXEC_QUERY_ASYNC,
                    target: str | None = None, ports: dict[int, int] | None = None,
                    max_in_flight: int | None = None) -> AsyncRun:
    async with LoopbackLab.for_scenario(s, ports=PORTS if ports is None else ports) as lab:
        b = lab.servers[call.target]
        if max_in_flight is not None:
            b.callbacks.max_in_flight = max_in_flight
        async with SinkExporter(lab.servers[call.source],
                                program=flow.sink_program(call)) as sinks:
            sink = sinks.create()
            try:
                cli, services = await _login(lab, s, call)
            except RpcCallError as e:
                return AsyncRun(e.hresult, sink.result, None)
            async with cli:
                if opnum == ids.WbemServicesOp.EXEC_QUERY_ASYNC:
                    stub = wmi.build_exec_query_request(target or call.query, flags=0,
                                                        sink=sink.objref())
                else:
                    stub = _path_request(target or "Win32_OperatingSystem", sink.objref())
                reply = wmi.parse_hresult_reply(await cli.call(opnum, stub, services.std.ipid))
            await b.callbacks.wait_idle(20)
            outcome = b.callbacks.outcomes[-1] if b.callbacks.outcomes else None
            return AsyncRun(reply, sink.result, outcome)


def _class_names(result: SinkResult) -> list[str]:
    return [o.cls.name if isinstance(o, wmio.Instance) else o.name for o in result.objects]


def check_against_flow(s: Scenario, call: Call, run: AsyncRun) -> flow.Verdict:
    """The wire result of an async call equals `flow.evaluate`'s verdict."""
    verdict = flow.evaluate(s.world, call)
    failed = verdict.failed
    if failed is not None and failed.connection == 1:
        assert f"0x{run.reply:08X}" == verdict.result
        assert run.outcome is None and not run.result.complete
        return verdict
    # The asynchronous call itself starts: WBEM_S_NO_ERROR at once (MS-WMI 3.1.1.1.3).
    assert run.reply == 0
    assert run.outcome is not None
    if verdict.ok:
        assert run.outcome.hresult == 0, run.outcome
        assert run.result.status == 0
        assert _class_names(run.result) == ["Win32_OperatingSystem"]
    else:
        assert failed is not None and failed.connection == 2
        assert f"0x{run.outcome.hresult:08X}" == verdict.result, (run.outcome, failed)
        assert run.result.objects == [] and not run.result.complete
    return verdict


def _async_calls(name: str) -> list[tuple[Scenario, Call]]:
    s = load(EXAMPLES / name)
    return [(s, c) for c in s.calls if c.mode == "async"]


EXAMPLE_CALLS = [
    pytest.param(name, i, id=f"{name[:2]}-{i}")
    for name in ("03-async-a-unconfigured.toml", "04-async-configured.toml",
                 "05-workgroup-callback.toml", "06-untrusted-domain.toml")
    for i, _ in enumerate(_async_calls(name))
]


@pytest.mark.parametrize(("name", "index"), EXAMPLE_CALLS)
def test_examples_async_calls_match_the_flow(name: str, index: int,
                                             caplog: pytest.LogCaptureFixture) -> None:
    s, call = _async_calls(name)[index]
    caplog.set_level(logging.INFO, logger="wmilab.host")
    run = asyncio.run(run_async(s, call))
    verdict = check_against_flow(s, call, run)
    assert run.outcome is not None
    # One log line per callback, with the HRESULT the model gives.
    lines = [r.getMessage() for r in caplog.records if " callback " in r.getMessage()]
    assert len(lines) == 1
    assert f"-> 0x{run.outcome.hresult:08X}" in lines[0]
    if call.expect is not None:
        assert verdict.matches()


def test_seed_network_calls_back_as_the_machine_account() -> None:
    s, call = _async_calls("04-async-configured.toml")[0]
    run = asyncio.run(run_async(s, call))
    assert run.outcome is not None and run.outcome.ok
    # MS-WMI 3.1.1.1.3: B calls as its machine principal; A's sink sees CORP\B$.
    assert run.result.callers and set(run.result.callers) == {"CORP\\B$"}
    assert run.outcome.identity == "CORP\\B$"
    assert run.outcome.auth_level == AuthLevel.PKT_PRIVACY and run.outcome.attempts == 1
    (os_obj,) = run.result.objects
    assert isinstance(os_obj, wmio.Instance) and os_obj.get("CSName") == "B"


def test_trusted_domain_callback_is_the_machine_account_untrusted_is_anonymous() -> None:
    calls = _async_calls("06-untrusted-domain.toml")
    trusted = asyncio.run(run_async(*calls[0]))
    assert set(trusted.result.callers) == {"BRANCH\\BR$"}
    untrusted = asyncio.run(run_async(*calls[1]))
    assert untrusted.outcome is not None
    assert untrusted.outcome.identity == "NT AUTHORITY\\ANONYMOUS LOGON"
    assert untrusted.outcome.auth_level == AuthLevel.NONE
    assert untrusted.outcome.hresult == 0x80070005
    assert untrusted.result.callers == [] and untrusted.result.refused


def test_workgroup_callback_is_anonymous_and_works_where_anonymous_has_remote_access() -> None:
    refused, allowed = _async_calls("05-workgroup-callback.toml")
    run = asyncio.run(run_async(*allowed))
    assert run.outcome is not None and run.outcome.ok
    assert set(run.result.callers) == {"NT AUTHORITY\\ANONYMOUS LOGON"}
    run = asyncio.run(run_async(*refused))
    assert run.outcome is not None and run.outcome.hresult == 0x80070005


# ------------------------------------------------------------------------------------------
# Variants of the seed's network


def scenario(a: dict[str, Any] | None = None, b: dict[str, Any] | None = None,
             **call: Any) -> tuple[Scenario, Call]:
    """A and B in CORP on a subnet of their own, A configured for Connection 2."""
    net = fresh_net()
    host_a: dict[str, Any] = {
        "os": "xp-sp2", "domain": "CORP", "address": f"{net}.1/24",
        "netsh": ["netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135",
                  "netsh firewall add allowedprogram "
                  "program=%windir%\\system32\\wbem\\unsecapp.exe name=UNSECAPP"],
    }
    host_b: dict[str, Any] = {"os": "xp-sp2", "domain": "CORP", "address": f"{net}.2/24",
                              "netsh": ["netsh firewall set service RemoteAdmin enable"]}
    host_a.update(a or {})
    host_b.update(b or {})
    if "workgroup" in host_b:
        del host_b["domain"]
    doc = {"domains": {"CORP": copy.deepcopy(CORP)}, "hosts": {"A": host_a, "B": host_b},
           "calls": [{"from": "A", "to": "B", "user": "CORP\\admin", "mode": "async", **call}]}
    s = make(doc)
    return s, s.calls[0]


VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "ok": ({}, {}),
    "resolver-port closed": ({"netsh": []}, {}),
    "sink port closed (unsecapp not allowed)": (
        {"netsh": ["netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135"]},
        {}),
    "A firewall off": ({"netsh": ["netsh firewall set opmode mode=DISABLE"]}, {}),
    "machine account lacks remote access": (
        {"dcom": {"access_limits": {"Everyone": ["local access"]}}}, {}),
    "B in a workgroup": ({}, {"workgroup": "WORKGROUP",
                              "accounts": {"wmiadmin": "W1mi!"},
                              "groups": {"Administrators": ["B\\wmiadmin"]}, "os": "2003-sp1"}),
    "A on 2003-sp1 (anonymous has remote access)": ({"os": "2003-sp1"}, {}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_match_the_flow(variant: str) -> None:
    a, b = VARIANTS[variant]
    call = {"user": "B\\wmiadmin"} if "workgroup" in b else {}
    s, c = scenario(a, b, **call)
    run = asyncio.run(run_async(s, c))
    check_against_flow(s, c, run)


def test_denied_machine_account_falls_back_to_anonymous_like_windows() -> None:
    """MS-WMI 3.1.1.1.3: B lowers the level on failure, down to none on XP/2003."""
    s, c = scenario({"dcom": {"access_limits": {"Everyone": ["local access"],
                                                "ANONYMOUS LOGON": ["local access",
                                                                    "remote access"]}}})
    run = asyncio.run(run_async(s, c))
    assert run.outcome is not None
    assert run.outcome.ok and run.outcome.attempts == 4
    assert run.outcome.identity == "NT AUTHORITY\\ANONYMOUS LOGON"
    assert set(run.result.callers) == {"NT AUTHORITY\\ANONYMOUS LOGON"}
    assert len(run.result.refused) == 3  # PKT_PRIVACY, PKT_INTEGRITY, CONNECT as CORP\B$


def test_flow_predicts_the_anonymous_fallback() -> None:
    s, c = scenario({"dcom": {"access_limits": {"Everyone": ["local access"],
                                                "ANONYMOUS LOGON": ["local access",
                                                                    "remote access"]}}})
    assert flow.evaluate(s.world, c).ok


def test_own_sink_program_needs_its_own_exception() -> None:
    s, c = scenario(sink="C:\\Program Files\\Monitor\\monitor.exe")
    run = asyncio.run(run_async(s, c))
    verdict = check_against_flow(s, c, run)
    assert verdict.failed is not None and verdict.failed.id == steps.C2_SINK_PORT
    allowed = ("netsh firewall add allowedprogram "
               "program=\"C:\\Program Files\\Monitor\\monitor.exe\" name=Monitor")
    s, c = scenario({"netsh": [
        "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135", allowed]},
        sink="C:\\Program Files\\Monitor\\monitor.exe")
    run = asyncio.run(run_async(s, c))
    assert check_against_flow(s, c, run).ok


def test_bad_class_is_delivered_through_set_status() -> None:
    s, c = scenario()
    run = asyncio.run(run_async(s, c, target="SELECT * FROM NoSuchClass"))
    assert run.reply == 0
    assert run.result.objects == [] and run.result.status == 0x80041010  # WBEM_E_INVALID_CLASS
    assert run.outcome is not None and run.outcome.ok and run.outcome.status == 0x80041010


def test_get_object_and_instance_enum_async() -> None:
    s, c = scenario()
    run = asyncio.run(run_async(s, c, opnum=ids.WbemServicesOp.GET_OBJECT_ASYNC,
                                target="Win32_OperatingSystem=@"))
    assert run.outcome is not None and run.outcome.ok and run.result.status == 0
    assert _class_names(run.result) == ["Win32_OperatingSystem"]
    run = asyncio.run(run_async(s, c, opnum=ids.WbemServicesOp.CREATE_INSTANCE_ENUM_ASYNC,
                                target="Win32_OperatingSystem"))
    assert run.result.status == 0 and _class_names(run.result) == ["Win32_OperatingSystem"]


def test_the_resolver_on_a_answers_for_the_sink_and_unknown_oxids() -> None:
    s, _ = scenario()

    async def go() -> None:
        async with LoopbackLab.for_scenario(s, ports=PORTS) as lab:
            a = lab.servers["A"]
            async with SinkExporter(a) as sinks:
                b_addr = str(lab.map.loopback("B"))
                async with await RpcClient.connect(a.address, a.ports["rpcss"],
                                                   local_address=b_addr) as res:
                    await res.bind(ids.IID_IOBJECTEXPORTER)
                    found = parse_resolve_oxid2_reply(await res.call(
                        ids.ObjectExporterOp.RESOLVE_OXID2,
                        build_resolve_oxid2_request(sinks.oxid)))
                    assert found.status == 0 and found.bindings is not None
                    assert found.bindings.tcp_endpoints() == [(a.address, a.ports["sink"])]
                    assert found.ipid_rem_unknown == sinks.rem_unknown
                    # MS-DCOM 3.1.2.5.1.1: OR_INVALID_OXID for an OXID nobody exports.
                    gone = parse_resolve_oxid2_reply(await res.call(
                        ids.ObjectExporterOp.RESOLVE_OXID2,
                        build_resolve_oxid2_request(sinks.oxid ^ 1)))
                    assert gone.status == dcom.OR_INVALID_OXID and gone.bindings is None
            assert "sink" not in a.ports

    asyncio.run(go())


def test_callbacks_are_bounded() -> None:
    s, c = scenario()
    run = asyncio.run(run_async(s, c, max_in_flight=0))
    # Choice (docs/host.md): no room for another callback -> the call does not start.
    assert run.reply == 0x80041006 and run.outcome is None and not run.result.complete


@given(oxid=st.integers(0, 2**64 - 1),
       addresses=st.lists(st.from_regex(r"127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}",
                                        fullmatch=True), min_size=1, max_size=3),
       port=st.integers(1, 65535), status=st.sampled_from([0, dcom.OR_INVALID_OXID]))
def test_resolve_oxid2_client_codec_reads_the_resolver_s_replies(
        oxid: int, addresses: list[str], port: int, status: int) -> None:
    ipid = uuid.uuid4()
    bindings = dcom.tcp_bindings(addresses, port)
    got = parse_resolve_oxid2_reply(dcom.build_resolve_oxid_reply(
        None if status else bindings, ipid, v2=True, status=status))
    assert got.status == status
    if status:
        assert got.bindings is None
    else:
        assert got.bindings == bindings and got.ipid_rem_unknown == ipid
        assert got.authn_hint == dcom.RPC_C_AUTHN_LEVEL_PKT_INTEGRITY
    req = dcom.parse_resolve_oxid(build_resolve_oxid2_request(oxid), v2=True)
    assert req.oxid == oxid and req.requested_protseqs == (dcom.TOWER_NCACN_IP_TCP,)


def test_a_refused_connection_is_server_unavailable_quickly() -> None:
    async def go() -> None:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(RpcCallError) as info:
            await RpcClient.connect("127.0.0.1", port, connect_timeout=2)
        assert info.value.hresult == 0x800706BA

    asyncio.run(go())


def test_on_the_real_port_135() -> None:
    """Both resolvers on TCP 135 (each host has its own loopback address)."""
    s, c = scenario()
    ports: dict[int, int] = {}
    try:
        run = asyncio.run(run_async(s, c, ports=ports))
    except OSError as e:  # HostBindError
        needs_root(f"cannot bind port 135 here: {e}")
    assert check_against_flow(s, c, run).ok
    assert set(run.result.callers) == {"CORP\\B$"}


# ------------------------------------------------------------------------------------------
# The model: machine account logon (model/identity.py)


def test_machine_account_logs_on_where_its_domain_is_trusted() -> None:
    s = load(EXAMPLES / "06-untrusted-domain.toml")
    d = s.world.directory
    secret = d.machine_password("BR")
    assert secret == d.machine_password("br") and secret != d.machine_password("PT")
    assert d.account_password("BRANCH\\BR$") == secret
    ok = d.network_logon("A", "BRANCH\\BR$", lambda p: p == secret)
    assert ok.ok and ok.token is not None and ok.token.name == "BRANCH\\BR$"
    assert ok.token == d.callback_token("BR", "A")
    assert d.domain_sid("BRANCH") + "-515" in ok.token.sids  # Domain Computers
    wrong = d.network_logon("A", "BRANCH\\BR$", lambda p: p == "guess")
    assert not wrong.ok and wrong.kind == "wrong-password"
    untrusted = d.network_logon("A", "PARTNER\\PT$", lambda p: p == d.machine_password("PT"))
    assert not untrusted.ok
    assert [t.anonymous for t in d.callback_tokens("BR", "A")] == [False, True]
    assert [t.user for t in d.callback_tokens("PT", "A")] == [sids.ANONYMOUS]


def test_a_workgroup_host_has_no_machine_account() -> None:
    s = load(EXAMPLES / "05-workgroup-callback.toml")
    with pytest.raises(ConfigError, match="workgroup"):
        s.world.directory.machine_password("B")
