"""Connection 1 from computer A with wmilab's own wire code, step by step.

The order is the one Windows meets (and ``flow`` names): TCP 135 on B (c1.rpcss-port), the
NTLM logon there (c1.logon), activation of WbemLevel1Login (c1.activation), the WMI
service's port (c1.wmi-port), DCOM remote access on the WMI object (c1.access), NTLMLogin to
the namespace (c1.namespace), then the query. Each step is timed and recorded in a
:class:`StepLog`, so the doctor and ``wmilab query`` report the same step a failure came at.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from wmilab import hresult as hr
from wmilab import steps
from wmilab.client.callback import CallbackListener, SinkState
from wmilab.client.levels import AUTH_LEVELS
from wmilab.client.transport import (
    KIND_CALLBACK,
    KIND_FAULT,
    KIND_HRESULT,
    KIND_PROTOCOL,
    RPC_S_CALL_FAILED,
    RPC_S_SERVER_UNAVAILABLE,
    CallFailed,
    RpcCallError,
    RpcClient,
    classify,
    open_as,
)
from wmilab.wire import dcom, ids, ntlm, rpc, wmi, wmio
from wmilab.wire.dcom import ObjRefCustom, ObjRefStandard
from wmilab.wire.rpc import AuthLevel
from wmilab.wire.rpc_conn import (
    BindAcked,
    BindNakReceived,
    ClientCredentials,
    FaultReceived,
)

__all__ = [
    "AUTH_LEVELS", "C1_QUERY", "ConnectOptions", "StepFailed", "StepLog", "StepRecord",
    "WmiRpc", "WmiSession", "connect", "connection2_steps", "exec_query_async", "login",
    "query_async",
]

# The query itself; not a step of ``flow`` (which stops at the namespace login).
C1_QUERY = "c1.query"
QUERY_TITLE = "WMI on B runs the query"


E_ACCESSDENIED = hr.E_ACCESSDENIED.code
NEXT_BATCH = 64  # Choice: objects asked for per IEnumWbemClassObject::Next


@dataclass(frozen=True)
class StepRecord:
    step: str
    ok: bool
    detail: str
    ms: float
    hresult: int | None = None
    kind: str = ""


class StepFailed(CallFailed):
    """A :class:`CallFailed` that knows the step it happened at."""

    def __init__(self, step: str, failed: CallFailed) -> None:
        super().__init__(failed.hresult, failed.kind, failed.detail)
        self.step = step


@dataclass
class StepLog:
    """The steps a call went through, with their timings."""

    records: list[StepRecord] = field(default_factory=list)
    # B's Windows version from its NTLM CHALLENGE, as soon as a bind has seen one.
    server_version: tuple[int, int, int] | None = None

    def saw(self, cli: WmiRpc) -> None:
        if self.server_version is None:
            self.server_version = cli.server_version()

    @asynccontextmanager
    async def step(self, step_id: str) -> AsyncIterator[list[str]]:
        """Time one step; the body may append a detail; a failure is recorded and raised as
        :class:`StepFailed`."""
        note: list[str] = []
        t0 = time.perf_counter()
        try:
            yield note
        except StepFailed:
            raise
        except CallFailed as e:
            self.records.append(StepRecord(step_id, False, e.detail, _ms(t0), e.hresult, e.kind))
            raise StepFailed(step_id, e) from None
        except RpcCallError as e:
            f = classify(e)
            self.records.append(StepRecord(step_id, False, f.detail, _ms(t0), f.hresult, f.kind))
            raise StepFailed(step_id, f) from None
        except (dcom.StubError, wmio.WmioError) as e:
            # A reply that does not decode: a protocol error at this step, not a traceback.
            self.records.append(StepRecord(step_id, False, f"bad reply: {e}", _ms(t0),
                                           RPC_S_CALL_FAILED, KIND_PROTOCOL))
            raise StepFailed(step_id, CallFailed(RPC_S_CALL_FAILED, KIND_PROTOCOL,
                                                 f"bad reply: {e}")) from None
        self.records.append(StepRecord(step_id, True, "; ".join(note), _ms(t0)))

    def add(self, record: StepRecord) -> None:
        self.records.append(record)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


class WmiRpc(RpcClient):
    """An RPC client that binds further interfaces on its connection (alter_context), as
    DCOM does when a call moves to another interface of the same exporter."""

    contexts: dict[uuid.UUID, int]
    refused: frozenset[uuid.UUID] = frozenset()

    async def bind_first(self, iid: uuid.UUID, *more: uuid.UUID) -> None:
        """Bind ``iid`` on context 0 and propose ``more`` in the same bind, so that a call
        known to follow on another interface needs no alter_context round trip."""
        await self.bind(iid, *more)
        self.contexts = {iid: 0}
        for ctx, other in enumerate(more, 1):
            if ctx in self.conn.contexts:
                self.contexts[other] = ctx
        self.refused = frozenset(more) - self.contexts.keys()

    async def context_for(self, iid: uuid.UUID) -> int:
        """The presentation context of ``iid``, negotiated on first use (MS-RPCE 3.3.1.5.3)."""
        found = self.contexts.get(iid)
        if found is not None:
            return found
        if iid in self.refused:  # proposed in the bind, and the server said no
            raise CallFailed(dcom.E_NOINTERFACE, KIND_FAULT,
                             f"{ids.NAMES.get(iid, iid)} not accepted on this connection")
        ctx = len(self.contexts) + len(self.refused)
        self.conn.alter_context(rpc.SyntaxId(iid, 0, 0), ctx, new_security_context=False)
        await self._flush()
        ev = await self._next_event()
        if isinstance(ev, FaultReceived):
            raise CallFailed(ev.status, KIND_FAULT, "alter_context refused by a fault")
        if not (isinstance(ev, BindAcked) and ev.accepted) or isinstance(ev, BindNakReceived):
            raise CallFailed(dcom.E_NOINTERFACE, KIND_FAULT,
                             f"{ids.NAMES.get(iid, iid)} not accepted on this connection")
        self.contexts[iid] = ctx
        return ctx

    async def call_on(self, iid: uuid.UUID, opnum: int, stub: bytes,
                      ipid: uuid.UUID | None = None) -> bytes:
        ctx = await self.context_for(iid)
        return await self.call(opnum, stub, object_uuid=ipid, context_id=ctx)

    def server_version(self) -> tuple[int, int, int] | None:
        """(major, minor, build) from the NTLM CHALLENGE's VERSION field, when it had one
        (MS-NLMP 2.2.2.10: only when NTLMSSP_NEGOTIATE_VERSION was negotiated)."""
        for sec in self.conn.security.values():
            chal = sec.initiator.challenge
            if chal is not None and chal.version and any(chal.version[:4]):
                major, minor, build = struct.unpack_from("<BBH", chal.version)
                return major, minor, build
        return None


@dataclass(frozen=True)
class ConnectOptions:
    address: str
    user: str  # DOMAIN\user (or user)
    password: str
    namespace: str = "root\\cimv2"
    auth_level: int = AuthLevel.PKT_PRIVACY
    timeout: float = 10.0
    local_address: str | None = None
    rpcss_port: int = 135
    # The level of the activation request alone (KB 5004442 judges it); auth_level when None.
    activation_level: int | None = None

    def credentials(self) -> ClientCredentials:
        dom, _, name = self.user.rpartition("\\")
        # The NT hash (MS-NLMP 3.3.1) once per password, not once per connection.
        # NEGOTIATE_VERSION, so that B's CHALLENGE says its Windows version; ours is all zero
        # (wmilab is not Windows), with NTLM revision 15 (MS-NLMP 2.2.2.10).
        return ClientCredentials(name, self.password, dom, nt_hash=_nt_hash(self.password),
                                 ntlm_version=(0, 0, 0))


@functools.lru_cache(maxsize=64)
def _nt_hash(password: str) -> bytes:
    return ntlm.nt_hash(password)


@dataclass
class WmiSession:
    """A logged-in IWbemServices on B, over one connection to the WMI service's port."""

    options: ConnectOptions
    cli: WmiRpc
    services: ObjRefStandard
    local_address: str
    version: tuple[int, int, int] | None
    log: StepLog

    async def close(self) -> None:
        await self.cli.close()

    async def __aenter__(self) -> WmiSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def query(self, wql: str, mode: str = "semisync",
                    batch: int = NEXT_BATCH) -> list[wmio.Instance]:
        """ExecQuery: synchronous (flags 0) or semisynchronous (WBEM_FLAG_RETURN_IMMEDIATELY |
        WBEM_FLAG_FORWARD_ONLY), then IEnumWbemClassObject::Next in batches of ``batch``
        until WBEM_S_FALSE (MS-WMI 3.1.4.3.20, 3.1.4.4.2)."""
        flags = (wmi.WBEM_FLAG_RETURN_IMMEDIATELY | wmi.WBEM_FLAG_FORWARD_ONLY
                 if mode == "semisync" else 0)
        rows: list[wmio.Instance] = []
        async with self.log.step(C1_QUERY) as note:
            r = dcom.NdrReader(await self.cli.call_on(
                ids.IID_IWBEMSERVICES, ids.WbemServicesOp.EXEC_QUERY,
                wmi.build_exec_query_request(wql, flags), self.services.std.ipid))
            dcom.read_orpcthat(r)
            enum = dcom.read_unique_objref(r)
            code = r.u32()
            if code & 0x80000000 or not isinstance(enum, ObjRefStandard):
                raise CallFailed(code or hr.E_FAIL.code, KIND_HRESULT, "ExecQuery failed")
            while True:
                objs, code = wmi.parse_next_reply(await self.cli.call_on(
                    ids.IID_IENUMWBEMCLASSOBJECT, ids.EnumWbemClassObjectOp.NEXT,
                    wmi.build_next_request(wmi.WBEM_INFINITE, batch), enum.std.ipid))
                rows.extend(_instances(objs))
                if code & 0x80000000:
                    raise CallFailed(code, KIND_HRESULT, "IEnumWbemClassObject::Next failed")
                if code == wmi.WBEM_S_FALSE or not objs:
                    break
            note.append(f"{len(rows)} objects ({mode})")
        return rows


