"""Connection 2 on computer A: wmilab's own OXID resolver and IWbemObjectSink exporter.

For an asynchronous call the client passes B an OBJREF of a sink whose resolver binding is
A's address (MS-DCOM 2.2.18.4: the address only; the port is the well-known 135). B asks the
OXID resolver on A:135 for the sink's OXID (ResolveOxid2, MS-DCOM 3.1.2.5.1.1), connects to
the string binding it gets, binds IWbemObjectSink and calls ``Indicate`` with the result
objects and ``SetStatus`` with the final HRESULT (MS-WMI 3.1.1.1.3, 3.1.4.2).

:class:`CallbackListener` plays both roles on A's address (the seed's unsecapp.exe) and
records what arrives, so that the doctor can say whether B came back, to which address and
as whom. What A admits is a :class:`SinkPolicy`: on a real machine the default admits every
connection (the kernel's firewall has already decided) and accepts B's NTLM identity at the
connect level without verifying it, because A has no domain controller to verify a machine
account with (docs/choices.md). Tests pass a policy that asks the model of A instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from wmilab import hresult as hr
from wmilab.wire import dcom, ids, rpc, wmi, wmio
from wmilab.wire.dcom import DualStringArray, ObjRefStandard, StdObjRef, StubError
from wmilab.wire.ntlm import Authenticator, LogonAttempt, NtlmServerNames
from wmilab.wire.rpc_conn import (
    Authenticated,
    CallReceived,
    LogonFailed,
    ServerConnection,
)

__all__ = ["CallbackEvent", "CallbackListener", "Identity", "OpenPolicy", "SinkPolicy",
           "SinkState"]

log = logging.getLogger("wmilab.client")

RESOLVER_INTERFACES = (rpc.SyntaxId(ids.IID_IOBJECTEXPORTER, 0, 0),)  # MS-DCOM 2.1: 0.0
SINK_INTERFACES = tuple(rpc.SyntaxId(iid, 0, 0) for iid in (
    ids.IID_IREMUNKNOWN, ids.IID_IREMUNKNOWN2, ids.IID_IUNKNOWN, ids.IID_IWBEMOBJECTSINK))
RPC_E_DISCONNECTED = hr.RPC_E_DISCONNECTED.code
E_OUTOFMEMORY = hr.E_OUTOFMEMORY.code
WBEM_STATUS_COMPLETE = 0  # MS-WMI 2.2.3: SetStatus lFlags of the final result
MAX_OBJECTS = 100_000  # Choice: bounded memory per sink
MAX_CONNECTIONS = 256  # Choice: connections served at once; more are reset
IDLE_SECONDS = 120.0  # Choice: a connection that sends nothing for this long is closed


@dataclass(frozen=True)
class Identity:
    """Who a callback connection authenticated as (``verified`` when its proof was checked)."""

    user: str
    domain: str
    anonymous: bool
    level: int
    verified: bool

    @property
    def name(self) -> str:
        return "ANONYMOUS LOGON" if self.anonymous else f"{self.domain}\\{self.user}"


@dataclass(frozen=True)
class CallbackEvent:
    """One thing B did on A: ``role`` is "resolver" or "sink"."""

    at: float
    role: str
    peer: str
    what: str  # "connect", "ResolveOxid2", "Indicate", "SetStatus", "refused"
    identity: Identity | None = None
    detail: str = ""


class SinkPolicy(Protocol):
    """What A lets through: its firewall, its logon and its DCOM access check."""

    def admit(self, role: str, peer: str, port: int) -> bool:
        """Whether A's firewall lets a connection from ``peer`` reach ``role``'s port."""
        ...

    def authenticator(self, peer: str) -> Authenticator:
        """The NTLM logon of A for callbacks from ``peer``."""
        ...

    def may_call(self, identity: object | None) -> str | None:
        """None when A's DCOM lets this caller call the sink, else why not."""
        ...

    def may_deliver(self, identity: object | None, obtained_by: str | None) -> str | None:
        """None when the sink program lets this caller call a sink handed to the computer
        at ``obtained_by`` (unsecapp's own check), else why not."""
        ...


