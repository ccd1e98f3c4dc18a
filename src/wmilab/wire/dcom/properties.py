"""Activation property blobs (MS-DCOM 2.2.22): the CustomHeader, its property list, and the
type serialization v1 wrapping of each property (MS-RPCE 2.2.6). Both directions use them:
ActivationPropertiesIn (request) and ActivationPropertiesOut (reply)."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence

from wmilab.wire.dcom.constants import MSHCTX_DIFFERENTMACHINE
from wmilab.wire.dcom.ndr import NdrReader, NdrWriter, StubError, pad8


def ts1_body(prop: bytes, what: str) -> bytes:
    # MS-RPCE 2.2.6: type serialization version 1, 8-byte common + 8-byte private header.
    if len(prop) < 16:
        raise StubError(f"{what}: property shorter than its serialization headers", (what,))
    version, endian, hdr_len = struct.unpack_from("<BBH", prop, 0)
    if version != 1 or endian != 0x10 or hdr_len != 8:
        raise StubError(f"{what}: not a little-endian type serialization v1 header", (what,))
    length = struct.unpack_from("<I", prop, 8)[0]
    return prop[16:16 + length] if 0 < length <= len(prop) - 16 else prop[16:]


def ts1_wrap(body: bytes) -> bytes:
    # MS-RPCE 2.2.6.1/2.2.6.2: common header (v1, little-endian, 8, filler 0xCCCCCCCC) and
    # private header (ObjectBufferLength incl. padding to 8, filler 0xCCCCCCCC).
    padded = pad8(body)
    return (struct.pack("<BBHI", 1, 0x10, 8, 0xCCCCCCCC)
            + struct.pack("<II", len(padded), 0xCCCCCCCC) + padded)


def parse_properties_blob(blob: bytes) -> tuple[int, list[tuple[uuid.UUID, bytes]]]:
    """destCtx and the (CLSID, serialized property) pairs of an activation properties blob."""
    what = "ActivationPropertiesIn"
    r = NdrReader(blob, what)
    r.u32()  # dwSize
    r.u32()  # dwReserved
    hdr = r.raw(16)
    ver, endian, _hlen = struct.unpack_from("<BBH", hdr, 0)
    if ver != 1 or endian != 0x10:
        raise StubError(f"{what}: CustomHeader is not type serialization v1", (what,))
    body_len = struct.unpack_from("<I", hdr, 8)[0]
    body = NdrReader(blob[24:24 + body_len], what)
    body.u32()  # totalSize
    body.u32()  # headerSize
    body.u32()  # dwReserved
    dest_ctx = body.u32()
    c_ifs = body.u32()
    body.guid()  # classInfoClsid
    p_clsid = body.ptr()
    p_sizes = body.ptr()
    p_reserved = body.ptr()
    if not p_clsid or not p_sizes:
        raise StubError(f"{what}: CustomHeader has no property list", (what,))
    n = body.u32()
    clsids = [body.guid() for _ in range(n)]
    m = body.u32()
    sizes = [body.u32() for _ in range(m)]
    if p_reserved:
        body.u32()
    if n != m or n != c_ifs or n > 10:
        # MS-DCOM 2.2.22.1: cIfs properties, MAX_ACTPROP_LIMIT = 10.
        raise StubError(f"{what}: {n} CLSIDs but {m} sizes (cIfs {c_ifs})", (what,))
    start = 24 + body_len
    start += (-start) % 8
    props: list[tuple[uuid.UUID, bytes]] = []
    for clsid, size in zip(clsids, sizes, strict=True):
        chunk = blob[start:start + size]
        if len(chunk) < size:
            raise StubError(f"{what}: property {clsid} runs past the blob", (what,))
        props.append((clsid, chunk))
        start += size
    return dest_ctx, props


def encode_properties_blob(clsids: Sequence[uuid.UUID], props: Sequence[bytes]) -> bytes:
    """An activation properties blob: dwSize, dwReserved, CustomHeader, the properties.

    ``props`` are already type-serialized (``ts1_wrap``), in the order of ``clsids``.
    """
    def header(total: int, header_size: int) -> bytes:
        # MS-DCOM 2.2.22.1 CustomHeader: totalSize, headerSize, dwReserved, destCtx, cIfs,
        # classInfoClsid, pclsid, pSizes, pdwReserved NULL, then the two arrays.
        w = NdrWriter()
        w.u32(total)
        w.u32(header_size)
        w.u32(0)
        w.u32(MSHCTX_DIFFERENTMACHINE)
        w.u32(len(props))
        w.guid(uuid.UUID(int=0))
        w.ptr(True)
        w.ptr(True)
        w.u32(0)  # pdwReserved NULL
        w.u32(len(clsids))
        for c in clsids:
            w.guid(c)
        w.u32(len(props))
        for p in props:
            w.u32(len(p))
        return ts1_wrap(w.getvalue())

    hdr_len = len(header(0, 0))
    total = hdr_len + sum(len(p) for p in props)
    # MS-DCOM 2.2.22: dwSize is the size of everything after dwReserved.
    return struct.pack("<II", total, 0) + header(total, hdr_len) + b"".join(props)
