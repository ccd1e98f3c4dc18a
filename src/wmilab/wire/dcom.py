"""Sans-IO MS-DCOM stub codecs: ORPC headers, OBJREFs, activation, OXID resolver, IRemUnknown.

Every function here works on NDR stub bytes only (the body of one request or response PDU,
after unsealing). Parsers take the stub of a request and return a frozen dataclass; builders
return the reply stub. Nothing here knows about sockets, PDUs or authentication.

The NDR is written by hand with a small reader/writer (``NdrReader``/``NdrWriter``). impacket's
NDR classes are the test oracle: tests build requests with impacket and aiowmi and parse them
here, and parse our replies with impacket's and aiowmi's own response code.
"""

from __future__ import annotations

import functools
import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from wmilab.errors import ConfigError
from wmilab.wire import ids
from wmilab.wire.rpc import guid_from_bytes_le

T = TypeVar("T")

# MS-DCOM 2.2.18: OBJREF signature "MEOW" and flags.
OBJREF_SIGNATURE = 0x574F454D
FLAGS_OBJREF_STANDARD = 0x1
FLAGS_OBJREF_HANDLER = 0x2
FLAGS_OBJREF_CUSTOM = 0x4
FLAGS_OBJREF_EXTENDED = 0x8
SORF_NOPING = 0x1000  # MS-DCOM 2.2.18.2 STDOBJREF flags

# MS-DCOM 2.2.11 COMVERSION: Windows XP and later speak 5.7.
COM_VERSION = (5, 7)
# MS-RPCE 2.2.1.1.7 security provider constants.
RPC_C_AUTHN_NONE = 0
RPC_C_AUTHN_GSS_NEGOTIATE = 9
RPC_C_AUTHN_WINNT = 10
RPC_C_AUTHN_GSS_KERBEROS = 16
# MS-RPCE 2.2.1.1.8 authentication levels.
RPC_C_AUTHN_LEVEL_PKT_INTEGRITY = 5
RPC_C_AUTHN_LEVEL_PKT_PRIVACY = 6
# MS-DCOM 2.2.19.3 / [C706] Annex I: tower id of ncacn_ip_tcp.
TOWER_NCACN_IP_TCP = 0x0007
# MS-DCOM 2.2.22.1: destCtx MSHCTX_DIFFERENTMACHINE.
MSHCTX_DIFFERENTMACHINE = 2

S_OK = 0x00000000
E_NOINTERFACE = 0x80004002
E_ACCESSDENIED = 0x80070005
# Win32 ERROR_ACCESS_DENIED, the status of the fault PDU that activation returns when
# launch/activation permission is denied (MS-DCOM 3.1.2.5.2.3.3 note; impacket #449 shows
# Windows answering RemoteCreateInstance with a fault whose status is 5).
ERROR_ACCESS_DENIED = 0x00000005
# MS-DCOM 2.2.28 / MS-ERREF 2.2: OR_INVALID_OXID, returned as a Win32 code by IObjectExporter.
OR_INVALID_OXID = 1910
OR_INVALID_SET = 1912
# MS-RPCE 2.2.2.11 (nca_s_op_rng_error): the RPC runtime answers unknown opnums with this fault.
NCA_S_OP_RNG_ERROR = 0x1C010002


class StubError(ConfigError):
    """A request stub that cannot be decoded (too short, bad pointer, wrong signature)."""


# ---------------------------------------------------------------------------------------------
# NDR reader and writer (MS-RPCE 2.2.5 / C706 chapter 14, little-endian, 32-bit NDR)
# ---------------------------------------------------------------------------------------------


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")