class _Unverified:
    """Accepts any NTLM identity without checking its proof (no session key, so only the
    connect level works, MS-RPCE 3.3.1.5.2); anonymous stays anonymous."""

    def logon(self, attempt: LogonAttempt) -> object | None:
        return ("", "", True) if attempt.anonymous or not attempt.user \
            else (attempt.domain, attempt.user, False)


class OpenPolicy:
    """A real A: the kernel's firewall already decided, and every caller may call."""

    def admit(self, role: str, peer: str, port: int) -> bool:
        return True

    def authenticator(self, peer: str) -> Authenticator:
        return _Unverified()

    def may_call(self, identity: object | None) -> str | None:
        return None

    def may_deliver(self, identity: object | None, obtained_by: str | None) -> str | None:
        return None


@dataclass
class SinkState:
    """One exported IWbemObjectSink and what it received."""

    ipid: uuid.UUID
    oid: int
    objects: list[wmio.Instance] = field(default_factory=list)
    status: int | None = None
    callers: list[Identity] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    obtained_by: str | None = None  # the address of the computer the sink was handed to


def _local_names() -> NtlmServerNames:
    # A workgroup machine names itself as its domain (MS-NLMP 3.2.5.1.1 TargetName).
    name = (socket.gethostname().split(".")[0] or "WMILAB")[:15].upper()
    return NtlmServerNames(name, name, name.lower(), name.lower())


