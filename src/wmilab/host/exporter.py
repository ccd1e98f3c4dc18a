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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wmilab import hresult as hr
from wmilab import steps
from wmilab.host import remunknown
from wmilab.host.events import EventHub
from wmilab.host.objects import (
    SUPPORTED,
    CallResult,
    ClassFactory,
    Entry,
    Enumerator,
    EventEnumerator,
    FetchSmartEnum,
    Level1Login,
    RemUnknown,
    Services,
    WcoSmartEnum,
)
from wmilab.host.runtime import BAD_STUB, OP_RANGE, RPC_E_DISCONNECTED, CallContext, HostRuntime, Reply
from wmilab.model.wmi import WriteTarget
from wmilab.repository import EncodedRow, WmiError
from wmilab.repository.cim import PathError, parse_path
from wmilab.wire import dcom, iactivation, ids, rpc, wmi, wmio
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
    ids.IID_IWBEMLOGINHELPER, ids.IID_ICLASSFACTORY,
))

WBEM_E_INVALID_OPERATION = hr.WBEM_E_INVALID_OPERATION.code  # from the status-code catalogue
WBEM_FLAG_SHALLOW = 0x1  # MS-WMI 2.2.3 (CreateInstanceEnum: no subclasses)
MAX_NEXT = 10_000  # Choice: Next/Skip counts above this are clipped (bounded replies)
WBEM_E_OUT_OF_MEMORY = hr.WBEM_E_OUT_OF_MEMORY.code  # from the status-code catalogue
SEMISYNC_FORWARD = wmi.WBEM_FLAG_RETURN_IMMEDIATELY | wmi.WBEM_FLAG_FORWARD_ONLY

Op = ids.WbemServicesOp
E = ids.EnumWbemClassObjectOp
# Each asynchronous method and its synchronous twin (MS-WMI 3.1.4.3: the async form is the
# next opnum); results go to the client's sink (MS-WMI 3.1.1.1.3).
ASYNC_TO_SYNC = {op + 1: op for op in (
    Op.GET_OBJECT, Op.PUT_CLASS, Op.DELETE_CLASS, Op.CREATE_CLASS_ENUM, Op.PUT_INSTANCE,
    Op.DELETE_INSTANCE, Op.CREATE_INSTANCE_ENUM, Op.EXEC_QUERY, Op.EXEC_NOTIFICATION_QUERY,
    Op.EXEC_METHOD)}
# The calls that answer with an IEnumWbemClassObject.
ENUM_OPS = frozenset({Op.CREATE_CLASS_ENUM, Op.CREATE_INSTANCE_ENUM, Op.EXEC_QUERY})
# Opnums compared on every request, as plain ints: reading an IntEnum member from its class
# goes through a slow attribute hook on CPython 3.11 (docs/benchmarks.md).
_EXEC_QUERY = int(Op.EXEC_QUERY)
_CANCEL_ASYNC_CALL = int(Op.CANCEL_ASYNC_CALL)
_QUERY_OBJECT_SINK = int(Op.QUERY_OBJECT_SINK)
_OPEN_NAMESPACE = int(Op.OPEN_NAMESPACE)
_EXEC_NOTIFICATION_QUERY = int(Op.EXEC_NOTIFICATION_QUERY)
_GET_SMART_ENUM = int(ids.WbemFetchSmartEnumOp.GET_SMART_ENUM)
_SMART_NEXT = int(ids.WbemWcoSmartEnumOp.NEXT)


class Refused(WmiError):
    """The call fails before it starts (rights, bad input): its HRESULT is the return value,
    also for an asynchronous call, whose sink is then never called (MS-WMI 3.1.1.1.3)."""


@dataclass
class Outcome:
    """What one IWbemServices operation produced."""

    encoded: list[bytes] = field(default_factory=list)
    rows: Sequence[EncodedRow] = ()  # what an enumerator serves (class name, EncodingUnit)
    text: str | None = None


_OP_NAMES: dict[tuple[int, int], str] = {}


