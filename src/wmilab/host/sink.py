"""The sink role on A (unsecapp): an object exporter that receives Connection 2.

Seed: "Connection 2 from Computer B to Computer A delivers the results. This delivery is the
callback to the sink." For scripts and MMC snap-ins the sink lives in
``%windir%\\system32\\wbem\\unsecapp.exe``; a C++ application usually hosts its own.

:class:`SinkExporter` listens on a port of A's dynamic RPC range (``HostModel.rpc_ports``,
model/ports.py, drawn at random as the RPC runtime assigns one), exports
IWbemObjectSink objects (MS-WMI 3.1.4.2) and registers its OXID with A's OXID resolver, so
that B's ResolveOxid2 on A:135 returns its string binding. Every decision is the model's:

- the firewall: ``HostModel.inbound(source, port, program)`` for each connection, with the
  port it got and the sink's program (unsecapp or the application); flow step c2.sink-port
  asks the same rule for every port the sink may get;
- the logon: A's ``ModelAuthenticator`` (``directory.network_logon``), as on every port;
- DCOM: ``A.dcom.check_remote_access(token, "sink")`` on every call (flow step c2.access);
  refused -> fault 5 (MS-DCOM 3.1.1.5.4; seed: 0x80070005).

Each :class:`SinkObject` records what arrives (Indicate's objects, SetStatus's HRESULT, who
called) and can be awaited; the WMI client (issue "Call") uses it as its sink exporter.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import struct
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wmilab import hresult as hr
from wmilab import steps
from wmilab.errors import WireError
from wmilab.host import remunknown
from wmilab.host.gate import GateDecision
from wmilab.host.runtime import BAD_STUB, OP_RANGE, RPC_E_DISCONNECTED, CallContext, Reply, ResolverEntry
from wmilab.model import firewall as fw
from wmilab.model.world import HostModel
from wmilab.wire import dcom, ids, rpc, wmi, wmio
from wmilab.wire.dcom import DualStringArray, ObjRefStandard, RpcFaultReply, StdObjRef
from wmilab.wire.rpc_conn import CallReceived

if TYPE_CHECKING:
    from wmilab.host.server import HostServer

__all__ = ["SINK_INTERFACES", "SinkExporter", "SinkObject", "SinkResult"]

log = logging.getLogger("wmilab.host")

SINK_INTERFACES = tuple(rpc.SyntaxId(iid, 0, 0) for iid in (
    # MS-DCOM 2.1: ORPC interfaces have version 0.0.
    ids.IID_IREMUNKNOWN, ids.IID_IREMUNKNOWN2, ids.IID_IUNKNOWN, ids.IID_IWBEMOBJECTSINK,
))
E_OUTOFMEMORY = hr.E_OUTOFMEMORY.code  # from the status-code catalogue
WBEM_STATUS_COMPLETE = 0  # MS-WMI 2.2.3: SetStatus lFlags of the final result


@dataclass
class SinkResult:
    """What one sink has received so far."""

    objects: list[wmio.ClassDef | wmio.Instance] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)  # the EncodingUnits as they came
    status: int | None = None  # the HRESULT of SetStatus(WBEM_STATUS_COMPLETE), once it came
    progress: list[int] = field(default_factory=list)  # HRESULTs of other SetStatus calls
    callers: list[str] = field(default_factory=list)  # token names, one per accepted call
    refused: list[str] = field(default_factory=list)  # who was refused, and why

    @property
    def complete(self) -> bool:
        return self.status is not None


@dataclass
class SinkObject:
    """One exported IWbemObjectSink (MS-WMI 3.1.4.2)."""

    ipid: uuid.UUID
    oid: int
    exporter: SinkExporter
    # The scenario host the sink was handed to (B): unsecapp's own check admits only its
    # machine account (UnsecAppAccessControlDefault = 1; steps.sink_caller).
    obtained_by: str | None = None
    result: SinkResult = field(default_factory=SinkResult)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def objref(self, address: str | None = None) -> ObjRefStandard:
        """The OBJREF to pass as pResponseHandler; the resolver binding is A's address."""
        return self.exporter.objref(self, address)

    async def wait(self, timeout: float = 30.0) -> SinkResult:
        """The result once SetStatus(WBEM_STATUS_COMPLETE) came (TimeoutError otherwise)."""
        await asyncio.wait_for(self.done.wait(), timeout)
        return self.result


