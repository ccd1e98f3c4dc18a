"""IObjectExporter, the OXID resolver (MS-DCOM 3.1.2.5.1); no ORPCTHIS: a plain RPC interface."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from wmilab.wire.dcom.bindings import DualStringArray, write_dsa_ndr
from wmilab.wire.dcom.constants import COM_VERSION, RPC_C_AUTHN_LEVEL_PKT_INTEGRITY
from wmilab.wire.dcom.ndr import NdrReader, NdrWriter, decode_with


@dataclass(frozen=True)
class ResolveOxidRequest:
    oxid: int
    requested_protseqs: tuple[int, ...]
    v2: bool


def parse_resolve_oxid(stub: bytes, v2: bool = False) -> ResolveOxidRequest:
    """ResolveOxid (opnum 0) / ResolveOxid2 (opnum 4) requests: same in-parameters."""
    def go(r: NdrReader) -> ResolveOxidRequest:
        oxid = r.u64()
        r.u16()
        n = r.u32()
        return ResolveOxidRequest(oxid, tuple(r.u16() for _ in range(n)), v2)
    return decode_with("ResolveOxid2" if v2 else "ResolveOxid", stub, go)


def build_resolve_oxid_reply(
    bindings: DualStringArray | None, ipid_rem_unknown: uuid.UUID,
    authn_hint: int = RPC_C_AUTHN_LEVEL_PKT_INTEGRITY, v2: bool = False,
    status: int = 0,
) -> bytes:
    """ResolveOxid(2) response; ``status`` is a Win32 code such as OR_INVALID_OXID."""
    w = NdrWriter()
    if bindings is None or status:
        w.u32(0)
        w.guid(uuid.UUID(int=0))
        w.u32(0)
    else:
        w.ptr(True)
        write_dsa_ndr(w, bindings)
        w.guid(ipid_rem_unknown)
        w.u32(authn_hint)
    if v2:
        w.u16(COM_VERSION[0])
        w.u16(COM_VERSION[1])
    w.u32(status)
    return w.getvalue()


def parse_simple_ping(stub: bytes) -> int:
    """SimplePing (opnum 1): the set id."""
    return decode_with("SimplePing", stub, lambda r: r.u64())


def build_status_reply(status: int) -> bytes:
    """SimplePing / ServerAlive replies: just error_status_t."""
    return struct.pack("<I", status)


@dataclass(frozen=True)
class ComplexPingRequest:
    set_id: int
    sequence: int
    add: tuple[int, ...]
    delete: tuple[int, ...]


def parse_complex_ping(stub: bytes) -> ComplexPingRequest:
    """ComplexPing (opnum 2), MS-DCOM 3.1.2.5.1.3."""
    def go(r: NdrReader) -> ComplexPingRequest:
        set_id = r.u64()
        seq = r.u16()
        n_add = r.u16()
        n_del = r.u16()
        # Top-level pointer parameters: each referent follows its own pointer (C706 14.3.12).
        add: tuple[int, ...] = ()
        dele: tuple[int, ...] = ()
        if r.ptr():
            add = tuple(r.u64() for _ in range(r.u32()))
        if r.ptr():
            dele = tuple(r.u64() for _ in range(r.u32()))
        del n_add, n_del
        return ComplexPingRequest(set_id, seq, add, dele)
    return decode_with("ComplexPing", stub, go)


def build_complex_ping_reply(set_id: int, backoff: int = 0, status: int = 0) -> bytes:
    w = NdrWriter()
    w.u64(set_id)
    w.u16(backoff)
    w.u32(status)
    return w.getvalue()


def build_server_alive2_reply(bindings: DualStringArray) -> bytes:
    """ServerAlive2 (opnum 5): COMVERSION, the resolver's bindings, pReserved NULL, status."""
    w = NdrWriter()
    w.u16(COM_VERSION[0])
    w.u16(COM_VERSION[1])
    w.ptr(True)
    write_dsa_ndr(w, bindings)
    w.u32(0)
    w.u32(0)
    return w.getvalue()