def _instances(objs: list[dcom.ObjRef]) -> list[wmio.Instance]:
    out = []
    for obj in objs:
        if not isinstance(obj, ObjRefCustom):
            raise dcom.StubError("Next: an object that is not an OBJREF_CUSTOM", ("Next",))
        decoded = wmio.decode_encoding_unit(obj.data).obj
        if isinstance(decoded, wmio.Instance):
            out.append(decoded)
    return out


async def _logon_probe(opts: ConnectOptions, log: StepLog, *, port_step: bool,
                       keep: bool = False) -> WmiRpc | None:
    """c1.logon on its own: an authenticated IObjectExporter::ServerAlive2 on TCP 135.

    ServerAlive2 needs no DCOM permission (MS-DCOM 3.1.2.5.1.6), so an access-denied fault
    there can only be the logon (MS-RPCE 3.3.3.4.3: calls on a failed security context).
    With ``port_step`` the connect and bind are recorded as c1.rpcss-port first; with
    ``keep`` the connection is returned for the activation that follows.
    """
    cli: WmiRpc | None = None
    try:
        if port_step:
            async with log.step(steps.C1_RPCSS) as note:
                # With ``keep``, the activator is proposed in the same bind (no alter_context).
                more = (ids.IID_IREMOTESCMACTIVATOR,) if keep else ()
                cli = await _bound(opts, opts.rpcss_port, ids.IID_IOBJECTEXPORTER, more=more)
                log.saw(cli)
                note.append(f"TCP {opts.rpcss_port} on {opts.address} answered the bind")
        async with log.step(steps.C1_LOGON) as note:
            if cli is None:
                cli = await _bound(opts, opts.rpcss_port, ids.IID_IOBJECTEXPORTER)
                log.saw(cli)
            await cli.call(ids.ObjectExporterOp.SERVER_ALIVE2, b"")
            note.append(f"{opts.user} logged on")
        if keep:
            kept, cli = cli, None
            return kept
        return None
    finally:
        if cli is not None:
            await cli.close()


