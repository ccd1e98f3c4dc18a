"""ORPCTHIS / ORPCTHAT (MS-DCOM 2.2.13.3, 2.2.13.4) and the replies every ORPC method shares."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from wmilab.wire.dcom.constants import COM_VERSION
from wmilab.wire.dcom.ndr import NdrReader, NdrWriter


@dataclass(frozen=True)
class OrpcThis:
    version: tuple[int, int] = COM_VERSION
    flags: int = 0
    cid: uuid.UUID = field(default_factory=uuid.uuid4)  # causality id, MS-DCOM 3.2.4.1.1.1
    has_extensions: bool = False


def read_orpcthis(r: NdrReader) -> OrpcThis:
    major = r.u16()
    minor = r.u16()
    flags = r.u32()
    r.u32()  # reserved1
    cid = r.fresh_guid()
    ext = r.ptr()
    if ext:
        _skip_extent_array(r)
    return OrpcThis((major, minor), flags, cid, bool(ext))


def _skip_extent_array(r: NdrReader) -> None:
    # MS-DCOM 2.2.13.2 ORPC_EXTENT_ARRAY: size, reserved, unique pointer to array of pointers.
    size = r.u32()
    r.u32()
    if not r.ptr():
        return
    count = r.u32()
    refs = [r.ptr() for _ in range(count)]
    del size
    for ref in refs:
        if ref:
            r.guid()
            r.u32()  # size
            r.conformant_bytes()
            r.align(4)


def write_orpcthis(w: NdrWriter, this: OrpcThis) -> None:
    w.u16(this.version[0])
    w.u16(this.version[1])
    w.u32(this.flags)
    w.u32(0)
    w.guid(this.cid)
    w.u32(0)  # extensions NULL: we never send ORPC extensions


def read_orpcthat(r: NdrReader) -> int:
    flags = r.u32()
    if r.ptr():
        _skip_extent_array(r)
    return flags


def write_orpcthat(w: NdrWriter) -> None:
    # MS-DCOM 2.2.13.4: flags MUST be 0; extensions NULL (wire-notes: NULL in every reply).
    w.u32(0)
    w.u32(0)


@dataclass(frozen=True)
class RpcFaultReply:
    """Ask the RPC layer to send a fault PDU with this status instead of a response stub."""

    status: int



def build_orpc_hresult_reply(hresult: int) -> bytes:
    """ORPCTHAT + HRESULT: the reply of every ORPC method without out-parameters."""
    w = NdrWriter()
    write_orpcthat(w)
    w.u32(hresult)
    return w.getvalue()
