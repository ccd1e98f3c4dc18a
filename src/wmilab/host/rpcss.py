"""RPCSS on TCP 135: the remote activator and the OXID resolver of an emulated host.

Activation asks the model exactly what ``flow`` asks at step c1.activation:
``steps.activation(host, token)`` (launch/activation rights for winmgmt's state).
"""

from __future__ import annotations

import os
import struct

from wmilab import hresult as hr
from wmilab import steps
from wmilab.host.objects import SUPPORTED, Level1Login
from wmilab.host.runtime import CallContext, HostRuntime, Reply
from wmilab.wire import dcom, ids, rpc
from wmilab.wire.dcom import RpcFaultReply, StubError

__all__ = ["RPCSS_INTERFACES", "Rpcss"]

RPCSS_INTERFACES = (
    rpc.SyntaxId(ids.IID_IREMOTESCMACTIVATOR, 0, 0),  # MS-DCOM 2.1: ORPC/native versions 0.0
    rpc.SyntaxId(ids.IID_IOBJECTEXPORTER, 0, 0),
)

REGDB_E_CLASSNOTREG = hr.REGDB_E_CLASSNOTREG.code  # from the status-code catalogue
OP_RANGE = RpcFaultReply(rpc.NCA_S_OP_RNG_ERROR)  # C706 appendix E: opnum out of range
BAD_STUB = RpcFaultReply(rpc.STATUS_BAD_STUB_DATA)  # MS-RPCE: unmarshalling failures use 0x6F7


class Rpcss:
    """IRemoteSCMActivator and IObjectExporter (MS-DCOM 3.1.2.5.1, 3.1.2.5.2.3)."""

    def __init__(self, runtime: HostRuntime) -> None:
        self.rt = runtime
        self._ping_sets: set[int] = set()

    def handle(self, interface: rpc.SyntaxId, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        try:
            if interface.uuid == ids.IID_IREMOTESCMACTIVATOR:
                return self._activator(opnum, stub, ctx)
            if interface.uuid == ids.IID_IOBJECTEXPORTER:
                return self._resolver(opnum, stub, ctx)
        except StubError:
            return BAD_STUB
        return RpcFaultReply(rpc.NCA_S_UNK_IF)

    # -- IRemoteSCMActivator -------------------------------------------------------------

    def _activator(self, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        if opnum == ids.RemoteScmActivatorOp.REMOTE_CREATE_INSTANCE:
            req = dcom.parse_remote_create_instance(stub)
        elif opnum == ids.RemoteScmActivatorOp.REMOTE_GET_CLASS_OBJECT:
            req = dcom.parse_remote_get_class_object(stub)
        else:
            return OP_RANGE
        # Seed, Connection 1 step 1 / MS-DCOM 3.1.2.5.2.3: launch and activation permission
        # from the model; refused -> fault ERROR_ACCESS_DENIED (docs/wire-dcom.md). A disabled
        # winmgmt cannot be started: Choice (docs/choices.md), the activation answers the
        # step's HRESULT, ERROR_SERVICE_DISABLED.
        check = steps.activation(self.rt.model, ctx.token)  # as flow c1.activation
        if not check.ok:
            if check.where == "service-disabled":
                failure = steps.TABLE[steps.C1_ACTIVATION].failure(check)
                return dcom.build_activation_error(failure.code)
            return dcom.activation_access_denied()
        if req.clsid != ids.CLSID_WBEMLEVEL1LOGIN:
            # MS-DCOM 3.1.2.5.2.3.3: an unknown class fails with REGDB_E_CLASSNOTREG.
            return dcom.build_activation_error(REGDB_E_CLASSNOTREG)
        if req.get_class_object:
            # Choice: WbemLevel1Login's class object is not handed out remotely.
            return dcom.build_activation_error(dcom.E_NOINTERFACE)
        login = Level1Login(ctx.token)
        resolver = self.rt.resolver_bindings(ctx.local_address)
        results: list[dcom.InterfaceResult] = []
        oid: int | None = None
        for iid in req.iids:
            if iid not in SUPPORTED[Level1Login]:
                results.append(dcom.InterfaceResult(iid, dcom.E_NOINTERFACE))
                continue
            entry = self.rt.table.export(login, iid, oid=oid)
            oid = entry.oid
            results.append(dcom.InterfaceResult(iid, dcom.S_OK,
                                                self.rt.table.objref(entry, resolver)))
        reply = dcom.ScmReply(
            oxid=self.rt.table.oxid, ipid_rem_unknown=self.rt.table.rem_unknown.ipid,
            bindings=self.rt.exporter_bindings(ctx.local_address),
            # wire-notes / MS-DCOM 2.2.22.2.8: authnHint 5 (PKT_INTEGRITY) suits both clients.
            authn_hint=dcom.RPC_C_AUTHN_LEVEL_PKT_INTEGRITY,
        )
        return dcom.build_activation_reply(results, reply)

    # -- IObjectExporter -----------------------------------------------------------------

    def _resolver(self, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        op = ids.ObjectExporterOp
        if opnum in (op.RESOLVE_OXID, op.RESOLVE_OXID2):
            v2 = opnum == op.RESOLVE_OXID2
            req = dcom.parse_resolve_oxid(stub, v2=v2)
            other = self.rt.exporters.get(req.oxid)
            if other is not None:
                # Another exporter of this machine (the sink on A, for Connection 2).
                return dcom.build_resolve_oxid_reply(
                    other.bindings(ctx.local_address), other.ipid_rem_unknown,
                    authn_hint=dcom.RPC_C_AUTHN_LEVEL_PKT_INTEGRITY, v2=v2)
            if req.oxid != self.rt.table.oxid:
                # MS-DCOM 3.1.2.5.1.1: an unknown OXID gives OR_INVALID_OXID.
                return dcom.build_resolve_oxid_reply(None, self.rt.table.rem_unknown.ipid,
                                                     v2=v2, status=dcom.OR_INVALID_OXID)
            return dcom.build_resolve_oxid_reply(
                self.rt.exporter_bindings(ctx.local_address), self.rt.table.rem_unknown.ipid,
                authn_hint=dcom.RPC_C_AUTHN_LEVEL_PKT_INTEGRITY, v2=v2)
        if opnum == op.SIMPLE_PING:
            set_id = dcom.parse_simple_ping(stub)
            # MS-DCOM 3.1.2.5.1.2: an unknown set gives OR_INVALID_SET.
            ok = set_id in self._ping_sets
            return dcom.build_status_reply(0 if ok else dcom.OR_INVALID_SET)
        if opnum == op.COMPLEX_PING:
            cp = dcom.parse_complex_ping(stub)
            set_id = cp.set_id
            if set_id == 0:
                # MS-DCOM 3.1.2.5.1.3: SetId 0 asks the resolver to allocate a new set.
                set_id = struct.unpack("<Q", os.urandom(8))[0] or 1
                if len(self._ping_sets) >= 1024:  # Choice: bounded number of ping sets
                    self._ping_sets.pop()
                self._ping_sets.add(set_id)
            elif set_id not in self._ping_sets:
                return dcom.build_complex_ping_reply(set_id, status=dcom.OR_INVALID_SET)
            return dcom.build_complex_ping_reply(set_id)
        if opnum == op.SERVER_ALIVE:
            return dcom.build_status_reply(0)
        if opnum == op.SERVER_ALIVE2:
            return dcom.build_server_alive2_reply(self.rt.resolver_bindings(ctx.local_address))
        return OP_RANGE