async def connect(opts: ConnectOptions, log: StepLog | None = None, *,
                  check_logon: bool = False) -> WmiSession:
    """Connection 1 up to a logged-in IWbemServices; raises :class:`StepFailed`.

    A port step covers the TCP connect and the bind: the emulated firewall and a Windows
    firewall that rejects both end the connection before the bind is answered. ``check_logon``
    probes c1.logon on its own first (the doctor does); otherwise an access-denied at
    activation is told apart from a failed logon only when it happens.
    """
    log = log if log is not None else StepLog()
    scm: WmiRpc | None = None
    if check_logon:
        # The same connection then carries the activation (a second presentation context).
        scm = await _logon_probe(opts, log, port_step=True, keep=True)
    try:
        if not check_logon:
            async with log.step(steps.C1_RPCSS) as note:
                scm = await _bound(opts, opts.rpcss_port, ids.IID_IREMOTESCMACTIVATOR,
                                   opts.activation_level)
                log.saw(scm)
                note.append(f"TCP {opts.rpcss_port} on {opts.address} answered the bind")
        try:
            async with log.step(steps.C1_ACTIVATION) as note:
                if scm is None:
                    scm = await _bound(opts, opts.rpcss_port, ids.IID_IREMOTESCMACTIVATOR,
                                       opts.activation_level)
                act = dcom.parse_activation_reply(await scm.call_on(
                    ids.IID_IREMOTESCMACTIVATOR, ids.RemoteScmActivatorOp.REMOTE_CREATE_INSTANCE,
                    dcom.build_remote_create_instance_request(
                        ids.CLSID_WBEMLEVEL1LOGIN, [ids.IID_IWBEMLEVEL1LOGIN])))
                if act.hresult & 0x80000000 or act.scm is None or not act.interfaces \
                        or act.interfaces[0].objref is None:
                    raise CallFailed(act.hresult or hr.E_FAIL.code, KIND_HRESULT,
                                     "RemoteCreateInstance returned no interface")
                login_ref = act.interfaces[0].objref
                ports = [p for _h, p in act.scm.bindings.tcp_endpoints() if p is not None]
                if not ports:
                    raise CallFailed(RPC_S_SERVER_UNAVAILABLE, KIND_PROTOCOL,
                                     "activation returned no TCP endpoint")
                note.append(f"WbemLevel1Login on port {ports[0]}")
        except StepFailed as e:
            if not check_logon and e.hresult == E_ACCESSDENIED:
                # Logon and activation both end in E_ACCESSDENIED here; ask which.
                failed = log.records.pop()
                try:
                    await _logon_probe(opts, log, port_step=False)
                finally:
                    log.records.append(failed)
            raise
        log.saw(scm)
        version = log.server_version
    finally:
        if scm is not None:
            await scm.close()
    # Choice: the port from the bindings on the address we dialled (as impacket does), so
    # that a name in the bindings is never resolved.
    async with log.step(steps.C1_WMI_PORT) as note:
        # IWbemServices and IEnumWbemClassObject, which the calls after NTLMLogin use on this
        # connection, are proposed in the same bind: no alter_context round trip for each.
        cli = await _bound(opts, ports[0], ids.IID_IWBEMLEVEL1LOGIN,
                           more=(ids.IID_IWBEMSERVICES, ids.IID_IENUMWBEMCLASSOBJECT))
        note.append(f"TCP {ports[0]} on {opts.address} answered the bind")
    try:
        async with log.step(steps.C1_ACCESS) as note:
            stub = await cli.call(ids.WbemLevel1LoginOp.NTLM_LOGIN,
                                  wmi.build_ntlm_login_request(
                                      "//./" + opts.namespace.replace("\\", "/")),
                                  login_ref.std.ipid)
            note.append("DCOM let the call into WMI")
        async with log.step(steps.C1_NAMESPACE) as note:
            r = dcom.NdrReader(stub)
            dcom.read_orpcthat(r)
            services = dcom.read_unique_objref(r)
            code = r.u32()
            if code or not isinstance(services, ObjRefStandard):
                raise CallFailed(code or hr.E_FAIL.code, KIND_HRESULT,
                                 f"NTLMLogin to {opts.namespace} failed")
            note.append(f"logged in to {opts.namespace}")
    except BaseException:
        await cli.close()
        raise
    sock = cli.sockname()
    local = opts.local_address or (sock[0] if sock else "")
    return WmiSession(opts, cli, services, local, version, log)