def _op_name(iid: uuid.UUID, opnum: int) -> str:
    """ids.op_name, remembered (by the IID's int: uuid.UUID hashes in Python code): each call
    is named for the log whether or not it is logged."""
    key = (iid.int, opnum)
    name = _OP_NAMES.get(key)
    if name is None:
        if len(_OP_NAMES) >= 512:
            _OP_NAMES.clear()
        name = _OP_NAMES[key] = ids.op_name(iid, opnum)
    return name


class WmiExporter:
    """Dispatch for every ORPC call on the WMI port."""

    def __init__(self, runtime: HostRuntime, callbacks: CallbackRunner | None = None) -> None:
        self.rt = runtime
        self.callbacks = callbacks
        self.events: EventHub | None = EventHub(runtime, callbacks)
        self._access: dict[int, tuple[CallContext, bool]] = {}

    def handle(self, opnum: int, object_uuid: uuid.UUID | None, stub: bytes,
               ctx: CallContext) -> tuple[str, Reply]:
        """(operation name for the log, reply stub or fault)."""
        table = self.rt.table
        entry = table.lookup(object_uuid)
        name = (_OP_NAMES.get((entry.iid.int, opnum)) if entry is not None else None) \
            or self._name(entry, opnum)
        # MS-DCOM 3.1.1.5.4: the exporter checks the caller's access permission on every
        # ORPC; refused -> ERROR_ACCESS_DENIED (seed: 0x80070005; flow c1.access).
        known = self._access.get(id(ctx))
        allowed = known[1] if known is not None and known[0] is ctx else self._allowed(ctx)
        if not allowed:
            return name, RpcFaultReply(dcom.ERROR_ACCESS_DENIED)
        if entry is None:
            return name, RpcFaultReply(RPC_E_DISCONNECTED)
        # MS-DCOM 3.1.1.6.2: the last ORPC invocation time keeps an object from reclamation.
        table.activity[entry.oid] = table.clock()  # table.touch
        try:
            return name, self._dispatch(entry, opnum, stub, ctx)
        except StubError:
            return name, BAD_STUB

    def _allowed(self, ctx: CallContext) -> bool:
        """steps.access for the caller, asked once per call context (the server keeps one per
        security context of a connection; the host's model does not change while it runs)."""
        known = self._access.get(id(ctx))
        if known is None or known[0] is not ctx:
            if len(self._access) >= 4096:
                self._access.clear()
            ok = steps.access(self.rt.model, ctx.token, "wmi", ctx.auth_level).ok
            known = self._access[id(ctx)] = (ctx, ok)  # holding ctx keeps its id unique
        return known[1]

    @staticmethod
    def _name(entry: Entry | None, opnum: int) -> str:
        if entry is None:
            return f"<unknown IPID>#{opnum}"
        return _op_name(entry.iid, opnum)

    def _dispatch(self, entry: Entry, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        obj = entry.obj
        # The smart enumerator and its fetcher, which every aiowmi query calls, first.
        if isinstance(obj, WcoSmartEnum):
            return self._smart_next(obj, opnum, stub)
        if isinstance(obj, FetchSmartEnum):
            if opnum != _GET_SMART_ENUM:
                return OP_RANGE
            # MS-WMI 3.1.4.6.1: GetSmartEnum returns an IWbemWCOSmartEnum on the same result.
            smart = self.rt.table.export(WcoSmartEnum(obj.enum), ids.IID_IWBEMWCOSMARTENUM,
                                         oid=entry.oid)
            return wmi.build_interface_reply(self._ref_octets(smart, ctx))
        if isinstance(obj, RemUnknown):
            return remunknown.handle(self.rt.table, opnum, stub)
        if isinstance(obj, Level1Login):
            if entry.iid == ids.IID_IWBEMLOGINCLIENTID:
                return self._client_id(obj, opnum, stub)
            return self._login(opnum, stub, ctx)
        if isinstance(obj, Services):
            return self._services(obj, opnum, stub, ctx)
        if isinstance(obj, Enumerator | EventEnumerator):
            return self._enum(obj, opnum, stub, ctx)
        if isinstance(obj, CallResult):
            return self._call_result_op(obj, opnum, stub, ctx)
        if isinstance(obj, ClassFactory):
            return self._class_factory(opnum, stub, ctx)
        return OP_RANGE

    @staticmethod
    def _smart_next(obj: WcoSmartEnum, opnum: int, stub: bytes) -> Reply:
        if opnum != _SMART_NEXT:
            return OP_RANGE
        req = wmi.parse_smart_next(stub)
        count = min(req.count, MAX_NEXT)
        enum = obj.enum
        got = enum.take(count)
        objects = [wmi.SmartObject(enum.class_id(o.class_name), o.encoded) for o in got]
        # MS-WMI 3.1.4.7.1: WBEM_S_FALSE once fewer than uCount objects come back.
        return wmi.build_smart_next_reply(objects, count)

    def _ref(self, entry: Entry, ctx: CallContext) -> dcom.ObjRefStandard:
        return self.rt.table.objref(entry, self.rt.resolver_bindings(ctx.local_address))

    def _ref_octets(self, entry: Entry, ctx: CallContext) -> bytes:
        """The encoded OBJREF of ``_ref``, made without its dataclasses (a reply's octets)."""
        return self.rt.table.objref_octets(entry,
                                           self.rt.resolver_bindings_packed(ctx.local_address))

    # -- IClassFactory of WbemLevel1Login (objidl.idl; MS-DCOM 3.1.2.5.2.3.2) ----------------

    def _class_factory(self, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        if opnum == 3:
            iid = iactivation.parse_class_factory_create(stub)
            if iid not in SUPPORTED[Level1Login]:
                return iactivation.build_class_factory_create_reply(None, dcom.E_NOINTERFACE)
            entry = self.rt.table.export(Level1Login(ctx.token), iid)
            return iactivation.build_class_factory_create_reply(self._ref(entry, ctx), dcom.S_OK)
        if opnum == 4:
            iactivation.parse_lock_server(stub)
            return dcom.build_orpc_hresult_reply(dcom.S_OK)
        return OP_RANGE

    # -- IWbemLevel1Login (MS-WMI 3.1.4.1) -----------------------------------------------

    def _login(self, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        op = ids.WbemLevel1LoginOp
        if opnum == op.ESTABLISH_POSITION:
            wmi.parse_establish_position(stub)
            return wmi.build_establish_position_reply()
        if opnum == op.REQUEST_CHALLENGE:
            # MS-WMI 3.1.4.1.2: the server SHOULD return WBEM_E_NOT_SUPPORTED.
            return wmi.build_reserved_challenge_reply()
        if opnum == op.WBEM_LOGIN:
            # XP SP2 and Server 2003 SP1 (the OSes wmilab emulates) answer E_NOTIMPL with a NULL
            # IWbemServices pointer (issue 9 observation; wbemtran.idl: ppNamespace). MS-WMI
            # 3.1.4.1.3, written for later versions, says WBEM_E_NOT_SUPPORTED.
            return wmi.build_wbem_login_reply(hr.E_NOTIMPL.code)
        if opnum != op.NTLM_LOGIN:
            return OP_RANGE
        req = wmi.parse_ntlm_login(stub)
        ref, code = self._open(req.namespace, ctx)
        return wmi.build_interface_reply(ref, code)

    def _client_id(self, login: Level1Login, opnum: int, stub: bytes) -> Reply:
        if opnum != 3:
            return OP_RANGE
        info = wmi.parse_set_client_info(stub)
        if info.machine is None:
            # MS-WMI 3.1.4.8.1: wszClientMachine MUST NOT be NULL.
            return dcom.build_orpc_hresult_reply(hr.WBEM_E_INVALID_PARAMETER.code)
        # The server MAY use it for logging (MS-WMI 3.1.4.8.1); it is kept on the object.
        login.client_machine, login.client_process = info.machine[:256], info.process_id
        log.info("%s client %s process %d", self.rt.name, login.client_machine, info.process_id)
        return dcom.build_orpc_hresult_reply(wmi.WBEM_S_NO_ERROR)

    def _open(self, namespace: str, ctx: CallContext) -> tuple[dcom.ObjRefStandard | None, int]:
        # NTLMLogin is judged by rights alone; the level counts for the requests that follow
        # (steps.namespace_request, in _services).
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
        # A RequiresEncryption namespace refuses every request below packet privacy with
        # WBEM_E_ACCESS_DENIED (c1.namespace; MS-WMI 2.2.30.3), at this very call's level.
        encryption = steps.namespace_request(self.rt.model, svc.namespace, ctx.auth_level)
        if not encryption.ok:
            log.info("%s %s as %s: %s", self.rt.name, _op_name(ids.IID_IWBEMSERVICES, opnum),
                     ctx.token.name, encryption.reason)
            code = steps.TABLE[steps.C1_NAMESPACE].failure(encryption).code
            reply = wmi.build_error_reply(ids.IID_IWBEMSERVICES, opnum, code)
            return OP_RANGE if reply is None else reply
        req = wmi.parse_wbem_services(opnum, stub)
        if isinstance(req, wmi.Unsupported):
            reply = wmi.build_error_reply(ids.IID_IWBEMSERVICES, opnum, hr.WBEM_E_NOT_SUPPORTED.code)
            return OP_RANGE if reply is None else reply
        if opnum == _CANCEL_ASYNC_CALL:
            return self._cancel(req)
        if opnum == _QUERY_OBJECT_SINK:
            return self._query_object_sink(svc, ctx)
        if req.sink is not None:
            if self.callbacks is None:
                # Choice: a host without Connection 2 (no callback runner) serves no
                # asynchronous calls.
                return self._error(opnum, hr.WBEM_E_NOT_SUPPORTED.code)
            return self._async(svc, req, req.sink, self.callbacks, ctx)
        if opnum == _OPEN_NAMESPACE:
            target = f"{svc.namespace}\\{req.path or ''}".strip("\\")
            ref, code = self._open(target, ctx)
            services_entry = self.rt.table.lookup(ref.std.ipid) if ref is not None else None
            services = services_entry.obj if services_entry is not None else None
            result = CallResult(code, services=services if isinstance(services, Services)
                                else None)
            if req.semisync and req.wants_call_result:
                return wmi.build_open_namespace_reply(None, self._call_result(result, ctx))
            return wmi.build_open_namespace_reply(
                ref, self._call_result(result, ctx) if req.wants_call_result else None, code)
        if opnum == _EXEC_NOTIFICATION_QUERY:
            return self._subscribe_enumerator(svc, req, ctx)
        if opnum == _EXEC_QUERY:
            # The usual call, without an Outcome: the cached rows go to a new enumerator.
            try:
                rows = self.rt.repository.query_encoded(svc.namespace, req.query or "",
                                                        req.query_language or "")
            except WmiError as e:
                return self._failed(opnum, req, e, ctx)
            return self._enumerator(svc.namespace, rows, req.forward_only, ctx)
        try:
            outcome = self._outcome(svc, req, ctx)
        except WmiError as e:
            return self._failed(opnum, req, e, ctx)
        if opnum in ENUM_OPS:
            return self._enumerator(svc.namespace, outcome.rows, req.forward_only, ctx)
        encoded = outcome.encoded[0] if outcome.encoded else None
        ref = None
        if req.wants_call_result:
            ref = self._call_result(CallResult(wmi.WBEM_S_NO_ERROR, encoded, outcome.text), ctx)
            if req.semisync:
                encoded = None
        return self._sync_reply(opnum, encoded, ref, wmi.WBEM_S_NO_ERROR, ctx)

    def _failed(self, opnum: int, req: wmi.WbemRequest, e: WmiError, ctx: CallContext) -> bytes:
        if req.semisync and req.wants_call_result:
            # MS-WMI 3.1.4.3 (semisynchronous calls): the call returns at once; the final
            # status is read from the IWbemCallResult.
            ref = self._call_result(CallResult(e.hresult.code), ctx)
            return self._sync_reply(opnum, None, ref, wmi.WBEM_S_NO_ERROR, ctx)
        return self._error(opnum, e.hresult.code)

    @staticmethod
    def _sync_reply(opnum: int, encoded: bytes | None, call_result: dcom.ObjRefStandard | None,
                    code: int, ctx: CallContext) -> bytes:
        if opnum in (Op.GET_OBJECT, Op.EXEC_METHOD):
            return wmi.build_get_object_reply(encoded, call_result, code)
        return wmi.build_call_result_reply(call_result, code)

    def _call_result(self, result: CallResult, ctx: CallContext) -> dcom.ObjRefStandard:
        entry = self.rt.table.export(result, ids.IID_IWBEMCALLRESULT)
        return self._ref(entry, ctx)

    def _check_write(self, svc: Services, ctx: CallContext, target: WriteTarget) -> None:
        """The namespace rights decide (model/wmi.py check_write); refused -> Refused."""
        check = self.rt.model.wmi.check_write(ctx.token, svc.namespace, target)
        if not check.ok:
            log.info("%s write as %s: %s", self.rt.name, ctx.token.name, check.reason)
            raise Refused(hr.WBEM_E_ACCESS_DENIED, check.reason)

    def _decoded(self, req: wmi.WbemRequest) -> wmio.ClassDef | wmio.Instance:
        data = req.object_data
        if data is None:
            # MS-WMI 3.1.4.3.6 / 3.1.4.3.12: pObject MUST NOT be NULL.
            raise Refused(hr.WBEM_E_INVALID_PARAMETER, "no object")
        try:
            return wmio.decode_encoding_unit(data).obj
        except wmio.WmioError as e:
            raise Refused(hr.WBEM_E_INVALID_PARAMETER, f"undecodable object: {e}") from None

    def _outcome(self, svc: Services, req: wmi.WbemRequest, ctx: CallContext) -> Outcome:
        """Run one IWbemServices operation (sync or async form) on the repository.

        Raises ``Refused`` when the call must fail before it starts (rights, bad input) and
        ``WmiError`` when the operation itself fails.
        """
        repo = self.rt.repository
        ns = svc.namespace
        base = ASYNC_TO_SYNC.get(req.opnum, req.opnum)
        if base == _EXEC_QUERY:  # the usual call first
            return Outcome(rows=repo.query_encoded(ns, req.query or "",
                                                   req.query_language or ""))
        if base == Op.GET_OBJECT:
            if not req.path:
                # MS-WMI 3.1.4.3.4: an empty path returns a new empty class (undecorated).
                return Outcome([repo.encode(repo.new_class(), ns, decorate=False)])
            return Outcome([repo.encode(repo.get_object(ns, req.path), ns)])
        if base == Op.PUT_CLASS:
            self._check_write(svc, ctx, "class")
            obj = self._decoded(req)
            if not isinstance(obj, wmio.ClassDef):
                raise Refused(hr.WBEM_E_INVALID_PARAMETER, "PutClass needs a class")
            repo.put_class(ns, obj, req.flags)
            return Outcome([])
        if base == Op.DELETE_CLASS:
            self._check_write(svc, ctx, "class")
            repo.delete_class(ns, req.path or "")
            return Outcome([])
        if base == Op.PUT_INSTANCE:
            obj = self._decoded(req)
            if not isinstance(obj, wmio.Instance):
                raise Refused(hr.WBEM_E_INVALID_PARAMETER, "PutInstance needs an instance")
            self._check_write(svc, ctx, repo.write_target(ns, obj.cls.name))
            inst = repo.put_instance(ns, obj, req.flags)
            # MS-WMI 3.1.4.5.2: GetResultString gives the path of the instance written.
            return Outcome([], text=inst.relpath)
        if base == Op.DELETE_INSTANCE:
            path = req.path or ""
            try:
                class_name = parse_path(path).class_name
            except PathError:
                raise Refused(hr.WBEM_E_INVALID_OBJECT_PATH, f"bad path {path!r}") from None
            self._check_write(svc, ctx, repo.write_target(ns, class_name))
            repo.delete_instance(ns, path)
            return Outcome([])
        if base == Op.CREATE_CLASS_ENUM:
            classes = repo.create_class_enum(ns, req.path or "",
                                             deep=not req.flags & WBEM_FLAG_SHALLOW)
            return Outcome(rows=[EncodedRow(c.name, repo.encode(c, ns)) for c in classes])
        # Instance results come encoded from the repository, kept until its state changes.
        if base == Op.CREATE_INSTANCE_ENUM:
            return Outcome(rows=repo.query_encoded(ns, req.path or "", kind="instances",
                                                   deep=not req.flags & WBEM_FLAG_SHALLOW))
        if base == Op.EXEC_QUERY:
            return Outcome(rows=repo.query_encoded(ns, req.query or "",
                                                   req.query_language or ""))
        if base == Op.EXEC_METHOD:
            if not self._may_execute(svc, ctx):
                raise Refused(hr.WBEM_E_ACCESS_DENIED, "no Execute Methods")
            return Outcome([self._method_out(svc, req)])
        raise Refused(hr.WBEM_E_NOT_SUPPORTED, req.name)

    def _cancel(self, req: wmi.WbemRequest) -> bytes:
        # MS-WMI 3.1.4.3.2: cancel every pending operation of that sink; a sink with none
        # is an error (Choice: WBEM_E_INVALID_PARAMETER, docs/choices.md).
        sink = req.sink
        if sink is None or self.events is None or not self.events.cancel(sink.ipid):
            return dcom.build_orpc_hresult_reply(hr.WBEM_E_INVALID_PARAMETER.code)
        return dcom.build_orpc_hresult_reply(wmi.WBEM_S_NO_ERROR)

    def _query_object_sink(self, svc: Services, ctx: CallContext) -> bytes:
        # MSDocs WmiSdk/iwbemservices-queryobjectsink: firing events through the returned sink
        # needs WBEM_FULL_WRITE (Administrators by default); "A NULL value can be returned if
        # no notification handler is available. This is not an error." Choice: no handler.
        try:
            self._check_write(svc, ctx, "class")
        except Refused as e:
            return wmi.build_interface_reply(None, e.hresult.code)
        return wmi.build_interface_reply(None, wmi.WBEM_S_NO_ERROR)

    @staticmethod
    def _error(opnum: int, code: int) -> bytes:
        reply = wmi.build_error_reply(ids.IID_IWBEMSERVICES, opnum, code)
        assert reply is not None
        return reply

    def _enumerator(self, namespace: str, rows: Sequence[EncodedRow], forward_only: bool,
                    ctx: CallContext) -> bytes:
        enum = Enumerator(namespace, rows, forward_only)
        entry = self.rt.table.export(enum, ids.IID_IENUMWBEMCLASSOBJECT)
        return wmi.build_interface_reply(self._ref_octets(entry, ctx))

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
        if op == Op.EXEC_NOTIFICATION_QUERY_ASYNC:
            return self._subscribe_async(svc, req, sink, ctx)
        objects: list[bytes] = []
        status = wmi.WBEM_S_NO_ERROR
        try:
            outcome = self._outcome(svc, req, ctx)
            objects = outcome.encoded or [r.encoded for r in outcome.rows]
        except Refused as e:
            # MS-WMI 3.1.1.1.3: if starting the operation fails, the error is the return value
            # and the sink is never called.
            return self._error(op, e.hresult.code)
        except WmiError as e:
            # Choice: an error of the operation itself (bad class, bad WQL) is the final
            # status the sink gets through SetStatus, with no objects (docs/host.md).
            objects, status = [], e.hresult.code
        # MS-WMI 3.1.1.1.3: "the server MUST return WBEM_S_NO_ERROR" once the operation began,
        # then call IWbemObjectSink::Indicate and SetStatus (Connection 2).
        callbacks.start(ids.op_name(ids.IID_IWBEMSERVICES, op), sink, objects, status,
                        svc.namespace)
        return self._error(op, wmi.WBEM_S_NO_ERROR)

    # -- Events (MS-WMI 3.1.4.3.20, 3.1.4.3.21; host/events.py) ------------------------------

    def _subscribe_enumerator(self, svc: Services, req: wmi.WbemRequest,
                              ctx: CallContext) -> bytes:
        op = Op.EXEC_NOTIFICATION_QUERY
        if (req.flags & SEMISYNC_FORWARD) != SEMISYNC_FORWARD:
            # MS-WMI 3.1.4.3.20: lFlags MUST be WBEM_FLAG_RETURN_IMMEDIATELY |
            # WBEM_FLAG_FORWARD_ONLY, else WBEM_E_INVALID_PARAMETER.
            return self._error(op, hr.WBEM_E_INVALID_PARAMETER.code)
        assert self.events is not None
        try:
            enum = self.events.subscribe_enumerator(svc.namespace, req.query or "",
                                                    req.query_language or "")
        except WmiError as e:
            return self._error(op, e.hresult.code)
        entry = self.rt.table.export(enum, ids.IID_IENUMWBEMCLASSOBJECT)
        return wmi.build_interface_reply(self._ref(entry, ctx))

    def _subscribe_async(self, svc: Services, req: wmi.WbemRequest, sink: wmi.SinkRef,
                         ctx: CallContext) -> bytes:
        op = Op.EXEC_NOTIFICATION_QUERY_ASYNC
        assert self.events is not None
        try:
            self.events.subscribe_sink(svc.namespace, req.query or "", req.query_language or "",
                                       sink)
        except WmiError as e:
            # Choice: a query the host cannot register fails the call itself (MS-WMI
            # 3.1.1.1.3: an operation that cannot start returns its error).
            return self._error(op, e.hresult.code)
        return self._error(op, wmi.WBEM_S_NO_ERROR)

    # -- IWbemCallResult (MS-WMI 3.1.4.5) ---------------------------------------------------

    def _call_result_op(self, res: CallResult, opnum: int, stub: bytes,
                        ctx: CallContext) -> Reply:
        op = ids.WbemCallResultOp
        if opnum not in (op.GET_RESULT_OBJECT, op.GET_RESULT_STRING, op.GET_RESULT_SERVICES,
                         op.GET_CALL_STATUS):
            return OP_RANGE
        wmi.parse_call_result(opnum, stub)
        if opnum == op.GET_CALL_STATUS:
            # MS-WMI 3.1.4.5.4: plStatus is the final status of the finished call.
            return wmi.build_get_call_status_reply(res.status)
        failed = res.status & 0x80000000
        if opnum == op.GET_RESULT_STRING:
            # MS-WMI 3.1.4.5.2: only PutInstance produces a string (the new instance's path).
            if failed or res.text is None:
                code = res.status if failed else hr.WBEM_E_INVALID_OPERATION.code
                return wmi.build_get_result_string_reply(None, code)
            return wmi.build_get_result_string_reply(res.text)
        if opnum == op.GET_RESULT_OBJECT:
            if failed or res.encoded is None:
                code = res.status if failed else hr.WBEM_E_INVALID_OPERATION.code
                return wmi.build_interface_reply(None, code)
            return wmi.build_interface_reply(dcom.wbem_object_ref(res.encoded))
        if failed or res.services is None:
            code = res.status if failed else hr.WBEM_E_INVALID_OPERATION.code
            return wmi.build_interface_reply(None, code)
        entry = self.rt.table.export(res.services, ids.IID_IWBEMSERVICES)
        return wmi.build_interface_reply(self._ref(entry, ctx))

    # -- IEnumWbemClassObject (MS-WMI 3.1.4.4) -------------------------------------------

    def _enum(self, enum: Enumerator | EventEnumerator, opnum: int, stub: bytes,
              ctx: CallContext) -> Reply:
        req = wmi.parse_enum(opnum, stub)
        if (isinstance(req, wmi.EnumRequest) and req.sink is not None
                and isinstance(enum, Enumerator) and self.callbacks is not None):
            return self._next_async(enum, req, req.sink, self.callbacks)
        if isinstance(req, wmi.Unsupported) or req.sink is not None:
            # Choice: NextAsync on an event enumerator (or without Connection 2) is not served.
            reply = wmi.build_error_reply(ids.IID_IENUMWBEMCLASSOBJECT, opnum,
                                          hr.WBEM_E_NOT_SUPPORTED.code)
            return OP_RANGE if reply is None else reply
        if isinstance(enum, EventEnumerator):
            return self._event_enum(enum, req)
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

    @staticmethod
    def _event_enum(enum: EventEnumerator, req: wmi.EnumRequest) -> bytes:
        """The enumerator of ExecNotificationQuery: the events queued so far.

        MS-WMI 3.1.4.4.2: when fewer than uCount objects are there before the timeout, Next
        returns WBEM_S_TIMEDOUT; an event stream has no end, so never WBEM_S_FALSE.
        Choice (docs/choices.md): the host never holds a call open, so Next answers at once
        with what is queued (the timeout counts as elapsed).
        """
        if req.opnum == E.NEXT:
            count = min(req.count, MAX_NEXT)
            got = enum.take(count)
            code = wmi.WBEM_S_NO_ERROR if len(got) == count else wmi.WBEM_S_TIMEDOUT
            return wmi.build_next_reply([o.encoded for o in got], count, code)
        if req.opnum == E.SKIP:
            count = min(req.count, MAX_NEXT)
            got = enum.take(count)
            return dcom.build_orpc_hresult_reply(
                wmi.WBEM_S_NO_ERROR if len(got) == count else wmi.WBEM_S_TIMEDOUT)
        # MS-WMI 3.1.4.4.1: Reset of a forward-only enumerator -> WBEM_E_INVALID_OPERATION;
        # Choice: Clone of an event enumerator too.
        if req.opnum == E.CLONE:
            return wmi.build_interface_reply(None, WBEM_E_INVALID_OPERATION)
        return dcom.build_orpc_hresult_reply(WBEM_E_INVALID_OPERATION)

    @staticmethod
    def _next_async(enum: Enumerator, req: wmi.EnumRequest, sink: wmi.SinkRef,
                    callbacks: CallbackRunner) -> bytes:
        """IEnumWbemClassObject::NextAsync (MS-WMI 3.1.4.4.3; MSDocs
        ienumwbemclassobject-nextasync): with no object left the call returns WBEM_S_FALSE and
        the sink is not called; otherwise WBEM_S_NO_ERROR, then Indicate with up to uCount
        objects and SetStatus WBEM_S_NO_ERROR (uCount delivered) or WBEM_S_FALSE (fewer)."""
        if not callbacks.can_start():
            return dcom.build_orpc_hresult_reply(WBEM_E_OUT_OF_MEMORY)
        count = min(req.count, MAX_NEXT)
        if enum.position >= len(enum.objects):
            return dcom.build_orpc_hresult_reply(wmi.WBEM_S_FALSE)
        got = enum.take(count)
        status = wmi.WBEM_S_NO_ERROR if len(got) == count else wmi.WBEM_S_FALSE
        callbacks.start(ids.op_name(ids.IID_IENUMWBEMCLASSOBJECT, E.NEXT_ASYNC), sink,
                        [o.encoded for o in got], status, enum.namespace)
        return dcom.build_orpc_hresult_reply(wmi.WBEM_S_NO_ERROR)
