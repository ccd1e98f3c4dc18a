"""IRemUnknown / IRemUnknown2 stub codecs (MS-DCOM 3.1.1.5.6)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from wmilab.wire.dcom.constants import E_NOINTERFACE, S_OK
from wmilab.wire.dcom.ndr import NdrReader, NdrWriter, StubError, decode_with
from wmilab.wire.dcom.objref import StdObjRef
from wmilab.wire.dcom.orpc import OrpcThis, build_orpc_hresult_reply, read_orpcthis, write_orpcthat


@dataclass(frozen=True)
class RemQueryInterfaceRequest:
    orpcthis: OrpcThis
    ipid: uuid.UUID
    refs: int
    iids: tuple[uuid.UUID, ...]


def parse_rem_query_interface(stub: bytes) -> RemQueryInterfaceRequest:
    def go(r: NdrReader) -> RemQueryInterfaceRequest:
        orpc = read_orpcthis(r)
        ipid = r.guid()
        refs = r.u32()
        c = r.u16()
        n = r.u32()
        iids = tuple(r.guid() for _ in range(n))
        if n != c:
            raise StubError("RemQueryInterface: cIids does not match the array",
                            ("RemQueryInterface",))
        return RemQueryInterfaceRequest(orpc, ipid, refs, iids)
    return decode_with("RemQueryInterface", stub, go)


@dataclass(frozen=True)
class QiResult:
    """REMQIRESULT (MS-DCOM 2.2.24): an HRESULT and, on success, a STDOBJREF."""

    hresult: int
    std: StdObjRef | None = None


def build_rem_query_interface_reply(results: Sequence[QiResult]) -> bytes:
    """Call HRESULT: S_OK when any IID succeeded, else E_NOINTERFACE (MS-DCOM 3.1.1.5.6.1.1)."""
    w = NdrWriter()
    write_orpcthat(w)
    w.ptr(True)
    w.u32(len(results))
    for res in results:
        w.align(8)  # REMQIRESULT contains hypers: 8-byte aligned
        w.u32(res.hresult)
        std = res.std if res.hresult == S_OK else None
        w.align(8)  # STDOBJREF is itself 8-aligned (hypers): 4 pad bytes after hResult
        w.u32(std.flags if std else 0)
        w.u32(std.public_refs if std else 0)
        w.u64(std.oxid if std else 0)
        w.u64(std.oid if std else 0)
        w.guid(std.ipid if std else uuid.UUID(int=0))
    ok = any(r.hresult == S_OK for r in results)
    w.u32(S_OK if ok else E_NOINTERFACE)
    return w.getvalue()


@dataclass(frozen=True)
class RemInterfaceRef:
    ipid: uuid.UUID
    public_refs: int
    private_refs: int


@dataclass(frozen=True)
class RemRefsRequest:
    orpcthis: OrpcThis
    refs: tuple[RemInterfaceRef, ...]


def parse_rem_refs(stub: bytes, what: str = "RemRelease") -> RemRefsRequest:
    """RemAddRef (opnum 4) and RemRelease (opnum 5) share their in-parameters."""
    def go(r: NdrReader) -> RemRefsRequest:
        orpc = read_orpcthis(r)
        c = r.u16()
        n = r.u32()
        refs = tuple(RemInterfaceRef(r.guid(), r.i32(), r.i32()) for _ in range(n))
        if c != n:
            raise StubError(f"{what}: cInterfaceRefs does not match the array", (what,))
        return RemRefsRequest(orpc, refs)
    return decode_with(what, stub, go)


def build_rem_add_ref_reply(results: Sequence[int]) -> bytes:
    w = NdrWriter()
    write_orpcthat(w)
    w.u32(len(results))
    for hr in results:
        w.u32(hr)
    w.u32(S_OK if all(hr == S_OK for hr in results) else results[0] if results else S_OK)
    return w.getvalue()


def build_rem_release_reply(hresult: int = S_OK) -> bytes:
    # wire-notes: RemRelease of an unknown IPID returns S_OK (impacket releases twice).
    return build_orpc_hresult_reply(hresult)
