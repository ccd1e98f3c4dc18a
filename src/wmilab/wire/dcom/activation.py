"""IRemoteSCMActivator, server role (MS-DCOM 2.2.22, 3.1.2.5.2.3): parse the activation
properties of RemoteCreateInstance / RemoteGetClassObject and build their replies."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wmilab.wire import ids
from wmilab.wire.dcom.bindings import DualStringArray, write_dsa_ndr
from wmilab.wire.dcom.constants import (
    COM_VERSION,
    E_NOINTERFACE,
    ERROR_ACCESS_DENIED,
    MSHCTX_DIFFERENTMACHINE,
    RPC_C_AUTHN_LEVEL_PKT_INTEGRITY,
    S_OK,
)
from wmilab.wire.dcom.ndr import NdrReader, NdrWriter, StubError, decode_with
from wmilab.wire.dcom.objref import (
    ObjRefCustom,
    ObjRefStandard,
    decode_objref,
    encode_objref,
    read_mip,
    read_unique_mip,
    write_mip,
    write_unique_mip,
)
from wmilab.wire.dcom.orpc import (
    OrpcThis,
    RpcFaultReply,
    read_orpcthis,
    write_orpcthat,
)
from wmilab.wire.dcom.properties import (
    encode_properties_blob,
    parse_properties_blob,
    ts1_body,
    ts1_wrap,
)


@dataclass(frozen=True)
class ActivationRequest:
    """What RemoteCreateInstance/RemoteGetClassObject asked for, found by property CLSID."""

    orpcthis: OrpcThis
    clsid: uuid.UUID
    iids: tuple[uuid.UUID, ...]
    class_ctx: int = 0
    client_com_version: tuple[int, int] = COM_VERSION
    dest_ctx: int = MSHCTX_DIFFERENTMACHINE
    requested_protseqs: tuple[int, ...] = ()
    client_imp_level: int = 0
    machine_name: str | None = None
    server_name: str | None = None  # SecurityInfoData.pServerInfo.pwszName
    authn_flags: int = 0
    file_name: str | None = None  # InstanceInfoData
    has_activation_context: bool = False
    property_clsids: tuple[uuid.UUID, ...] = ()
    get_class_object: bool = False


def _parse_activation(orpc: OrpcThis, objref_bytes: bytes, get_class: bool) -> ActivationRequest:
    what = "ActivationPropertiesIn"
    obj = decode_objref(objref_bytes)
    if not isinstance(obj, ObjRefCustom) or obj.clsid != ids.CLSID_ACTIVATIONPROPERTIESIN:
        raise StubError(f"{what}: pActProperties is not an ActivationPropertiesIn OBJREF_CUSTOM",
                        (what,))
    dest_ctx, props = parse_properties_blob(obj.data)
    values: dict[str, object] = {}
    found: list[uuid.UUID] = []
    for clsid, prop in props:
        found.append(clsid)
        body = ts1_body(prop, what)
        parser = _PROP_PARSERS.get(clsid)
        if parser is not None:
            values.update(decode_with(f"{what} {clsid}", body, parser))
    if "clsid" not in values:
        raise StubError(f"{what}: no InstantiationInfoData property", (what,))
    return ActivationRequest(
        orpcthis=orpc, dest_ctx=dest_ctx, property_clsids=tuple(found),
        get_class_object=get_class, **values)  # type: ignore[arg-type]


def _p_instantiation(r: NdrReader) -> dict[str, object]:
    # MS-DCOM 2.2.22.2.1 InstantiationInfoData.
    clsid = r.guid()
    class_ctx = r.u32()
    r.u32()  # actvflags
    r.i32()  # fIsSurrogate
    c_iid = r.u32()
    r.u32()  # instFlag
    p_iid = r.ptr()
    r.u32()  # thisSize
    major = r.u16()
    minor = r.u16()
    iids: list[uuid.UUID] = []
    if p_iid:
        n = r.u32()
        iids = [r.guid() for _ in range(n)]
    if len(iids) != c_iid or not iids:
        raise StubError("InstantiationInfoData: cIID does not match the IID array",
                        ("InstantiationInfoData",))
    return {"clsid": clsid, "iids": tuple(iids), "class_ctx": class_ctx,
            "client_com_version": (major, minor)}


def _p_scm_request(r: NdrReader) -> dict[str, object]:
    # MS-DCOM 2.2.22.2.4 ScmRequestInfoData with customREMOTE_REQUEST_SCM_INFO.
    p_res = r.ptr()
    p_req = r.ptr()
    if p_res:
        r.i32()
    if not p_req:
        return {}
    imp = r.u32()
    r.u16()  # cRequestedProtseqs
    p_seqs = r.ptr()
    seqs: list[int] = []
    if p_seqs:
        n = r.u32()
        seqs = [r.u16() for _ in range(n)]
    return {"client_imp_level": imp, "requested_protseqs": tuple(seqs)}


def _p_location(r: NdrReader) -> dict[str, object]:
    # MS-DCOM 2.2.22.2.6 LocationInfoData.
    p_name = r.ptr()
    r.u32()
    r.u32()
    r.u32()
    return {"machine_name": r.lpwstr() if p_name else None}


def _p_security(r: NdrReader) -> dict[str, object]:
    # MS-DCOM 2.2.22.2.7 SecurityInfoData and COSERVERINFO.
    flags = r.u32()
    p_info = r.ptr()
    p_res = r.ptr()
    name: str | None = None
    if p_info:
        r.u32()
        p_name = r.ptr()
        p_res2 = r.ptr()
        r.u32()
        if p_name:
            name = r.lpwstr()
        if p_res2:
            r.i32()
    if p_res:
        r.i32()
    return {"authn_flags": flags, "server_name": name}


def _p_context(r: NdrReader) -> dict[str, object]:
    # MS-DCOM 2.2.22.2.5 ActivationContextInfoData (context pointers are opaque to us).
    return {"has_activation_context": True}


def _p_instance(r: NdrReader) -> dict[str, object]:
    # MS-DCOM 2.2.22.2.3 InstanceInfoData.
    p_name = r.ptr()
    r.u32()
    p_rot = r.ptr()
    p_stg = r.ptr()
    name = r.lpwstr() if p_name else None
    del p_rot, p_stg
    return {"file_name": name}


_PROP_PARSERS: dict[uuid.UUID, Callable[[NdrReader], dict[str, object]]] = {
    ids.CLSID_INSTANTIATIONINFO: _p_instantiation,
    ids.CLSID_SCMREQUESTINFO: _p_scm_request,
    ids.CLSID_SERVERLOCATIONINFO: _p_location,
    ids.CLSID_SECURITYINFO: _p_security,
    ids.CLSID_ACTIVATIONCONTEXTINFO: _p_context,
    ids.CLSID_INSTANCEINFO: _p_instance,
}


def parse_remote_create_instance(stub: bytes) -> ActivationRequest:
    """IRemoteSCMActivator::RemoteCreateInstance (opnum 4) request, MS-DCOM 3.1.2.5.2.3.3."""
    def go(r: NdrReader) -> ActivationRequest:
        orpc = read_orpcthis(r)
        if r.ptr():  # pUnkOuter: aggregation is not supported remotely; its content is ignored.
            read_mip(r)
        act = read_unique_mip(r)
        if act is None:
            raise StubError("RemoteCreateInstance: pActProperties is NULL",
                            ("RemoteCreateInstance",))
        return _parse_activation(orpc, act, get_class=False)
    return decode_with("RemoteCreateInstance", stub, go)


def parse_remote_get_class_object(stub: bytes) -> ActivationRequest:
    """IRemoteSCMActivator::RemoteGetClassObject (opnum 3), MS-DCOM 3.1.2.5.2.3.2."""
    def go(r: NdrReader) -> ActivationRequest:
        orpc = read_orpcthis(r)
        act = read_unique_mip(r)
        if act is None:
            raise StubError("RemoteGetClassObject: pActProperties is NULL",
                            ("RemoteGetClassObject",))
        return _parse_activation(orpc, act, get_class=True)
    return decode_with("RemoteGetClassObject", stub, go)


@dataclass(frozen=True)
class InterfaceResult:
    """One requested IID in PropsOutInfo: an OBJREF on success, else just an error HRESULT."""

    iid: uuid.UUID
    hresult: int = S_OK
    objref: ObjRefStandard | None = None


@dataclass(frozen=True)
class ScmReply:
    oxid: int
    ipid_rem_unknown: uuid.UUID
    bindings: DualStringArray  # the object exporter's string bindings, ADDR[port]
    # wire-notes: 2..5 works for both clients; 5 (PKT_INTEGRITY) also satisfies KB5004442.
    authn_hint: int = RPC_C_AUTHN_LEVEL_PKT_INTEGRITY
    server_version: tuple[int, int] = COM_VERSION


def _props_out_body(results: Sequence[InterfaceResult]) -> bytes:
    # MS-DCOM 2.2.22.2.9 PropsOutInfo: cIfs, piid, phresults, ppIntfData.
    w = NdrWriter()
    n = len(results)
    w.u32(n)
    w.ptr(True)
    w.ptr(True)
    w.ptr(True)
    w.u32(n)
    for res in results:
        w.guid(res.iid)
    w.u32(n)
    for res in results:
        w.u32(res.hresult)
    w.u32(n)
    present = [res.objref is not None and res.hresult == S_OK for res in results]
    for p in present:
        w.ptr(p)
    for res, p in zip(results, present, strict=True):
        if p and res.objref is not None:
            write_mip(w, encode_objref(res.objref))
    return w.getvalue()


def _scm_reply_body(reply: ScmReply) -> bytes:
    # MS-DCOM 2.2.22.2.8 ScmReplyInfoData and customREMOTE_REPLY_SCM_INFO.
    if not 1 <= reply.authn_hint <= 6:
        raise ValueError(f"authnHint {reply.authn_hint} is not an RPC authentication level")
    w = NdrWriter()
    w.u32(0)  # pdwReserved (NULL)
    w.ptr(True)
    w.u64(reply.oxid)
    w.ptr(True)
    w.guid(reply.ipid_rem_unknown)
    w.u32(reply.authn_hint)
    w.u16(reply.server_version[0])
    w.u16(reply.server_version[1])
    write_dsa_ndr(w, reply.bindings)
    return w.getvalue()


def encode_activation_properties_out(
    results: Sequence[InterfaceResult], reply: ScmReply,
) -> bytes:
    """ActivationPropertiesOut blob with exactly [PropsOutInfo, ScmReplyInfoData].

    wire-notes and impacket's RemoteCreateInstance read pSizes[0] as PropsOutInfo and
    pSizes[1] as ScmReplyInfoData; aiowmi reads properties[0] and [1] the same way. Each
    property is padded to 8 bytes (MS-DCOM 2.2.22: properties are 8-byte aligned).
    """
    return encode_properties_blob(
        [ids.CLSID_PROPSOUTINFO, ids.CLSID_SCMREPLYINFO],
        [ts1_wrap(_props_out_body(results)), ts1_wrap(_scm_reply_body(reply))])


def activation_properties_out_objref(
    results: Sequence[InterfaceResult], reply: ScmReply,
) -> ObjRefCustom:
    return ObjRefCustom(ids.IID_IACTIVATIONPROPERTIESOUT, ids.CLSID_ACTIVATIONPROPERTIESOUT,
                        encode_activation_properties_out(results, reply))


def build_activation_reply(
    results: Sequence[InterfaceResult], reply: ScmReply, hresult: int | None = None,
) -> bytes:
    """RemoteCreateInstance / RemoteGetClassObject response stub (same shape for both).

    The call HRESULT is S_OK if any interface succeeded, else E_NOINTERFACE
    (MS-DCOM 3.1.2.5.2.3.3: per-interface results go in PropsOutInfo.phresults).
    """
    if hresult is None:
        hresult = S_OK if any(r.hresult == S_OK for r in results) else E_NOINTERFACE
    w = NdrWriter()
    write_orpcthat(w)
    write_unique_mip(w, activation_properties_out_objref(results, reply))
    w.u32(hresult)
    return w.getvalue()


def build_activation_error(hresult: int) -> bytes:
    """A response stub with NULL ppActProperties and an error HRESULT (e.g. CO_E_CLASSSTRING).

    Access denied is NOT answered this way: Windows sends a fault PDU with status
    ERROR_ACCESS_DENIED (5) (impacket #449 traceback: DCERPCException raised in recv()), so the
    host answers with ``ActivationFault(ERROR_ACCESS_DENIED)``.
    """
    w = NdrWriter()
    write_orpcthat(w)
    w.u32(0)
    w.u32(hresult)
    return w.getvalue()



def activation_access_denied() -> RpcFaultReply:
    # MS-DCOM 3.1.2.5.2.3.3 / facts.md: a denied launch/activation returns ERROR_ACCESS_DENIED
    # as a fault (impacket raises "rpc_s_access_denied", aiowmi raises RpcAccessDenied-like).
    return RpcFaultReply(ERROR_ACCESS_DENIED)
