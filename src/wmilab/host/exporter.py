"""The WMI service's object exporter: IRemUnknown, IWbemLevel1Login, IWbemServices, enumerators.

Calls are routed by their object UUID (the IPID), never by the bound interface: aiowmi
sends every call on presentation context 0 (wire-notes). Each call first asks the model
``host.dcom.check_remote_access(token, "wmi")`` (flow step c1.access); NTLMLogin asks
``host.wmi.check_login`` (c1.namespace); ExecMethod asks ``host.wmi.check_method``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from wmilab import hresult as hr
from wmilab import steps
from wmilab.host import remunknown
from wmilab.host.objects import (
    EncodedObject,
    Entry,
    Enumerator,
    FetchSmartEnum,
    Level1Login,
    RemUnknown,
    Services,
    WcoSmartEnum,
)
from wmilab.host.runtime import BAD_STUB, OP_RANGE, RPC_E_DISCONNECTED, CallContext, HostRuntime, Reply
from wmilab.repository import CimClass, WmiError
from wmilab.repository.cim import CimObject
from wmilab.wire import dcom, ids, rpc, wmi, wmio
from wmilab.wire.dcom import RpcFaultReply, StubError

if TYPE_CHECKING:
    from wmilab.host.callback import CallbackRunner

__all__ = ["EXPORTER_INTERFACES", "WmiExporter"]

log = logging.getLogger("wmilab.host")

EXPORTER_INTERFACES = tuple(rpc.SyntaxId(iid, 0, 0) for iid in (
    # MS-DCOM 2.1: every ORPC interface has version 0.0.
    ids.IID_IREMUNKNOWN, ids.IID_IREMUNKNOWN2, ids.IID_IUNKNOWN, ids.IID_IWBEMLEVEL1LOGIN,
    ids.IID_IWBEMSERVICES, ids.IID_IENUMWBEMCLASSOBJECT, ids.IID_IWBEMFETCHSMARTENUM,
    ids.IID_IWBEMWCOSMARTENUM, ids.IID_IWBEMCALLRESULT, ids.IID_IWBEMLOGINCLIENTID,
    ids.IID_IWBEMLOGINHELPER,
))

WBEM_E_INVALID_OPERATION = hr.WBEM_E_INVALID_OPERATION.code  # from the status-code catalogue
WBEM_FLAG_SHALLOW = 0x1  # MS-WMI 2.2.3 (CreateInstanceEnum: no subclasses)
MAX_NEXT = 10_000  # Choice: Next/Skip counts above this are clipped (bounded replies)
WBEM_E_OUT_OF_MEMORY = hr.WBEM_E_OUT_OF_MEMORY.code  # from the status-code catalogue

Op = ids.WbemServicesOp
E = ids.EnumWbemClassObjectOp
# The asynchronous calls whose results are delivered to the client's sink (MS-WMI 3.1.1.1.3).
ASYNC_OPS = frozenset({Op.EXEC_QUERY_ASYNC, Op.CREATE_INSTANCE_ENUM_ASYNC, Op.GET_OBJECT_ASYNC,
                       Op.EXEC_METHOD_ASYNC})


@lru_cache(maxsize=512)
def _op_name(iid: uuid.UUID, opnum: int) -> str:
    """ids.op_name, remembered: each call is named for the log whether or not it is logged."""
    return ids.op_name(iid, opnum)


class WmiExporter:
    """Dispatch for every ORPC call on the WMI port."""

    def __init__(self, runtime: HostRuntime, callbacks: CallbackRunner | None = None) -> None:
        self.rt = runtime
        self.callbacks = callbacks

    def handle(self, opnum: int, object_uuid: uuid.UUID | None, stub: bytes,
               ctx: CallContext) -> tuple[str, Reply]:
        """(operation name for the log, reply stub or fault)."""
        entry = self.rt.table.lookup(object_uuid)
        name = self._name(entry, opnum)
        # MS-DCOM 3.1.1.5.4: the exporter checks the caller's access permission on every
        # ORPC; refused -> ERROR_ACCESS_DENIED (seed: 0x80070005; flow c1.access).
        if not steps.access(self.rt.model, ctx.token, "wmi").ok:
            return name, RpcFaultReply(dcom.ERROR_ACCESS_DENIED)
        if entry is None:
            return name, RpcFaultReply(RPC_E_DISCONNECTED)
        try:
            return name, self._dispatch(entry, opnum, stub, ctx)
        except StubError:
            return name, BAD_STUB

    @staticmethod
    def _name(entry: Entry | None, opnum: int) -> str:
        if entry is None:
            return f"<unknown IPID>#{opnum}"
        return _op_name(entry.iid, opnum)

    def _dispatch(self, entry: Entry, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        obj = entry.obj
        if isinstance(obj, RemUnknown):
            return remunknown.handle(self.rt.table, opnum, stub)
        if isinstance(obj, Level1Login):
            return self._login(opnum, stub, ctx)
        if isinstance(obj, Services):
            return self._services(obj, opnum, stub, ctx)
        if isinstance(obj, Enumerator):
            return self._enum(obj, opnum, stub, ctx)
        if isinstance(obj, FetchSmartEnum):
            if opnum != ids.WbemFetchSmartEnumOp.GET_SMART_ENUM:
                return OP_RANGE
            # MS-WMI 3.1.4.6.1: GetSmartEnum returns an IWbemWCOSmartEnum on the same result.
            smart = self.rt.table.export(WcoSmartEnum(obj.enum), ids.IID_IWBEMWCOSMARTENUM,
                                         oid=entry.oid)
            return wmi.build_interface_reply(self._ref(smart, ctx))
        if isinstance(obj, WcoSmartEnum):
            if opnum != ids.WbemWcoSmartEnumOp.NEXT:
                return OP_RANGE
            req = wmi.parse_smart_next(stub)
            count = min(req.count, MAX_NEXT)
            got = obj.enum.take(count)
            objects = [wmi.SmartObject(obj.enum.class_id(o.class_name), o.encoded) for o in got]
            # MS-WMI 3.1.4.7.1: WBEM_S_FALSE once fewer than uCount objects come back.
            return wmi.build_smart_next_reply(objects, count)
        return OP_RANGE

    def _ref(self, entry: Entry, ctx: CallContext) -> dcom.ObjRefStandard:
        return self.rt.table.objref(entry, self.rt.resolver_bindings(ctx.local_address))

    # -- IWbemLevel1Login (MS-WMI 3.1.4.1) -----------------------------------------------

    def _login(self, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        op = ids.WbemLevel1LoginOp
        if opnum == op.ESTABLISH_POSITION:
            wmi.parse_establish_position(stub)
            return wmi.build_establish_position_reply()
        if opnum in (op.REQUEST_CHALLENGE, op.WBEM_LOGIN):
            # MS-WMI 3.1.4.1.2 / 3.1.4.1.3: these MUST return WBEM_E_NOT_SUPPORTED.
            return wmi.build_reserved_challenge_reply()
        if opnum != op.NTLM_LOGIN:
            return OP_RANGE
        req = wmi.parse_ntlm_login(stub)
        ref, code = self._open(req.namespace, ctx)
        return wmi.build_interface_reply(ref, code)

    def _open(self, namespace: str, ctx: CallContext) -> tuple[dcom.ObjRefStandard | None, int]:
        check = steps.namespace_login(self.rt.model, ctx.token, namespace)
        if not check.ok:
            # The step table's HRESULT for c1.namespace, as flow reports it.
            code = steps.TABLE[steps.C1_NAMESPACE].failure(check)
            log.info("%s NTLMLogin %s as %s: %s", self.rt.name, namespace, ctx.token.name,
                     check.reason)
            return None, code.code
        try:
            ns = self.rt.repository.namespace(namespace).name
        except WmiError as e:
            return None, e.hresult.code
        services = self.rt.table.export(Services(ns, ctx.token), ids.IID_IWBEMSERVICES)
        return self._ref(services, ctx), wmi.WBEM_S_NO_ERROR

    # -- IWbemServices (MS-WMI 3.1.4.3) --------------------------------------------------

    def _services(self, svc: Services, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        req = wmi.parse_wbem_services(opnum, stub)
        if (isinstance(req, wmi.WbemRequest) and req.sink is not None and opnum in ASYNC_OPS
                and self.callbacks is not None):
            return self._async(svc, req, req.sink, self.callbacks, ctx)
        if isinstance(req, wmi.Unsupported) or req.sink is not None:
            # Choice: asynchronous entry points (and the calls we do not serve) answer
            # WBEM_E_NOT_SUPPORTED; the callback to the sink is not implemented (docs/host.md).
            reply = wmi.build_error_reply(ids.IID_IWBEMSERVICES, opnum, hr.WBEM_E_NOT_SUPPORTED.code)
            return OP_RANGE if reply is None else reply
        repo = self.rt.repository
        try:
            if opnum == Op.OPEN_NAMESPACE:
                target = f"{svc.namespace}\\{req.path or ''}".strip("\\")
                ref, code = self._open(target, ctx)
                return wmi.build_open_namespace_reply(ref, None, code)
            if opnum == Op.GET_OBJECT:
                if not req.path:
                    raise WmiError(hr.WBEM_E_INVALID_PARAMETER, "empty object path")
                found = repo.get_object(svc.namespace, req.path)
                return wmi.build_get_object_reply(repo.encode(found, svc.namespace))
            if opnum in (Op.EXEC_QUERY, Op.EXEC_NOTIFICATION_QUERY):
                if opnum == Op.EXEC_NOTIFICATION_QUERY:
                    raise WmiError(hr.WBEM_E_NOT_SUPPORTED, "event queries")
                rows = repo.exec_query(svc.namespace, req.query or "", req.query_language or "")
                # MS-WMI 3.1.4.3.18: synchronous and semisynchronous (0x10) calls both return
                # an IEnumWbemClassObject; here the result is complete at once.
                return self._enumerator(svc.namespace, rows, req.forward_only, ctx)
            if opnum == Op.CREATE_INSTANCE_ENUM:
                rows = list(repo.create_instance_enum(
                    svc.namespace, req.path or "", deep=not req.flags & WBEM_FLAG_SHALLOW))
                return self._enumerator(svc.namespace, rows, req.forward_only, ctx)
            if opnum == Op.EXEC_METHOD:
                return self._exec_method(svc, req, ctx)
        except WmiError as e:
            return self._error(opnum, e.hresult.code)
        reply = wmi.build_error_reply(ids.IID_IWBEMSERVICES, opnum, hr.WBEM_E_NOT_SUPPORTED.code)
        return OP_RANGE if reply is None else reply

    @staticmethod
    def _error(opnum: int, code: int) -> bytes:
        reply = wmi.build_error_reply(ids.IID_IWBEMSERVICES, opnum, code)
        assert reply is not None
        return reply

    def _enumerator(self, namespace: str, rows: Sequence[CimObject], forward_only: bool,
                    ctx: CallContext) -> bytes:
        objects = []
        for row in rows:
            cls_name = row.name if isinstance(row, CimClass) else row.cls.name
            objects.append(EncodedObject(cls_name, self.rt.repository.encode(row, namespace)))
        enum = Enumerator(namespace, objects, forward_only)
        entry = self.rt.table.export(enum, ids.IID_IENUMWBEMCLASSOBJECT)
        return wmi.build_interface_reply(self._ref(entry, ctx))

    def _exec_method(self, svc: Services, req: wmi.WbemRequest, ctx: CallContext) -> bytes:
        if not self._may_execute(svc, ctx):
            return self._error(Op.EXEC_METHOD, hr.WBEM_E_ACCESS_DENIED.code)
        return wmi.build_exec_method_reply(self._method_out(svc, req))

    def _may_execute(self, svc: Services, ctx: CallContext) -> bool:
        check = self.rt.model.wmi.check_method(ctx.token, svc.namespace)
        if not check.ok:
            # Execute Methods is needed (MSDocs WmiSdk/namespace-access-rights-constants).
            log.info("%s ExecMethod as %s: %s", self.rt.name, ctx.token.name, check.reason)
        return check.ok

    def _method_out(self, svc: Services, req: wmi.WbemRequest) -> bytes:
        """The encoded out-parameters of ExecMethod(Async); WmiError for bad input."""
        params: wmio.Instance | None = None
        data = req.in_params_object
        if data is not None:
            try:
                decoded = wmio.decode_encoding_unit(data).obj
            except wmio.WmioError:
                raise WmiError(hr.WBEM_E_INVALID_PARAMETER, "undecodable in-parameters") from None
            if not isinstance(decoded, wmio.Instance):
                raise WmiError(hr.WBEM_E_INVALID_PARAMETER, "in-parameters are not an instance")
            params = wmio.Instance(decoded.cls, {k: v for k, v in decoded.values.items()
                                                 if v is not None})
        # Never run anything on this machine: only the repository's emulated state changes.
        out = self.rt.repository.exec_method(svc.namespace, req.path or "", req.method or "",
                                             params)
        return self.rt.repository.encode(out, svc.namespace)

    # -- Asynchronous calls (MS-WMI 3.1.1.1.3): reply at once, results go to the sink ---------

    def _async(self, svc: Services, req: wmi.WbemRequest, sink: wmi.SinkRef,
               callbacks: CallbackRunner, ctx: CallContext) -> bytes:
        op = req.opnum
        if not callbacks.can_start():
            # Choice: too many callbacks in flight; the call fails to start (bounded work).
            return self._error(op, WBEM_E_OUT_OF_MEMORY)
        if op == Op.EXEC_METHOD_ASYNC and not self._may_execute(svc, ctx):
            # MS-WMI 3.1.1.1.3: if starting the operation fails, the error is the return value
            # and the sink is never called.
            return self._error(op, hr.WBEM_E_ACCESS_DENIED.code)
        repo = self.rt.repository
        ns = svc.namespace
        objects: list[bytes] = []
        status = wmi.WBEM_S_NO_ERROR
        try:
            if op == Op.EXEC_QUERY_ASYNC:
                rows: Sequence[CimObject] = repo.exec_query(ns, req.query or "",
                                                            req.query_language or "")
                objects = [repo.encode(r, ns) for r in rows]
            elif op == Op.CREATE_INSTANCE_ENUM_ASYNC:
                rows = list(repo.create_instance_enum(
                    ns, req.path or "", deep=not req.flags & WBEM_FLAG_SHALLOW))
                objects = [repo.encode(r, ns) for r in rows]
            elif op == Op.GET_OBJECT_ASYNC:
                if not req.path:
                    raise WmiError(hr.WBEM_E_INVALID_PARAMETER, "empty object path")
                objects = [repo.encode(repo.get_object(ns, req.path), ns)]
            else:
                objects = [self._method_out(svc, req)]
        except WmiError as e:
            # Choice: an error of the operation itself (bad class, bad WQL) is the final
            # status the sink gets through SetStatus, with no objects (docs/host.md).
            objects, status = [], e.hresult.code
        # MS-WMI 3.1.1.1.3: "the server MUST return WBEM_S_NO_ERROR" once the operation began,
        # then call IWbemObjectSink::Indicate and SetStatus (Connection 2).
        callbacks.start(ids.op_name(ids.IID_IWBEMSERVICES, op), sink, objects, status)
        return self._error(op, wmi.WBEM_S_NO_ERROR)

    # -- IEnumWbemClassObject (MS-WMI 3.1.4.4) -------------------------------------------

    def _enum(self, enum: Enumerator, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        req = wmi.parse_enum(opnum, stub)
        if isinstance(req, wmi.Unsupported) or req.sink is not None:
            reply = wmi.build_error_reply(ids.IID_IENUMWBEMCLASSOBJECT, opnum,
                                          hr.WBEM_E_NOT_SUPPORTED.code)
            return OP_RANGE if reply is None else reply
        if opnum == E.NEXT:
            count = min(req.count, MAX_NEXT)
            got = enum.take(count)
            # MS-WMI 3.1.4.4.2: S_OK when uCount objects come back, else WBEM_S_FALSE.
            return wmi.build_next_reply([o.encoded for o in got], count)
        if opnum == E.RESET:
            if enum.forward_only:
                # MS-WMI 3.1.4.4.1: Reset on an enumerator without reset capability
                # (WBEM_FLAG_FORWARD_ONLY) MUST return WBEM_E_INVALID_OPERATION.
                return dcom.build_orpc_hresult_reply(WBEM_E_INVALID_OPERATION)
            enum.position = 0
            return dcom.build_orpc_hresult_reply(dcom.S_OK)
        if opnum == E.SKIP:
            count = min(req.count, MAX_NEXT)
            got = enum.take(count)
            return dcom.build_orpc_hresult_reply(dcom.S_OK if len(got) == count
                                                 else wmi.WBEM_S_FALSE)
        if opnum == E.CLONE:
            # MS-WMI 3.1.4.4.4: the clone starts at the same position.
            clone = Enumerator(enum.namespace, enum.objects, enum.forward_only, enum.position,
                               dict(enum.class_ids))
            entry = self.rt.table.export(clone, ids.IID_IENUMWBEMCLASSOBJECT)
            return wmi.build_interface_reply(self._ref(entry, ctx))
        return OP_RANGE