async def _bound(opts: ConnectOptions, port: int, iid: uuid.UUID,
                 level: int | None = None, more: tuple[uuid.UUID, ...] = ()) -> WmiRpc:
    cli = await _open(opts, opts.address, port, opts.credentials(), level)
    try:
        await cli.bind_first(iid, *more)
    except BaseException:
        await cli.close()
        raise
    return cli


async def _open(opts: ConnectOptions, host: str, port: int,
                creds: ClientCredentials, level: int | None = None) -> WmiRpc:
    return await open_as(WmiRpc, host, port, local_address=opts.local_address,
                         credentials=creds, auth_level=opts.auth_level if level is None else level,
                         timeout=opts.timeout)


# -- the API lab/verify.py uses ------------------------------------------------------------


async def login(address: str, rpcss_port: int, *, local_address: str | None, user: str,
                password: str, namespace: str,
                auth_level: int = AuthLevel.PKT_PRIVACY,
                timeout: float = 30.0,
                activation_level: int | None = None) -> tuple[RpcClient, ObjRefStandard]:
    """Activate WbemLevel1Login on ``address`` and log in to ``namespace``.

    Returns the connection to the WMI service's port and the IWbemServices OBJREF; a failure
    raises :class:`RpcCallError` carrying the HRESULT. ``timeout`` bounds each connect and
    call (the netns lab's --verify shortens it, docs/lab.md).
    """
    opts = ConnectOptions(address, user, password, namespace, auth_level, timeout,
                          local_address, rpcss_port, activation_level)
    try:
        s = await connect(opts)
    except CallFailed as e:
        raise RpcCallError(e.hresult, e.detail) from None
    return s.cli, s.services


