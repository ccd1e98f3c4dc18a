"""IRemUnknown / IRemUnknown2 stub codecs (MS-DCOM 3.1.1.5.6)."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from typing import NamedTuple

from wmilab.wire.dcom.constants import E_NOINTERFACE, S_OK
from wmilab.wire.dcom.ndr import NdrReader, NdrWriter, StubError, decode_with
from wmilab.wire.dcom.objref import StdObjRef
from wmilab.wire.dcom.orpc import OrpcThis, build_orpc_hresult_reply, read_orpcthis, write_orpcthat
from wmilab.wire.rpc import guid_from_bytes_le

# The records below are NamedTuples: one or two are read from the IRemUnknown calls of every
# query, and a frozen dataclass sets each field through object.__setattr__.

# ORPCTHIS without extensions at the start of a stub (MS-DCOM 2.2.13.3: version, flags,
# reserved1, causality id, extensions pointer NULL), then the fixed in-parameters:
# RemQueryInterface's ripid, cRefs, cIids (2 octets, padded), the conformant count of iids;
# RemRelease's cInterfaceRefs (padded) and the count of its REMINTERFACEREF array.
_QI_FIXED = struct.Struct("<HHII16sI16sIH2xI")
_REFS_FIXED = struct.Struct("<HHII16sIH2xI")
_REMINTERFACEREF = struct.Struct("<16sii")  # ipid, cPublicRefs, cPrivateRefs


class RemQueryInterfaceRequest(NamedTuple):
    orpcthis: OrpcThis
    ipid: uuid.UUID
    refs: int
    iids: tuple[uuid.UUID, ...]


def parse_rem_query_interface(stub: bytes) -> RemQueryInterfaceRequest:
    if len(stub) >= _QI_FIXED.size:
        major, minor, flags, _res, cid, ext, ipid, refs, c, n = _QI_FIXED.unpack_from(stub)
        end = _QI_FIXED.size + 16 * n
        if not ext and n == c and len(stub) >= end:
            # The usual request, read with one unpack; anything else the NDR reader reads,
            # with the same results and errors (tests/test_wire_fastpaths.py).
            return RemQueryInterfaceRequest(
                OrpcThis._read((major, minor), flags, cid, False), guid_from_bytes_le(ipid),
                refs, tuple(guid_from_bytes_le(stub[i:i + 16])
                            for i in range(_QI_FIXED.size, end, 16)))

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


class QiResult(NamedTuple):
    """REMQIRESULT (MS-DCOM 2.2.24): an HRESULT and, on success, a STDOBJREF."""

    hresult: int
    std: StdObjRef | None = None


# ORPCTHAT (flags 0, extensions NULL), the referent of the REMQIRESULT array, its count.
_QI_REPLY_HEAD = struct.Struct("<IIII")
# One REMQIRESULT (MS-DCOM 2.2.24), 8-aligned as it holds hypers: hResult, 4 pad octets
# (STDOBJREF is 8-aligned too), STDOBJREF flags, cPublicRefs, oxid, oid, ipid. 48 octets, so
# the next one stays 8-aligned.
_QI_RESULT = struct.Struct("<I4xIIQQ16s")
_REFERENT = 0x00020000  # the first referent id an NdrWriter hands out (ndr.NdrWriter.ref)
_NULL_GUID = bytes(16)
_HRESULT = struct.Struct("<I")


def build_rem_query_interface_reply(results: Sequence[QiResult]) -> bytes:
    """Call HRESULT: S_OK when any IID succeeded, else E_NOINTERFACE (MS-DCOM 3.1.1.5.6.1.1).

    Packed directly: the octets an NdrWriter makes (tests/test_wire_fastpaths.py)."""
    parts = [_QI_REPLY_HEAD.pack(0, 0, _REFERENT, len(results))]
    ok = False
    for res in results:
        std = res.std if res.hresult == S_OK else None
        if res.hresult == S_OK:
            ok = True
        if std is None:
            parts.append(_QI_RESULT.pack(res.hresult & 0xFFFFFFFF, 0, 0, 0, 0, _NULL_GUID))
        else:
            parts.append(_QI_RESULT.pack(S_OK, std.flags, std.public_refs, std.oxid, std.oid,
                                         std.ipid.bytes_le))
    parts.append(_HRESULT.pack(S_OK if ok else E_NOINTERFACE))
    return b"".join(parts)


class RemInterfaceRef(NamedTuple):
    ipid: uuid.UUID
    public_refs: int
    private_refs: int


class RemRefsRequest(NamedTuple):
    orpcthis: OrpcThis
    refs: tuple[RemInterfaceRef, ...]


def parse_rem_refs(stub: bytes, what: str = "RemRelease") -> RemRefsRequest:
    """RemAddRef (opnum 4) and RemRelease (opnum 5) share their in-parameters."""
    if len(stub) >= _REFS_FIXED.size:
        major, minor, flags, _res, cid, ext, c, n = _REFS_FIXED.unpack_from(stub)
        end = _REFS_FIXED.size + _REMINTERFACEREF.size * n
        if not ext and n == c and len(stub) >= end:
            # The usual request in one pass; anything else the NDR reader reads.
            refs = []
            for at in range(_REFS_FIXED.size, end, _REMINTERFACEREF.size):
                ipid, public, private = _REMINTERFACEREF.unpack_from(stub, at)
                refs.append(RemInterfaceRef(guid_from_bytes_le(ipid), public, private))
            return RemRefsRequest(OrpcThis._read((major, minor), flags, cid, False),
                                  tuple(refs))

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
