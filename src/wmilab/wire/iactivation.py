"""Sans-IO codecs of the pre-XP activation interface and of IClassFactory.

IActivation::RemoteActivation (MS-DCOM 3.1.2.5.2.3.1) is still served by RPCSS on TCP 135
on XP and Server 2003; it carries no activation-properties blob, its parameters are plain
NDR. IClassFactory (objidl.idl, remoted as RemoteCreateInstance / RemoteLockServer; MS-DCOM
3.1.2.5.2.3.2 hands it out through RemoteGetClassObject) is an ORPC interface.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from wmilab.wire.dcom import (
    COM_VERSION,
    DualStringArray,
    NdrReader,
    NdrWriter,
    ObjRef,
    OrpcThis,
    StubError,
    decode_with,
    encode_objref,
    read_orpcthat,
    read_orpcthis,
    read_unique_mip,
    write_dsa_ndr,
    write_mip,
    write_orpcthat,
    write_orpcthis,
    write_unique_mip,
)

__all__ = [
    "ActivationResult", "RemoteActivationRequest", "build_class_factory_create_reply",
    "build_remote_activation_reply", "parse_class_factory_create",
    "parse_lock_server", "parse_remote_activation", "parse_remote_activation_reply",
]

# MS-DCOM 3.1.2.5.2.3.1: Interfaces in 1..MAX_REQUESTED_INTERFACES (0x8000), protseqs 0..0x8000.
MAX_REQUESTED_INTERFACES = 0x8000
MAX_REQUESTED_PROTSEQS = 0x8000


@dataclass(frozen=True)
class RemoteActivationRequest:
    orpcthis: OrpcThis
    clsid: uuid.UUID
    object_name: str | None
    has_storage: bool
    imp_level: int
    mode: int
    iids: tuple[uuid.UUID, ...]
    protseqs: tuple[int, ...]


def parse_remote_activation(stub: bytes) -> RemoteActivationRequest:
    def go(r: NdrReader) -> RemoteActivationRequest:
        orpc = read_orpcthis(r)
        clsid = r.guid()
        name = r.unique_lpwstr()
        storage = read_unique_mip(r) is not None
        imp, mode, count = r.u32(), r.u32(), r.u32()
        if not 1 <= count <= MAX_REQUESTED_INTERFACES:
            raise StubError("RemoteActivation: Interfaces out of range", ("RemoteActivation",))
        iids: list[uuid.UUID] = []
        if r.ptr():
            if r.u32() != count:
                raise StubError("RemoteActivation: pIIDs size differs", ("RemoteActivation",))
            iids = [r.guid() for _ in range(count)]
        n = r.u16()
        if n > MAX_REQUESTED_PROTSEQS:
            raise StubError("RemoteActivation: too many protseqs", ("RemoteActivation",))
        r.align(4)
        if r.u32() != n:
            raise StubError("RemoteActivation: protseq size differs", ("RemoteActivation",))
        protseqs = tuple(r.u16() for _ in range(n))
        return RemoteActivationRequest(orpc, clsid, name, storage, imp, mode, tuple(iids),
                                       protseqs)
    return decode_with("IActivation::RemoteActivation", stub, go)


@dataclass(frozen=True)
class ActivationResult:
    hresult: int
    objref: ObjRef | None = None


def build_remote_activation_reply(
    oxid: int, bindings: DualStringArray | None, ipid_rem_unknown: uuid.UUID, authn_hint: int,
    hr: int, results: Sequence[ActivationResult],
    server_version: tuple[int, int] = COM_VERSION, status: int = 0,
) -> bytes:
    """ORPCTHAT, pOxid, ppdsaOxidBindings, pipidRemUnknown, pAuthnHint, pServerVersion, phr,
    ppInterfaceData[Interfaces], pResults[Interfaces], error_status_t (MS-DCOM 3.1.2.5.2.3.1)."""
    w = NdrWriter()
    write_orpcthat(w)
    w.u64(oxid)
    if bindings is None:
        w.u32(0)
    else:
        w.ptr(True)
        write_dsa_ndr(w, bindings)
    w.guid(ipid_rem_unknown)
    w.u32(authn_hint)
    w.u16(server_version[0])
    w.u16(server_version[1])
    w.u32(hr)
    w.u32(len(results))
    for res in results:
        if res.objref is None:
            w.u32(0)
        else:
            w.ptr(True)
    for res in results:
        if res.objref is not None:
            write_mip(w, encode_objref(res.objref))
    w.u32(len(results))
    for res in results:
        w.u32(res.hresult)
    w.u32(status)
    return w.getvalue()


def parse_remote_activation_reply(stub: bytes) -> tuple[int, int, list[ActivationResult]]:
    """Client role (tests): (phr, error status, per-interface results)."""
    from wmilab.wire.dcom import decode_objref, read_dsa_ndr, read_mip

    def go(r: NdrReader) -> tuple[int, int, list[ActivationResult]]:
        read_orpcthat(r)
        r.u64()
        if r.ptr():
            read_dsa_ndr(r)
        r.guid()
        r.u32()
        r.u16()
        r.u16()
        hr = r.u32()
        n = r.u32()
        ptrs = [r.ptr() for _ in range(n)]
        objs = [decode_objref(read_mip(r)) if p else None for p in ptrs]
        if r.u32() != n:
            raise StubError("pResults size differs", ("RemoteActivation reply",))
        codes = [r.u32() for _ in range(n)]
        return hr, r.u32(), [ActivationResult(c, o) for c, o in zip(codes, objs, strict=True)]
    return decode_with("RemoteActivation reply", stub, go)


# IClassFactory (objidl.idl): opnum 3 RemoteCreateInstance([in] REFIID riid,
# [out, iid_is(riid)] IUnknown** ppvObject); opnum 4 RemoteLockServer([in] BOOL fLock).


def parse_class_factory_create(stub: bytes) -> uuid.UUID:
    def go(r: NdrReader) -> uuid.UUID:
        read_orpcthis(r)
        return r.guid()
    return decode_with("IClassFactory::CreateInstance", stub, go)


def parse_lock_server(stub: bytes) -> bool:
    def go(r: NdrReader) -> bool:
        read_orpcthis(r)
        return bool(r.u32())
    return decode_with("IClassFactory::LockServer", stub, go)


def build_class_factory_create_request(iid: uuid.UUID) -> bytes:
    w = NdrWriter()
    write_orpcthis(w, OrpcThis())
    w.guid(iid)
    return w.getvalue()


def build_class_factory_create_reply(obj: ObjRef | None, hresult: int) -> bytes:
    w = NdrWriter()
    write_orpcthat(w)
    write_unique_mip(w, obj)
    w.u32(hresult)
    return w.getvalue()