class CallbackListener:
    """The resolver (TCP ``resolver_port``, 135 on a real A) and the sink exporter on
    ``address``. ``async with CallbackListener(addr) as cb: sink = cb.create(); ...``."""

    def __init__(self, address: str, *, resolver_port: int = 135, sink_port: int = 0,
                 policy: SinkPolicy | None = None, names: NtlmServerNames | None = None,
                 max_sinks: int = 1024) -> None:
        self.address = address
        self.resolver_port = resolver_port
        self.sink_port = sink_port
        self.policy: SinkPolicy = policy if policy is not None else OpenPolicy()
        self.names = names or _local_names()
        self.max_sinks = max_sinks
        # MS-DCOM 3.1.1.1: an object exporter has its own OXID and IRemUnknown IPID.
        self.oxid = struct.unpack("<Q", os.urandom(8))[0]
        self.rem_unknown = uuid.uuid4()
        self._oids = itertools.count(struct.unpack("<I", os.urandom(4))[0] << 16)
        self.sinks: dict[uuid.UUID, SinkState] = {}
        self.events: list[CallbackEvent] = []
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on both ports; OSError (for example no right to bind 135) propagates."""
        res = await asyncio.start_server(self._resolver_conn, self.address, self.resolver_port,
                                         reuse_address=True)
        self._servers.append(res)
        try:
            sink = await asyncio.start_server(self._sink_conn, self.address, self.sink_port,
                                              reuse_address=True)
        except OSError:
            res.close()
            raise
        self._servers.append(sink)
        self.resolver_port = res.sockets[0].getsockname()[1]
        self.sink_port = sink.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for s in self._servers:
            s.close()
        for w in list(self._writers):
            w.close()
        for s in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 1.0)
        self._servers.clear()

    async def __aenter__(self) -> CallbackListener:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sinks -----------------------------------------------------------------------------

    def create(self, obtained_by: str | None = None) -> SinkState:
        """A new sink, to be handed to the computer at ``obtained_by``."""
        while len(self.sinks) >= self.max_sinks:
            self.sinks.pop(next(iter(self.sinks)))  # Choice: bounded, oldest first
        sink = SinkState(uuid.uuid4(), next(self._oids), obtained_by=obtained_by)
        self.sinks[sink.ipid] = sink
        return sink

    def objref(self, sink: SinkState, address: str | None = None) -> ObjRefStandard:
        # MS-DCOM 2.2.18.4: the resolver bindings carry the address; port 135 is implied.
        resolver = dcom.tcp_bindings([address or self.address], None)
        return ObjRefStandard(ids.IID_IWBEMOBJECTSINK,
                              StdObjRef(self.oxid, sink.oid, sink.ipid, 5), resolver)

    def bindings(self, local: str) -> DualStringArray:
        return dcom.tcp_bindings([local], self.sink_port)

    # -- connections -----------------------------------------------------------------------

    def _note(self, role: str, peer: str, what: str, identity: Identity | None = None,
              detail: str = "") -> None:
        if len(self.events) < 4096:
            self.events.append(CallbackEvent(time.monotonic(), role, peer, what, identity,
                                             detail))

    async def _resolver_conn(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        await self._serve("resolver", RESOLVER_INTERFACES, reader, writer)

    async def _sink_conn(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        await self._serve("sink", SINK_INTERFACES, reader, writer)

    async def _serve(self, role: str, interfaces: tuple[rpc.SyntaxId, ...],
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_info = writer.get_extra_info("peername") or ("?", 0)
        local_info = writer.get_extra_info("sockname") or (self.address, 0)
        peer, local = str(peer_info[0]), str(local_info[0])
        port = self.resolver_port if role == "resolver" else self.sink_port
        if len(self._writers) >= MAX_CONNECTIONS or not self.policy.admit(role, peer, port):
            # A's firewall (or our bound): the connection never reaches the program, and the
            # doctor never sees it.
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()
            return
        self._writers.add(writer)
        self._note(role, peer, "connect")
        conn = ServerConnection(interfaces, self.policy.authenticator(peer),
                                ntlm_names=self.names,
                                secondary_address=str(port))
        identities: dict[int, Identity] = {}
        try:
            while not conn.closed:
                try:
                    data = await asyncio.wait_for(reader.read(65536), IDLE_SECONDS)
                except (TimeoutError, OSError):
                    break
                if not data:
                    break
                events = conn.receive_data(data)
                for ev in events:
                    if isinstance(ev, Authenticated):
                        verified = not isinstance(ev.identity, tuple)
                        identities[ev.auth_context_id] = Identity(
                            ev.user, ev.domain, ev.anonymous, ev.auth_level, verified)
                    elif isinstance(ev, LogonFailed):
                        who = Identity(ev.user, ev.domain, not ev.user, 0, False)
                        self._note(role, peer, "logon refused", who, ev.reason)
                    elif isinstance(ev, CallReceived):
                        found = identities.get(ev.auth_context_id) \
                            if ev.auth_context_id is not None else None
                        caller = found or Identity("", "", True, ev.auth_level, False)
                        self._call(role, peer, local, conn, ev, caller)
                out = conn.data_to_send()
                if out:
                    writer.write(out)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _call(self, role: str, peer: str, local: str, conn: ServerConnection,
              ev: CallReceived, who: Identity) -> None:
        """Answer one call; the reply (or fault) is queued on ``conn``."""
        try:
            if role == "resolver":
                reply = self._resolver(ev, peer, local, who)
            else:
                identity = ev.identity if ev.identity is not None else who
                refused = self.policy.may_call(identity)
                sink = self.sinks.get(ev.object_uuid) if ev.object_uuid is not None else None
                if refused is None and sink is not None:
                    # The call reaches the sink program (unsecapp): its own check.
                    refused = self.policy.may_deliver(identity, sink.obtained_by)
                if refused is not None:
                    # MS-DCOM 3.1.1.5.4: a caller without access gets E_ACCESSDENIED (fault 5).
                    self._note(role, peer, "refused", who, refused)
                    return conn.send_fault(ev.call_id, dcom.ERROR_ACCESS_DENIED)
                reply = self._sink(ev, peer, who)
        except (StubError, wmio.WmioError):
            return conn.send_fault(ev.call_id, rpc.STATUS_BAD_STUB_DATA)
        if reply is None:
            return conn.send_fault(ev.call_id, rpc.NCA_S_OP_RNG_ERROR, did_not_execute=True)
        return conn.send_response(ev.call_id, reply)

    def _resolver(self, ev: CallReceived, peer: str, local: str, who: Identity) -> bytes | None:
        op = ids.ObjectExporterOp
        if ev.opnum in (op.RESOLVE_OXID, op.RESOLVE_OXID2):
            v2 = ev.opnum == op.RESOLVE_OXID2
            req = dcom.parse_resolve_oxid(ev.stub, v2=v2)
            self._note("resolver", peer, "ResolveOxid2" if v2 else "ResolveOxid", who)
            if req.oxid != self.oxid:
                # MS-DCOM 3.1.2.5.1.1: an unknown OXID gives OR_INVALID_OXID.
                return dcom.build_resolve_oxid_reply(None, self.rem_unknown, v2=v2,
                                                     status=dcom.OR_INVALID_OXID)
            return dcom.build_resolve_oxid_reply(self.bindings(local), self.rem_unknown,
                                                 v2=v2)
        if ev.opnum == op.SIMPLE_PING:
            return dcom.build_status_reply(0)
        if ev.opnum == op.COMPLEX_PING:
            cp = dcom.parse_complex_ping(ev.stub)
            return dcom.build_complex_ping_reply(cp.set_id or 1)
        if ev.opnum == op.SERVER_ALIVE:
            return dcom.build_status_reply(0)
        if ev.opnum == op.SERVER_ALIVE2:
            return dcom.build_server_alive2_reply(dcom.tcp_bindings([local], None))
        return None

    def _sink(self, ev: CallReceived, peer: str, who: Identity) -> bytes | None:
        if ev.object_uuid == self.rem_unknown:
            return self._rem_unknown(ev.opnum, ev.stub)
        sink = self.sinks.get(ev.object_uuid) if ev.object_uuid is not None else None
        if sink is None:
            return dcom.build_orpc_hresult_reply(RPC_E_DISCONNECTED)
        if ev.opnum == ids.WbemObjectSinkOp.INDICATE:
            req = wmi.parse_indicate(ev.stub)
            if len(sink.objects) + len(req.objects) > MAX_OBJECTS:
                return dcom.build_orpc_hresult_reply(E_OUTOFMEMORY)
            for obj in req.objects:
                if not isinstance(obj, dcom.ObjRefCustom):
                    return dcom.build_orpc_hresult_reply(wmi.WBEM_E_INVALID_PARAMETER)
                decoded = wmio.decode_encoding_unit(obj.data).obj
                if isinstance(decoded, wmio.Instance):
                    sink.objects.append(decoded)
            self._caller(sink, who)
            self._note("sink", peer, "Indicate", who, f"{len(req.objects)} objects")
            return dcom.build_orpc_hresult_reply(dcom.S_OK)
        if ev.opnum == ids.WbemObjectSinkOp.SET_STATUS:
            st = wmi.parse_set_status(ev.stub)
            self._caller(sink, who)
            self._note("sink", peer, "SetStatus", who, f"0x{st.hresult:08X}")
            if st.flags == WBEM_STATUS_COMPLETE:
                sink.status = st.hresult
                sink.done.set()
            return dcom.build_orpc_hresult_reply(dcom.S_OK)
        return None

    @staticmethod
    def _caller(sink: SinkState, who: Identity) -> None:
        if len(sink.callers) < 1024:
            sink.callers.append(who)

    def _rem_unknown(self, opnum: int, stub: bytes) -> bytes | None:
        if opnum == ids.RemUnknownOp.REM_QUERY_INTERFACE:
            req = dcom.parse_rem_query_interface(stub)
            sink = self.sinks.get(req.ipid)
            results: list[dcom.QiResult] = []
            for iid in req.iids:
                if sink is None:
                    results.append(dcom.QiResult(RPC_E_DISCONNECTED))
                elif iid in (ids.IID_IWBEMOBJECTSINK, ids.IID_IUNKNOWN):
                    results.append(dcom.QiResult(dcom.S_OK, StdObjRef(
                        self.oxid, sink.oid, sink.ipid, max(req.refs, 1))))
                else:
                    results.append(dcom.QiResult(dcom.E_NOINTERFACE))
            return dcom.build_rem_query_interface_reply(results)
        if opnum == ids.RemUnknownOp.REM_ADD_REF:
            refs = dcom.parse_rem_refs(stub, "RemAddRef")
            return dcom.build_rem_add_ref_reply([dcom.S_OK if r.ipid in self.sinks
                                                 else hr.E_INVALIDARG.code for r in refs.refs])
        if opnum == ids.RemUnknownOp.REM_RELEASE:
            dcom.parse_rem_refs(stub, "RemRelease")
            return dcom.build_rem_release_reply(dcom.S_OK)
        return None
