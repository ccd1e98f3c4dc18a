"""IActivation::RemoteActivation on TCP 135 (MS-DCOM 3.1.2.5.2.3.1), the activation interface
of pre-XP clients that XP and Server 2003 still serve. Same decisions as
IRemoteSCMActivator (host/rpcss.py): the step table's activation check, WbemLevel1Login as
the only class, the WMI exporter's OXID and bindings.
"""

from __future__ import annotations

from wmilab import steps
from wmilab.host.objects import SUPPORTED, Level1Login
from wmilab.host.runtime import CallContext, HostRuntime, Reply
from wmilab.wire import dcom, iactivation, ids, rpc
from wmilab.wire.dcom import RpcFaultReply

__all__ = ["remote_activation"]

REGDB_E_CLASSNOTREG = 0x80040154  # MS-ERREF 2.1
# MS-DCOM 3.1.2.5.2.3.1: ncacn_ip_tcp is RPC protocol sequence 0x07.
PROTSEQ_TCP = 0x07
E_NOINTERFACE = dcom.E_NOINTERFACE


def remote_activation(rt: HostRuntime, opnum: int, stub: bytes, ctx: CallContext) -> Reply:
    if opnum != 0:
        return RpcFaultReply(rpc.NCA_S_OP_RNG_ERROR)  # C706 appendix E
    req = iactivation.parse_remote_activation(stub)
    # Seed, Connection 1 step 1: the same launch/activation decision as RemoteCreateInstance.
    if not steps.activation(rt.model, ctx.token).ok:
        return dcom.activation_access_denied()
    none = [iactivation.ActivationResult(E_NOINTERFACE) for _ in req.iids]
    if req.clsid != ids.CLSID_WBEMLEVEL1LOGIN:
        # MS-DCOM 3.1.2.5.2.3.1: activation failure goes in phr (class not registered).
        return iactivation.build_remote_activation_reply(
            0, None, ids.IID_IUNKNOWN, 0, REGDB_E_CLASSNOTREG, none)
    if req.protseqs and PROTSEQ_TCP not in req.protseqs:
        # Choice: the exporter listens only on ncacn_ip_tcp; no protseq in common.
        return iactivation.build_remote_activation_reply(
            0, None, ids.IID_IUNKNOWN, 0, 0x800706BA, none)  # RPC_S_SERVER_UNAVAILABLE
    login = Level1Login(ctx.token)
    resolver = rt.resolver_bindings(ctx.local_address)
    results: list[iactivation.ActivationResult] = []
    oid: int | None = None
    for iid in req.iids:
        if iid not in SUPPORTED[Level1Login]:
            results.append(iactivation.ActivationResult(E_NOINTERFACE))
            continue
        entry = rt.table.export(login, iid, oid=oid)
        oid = entry.oid
        results.append(iactivation.ActivationResult(dcom.S_OK, rt.table.objref(entry, resolver)))
    hr = dcom.S_OK if any(r.hresult == dcom.S_OK for r in results) else E_NOINTERFACE
    return iactivation.build_remote_activation_reply(
        rt.table.oxid, rt.exporter_bindings(ctx.local_address), rt.table.rem_unknown.ipid,
        dcom.RPC_C_AUTHN_LEVEL_PKT_INTEGRITY, hr, results)