class SinkExporter:
    """The unsecapp role of one emulated host: an object exporter of IWbemObjectSink objects.

    ``async with SinkExporter(server) as sinks: sink = sinks.create(); ...`` where ``server``
    is A's running :class:`HostServer`. ``program`` is the sink's program for the firewall
    (default unsecapp.exe); ``port`` the port to bind (default: one of A's dynamic RPC range).
    """

    kind = "sink"

    def __init__(self, server: HostServer, *, program: str = fw.UNSECAPP,
                 port: int | None = None, max_sinks: int = 1024,
                 max_objects: int = 100_000) -> None:
        self.server = server
        self.model: HostModel = server.model
        self.program = fw.normalize_program(program)
        self.port = port
        self.max_sinks = max_sinks
        self.max_objects = max_objects
        # MS-DCOM 3.1.1.1: an object exporter has its own OXID and an IRemUnknown IPID.
        self.oxid = struct.unpack("<Q", os.urandom(8))[0]
        self.rem_unknown = uuid.uuid4()
        self._oids = itertools.count(struct.unpack("<I", os.urandom(4))[0] << 16)
        self._sinks: OrderedDict[uuid.UUID, SinkObject] = OrderedDict()
        self.listen_port: int | None = None

    @property
    def interfaces(self) -> tuple[rpc.SyntaxId, ...]:
        return SINK_INTERFACES

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        runtime = self.server.runtime
        if runtime is None:
            raise RuntimeError("start the HostServer before its sink exporter")
        self.listen_port = await self.server.add_listener(self, self.port)
        runtime.register_exporter(self.oxid, ResolverEntry(self.bindings, self.rem_unknown))

    async def stop(self) -> None:
        if self.server.runtime is not None:
            self.server.runtime.unregister_exporter(self.oxid)
        await self.server.remove_listener(self.kind)
        self.listen_port = None

    async def __aenter__(self) -> SinkExporter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- objects --------------------------------------------------------------------------

    def create(self, obtained_by: str | None = None) -> SinkObject:
        """Export a new IWbemObjectSink, to be handed to the scenario host ``obtained_by``;
        the oldest goes when ``max_sinks`` are live."""
        while len(self._sinks) >= self.max_sinks:
            self._sinks.popitem(last=False)  # Choice: bounded, as the WMI exporter's table
        sink = SinkObject(uuid.uuid4(), next(self._oids), self, obtained_by)
        self._sinks[sink.ipid] = sink
        return sink

    def release(self, sink: SinkObject) -> None:
        self._sinks.pop(sink.ipid, None)

    def bindings(self, local_address: str) -> DualStringArray:
        """``ADDR[port]`` of this exporter, with the address the resolver's caller dialled."""
        if self.listen_port is None:
            raise RuntimeError("the sink exporter is not listening")
        return dcom.tcp_bindings([local_address], self.listen_port)

    def objref(self, sink: SinkObject, address: str | None = None) -> ObjRefStandard:
        # MS-DCOM 2.2.18.4: the resolver's bindings carry the address only (port 135 is known).
        resolver = dcom.tcp_bindings([address or self.server.address], None)
        return ObjRefStandard(ids.IID_IWBEMOBJECTSINK,
                              StdObjRef(self.oxid, sink.oid, sink.ipid, 5), resolver)

    # -- the listener (host/server.py Service) ----------------------------------------------

    def decide(self, peer: str) -> GateDecision:
        source, source_host = self.server.gate.source_of(peer)
        port = self.listen_port or 0
        # Seed, Connection 2 step 2: the sink program (unsecapp.exe or the application) must be
        # allowed on A: the question flow asks at c2.sink-port.
        check = steps.sink_port(self.model, source, self.program, port)
        return GateDecision(check.ok, source, source_host, port, check.reason)

    def handle(self, ev: CallReceived, ctx: CallContext) -> tuple[str, Reply]:
        sink = self._sinks.get(ev.object_uuid) if ev.object_uuid is not None else None
        if ev.object_uuid == self.rem_unknown:
            name = ids.op_name(ids.IID_IREMUNKNOWN, ev.opnum)
        else:
            name = ids.op_name(ids.IID_IWBEMOBJECTSINK, ev.opnum)
        # MS-DCOM 3.1.1.5.4 / seed, Connection 2 step 3: A's access permission for the sink,
        # checked on every call (flow c2.access); refused -> fault ERROR_ACCESS_DENIED.
        check = steps.access(self.model, ctx.token, "sink")
        if check.ok and sink is not None:
            # The call reaches the sink program: unsecapp's own check of its caller (flow
            # c2.access; UnsecAppAccessControlDefault, Learn CreateSinkStub).
            check = steps.sink_caller(self.model, ctx.token, self.program, sink.obtained_by)
        if not check.ok:
            if sink is not None and len(sink.result.refused) < 64:
                sink.result.refused.append(f"{ctx.token.name}: {check.reason}")
            log.info("%s sink refuses %s from %s: %s", self.server.name, ctx.token.name,
                     ctx.peer, check.reason)
            return name, RpcFaultReply(dcom.ERROR_ACCESS_DENIED)
        try:
            if ev.object_uuid == self.rem_unknown:
                return name, remunknown.handle(self, ev.opnum, ev.stub)
            if sink is None:
                return name, RpcFaultReply(RPC_E_DISCONNECTED)
            return name, self._sink_call(sink, ev.opnum, ev.stub, ctx)
        except WireError:  # a malformed stub or MS-WMIO object
            return name, BAD_STUB

    # -- IRemUnknown (host/remunknown.py IpidTable) ----------------------------------------

    def query_interfaces(self, ipid: uuid.UUID, iids: Sequence[uuid.UUID],
                         refs: int) -> list[tuple[int, uuid.UUID] | None] | None:
        sink = self._sinks.get(ipid)
        if sink is None:
            return None
        return [(sink.oid, sink.ipid) if iid in (ids.IID_IWBEMOBJECTSINK, ids.IID_IUNKNOWN)
                else None for iid in iids]

    def add_ref(self, ipid: uuid.UUID, refs: int) -> bool:
        return ipid in self._sinks

    def release_refs(self, ipid: uuid.UUID, refs: int) -> None:
        # Choice: the sink's owner (the client) decides when a sink goes, not the caller.
        return

    def _sink_call(self, sink: SinkObject, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        res = sink.result
        if opnum == ids.WbemObjectSinkOp.INDICATE:
            req = wmi.parse_indicate(stub)
            if len(res.objects) + len(req.objects) > self.max_objects:
                # Choice: bounded memory; the caller cancels the operation (MS-WMI 3.1.1.1.3).
                return dcom.build_orpc_hresult_reply(E_OUTOFMEMORY)
            for obj in req.objects:
                if not isinstance(obj, dcom.ObjRefCustom):
                    return dcom.build_orpc_hresult_reply(wmi.WBEM_E_INVALID_PARAMETER)
                res.objects.append(wmio.decode_encoding_unit(obj.data).obj)
                res.encoded.append(obj.data)
            self._caller(res, ctx)
            return dcom.build_orpc_hresult_reply(dcom.S_OK)
        if opnum == ids.WbemObjectSinkOp.SET_STATUS:
            st = wmi.parse_set_status(stub)
            self._caller(res, ctx)
            if st.flags == WBEM_STATUS_COMPLETE:
                res.status = st.hresult
                sink.done.set()
            elif len(res.progress) < 1024:
                res.progress.append(st.hresult)
            return dcom.build_orpc_hresult_reply(dcom.S_OK)
        return OP_RANGE

    @staticmethod
    def _caller(res: SinkResult, ctx: CallContext) -> None:
        if len(res.callers) < 1024:
            res.callers.append(ctx.token.name)
