"""OBJREF (MS-DCOM 2.2.18) and MInterfacePointer (MS-DCOM 2.2.14) codecs."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from wmilab.wire import ids
from wmilab.wire.dcom.bindings import DualStringArray, decode_dsa_packed, encode_dsa_packed
from wmilab.wire.dcom.constants import FLAGS_OBJREF_CUSTOM, FLAGS_OBJREF_STANDARD, OBJREF_SIGNATURE
from wmilab.wire.dcom.ndr import NdrReader, NdrWriter, StubError


@dataclass(frozen=True)
class StdObjRef:
    oxid: int
    oid: int
    ipid: uuid.UUID
    public_refs: int = 5  # Choice: 5 public references, what Windows hands out per marshal.
    flags: int = 0


@dataclass(frozen=True)
class ObjRefStandard:
    iid: uuid.UUID
    std: StdObjRef
    resolver: DualStringArray


@dataclass(frozen=True)
class ObjRefCustom:
    iid: uuid.UUID
    clsid: uuid.UUID
    data: bytes
    extension_size: int = 0


ObjRef = ObjRefStandard | ObjRefCustom


def encode_objref(obj: ObjRef) -> bytes:
    if isinstance(obj, ObjRefStandard):
        # MS-DCOM 3.2.4.4: a marshaled interface carries public references (> 0); aiowmi
        # asserts cPublicRefs != 0 (ObjRefStandard.from_data).
        if obj.std.public_refs <= 0:
            raise ValueError("an OBJREF_STANDARD needs public_refs > 0")
        return (struct.pack("<II", OBJREF_SIGNATURE, FLAGS_OBJREF_STANDARD) + obj.iid.bytes_le
                + struct.pack("<IIQQ", obj.std.flags, obj.std.public_refs, obj.std.oxid,
                              obj.std.oid)
                + obj.std.ipid.bytes_le + encode_dsa_packed(obj.resolver))
    # MS-DCOM 2.2.18.6 OBJREF_CUSTOM: clsid, cbExtension (0), reserved/size, pObjectData.
    # Choice: the size field carries len(data) + 8, as impacket and aiowmi both write it.
    return (struct.pack("<II", OBJREF_SIGNATURE, FLAGS_OBJREF_CUSTOM) + obj.iid.bytes_le
            + obj.clsid.bytes_le + struct.pack("<II", obj.extension_size, len(obj.data) + 8)
            + obj.data)


def wbem_object_ref(encoded_object: bytes) -> ObjRefCustom:
    """OBJREF_CUSTOM of an IWbemClassObject (MS-WMI 2.2.4.1, CLSID_WbemClassObject)."""
    return ObjRefCustom(ids.IID_IWBEMCLASSOBJECT, ids.CLSID_WBEMCLASSOBJECT, encoded_object)


def decode_objref(data: bytes) -> ObjRef:
    what = "OBJREF"
    if len(data) < 24:
        raise StubError("OBJREF: shorter than its 24-byte header", (what,))
    sig, flags = struct.unpack_from("<II", data, 0)
    if sig != OBJREF_SIGNATURE:
        raise StubError(f"OBJREF: signature 0x{sig:08X} is not MEOW", (what,))
    iid = uuid.UUID(bytes_le=data[8:24])
    if flags == FLAGS_OBJREF_STANDARD:
        if len(data) < 24 + 40 + 4:
            raise StubError("OBJREF_STANDARD: truncated", (what,))
        sflags, refs, oxid, oid = struct.unpack_from("<IIQQ", data, 24)
        ipid = uuid.UUID(bytes_le=data[48:64])
        dsa, _ = decode_dsa_packed(data[64:])
        return ObjRefStandard(iid, StdObjRef(oxid, oid, ipid, refs, sflags), dsa)
    if flags == FLAGS_OBJREF_CUSTOM:
        if len(data) < 48:
            raise StubError("OBJREF_CUSTOM: truncated", (what,))
        clsid = uuid.UUID(bytes_le=data[24:40])
        cb_ext, _size = struct.unpack_from("<II", data, 40)
        return ObjRefCustom(iid, clsid, data[48:], cb_ext)
    raise StubError(f"OBJREF: flags 0x{flags:X} (handler/extended) are not supported", (what,))


def read_mip(r: NdrReader) -> bytes:
    """MInterfacePointer body (MS-DCOM 2.2.14): ulCntData, conformant byte array."""
    cnt = r.u32()
    data = r.conformant_bytes()
    if cnt != len(data):
        raise StubError("MInterfacePointer sizes disagree", (r.what,))
    r.align(4)
    return data


def read_unique_mip(r: NdrReader) -> bytes | None:
    return read_mip(r) if r.ptr() else None


def write_mip(w: NdrWriter, data: bytes) -> None:
    w.u32(len(data))
    w.u32(len(data))
    w.raw(data)
    w.align(4)


def write_unique_mip(w: NdrWriter, obj: ObjRef | bytes | None) -> None:
    if obj is None:
        w.u32(0)
        return
    w.ptr(True)
    write_mip(w, obj if isinstance(obj, bytes) else encode_objref(obj))


def read_unique_objref(r: NdrReader) -> ObjRef | None:
    data = read_unique_mip(r)
    return None if data is None else decode_objref(data)
