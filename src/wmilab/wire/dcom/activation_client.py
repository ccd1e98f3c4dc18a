"""IRemoteSCMActivator, client role: build a RemoteCreateInstance request, parse its reply."""

from __future__ import annotations

import functools
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from wmilab.wire import ids
from wmilab.wire.dcom.activation import (
    InterfaceResult,
    ScmReply,
)
from wmilab.wire.dcom.bindings import DualStringArray, read_dsa_ndr
from wmilab.wire.dcom.constants import (
    COM_VERSION,
    TOWER_NCACN_IP_TCP,
)
from wmilab.wire.dcom.ndr import NdrReader, NdrWriter, StubError, decode_with
from wmilab.wire.dcom.objref import (
    ObjRefCustom,
    ObjRefStandard,
    decode_objref,
    read_mip,
    read_unique_mip,
    write_unique_mip,
)
from wmilab.wire.dcom.orpc import (
    OrpcThis,
    read_orpcthat,
    write_orpcthis,
)
from wmilab.wire.dcom.properties import encode_properties_blob, parse_properties_blob, ts1_body, ts1_wrap


def build_remote_create_instance_request(
    clsid: uuid.UUID, iids: Sequence[uuid.UUID], orpcthis: OrpcThis | None = None,
) -> bytes:
    """Client role: RemoteCreateInstance request stub (our own client uses it)."""
    w = NdrWriter()
    write_orpcthis(w, orpcthis or OrpcThis(flags=1))
    return w.getvalue() + _activation_body(clsid, tuple(iids))


@functools.lru_cache(maxsize=16)
def _activation_body(clsid: uuid.UUID, iids: tuple[uuid.UUID, ...]) -> bytes:
    """Everything after ORPCTHIS: the same octets for every request of one class and set of
    interfaces, so a fleet of hosts encodes it once (only ORPCTHIS's causality id varies)."""
    inst = NdrWriter()
    inst.guid(clsid)
    inst.u32(0x14)  # Choice: CLSCTX_LOCAL_SERVER | CLSCTX_REMOTE_SERVER
    inst.u32(0)
    inst.i32(0)
    inst.u32(len(iids))
    inst.u32(0)
    inst.ptr(True)
    size_pos = len(inst.buf)
    inst.u32(0)
    inst.u16(COM_VERSION[0])
    inst.u16(COM_VERSION[1])
    inst.u32(len(iids))
    for iid in iids:
        inst.guid(iid)
    inst_bytes = bytearray(ts1_wrap(inst.getvalue()))
    struct.pack_into("<I", inst_bytes, 16 + size_pos, len(inst_bytes))  # thisSize
    ctx = NdrWriter()
    for v in (0, 0, 0, 0, 0, 0):
        ctx.u32(v)
    loc = NdrWriter()
    for v in (0, 0, 0, 0):
        loc.u32(v)
    scm = NdrWriter()
    scm.u32(0)
    scm.ptr(True)
    scm.u32(2)  # RPC_C_IMP_LEVEL_IDENTIFY
    scm.u16(1)
    scm.ptr(True)
    scm.u32(1)
    scm.u16(TOWER_NCACN_IP_TCP)
    props = [bytes(inst_bytes), ts1_wrap(ctx.getvalue()), ts1_wrap(loc.getvalue()),
             ts1_wrap(scm.getvalue())]
    clsids = [ids.CLSID_INSTANTIATIONINFO, ids.CLSID_ACTIVATIONCONTEXTINFO,
              ids.CLSID_SERVERLOCATIONINFO, ids.CLSID_SCMREQUESTINFO]
    blob = encode_properties_blob(clsids, props)
    objref = ObjRefCustom(ids.IID_IACTIVATIONPROPERTIESIN, ids.CLSID_ACTIVATIONPROPERTIESIN, blob)
    w = NdrWriter()
    w.u32(0)  # pUnkOuter NULL
    write_unique_mip(w, objref)
    return w.getvalue()


@dataclass(frozen=True)
class ActivationReply:
    """Client role: what a RemoteCreateInstance response said."""

    hresult: int
    interfaces: tuple[InterfaceResult, ...]
    scm: ScmReply | None


def parse_activation_reply(stub: bytes) -> ActivationReply:
    """Client role: parse a RemoteCreateInstance/RemoteGetClassObject response stub."""
    def go(r: NdrReader) -> ActivationReply:
        read_orpcthat(r)
        data = read_unique_mip(r)
        hr = r.u32()
        if data is None:
            return ActivationReply(hr, (), None)
        obj = decode_objref(data)
        if not isinstance(obj, ObjRefCustom):
            raise StubError("activation reply: not an OBJREF_CUSTOM", ("activation",))
        _dest, props = parse_properties_blob(obj.data)
        results: tuple[InterfaceResult, ...] = ()
        scm: ScmReply | None = None
        for clsid, prop in props:
            body = ts1_body(prop, "ActivationPropertiesOut")
            if clsid == ids.CLSID_PROPSOUTINFO:
                results = decode_with("PropsOutInfo", body, _read_props_out)
            elif clsid == ids.CLSID_SCMREPLYINFO:
                scm = decode_with("ScmReplyInfoData", body, _read_scm_reply)
        return ActivationReply(hr, results, scm)
    return decode_with("activation reply", stub, go)


def _read_props_out(r: NdrReader) -> tuple[InterfaceResult, ...]:
    n = r.u32()
    r.ptr()
    r.ptr()
    r.ptr()
    iids = [r.guid() for _ in range(r.u32())]
    hrs = [r.u32() for _ in range(r.u32())]
    ptrs = [r.ptr() for _ in range(r.u32())]
    out: list[InterfaceResult] = []
    for i in range(n):
        ref: ObjRefStandard | None = None
        if ptrs[i]:
            o = decode_objref(read_mip(r))
            ref = o if isinstance(o, ObjRefStandard) else None
        out.append(InterfaceResult(iids[i], hrs[i], ref))
    return tuple(out)


def _read_scm_reply(r: NdrReader) -> ScmReply:
    r.u32()
    if not r.ptr():
        raise StubError("ScmReplyInfoData: remoteReply is NULL", ("ScmReplyInfoData",))
    oxid = r.u64()
    p_dsa = r.ptr()
    ipid = r.guid()
    hint = r.u32()
    major = r.u16()
    minor = r.u16()
    dsa = read_dsa_ndr(r) if p_dsa else DualStringArray((), ())
    return ScmReply(oxid, ipid, dsa, hint, (major, minor))