class NdrReader:
    """Reads NDR20 primitives from a stub; offsets align relative to the stub start."""

    def __init__(self, data: bytes, what: str = "stub") -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise StubError(
                f"truncated at byte {self.pos} (needs {n} more, "
                f"has {len(self.data) - self.pos})", (self.what,))

    def align(self, n: int) -> None:
        self.pos += (-self.pos) % n

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def raw(self, n: int) -> bytes:
        self._need(n)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def _at(self, size: int, alignment: int) -> int:
        """Align, check ``size`` octets are there, advance; the offset they start at."""
        pos = self.pos
        pos += (-pos) % alignment
        end = pos + size
        if end > len(self.data):
            self.pos = pos
            self._need(size)
        self.pos = end
        return pos

    def u8(self) -> int:
        return self.raw(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack_from(self.data, self._at(2, 2))[0])

    def u32(self) -> int:
        return int(_U32.unpack_from(self.data, self._at(4, 4))[0])

    def i32(self) -> int:
        return int(_I32.unpack_from(self.data, self._at(4, 4))[0])

    def u64(self) -> int:
        return int(_U64.unpack_from(self.data, self._at(8, 8))[0])

    def guid(self) -> uuid.UUID:
        pos = self._at(16, 4)
        return guid_from_bytes_le(self.data[pos:pos + 16])

    def fresh_guid(self) -> uuid.UUID:
        """A GUID that is new on every call (a causality id): not worth remembering."""
        pos = self._at(16, 4)
        return uuid.UUID(bytes_le=bytes(self.data[pos:pos + 16]))

    def ptr(self) -> int:
        """A unique/full pointer's referent id (0 means NULL)."""
        return self.u32()

    def conformant_bytes(self) -> bytes:
        count = self.u32()
        return self.raw(count)

    def lpwstr(self) -> str:
        """Conformant varying wide string body ([string] wchar_t*), after its referent id."""
        _max = self.u32()
        offset = self.u32()
        actual = self.u32()
        if offset != 0 or actual > _max:
            raise StubError("malformed string header", (self.what,))
        text = self.raw(2 * actual).decode("utf-16-le", errors="replace")
        return text.rstrip("\x00")

    def unique_lpwstr(self) -> str | None:
        return self.lpwstr() if self.ptr() else None