async def exec_query_async(cli: RpcClient, services: ObjRefStandard, query: str,
                           sink: ObjRefStandard) -> int:
    """IWbemServices::ExecQueryAsync; returns the HRESULT of the call itself (MS-WMI
    3.1.4.3.21: WBEM_S_NO_ERROR once the query started; results go to ``sink``)."""
    stub = wmi.build_exec_query_request(query, flags=0, sink=sink)
    if isinstance(cli, WmiRpc):
        reply = await cli.call_on(ids.IID_IWBEMSERVICES, ids.WbemServicesOp.EXEC_QUERY_ASYNC,
                                  stub, services.std.ipid)
    else:
        reply = await cli.call(ids.WbemServicesOp.EXEC_QUERY_ASYNC, stub, services.std.ipid)
    return wmi.parse_hresult_reply(reply)


# -- asynchronous calls: Connection 2 ---------------------------------------------------------

C2_RESULT = "c2.result"
RESULT_TITLE = "B delivers the result to the sink (SetStatus)"


async def query_async(session: WmiSession, wql: str, listener: CallbackListener,
                      wait: float) -> list[wmio.Instance]:
    """IWbemServices::ExecQueryAsync with a sink exported by ``listener`` on A's address;
    waits up to ``wait`` seconds for B's callback, then records Connection 2's steps."""
    log = session.log
    sink = listener.create(session.options.address)
    t0 = time.monotonic()
    try:
        async with log.step(C1_QUERY) as note:
            code = await exec_query_async(session.cli, session.services, wql,
                                          listener.objref(sink, session.local_address))
            if code & 0x80000000:
                raise CallFailed(code, KIND_HRESULT, "ExecQueryAsync failed")
            note.append("ExecQueryAsync accepted; results go to the sink")
        t1 = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sink.done.wait(), wait)
        connection2_steps(log, listener, sink, session.options.address, t0,
                          _ms(t1), wait)
        return sink.objects
    finally:
        listener.sinks.pop(sink.ipid, None)


