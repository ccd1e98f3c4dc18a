"""wmilab's own client against emulated hosts on loopback: sync, semisync, async with a sink.

The lab binds free ports (no root needed); for asynchronous calls the client's resolver binds
a free port too and B is told where A's resolver is, as the lab does for emulated hosts.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from conftest import CORP, make, remote_admin_pair
from wmilab import flow, steps
from wmilab.client.callback import CallbackListener
from wmilab.client.session import (
    AUTH_LEVELS,
    ConnectOptions,
    StepFailed,
    StepLog,
    WmiSession,
    connect,
    query_async,
)
from wmilab.client.transport import KIND_PROTOCOL, KIND_REFUSED, KIND_TIMEOUT, CallFailed
from wmilab.lab.loopback import LoopbackLab
from wmilab.lab.sink_policy import ModelSinkPolicy
from wmilab.scenario import Scenario

pytestmark = pytest.mark.slow

PORTS = {135: 0, 1025: 0}
UNSECAPP = "%windir%\\system32\\wbem\\unsecapp.exe"
A_OPEN = ["netsh firewall add portopening TCP 135 DCOM ENABLE",
          f"netsh firewall add allowedprogram {UNSECAPP} UNSECAPP ENABLE"]


def options(lab: LoopbackLab, s: Scenario, **kw: Any) -> ConnectOptions:
    c = s.calls[0]
    b = lab.servers[c.target]
    pw = c.password if c.password is not None else s.world.password_of(c.user)
    base: dict[str, Any] = dict(address=b.address, user=c.user, password=pw or "",
                                namespace=c.namespace, local_address=str(lab.map.loopback("A")),
                                rpcss_port=b.ports["rpcss"], timeout=3.0)
    base.update(kw)
    return ConnectOptions(**base)


def run_in_lab(doc: dict[str, Any], fn: Callable[[LoopbackLab, Scenario], Awaitable[Any]]
               ) -> Any:
    s = make(doc)

    async def go() -> Any:
        async with LoopbackLab(s.world, hosts=["B"], ports=PORTS) as lab:
            return await fn(lab, s)
    return asyncio.run(go())


@pytest.mark.parametrize("level", list(AUTH_LEVELS))
def test_sync_and_semisync_return_the_repository_s_rows(level: str) -> None:
    async def fn(lab: LoopbackLab, s: Scenario) -> None:
        repo = lab.servers["B"].runtime.repository  # type: ignore[union-attr]
        want = repo.exec_query("root\\cimv2", "SELECT Name, ProcessId FROM Win32_Process")
        log = StepLog()
        async with await connect(options(lab, s, auth_level=AUTH_LEVELS[level]), log) as sess:
            for mode in ("sync", "semisync"):
                # A batch smaller than the result makes several Next calls.
                rows = await sess.query("SELECT Name, ProcessId FROM Win32_Process", mode,
                                        batch=3)
                assert [(r.get("Name"), r.get("ProcessId")) for r in rows] == \
                    [(w.get("Name"), w.get("ProcessId")) for w in want]
        assert [r.step for r in log.records][:5] == [
            steps.C1_RPCSS, steps.C1_ACTIVATION, steps.C1_WMI_PORT, steps.C1_ACCESS,
            steps.C1_NAMESPACE]
        assert all(r.ok for r in log.records)
    run_in_lab(remote_admin_pair(), fn)


def _failure(doc: dict[str, Any], **kw: Any) -> StepFailed:
    async def fn(lab: LoopbackLab, s: Scenario) -> StepFailed:
        with pytest.raises(StepFailed) as info:
            sess: WmiSession = await connect(options(lab, s, **kw))
            async with sess:
                await sess.query("SELECT Name FROM Win32_Process")
        return info.value
    result: StepFailed = run_in_lab(doc, fn)
    return result


def _doc(**call: Any) -> dict[str, Any]:
    doc = remote_admin_pair()
    doc["domains"]["CORP"]["accounts"].update({"carol": "C4rol!", "bob": "B0b!"})
    doc["hosts"]["B"]["dcom"] = {"launch_limits": {"CORP\\carol": [
        "local launch", "remote launch", "local activation", "remote activation"]}}
    doc["calls"][0].update(call)
    return doc


@pytest.mark.parametrize(("doc", "step", "hresult"), [
    ({"password": "wrong"}, steps.C1_LOGON, 0x80070005),
    ({"user": "CORP\\bob"}, steps.C1_ACTIVATION, 0x80070005),
    ({"user": "CORP\\carol"}, steps.C1_NAMESPACE, 0x80041003),
    ({"namespace": "root\\nothere"}, steps.C1_NAMESPACE, 0x8004100E),
])
def test_each_failure_names_check_s_step_and_hresult(doc: dict[str, Any], step: str,
                                                    hresult: int) -> None:
    d = _doc(**doc)
    verdict = flow.evaluate(make(d).world, make(d).calls[0])
    assert verdict.failed is not None
    assert (verdict.failed.id, verdict.hresult.code) == (step, hresult)
    err = _failure(d)
    assert (err.step, err.hresult) == (step, hresult)


def test_a_closed_port_135_is_refused_not_a_timeout() -> None:
    doc = remote_admin_pair()
    del doc["hosts"]["B"]["netsh"]  # XP SP2's firewall: TCP 135 closed
    err = _failure(doc)
    assert (err.step, err.hresult, err.kind) == (steps.C1_RPCSS, 0x800706BA, KIND_REFUSED)


async def _fake_server(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                         Awaitable[None]]) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("answer", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n" * 4,
                                    b"\x05\x00\x0c\x03" + b"\xff" * 60])
def test_silence_and_garbage_are_verdicts_not_tracebacks(answer: bytes | None) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        await reader.read(4096)  # until the client gives up and closes
        writer.close()

    async def go() -> StepFailed:
        server, port = await _fake_server(handler)
        async with server:
            with pytest.raises(StepFailed) as info:
                await connect(ConnectOptions("127.0.0.1", "CORP\\admin", "x", rpcss_port=port,
                                             timeout=0.5))
            return info.value
    err = asyncio.run(go())
    # The port step covers the connect and the bind: no answer to the bind is that step's.
    assert err.step == steps.C1_RPCSS
    if answer is None:
        assert (err.hresult, err.kind) == (0x800706BA, KIND_TIMEOUT)
    else:
        assert err.kind in (KIND_PROTOCOL, KIND_REFUSED), err


def _async(doc: dict[str, Any], wait: float = 1.5) -> tuple[int, StepLog, str | None]:
    async def fn(lab: LoopbackLab, s: Scenario) -> tuple[int, StepLog, str | None]:
        policy = ModelSinkPolicy(s.world, "A", lab.map)
        log = StepLog()
        async with CallbackListener(str(lab.map.loopback("A")), resolver_port=0,
                                    policy=policy, names=policy.names()) as cb:
            lab.servers["B"].resolver_port = lambda _addr: cb.resolver_port
            try:
                async with await connect(options(lab, s), log) as sess:
                    rows = await query_async(sess, "SELECT Name FROM Win32_Service", cb, wait)
                return len(rows), log, None
            except StepFailed as e:
                return 0, log, f"{e.step} 0x{e.hresult:08X}"
    result: tuple[int, StepLog, str | None] = run_in_lab(doc, fn)
    return result


def test_async_call_comes_back_to_the_client_s_own_sink() -> None:
    doc = remote_admin_pair()
    doc["calls"][0]["mode"] = "async"
    doc["hosts"]["A"]["netsh"] = list(A_OPEN)
    assert flow.evaluate(make(doc).world, make(doc).calls[0]).ok
    rows, log, failed = _async(doc)
    assert failed is None and rows > 0
    ident = next(r for r in log.records if r.step == steps.C2_IDENTITY)
    assert "CORP\\B$" in ident.detail  # B's machine account, verified by A's logon


@pytest.mark.parametrize("case", ["a-closed", "no-unsecapp", "workgroup-b"])
def test_async_failures_on_connection_2_match_the_flow(case: str) -> None:
    doc = remote_admin_pair()
    doc["calls"][0]["mode"] = "async"
    if case == "no-unsecapp":
        doc["hosts"]["A"]["netsh"] = A_OPEN[:1]
    elif case == "workgroup-b":
        # B in a workgroup: A does not know B's machine account, B falls back to anonymous.
        doc["hosts"]["A"]["netsh"] = list(A_OPEN)
        b = doc["hosts"]["B"]
        del b["domain"]
        b["workgroup"] = "WORKGROUP"
        b["accounts"] = {"admin": "Adm1n!"}
        b["groups"] = {"Administrators": ["admin"]}
        doc["calls"][0]["user"] = "B\\admin"
    verdict = flow.evaluate(make(doc).world, make(doc).calls[0])
    assert verdict.failed is not None
    _rows, _log, failed = _async(copy.deepcopy(doc))
    assert failed == f"{verdict.failed.id} {verdict.hresult.hex}"


@pytest.mark.parametrize(("workgroup", "expected"), [(True, "c2.access 0x80070005"),
                                                      (False, None)])
def test_the_client_s_sink_enforces_unsecapp_access_control_as_the_model(
        workgroup: bool, expected: str | None) -> None:
    # Vista and later: UnsecAppAccessControlDefault = 1 on A. B's anonymous callback (a
    # workgroup B with AllowAnonymousCallback = 1) is refused by the sink itself; B's machine
    # account, the computer the sink was handed to, is taken.
    wmi_on = ('netsh advfirewall firewall set rule group="Windows Management Instrumentation '
              '(WMI)" new enable=yes')
    b: dict[str, Any] = {"os": "2022", "address": "10.0.0.2/24", "netsh": [wmi_on]}
    if workgroup:
        b.update(workgroup="WORKGROUP", accounts={"Administrator": "Adm!n500"},
                 registry={"AllowAnonymousCallback": 1})
    else:
        b["domain"] = "CORP"
    doc = {"domains": {"CORP": copy.deepcopy(CORP)},
           "hosts": {"A": {"os": "11", "domain": "CORP", "address": "10.0.0.1/24",
                           "netsh": [wmi_on],
                           "registry": {"UnsecAppAccessControlDefault": 1},
                           "dcom": {"access_limits": {
                               "ANONYMOUS LOGON": ["local access", "remote access"]}}},
                     "B": b},
           "calls": [{"from": "A", "to": "B", "mode": "async", "auth_level": "integrity",
                      "user": "B\\Administrator" if workgroup else "CORP\\admin"}]}
    verdict = flow.evaluate(make(doc).world, make(doc).calls[0])
    predicted = None if verdict.ok else f"{verdict.failed.id} {verdict.hresult.hex}"  # type: ignore[union-attr]
    rows, _log, failed = _async(copy.deepcopy(doc))
    assert failed == predicted == expected
    assert (rows > 0) == (expected is None)


def test_the_client_s_listener_survives_garbage_and_still_resolves() -> None:
    from wmilab.client.transport import open_rpc
    from wmilab.wire import dcom, ids

    async def go() -> tuple[int, list[tuple[str, int | None]]]:
        async with CallbackListener("127.0.0.1", resolver_port=0) as cb:
            for junk in (b"\x00" * 64, b"\x05\x00\x0b\x03" + b"\xff" * 200, b"GET / HTTP/1.0\r\n\r\n"):
                _r, w = await asyncio.open_connection("127.0.0.1", cb.resolver_port)
                w.write(junk)
                await w.drain()
                w.close()
            cli = await open_rpc("127.0.0.1", cb.resolver_port, local_address=None,
                                 credentials=None, auth_level=1, timeout=2.0)
            async with cli:
                await cli.bind(ids.IID_IOBJECTEXPORTER)
                w2 = dcom.NdrWriter()
                w2.u64(cb.oxid)
                w2.u16(1)
                w2.u32(1)
                w2.u16(dcom.TOWER_NCACN_IP_TCP)
                stub = await cli.call(ids.ObjectExporterOp.RESOLVE_OXID2, w2.getvalue())
            r = dcom.NdrReader(stub)
            assert r.ptr()
            bindings = dcom.read_dsa_ndr(r)
            return cb.sink_port, bindings.tcp_endpoints()
    port, endpoints = asyncio.run(go())
    assert ("127.0.0.1", port) in endpoints


def test_an_interface_refused_in_the_bind_is_no_interface_at_its_call() -> None:
    import uuid

    from wmilab.client.session import WmiRpc, _bound
    from wmilab.wire import ids

    bogus = uuid.UUID("0badc0de-0000-0000-0000-000000000002")

    async def fn(lab: LoopbackLab, s: Scenario) -> tuple[dict[uuid.UUID, int], CallFailed]:
        o = options(lab, s)
        cli: WmiRpc = await _bound(o, o.rpcss_port, ids.IID_IOBJECTEXPORTER,
                                   more=(bogus, ids.IID_IREMOTESCMACTIVATOR))
        try:
            contexts = dict(cli.contexts)
            with pytest.raises(CallFailed) as info:
                await cli.call_on(bogus, 0, b"")
            # The activator, proposed after the refused one, works on its own context.
            assert await cli.context_for(ids.IID_IREMOTESCMACTIVATOR) == 2
            return contexts, info.value
        finally:
            await cli.close()
    contexts, err = run_in_lab(remote_admin_pair(), fn)
    assert bogus not in contexts and contexts[ids.IID_IREMOTESCMACTIVATOR] == 2
    assert (err.hresult, err.kind) == (0x80004002, "rpc fault")  # E_NOINTERFACE