class NdrWriter:
    """Writes NDR20 primitives; ``ref()`` hands out non-zero referent ids."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self._next_ref = 0x00020000

    def ref(self) -> int:
        # Choice: referent ids count up from 0x00020000, as MIDL-generated stubs do.
        r = self._next_ref
        self._next_ref += 4
        return r

    def align(self, n: int, fill: int = 0) -> None:
        pad = (-len(self.buf)) % n
        if pad:
            self.buf += bytes([fill]) * pad

    def raw(self, data: bytes) -> None:
        self.buf += data

    def u8(self, v: int) -> None:
        self.buf += struct.pack("<B", v)

    def u16(self, v: int) -> None:
        if len(self.buf) & 1:
            self.buf += b"\x00"
        self.buf += _U16.pack(v & 0xFFFF)

    def u32(self, v: int) -> None:
        pad = (-len(self.buf)) & 3
        if pad:
            self.buf += b"\x00" * pad
        self.buf += _U32.pack(v & 0xFFFFFFFF)

    def i32(self, v: int) -> None:
        self.align(4)
        self.buf += _I32.pack(v)

    def u64(self, v: int) -> None:
        self.align(8)
        self.buf += _U64.pack(v)

    def guid(self, v: uuid.UUID) -> None:
        self.align(4)
        self.buf += v.bytes_le

    def ptr(self, present: bool) -> None:
        self.u32(self.ref() if present else 0)

    def lpwstr(self, text: str) -> None:
        """Referent id plus conformant varying NUL-terminated wide string."""
        chars = text + "\x00"
        self.ptr(True)
        self.u32(len(chars))
        self.u32(0)
        self.u32(len(chars))
        self.raw(chars.encode("utf-16-le"))

    def getvalue(self) -> bytes:
        return bytes(self.buf)


def _pad8(data: bytes, fill: int = 0) -> bytes:
    return data + bytes([fill]) * ((-len(data)) % 8)


def decode_with(what: str, data: bytes, fn: Callable[[NdrReader], T]) -> T:
    """Run ``fn`` over ``data``; wrap any low-level failure into a StubError naming ``what``."""
    r = NdrReader(data, what)
    try:
        return fn(r)
    except StubError:
        raise
    except (ValueError, KeyError, IndexError, struct.error) as exc:
        raise StubError(f"{what}: cannot decode stub ({exc})", (what,)) from None


# ---------------------------------------------------------------------------------------------
# ORPCTHIS / ORPCTHAT (MS-DCOM 2.2.13.3, 2.2.13.4)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# DUALSTRINGARRAY (MS-DCOM 2.2.19)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StringBinding:
    tower_id: int
    address: str  # e.g. "127.0.0.2[49667]"


@dataclass(frozen=True)
class SecurityBinding:
    authn_svc: int
    principal: str = ""


@dataclass(frozen=True)
class DualStringArray:
    strings: tuple[StringBinding, ...]
    security: tuple[SecurityBinding, ...]

    def tcp_endpoints(self) -> list[tuple[str, int | None]]:
        """``[(host, port or None)]`` of the ncacn_ip_tcp bindings, in order."""
        out: list[tuple[str, int | None]] = []
        for b in self.strings:
            if b.tower_id != TOWER_NCACN_IP_TCP:
                continue
            host, sep, rest = b.address.partition("[")
            port: int | None = None
            if sep and rest.endswith("]") and rest[:-1].isdigit():
                port = int(rest[:-1])
            out.append((host, port))
        return out


def default_security_bindings() -> tuple[SecurityBinding, ...]:
    # Choice: advertise NTLM (10), SPNEGO (9) and Kerberos (16), each with Reserved 0xFFFF
    # and an empty principal name (MS-DCOM 2.2.19.4 allows an empty SPN). Real Windows lists
    # SPNs such as "host/NAME"; neither client reads them.
    return (
        SecurityBinding(RPC_C_AUTHN_WINNT),
        SecurityBinding(RPC_C_AUTHN_GSS_NEGOTIATE),
        SecurityBinding(RPC_C_AUTHN_GSS_KERBEROS),
    )


def tcp_bindings(
    addresses: Sequence[str], port: int | None,
    security: tuple[SecurityBinding, ...] | None = None,
) -> DualStringArray:
    """String bindings ``ADDR[port]`` (or bare ``ADDR`` for the resolver, port None).

    MS-DCOM 2.2.19.3: aNetworkAddr of ncacn_ip_tcp is ``host[port]``. The caller must include
    the address the client connected to: both clients pick the binding that contains it
    (impacket dcomrt INTERFACE.connect, aiowmi RemoteCreateInstanceResponse.get_binding).
    """
    if not addresses:
        raise ConfigError("a DUALSTRINGARRAY needs at least one network address", ("addresses",))
    strings = tuple(
        StringBinding(TOWER_NCACN_IP_TCP, a if port is None else f"{a}[{port}]")
        for a in addresses
    )
    return DualStringArray(strings, security if security is not None
                           else default_security_bindings())


@functools.lru_cache(maxsize=256)  # DualStringArray is frozen; hosts reuse a few
def _dsa_shorts(dsa: DualStringArray) -> tuple[bytes, int]:
    # MS-DCOM 2.2.19.1: string bindings, nullterm1, security bindings, nullterm2.
    s = bytearray()
    for b in dsa.strings:
        s += struct.pack("<H", b.tower_id) + (b.address + "\x00").encode("utf-16-le")
    s += b"\x00\x00"
    sec_offset = len(s) // 2
    if not dsa.security:
        # MS-DCOM 2.2.19.1: the smallest array has an empty SecBinding list (two NULs).
        s += b"\x00\x00"
    for sb in dsa.security:
        s += struct.pack("<H", sb.authn_svc)
        if sb.authn_svc != RPC_C_AUTHN_NONE:
            # MS-DCOM 2.2.19.4: Reserved MUST be 0xFFFF when sent; aPrincName NUL-terminated.
            s += struct.pack("<H", 0xFFFF) + (sb.principal + "\x00").encode("utf-16-le")
    s += b"\x00\x00"
    return bytes(s), sec_offset


def encode_dsa_packed(dsa: DualStringArray) -> bytes:
    """The packet version (MS-DCOM 2.2.19.1): wNumEntries, wSecurityOffset, entries."""
    body, sec = _dsa_shorts(dsa)
    return struct.pack("<HH", len(body) // 2, sec) + body


def write_dsa_ndr(w: NdrWriter, dsa: DualStringArray) -> None:
    """The NDR version (MS-DCOM 2.2.19.2): conformant struct, max count first."""
    body, sec = _dsa_shorts(dsa)
    n = len(body) // 2
    w.u32(n)
    w.u16(n)
    w.u16(sec)
    w.raw(body)


def _parse_dsa_body(body: bytes, sec_offset: int) -> DualStringArray:
    strings: list[StringBinding] = []
    secs: list[SecurityBinding] = []
    pos = 0
    end_strings = sec_offset * 2
    while pos + 2 <= end_strings:
        tower = struct.unpack_from("<H", body, pos)[0]
        pos += 2
        if tower == 0:
            break
        text, pos = _wstr_at(body, pos)
        strings.append(StringBinding(tower, text))
    pos = end_strings
    while pos + 2 <= len(body):
        svc = struct.unpack_from("<H", body, pos)[0]
        pos += 2
        if svc == 0:
            break
        pos += 2  # Reserved
        text, pos = _wstr_at(body, pos)
        secs.append(SecurityBinding(svc, text))
    return DualStringArray(tuple(strings), tuple(secs))


def _wstr_at(body: bytes, pos: int) -> tuple[str, int]:
    end = pos
    while end + 2 <= len(body) and body[end:end + 2] != b"\x00\x00":
        end += 2
    if end + 2 > len(body):
        raise StubError("DUALSTRINGARRAY: unterminated string", ("DUALSTRINGARRAY",))
    return body[pos:end].decode("utf-16-le", errors="replace"), end + 2


def decode_dsa_packed(data: bytes) -> tuple[DualStringArray, int]:
    """Parse a packed DUALSTRINGARRAY; returns it and its byte length."""
    if len(data) < 4:
        raise StubError("DUALSTRINGARRAY: shorter than its header", ("DUALSTRINGARRAY",))
    n, sec = struct.unpack_from("<HH", data, 0)
    body = data[4:4 + 2 * n]
    if len(body) < 2 * n or sec > n:
        raise StubError("DUALSTRINGARRAY: sizes exceed the data", ("DUALSTRINGARRAY",))
    return _parse_dsa_body(body, sec), 4 + 2 * n


def read_dsa_ndr(r: NdrReader) -> DualStringArray:
    n_max = r.u32()
    n = r.u16()
    sec = r.u16()
    if n != n_max or sec > n:
        raise StubError("inconsistent DUALSTRINGARRAY sizes", (r.what,))
    return _parse_dsa_body(r.raw(2 * n), sec)


# ---------------------------------------------------------------------------------------------
# OBJREF (MS-DCOM 2.2.18)
# ---------------------------------------------------------------------------------------------


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
            raise ConfigError("an OBJREF_STANDARD needs public_refs > 0", ("public_refs",))
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


# ---------------------------------------------------------------------------------------------
# Activation (MS-DCOM 2.2.22, 3.1.2.5.2.3)
# ---------------------------------------------------------------------------------------------


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


def _ts1_body(prop: bytes, what: str) -> bytes:
    # MS-RPCE 2.2.6: type serialization version 1, 8-byte common + 8-byte private header.
    if len(prop) < 16:
        raise StubError(f"{what}: property shorter than its serialization headers", (what,))
    version, endian, hdr_len = struct.unpack_from("<BBH", prop, 0)
    if version != 1 or endian != 0x10 or hdr_len != 8:
        raise StubError(f"{what}: not a little-endian type serialization v1 header", (what,))
    length = struct.unpack_from("<I", prop, 8)[0]
    return prop[16:16 + length] if 0 < length <= len(prop) - 16 else prop[16:]


def _ts1_wrap(body: bytes) -> bytes:
    # MS-RPCE 2.2.6.1/2.2.6.2: common header (v1, little-endian, 8, filler 0xCCCCCCCC) and
    # private header (ObjectBufferLength incl. padding to 8, filler 0xCCCCCCCC).
    padded = _pad8(body)
    return (struct.pack("<BBHI", 1, 0x10, 8, 0xCCCCCCCC)
            + struct.pack("<II", len(padded), 0xCCCCCCCC) + padded)


def _parse_activation_blob(blob: bytes) -> tuple[int, list[tuple[uuid.UUID, bytes]]]:
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


def _parse_activation(orpc: OrpcThis, objref_bytes: bytes, get_class: bool) -> ActivationRequest:
    what = "ActivationPropertiesIn"
    obj = decode_objref(objref_bytes)
    if not isinstance(obj, ObjRefCustom) or obj.clsid != ids.CLSID_ACTIVATIONPROPERTIESIN:
        raise StubError(f"{what}: pActProperties is not an ActivationPropertiesIn OBJREF_CUSTOM",
                        (what,))
    dest_ctx, props = _parse_activation_blob(obj.data)
    values: dict[str, object] = {}
    found: list[uuid.UUID] = []
    for clsid, prop in props:
        found.append(clsid)
        body = _ts1_body(prop, what)
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
        raise ConfigError(f"authnHint {reply.authn_hint} is not an RPC authentication level",
                          ("authn_hint",))
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
    props = [_ts1_wrap(_props_out_body(results)), _ts1_wrap(_scm_reply_body(reply))]
    clsids = [ids.CLSID_PROPSOUTINFO, ids.CLSID_SCMREPLYINFO]

    def header(total: int, header_size: int) -> bytes:
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
        return _ts1_wrap(w.getvalue())

    hdr_len = len(header(0, 0))
    total = hdr_len + sum(len(p) for p in props)
    custom = header(total, hdr_len)
    # MS-DCOM 2.2.22: dwSize is the size of everything after dwReserved.
    return struct.pack("<II", total, 0) + custom + b"".join(props)


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


@dataclass(frozen=True)
class RpcFaultReply:
    """Ask the RPC layer to send a fault PDU with this status instead of a response stub."""

    status: int


def activation_access_denied() -> RpcFaultReply:
    # MS-DCOM 3.1.2.5.2.3.3 / facts.md: a denied launch/activation returns ERROR_ACCESS_DENIED
    # as a fault (impacket raises "rpc_s_access_denied", aiowmi raises RpcAccessDenied-like).
    return RpcFaultReply(ERROR_ACCESS_DENIED)


def build_remote_create_instance_request(
    clsid: uuid.UUID, iids: Sequence[uuid.UUID], orpcthis: OrpcThis | None = None,
) -> bytes:
    """Client role: RemoteCreateInstance request stub (our own client uses it)."""
    orpc = orpcthis or OrpcThis(flags=1)
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
    inst_bytes = bytearray(_ts1_wrap(inst.getvalue()))
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
    props = [bytes(inst_bytes), _ts1_wrap(ctx.getvalue()), _ts1_wrap(loc.getvalue()),
             _ts1_wrap(scm.getvalue())]
    clsids = [ids.CLSID_INSTANTIATIONINFO, ids.CLSID_ACTIVATIONCONTEXTINFO,
              ids.CLSID_SERVERLOCATIONINFO, ids.CLSID_SCMREQUESTINFO]
    h = NdrWriter()
    h.u32(0)
    h.u32(0)
    h.u32(0)
    h.u32(MSHCTX_DIFFERENTMACHINE)
    h.u32(len(props))
    h.guid(uuid.UUID(int=0))
    h.ptr(True)
    h.ptr(True)
    h.u32(0)
    h.u32(len(clsids))
    for c in clsids:
        h.guid(c)
    h.u32(len(props))
    for p in props:
        h.u32(len(p))
    hdr = bytearray(_ts1_wrap(h.getvalue()))
    total = len(hdr) + sum(len(p) for p in props)
    struct.pack_into("<II", hdr, 16, total, len(hdr))
    blob = struct.pack("<II", total, 0) + bytes(hdr) + b"".join(props)
    objref = ObjRefCustom(ids.IID_IACTIVATIONPROPERTIESIN, ids.CLSID_ACTIVATIONPROPERTIESIN, blob)
    w = NdrWriter()
    write_orpcthis(w, orpc)
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
        _dest, props = _parse_activation_blob(obj.data)
        results: tuple[InterfaceResult, ...] = ()
        scm: ScmReply | None = None
        for clsid, prop in props:
            body = _ts1_body(prop, "ActivationPropertiesOut")
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


# ---------------------------------------------------------------------------------------------
# IObjectExporter (MS-DCOM 3.1.2.5.1); no ORPCTHIS: it is a plain RPC interface.
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# IRemUnknown / IRemUnknown2 (MS-DCOM 3.1.1.5.6)
# ---------------------------------------------------------------------------------------------


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
    w = NdrWriter()
    write_orpcthat(w)
    w.u32(hresult)
    return w.getvalue()


def build_orpc_hresult_reply(hresult: int) -> bytes:
    """ORPCTHAT + HRESULT: the reply of every ORPC method without out-parameters."""
    return build_rem_release_reply(hresult)