def connection2_steps(log: StepLog, listener: CallbackListener, sink: SinkState, peer: str,
                      since: float, ms: float, wait: float) -> None:
    """Add c2.identity .. c2.access (and c2.result) from what came to A; raise
    :class:`StepFailed` at the first that did not happen."""
    events = [e for e in listener.events if e.at >= since and e.peer == peer]
    if not any(e.peer == peer for e in events):
        events = [e for e in listener.events if e.at >= since]
    resolved = [e for e in events if e.role == "resolver" and e.what.startswith("ResolveOxid")]
    reached = [e for e in events if e.role == "sink" and e.what == "connect"]
    calls = [e for e in events if e.role == "sink" and e.what in ("Indicate", "SetStatus")]
    refused = [e for e in events if e.role == "sink" and e.what in ("refused", "logon refused")]
    who = (calls or refused)[0] if calls or refused else None
    if who is not None and who.identity is not None:
        ident = who.identity
        what = ("ANONYMOUS LOGON (B's machine account was not accepted)" if ident.anonymous
                else f"{ident.name}{'' if ident.verified else ' (not verified)'}")
        detail = f"B called back as {what} at authentication level {ident.level}"
    else:
        detail = "not seen: B did not call the sink"
    log.add(StepRecord(steps.C2_IDENTITY, True, detail, 0.0))

    def fail(step: str, hresult: int, kind: str, text: str) -> None:
        log.add(StepRecord(step, False, text, ms, hresult, kind))
        raise StepFailed(step, CallFailed(hresult, kind, text))

    where = f"{listener.address}:{listener.resolver_port}"
    if not resolved:
        # Nothing reached A: its firewall dropped B, or B made no callback at all. From Vista
        # (NTLM version 6) on, WMI makes no anonymous callback without AllowAnonymousCallback
        # = 1 on B (Learn "Setting up a Remote WMI Connection", CIMOM Settings; step
        # c2.identity); A cannot tell the two apart, so the firewall, the common cause, is
        # named and the other said.
        version = log.server_version
        also = ("; or B made no callback at all: from Windows Vista on, WMI calls back "
                "anonymously (B in a workgroup, or in a domain A does not trust) only with "
                "AllowAnonymousCallback = 1 on B (c2.identity)"
                if version is not None and version[0] >= 6 else "")
        fail(steps.C2_RESOLVER_PORT, RPC_S_SERVER_UNAVAILABLE, KIND_CALLBACK,
             f"B never asked A's OXID resolver at {where} in {wait:g} s{also}")
    log.add(StepRecord(steps.C2_RESOLVER_PORT, True,
                       f"B ({resolved[0].peer}) resolved the sink's OXID at {where}", 0.0))
    if not reached:
        fail(steps.C2_SINK_PORT, RPC_S_SERVER_UNAVAILABLE, KIND_CALLBACK,
             f"B never connected to the sink at {listener.address}:{listener.sink_port} "
             f"in {wait:g} s")
    log.add(StepRecord(steps.C2_SINK_PORT, True,
                       f"B connected to the sink at {listener.address}:{listener.sink_port}",
                       0.0))
    if not sink.done.is_set():
        if refused:
            fail(steps.C2_ACCESS, E_ACCESSDENIED, KIND_FAULT,
                 "A refused every identity B called back with: "
                 + "; ".join(f"{e.identity.name if e.identity else '?'}: {e.detail}"
                             for e in refused[:3]))
        fail(steps.C2_ACCESS, RPC_S_SERVER_UNAVAILABLE, KIND_CALLBACK,
             f"B reached the sink but no SetStatus came in {wait:g} s")
    log.add(StepRecord(steps.C2_ACCESS, True,
                       f"the sink took {len(sink.objects)} objects and SetStatus", ms))
    status = sink.status or 0
    if status & 0x80000000:
        fail(C2_RESULT, status, KIND_HRESULT, f"SetStatus carried 0x{status:08X}")
