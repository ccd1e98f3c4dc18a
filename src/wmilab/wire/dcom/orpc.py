"""ORPCTHIS / ORPCTHAT (MS-DCOM 2.2.13.3, 2.2.13.4) and the replies every ORPC method shares."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from wmilab.wire.dcom.constants import COM_VERSION
from wmilab.wire.dcom.ndr import NdrReader, NdrWriter


class OrpcThis:
    """ORPCTHIS (MS-DCOM 2.2.13.3): COM version, flags, causality id, extensions present.

    A plain class with slots rather than a dataclass: one is read from every ORPC request,
    and the causality id (new on each call, MS-DCOM 3.2.4.1.1.1) is kept as its 16 octets
    until someone asks for it as a UUID.
    """

    __slots__ = ("_cid", "flags", "has_extensions", "version")

    def __init__(self, version: tuple[int, int] = COM_VERSION, flags: int = 0,
                 cid: uuid.UUID | None = None, has_extensions: bool = False) -> None:
        self.version = version
        self.flags = flags
        self._cid: uuid.UUID | bytes = cid if cid is not None else uuid.uuid4()
        self.has_extensions = has_extensions

    @classmethod
    def _read(cls, version: tuple[int, int], flags: int, cid_le: bytes,
              has_extensions: bool) -> OrpcThis:
        this = cls.__new__(cls)
        this.version, this.flags, this._cid = version, flags, cid_le
        this.has_extensions = has_extensions
        return this

    @property
    def cid(self) -> uuid.UUID:
        cid = self._cid
        if type(cid) is bytes:
            cid = self._cid = uuid.UUID(bytes_le=cid)
        assert isinstance(cid, uuid.UUID)
        return cid

    def _key(self) -> tuple[tuple[int, int], int, uuid.UUID, bool]:
        return (self.version, self.flags, self.cid, self.has_extensions)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrpcThis) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"OrpcThis(version={self.version}, flags={self.flags}, cid={self.cid!r}, "
                f"has_extensions={self.has_extensions})")


# version major, minor, flags, reserved1, causality id (16 octets), extensions pointer: the
# fixed part of ORPCTHIS, 4-aligned.
_ORPCTHIS_FIXED = struct.Struct("<HHII16sI")


def read_orpcthis(r: NdrReader) -> OrpcThis:
    data = r.data
    if r.pos == 0 and len(data) >= _ORPCTHIS_FIXED.size:
        # The common case, ORPCTHIS at the start of the stub: one unpack for the fixed part.
        major, minor, flags, _reserved, cid, ext = _ORPCTHIS_FIXED.unpack_from(data, 0)
        r.pos = _ORPCTHIS_FIXED.size
    else:
        major = r.u16()
        minor = r.u16()
        flags = r.u32()
        r.u32()  # reserved1
        cid = r.raw_at(16, 4)
        ext = r.ptr()
    if ext:
        _skip_extent_array(r)
    return OrpcThis._read((major, minor), flags, cid, bool(ext))


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



_ORPCTHAT_HRESULT = struct.Struct("<III")  # ORPCTHAT flags 0, extensions NULL; HRESULT


def build_orpc_hresult_reply(hresult: int) -> bytes:
    """ORPCTHAT + HRESULT: the reply of every ORPC method without out-parameters."""
    return _ORPCTHAT_HRESULT.pack(0, 0, hresult & 0xFFFFFFFF)
