"""RPCSS on TCP 135: the remote activator and the OXID resolver of an emulated host.

Activation asks the model exactly what ``flow`` asks at step c1.activation:
``steps.activation(host, token)`` (launch/activation rights for winmgmt's state).
"""

from __future__ import annotations

from wmilab import hresult as hr
from wmilab import steps
from wmilab.host import activation
from wmilab.host.objects import SUPPORTED, ClassFactory, Level1Login
from wmilab.host.runtime import CallContext, HostRuntime, Reply
from wmilab.wire import dcom, ids, rpc
from wmilab.wire.dcom import RpcFaultReply, StubError

__all__ = ["RPCSS_INTERFACES", "Rpcss"]

RPCSS_INTERFACES = (
    rpc.SyntaxId(ids.IID_IREMOTESCMACTIVATOR, 0, 0),  # MS-DCOM 2.1: ORPC/native versions 0.0
    rpc.SyntaxId(ids.IID_IOBJECTEXPORTER, 0, 0),
    rpc.SyntaxId(ids.IID_IACTIVATION, 0, 0),  # MS-DCOM 3.1.2.5.2.3.1 (pre-XP clients)
)

REGDB_E_CLASSNOTREG = hr.REGDB_E_CLASSNOTREG.code  # from the status-code catalogue
OP_RANGE = RpcFaultReply(rpc.NCA_S_OP_RNG_ERROR)  # C706 appendix E: opnum out of range
BAD_STUB = RpcFaultReply(rpc.STATUS_BAD_STUB_DATA)  # MS-RPCE: unmarshalling failures use 0x6F7


class Rpcss:
    """IRemoteSCMActivator and IObjectExporter (MS-DCOM 3.1.2.5.1, 3.1.2.5.2.3)."""

    def __init__(self, runtime: HostRuntime) -> None:
        self.rt = runtime

    def handle(self, interface: rpc.SyntaxId, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
        try:
            if interface.uuid == ids.IID_IREMOTESCMACTIVATOR:
                return self._activator(opnum, stub, ctx)
            if interface.uuid == ids.IID_IOBJECTEXPORTER:
                return self._resolver(opnum, stub, ctx)
            if interface.uuid == ids.IID_IACTIVATION:
                return activation.remote_activation(self.rt, opnum, stub, ctx)
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
        # KB 5004442: the level of this very request decides on a hardened host.
        check = steps.activation(self.rt.model, ctx.token, ctx.auth_level,
                                 ctx.peer)  # as flow c1.activation
        if not check.ok:
            if check.where == "service-disabled":
                failure = steps.TABLE[steps.C1_ACTIVATION].failure(check)
                return dcom.build_activation_error(failure.code)
            return dcom.activation_access_denied()
        if req.clsid != ids.CLSID_WBEMLEVEL1LOGIN:
            # MS-DCOM 3.1.2.5.2.3.3: an unknown class fails with REGDB_E_CLASSNOTREG.
            return dcom.build_activation_error(REGDB_E_CLASSNOTREG)
        # MS-DCOM 3.1.2.5.2.3.2: RemoteGetClassObject returns the class object (WMI's class
        # factory), whose IClassFactory::CreateInstance makes the Level1Login object.
        target: Level1Login | ClassFactory = (ClassFactory(ctx.token) if req.get_class_object
                                              else Level1Login(ctx.token))
        resolver = self.rt.resolver_bindings(ctx.local_address)
        results: list[dcom.InterfaceResult] = []
        oid: int | None = None
        for iid in req.iids:
            if iid not in SUPPORTED[type(target)]:
                results.append(dcom.InterfaceResult(iid, dcom.E_NOINTERFACE))
                continue
            entry = self.rt.table.export(target, iid, oid=oid)
            oid = entry.oid
            results.append(dcom.InterfaceResult(iid, dcom.S_OK,
                                                self.rt.table.objref(entry, resolver)))
        reply = dcom.ScmReply(
            oxid=self.rt.table.oxid, ipid_rem_unknown=self.rt.table.rem_unknown.ipid,
            bindings=self.rt.exporter_bindings(ctx.local_address),
            # wire-notes / MS-DCOM 2.2.22.2.8: authnHint 5 (PKT_INTEGRITY) suits both clients;
            # a standalone WMI host's higher level instead (HostModel.wmi_authn_hint).
            authn_hint=self.rt.model.wmi_authn_hint,
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
                authn_hint=self.rt.model.wmi_authn_hint, v2=v2)
        if opnum == op.SIMPLE_PING:
            # MS-DCOM 3.1.2.5.1.2 (host/pinging.py): reset the set's timer, or OR_INVALID_SET.
            return dcom.build_status_reply(self.rt.pings.simple_ping(dcom.parse_simple_ping(stub)))
        if opnum == op.COMPLEX_PING:
            cp = dcom.parse_complex_ping(stub)
            set_id, status = self.rt.pings.complex_ping(cp.set_id, cp.sequence, cp.add, cp.delete)
            return dcom.build_complex_ping_reply(set_id, status=status)
        if opnum == op.SERVER_ALIVE:
            return dcom.build_status_reply(0)
        if opnum == op.SERVER_ALIVE2:
            return dcom.build_server_alive2_reply(self.rt.resolver_bindings(ctx.local_address))
        return OP_RANGE

