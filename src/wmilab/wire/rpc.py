"""MS-RPCE connection-oriented PDU codec (C706 chapter 12, MS-RPCE 2.2.2).

Every PDU is a small frozen dataclass with ``encode() -> bytes``; :func:`parse_pdu`
turns one complete fragment back into a dataclass and raises
:class:`RpcProtocolError` (carrying the bind_nak reject reason and the fault status a
server would answer with) on anything malformed. The codec is exact: for every PDU
``parse_pdu(pdu.encode()) == pdu`` and ``parse_pdu(b).encode() == b`` for well-formed
``b``. Only little-endian, ASCII, IEEE data representation is accepted (see
docs/wire-rpc.md, "Choices").
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, NamedTuple

from wmilab import hresult as hr
from wmilab.errors import WireError

__all__ = [
    "BTFN_KEEP_CONNECTION_ON_ORPHAN",
    "BTFN_SECURITY_CONTEXT_MULTIPLEXING",
    "DREP_LE",
    "NDR",
    "NDR64",
    "NULL_SYNTAX",
    "AlterContext",
    "AlterContextResp",
    "Auth3",
    "AuthLevel",
    "AuthVerifier",
    "Bind",
    "BindAck",
    "BindNak",
    "CoCancel",
    "ContextElement",
    "ContextResult",
    "Fault",
    "Orphaned",
    "PType",
    "Pdu",
    "Request",
    "Response",
    "RpcProtocolError",
    "Shutdown",
    "SyntaxId",
    "btfn_features",
    "encode_response_fragment",
    "parse_pdu",
    "peek_frag_length",
]


class PType(IntEnum):
    """PDU types (C706 12.6.4; MS-RPCE 2.2.2.1)."""

    REQUEST = 0
    PING = 1
    RESPONSE = 2
    FAULT = 3
    WORKING = 4
    NOCALL = 5
    REJECT = 6
    ACK = 7
    CL_CANCEL = 8
    FACK = 9
    CANCEL_ACK = 10
    BIND = 11
    BIND_ACK = 12
    BIND_NAK = 13
    ALTER_CONTEXT = 14
    ALTER_CONTEXT_RESP = 15
    AUTH3 = 16
    SHUTDOWN = 17
    CO_CANCEL = 18
    ORPHANED = 19


# pfc_flags (C706 12.6.3.1; MS-RPCE 2.2.2.3).
PFC_FIRST_FRAG = 0x01
PFC_LAST_FRAG = 0x02
PFC_PENDING_CANCEL = 0x04
PFC_SUPPORT_HEADER_SIGN = 0x04  # same bit, meaning in bind/bind_ack (MS-RPCE 2.2.2.3)
PFC_CONC_MPX = 0x10
PFC_DID_NOT_EXECUTE = 0x20
PFC_MAYBE = 0x40
PFC_OBJECT_UUID = 0x80


class AuthLevel(IntEnum):
    """RPC_C_AUTHN_LEVEL_* (MS-RPCE 2.2.1.1.8)."""

    DEFAULT = 0
    NONE = 1
    CONNECT = 2
    CALL = 3
    PKT = 4
    PKT_INTEGRITY = 5
    PKT_PRIVACY = 6


# RPC_C_AUTHN_* security providers (MS-RPCE 2.2.1.1.7).
AUTHN_NONE = 0x00
AUTHN_GSS_NEGOTIATE = 0x09
AUTHN_WINNT = 0x0A  # NTLM
AUTHN_GSS_KERBEROS = 0x10

# p_cont_def_result_t (C706 12.6.3.1; MS-RPCE 2.2.2.4 adds negotiate_ack).
RESULT_ACCEPTANCE = 0
RESULT_USER_REJECTION = 1
RESULT_PROVIDER_REJECTION = 2
RESULT_NEGOTIATE_ACK = 3

# p_provider_reason_t for context results (C706 12.6.3.1).
REASON_NOT_SPECIFIED = 0
REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED = 1
REASON_PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED = 2
REASON_LOCAL_LIMIT_EXCEEDED = 3

# p_reject_reason_t for bind_nak (C706 12.6.3.1; MS-RPCE 2.2.2.5).
REJECT_REASON_NOT_SPECIFIED = 0
REJECT_TEMPORARY_CONGESTION = 1
REJECT_LOCAL_LIMIT_EXCEEDED = 2
REJECT_CALLED_PADDR_UNKNOWN = 3
REJECT_PROTOCOL_VERSION_NOT_SUPPORTED = 4
REJECT_DEFAULT_CONTEXT_NOT_SUPPORTED = 5
REJECT_USER_DATA_NOT_READABLE = 6
REJECT_NO_PSAP_AVAILABLE = 7
REJECT_AUTHENTICATION_TYPE_NOT_RECOGNIZED = 8  # MS-RPCE 2.2.2.5
REJECT_INVALID_CHECKSUM = 9  # MS-RPCE 2.2.2.5

# Fault status codes (C706 appendix E; MS-ERREF 2.2 for the Win32 ones).
STATUS_ACCESS_DENIED = hr.RPC_S_ACCESS_DENIED  # from the status-code catalogue
STATUS_SEC_PKG_ERROR = hr.RPC_S_SEC_PKG_ERROR  # from the status-code catalogue
STATUS_BAD_STUB_DATA = hr.RPC_X_BAD_STUB_DATA  # from the status-code catalogue
NCA_S_OP_RNG_ERROR = hr.NCA_S_OP_RNG_ERROR  # from the status-code catalogue
NCA_S_UNK_IF = hr.NCA_S_UNK_IF  # from the status-code catalogue
NCA_S_PROTO_ERROR = hr.NCA_S_PROTO_ERROR  # from the status-code catalogue
NCA_S_FAULT_REMOTE_NO_MEMORY = hr.NCA_S_FAULT_REMOTE_NO_MEMORY  # from the status-code catalogue
NCA_S_INVALID_PRES_CONTEXT_ID = hr.NCA_S_INVALID_PRES_CONTEXT_ID  # from the status-code catalogue
NCA_S_UNSUPPORTED_AUTHN_LEVEL = hr.NCA_S_UNSUPPORTED_AUTHN_LEVEL  # from the status-code catalogue

# Bind-time feature negotiation bits (MS-RPCE 2.2.2.14).
BTFN_SECURITY_CONTEXT_MULTIPLEXING = 0x01
BTFN_KEEP_CONNECTION_ON_ORPHAN = 0x02

DREP_LE = b"\x10\x00\x00\x00"  # little-endian, ASCII, IEEE (C706 14.1)
HEADER_SIZE = 16
SEC_TRAILER_SIZE = 8
MAX_FRAG = 0xFFFF

_HDR = struct.Struct("<BBBB4sHHI")
_TRAILER = struct.Struct("<BBBBI")
_SYNTAX = struct.Struct("<16sHH")


class RpcProtocolError(WireError):
    """A PDU that violates C706/MS-RPCE framing.

    ``reject_reason`` is what a server puts in a bind_nak, ``status`` what it puts in a
    fault; ``call_id`` is set when the header was readable.
    """

    def __init__(
        self,
        message: str,
        *,
        reject_reason: int = REJECT_REASON_NOT_SPECIFIED,
        status: int = NCA_S_PROTO_ERROR,
        call_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reject_reason = reject_reason
        self.status = status
        self.call_id = call_id


@dataclass(frozen=True, order=True)
class SyntaxId:
    """An RPC_SYNTAX_IDENTIFIER: interface or transfer syntax UUID and version."""

    uuid: uuid.UUID
    major: int = 0
    minor: int = 0

    def encode(self) -> bytes:
        return _SYNTAX.pack(self.uuid.bytes_le, self.major, self.minor)

    @classmethod
    def decode(cls, data: bytes, offset: int = 0) -> SyntaxId:
        raw, major, minor = _SYNTAX.unpack_from(data, offset)
        return cls(uuid.UUID(bytes_le=raw), major, minor)

    def __str__(self) -> str:
        return f"{self.uuid}/{self.major}.{self.minor}"


# NDR 2.0 transfer syntax (C706 appendix I; MS-RPCE 2.2.4.12).
# GUIDs seen on the wire again and again (object UUIDs/IPIDs, IIDs, causality ids): uuid.UUID
# objects are immutable, so one per 16 octets is kept (bounded, cleared when full).
_GUIDS: dict[bytes, uuid.UUID] = {}
_GUIDS_MAX = 4096


def guid_from_bytes_le(raw: bytes) -> uuid.UUID:
    """``uuid.UUID(bytes_le=raw)`` for 16 octets, one shared object per value."""
    if type(raw) is not bytes:
        raw = bytes(raw)  # a bytearray or memoryview slice cannot be a key
    g = _GUIDS.get(raw)
    if g is None:
        if len(raw) != 16:
            raise ValueError("bytes_le is not a 16-char string")  # as uuid.UUID says
        if len(_GUIDS) >= _GUIDS_MAX:
            _GUIDS.clear()
        # What uuid.UUID(bytes_le=raw) does (the first three fields byte-swapped, then its
        # two slots set), without the argument checks of UUID.__init__: every new IPID is
        # first seen here.
        g = _new_object(_UUID)
        _set_slot(g, "int", int.from_bytes(raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:],
                                           "big"))
        _set_slot(g, "is_safe", _SAFE_UNKNOWN)
        _GUIDS[raw] = g
    return g


_UUID = uuid.UUID
_SAFE_UNKNOWN = uuid.SafeUUID.unknown
_new_object = object.__new__
_set_slot = object.__setattr__


NDR = SyntaxId(uuid.UUID("8a885d04-1ceb-11c9-9fe8-08002b104860"), 2, 0)
# NDR64 transfer syntax (MS-RPCE 2.2.4.13; negotiation 3.3.1.5.6).
NDR64 = SyntaxId(uuid.UUID("71710533-beba-4937-8319-b5dbef9ccc36"), 1, 0)
NULL_SYNTAX = SyntaxId(uuid.UUID(int=0), 0, 0)
_BTFN_PREFIX = uuid.UUID("6cb71c2c-9812-4540-0000-000000000000").bytes_le[:8]


def btfn_features(syntax: SyntaxId) -> int | None:
    """The BindTimeFeatureNegotiationBitmask if ``syntax`` is a BTFN transfer syntax.

    MS-RPCE 3.3.1.5.3: prefix 6CB71C2C-9812-4540, version 1.0; the eight octets after
    the prefix are the bitmask (MS-RPCE 2.2.2.14; only the first octet has bits).
    """
    raw = syntax.uuid.bytes_le
    if raw[:8] != _BTFN_PREFIX or (syntax.major, syntax.minor) != (1, 0):
        return None
    return raw[8]


@dataclass(frozen=True)
class AuthVerifier:
    """auth_verifier_co_t: the padding before it, the sec_trailer and the credentials.

    MS-RPCE 2.2.2.11. ``padding`` holds the actual pad octets that precede the trailer
    (their count is auth_pad_length); they are kept so that round trips are exact.
    """

    auth_type: int
    auth_level: int
    auth_context_id: int
    credentials: bytes = b""
    padding: bytes = b""
    reserved: int = 0

    @property
    def auth_pad_length(self) -> int:
        return len(self.padding)

    def encode(self) -> bytes:
        return (
            self.padding
            + _TRAILER.pack(
                self.auth_type,
                self.auth_level,
                len(self.padding),
                self.reserved,
                self.auth_context_id,
            )
            + self.credentials
        )


@dataclass(frozen=True)
class ContextElement:
    """p_cont_elem_t: one proposed presentation context."""

    context_id: int
    abstract_syntax: SyntaxId
    transfer_syntaxes: tuple[SyntaxId, ...]
    reserved: int = 0

    def encode(self) -> bytes:
        return (
            struct.pack("<HBB", self.context_id, len(self.transfer_syntaxes), self.reserved)
            + self.abstract_syntax.encode()
            + b"".join(t.encode() for t in self.transfer_syntaxes)
        )


@dataclass(frozen=True)
class ContextResult:
    """p_result_t: the answer to one presentation context."""

    result: int
    reason: int
    transfer_syntax: SyntaxId = NULL_SYNTAX

    def encode(self) -> bytes:
        return struct.pack("<HH", self.result, self.reason) + self.transfer_syntax.encode()


# ---------------------------------------------------------------------------------------
# PDUs


@dataclass(frozen=True)
class _PduBase:
    ptype: ClassVar[PType]

    def encode(self) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError


def _frame(
    ptype: PType,
    flags: int,
    call_id: int,
    body: bytes,
    auth: AuthVerifier | None,
    drep: bytes,
    minor: int,
) -> bytes:
    tail = auth.encode() if auth is not None else b""
    auth_len = len(auth.credentials) if auth is not None else 0
    frag_len = HEADER_SIZE + len(body) + len(tail)
    if frag_len > MAX_FRAG:
        raise RpcProtocolError(f"PDU of {frag_len} bytes does not fit in one fragment")
    header = _HDR.pack(5, minor, int(ptype), flags, drep, frag_len, auth_len, call_id)
    return header + body + tail


def _encode_syntax_list(elements: tuple[ContextElement, ...]) -> bytes:
    return struct.pack("<BBH", len(elements), 0, 0) + b"".join(e.encode() for e in elements)


@dataclass(frozen=True)
class Bind(_PduBase):
    """bind (C706 12.6.4.3)."""

    call_id: int
    contexts: tuple[ContextElement, ...]
    max_xmit_frag: int = 4280
    max_recv_frag: int = 4280
    assoc_group_id: int = 0
    flags: int = PFC_FIRST_FRAG | PFC_LAST_FRAG
    auth: AuthVerifier | None = None
    drep: bytes = DREP_LE
    minor_version: int = 0
    ptype: ClassVar[PType] = PType.BIND

    def body(self) -> bytes:
        return struct.pack(
            "<HHI", self.max_xmit_frag, self.max_recv_frag, self.assoc_group_id
        ) + _encode_syntax_list(self.contexts)

    def encode(self) -> bytes:
        return _frame(
            self.ptype, self.flags, self.call_id, self.body(), self.auth, self.drep,
            self.minor_version,
        )


@dataclass(frozen=True)
class AlterContext(Bind):
    """alter_context (C706 12.6.4.1): same layout as bind."""

    ptype: ClassVar[PType] = PType.ALTER_CONTEXT


@dataclass(frozen=True)
class BindAck(_PduBase):
    """bind_ack (C706 12.6.4.4)."""

    call_id: int
    results: tuple[ContextResult, ...]
    max_xmit_frag: int = 4280
    max_recv_frag: int = 4280
    assoc_group_id: int = 0
    # port_spec octets including the terminating NUL, e.g. b"135\x00"; b"" for length 0.
    secondary_address: bytes = b""
    flags: int = PFC_FIRST_FRAG | PFC_LAST_FRAG
    auth: AuthVerifier | None = None
    drep: bytes = DREP_LE
    minor_version: int = 0
    ptype: ClassVar[PType] = PType.BIND_ACK

    def body(self) -> bytes:
        out = struct.pack("<HHI", self.max_xmit_frag, self.max_recv_frag, self.assoc_group_id)
        port = self.secondary_address
        out += struct.pack("<H", len(port)) + port
        # p_result_list_t is 4-aligned relative to the PDU start (C706 12.6.4.4 pad2).
        out += b"\x00" * (-(HEADER_SIZE + len(out)) % 4)
        out += struct.pack("<BBH", len(self.results), 0, 0)
        return out + b"".join(r.encode() for r in self.results)

    def encode(self) -> bytes:
        return _frame(
            self.ptype, self.flags, self.call_id, self.body(), self.auth, self.drep,
            self.minor_version,
        )


@dataclass(frozen=True)
class AlterContextResp(BindAck):
    """alter_context_resp (C706 12.6.4.2): same layout as bind_ack."""

    ptype: ClassVar[PType] = PType.ALTER_CONTEXT_RESP


@dataclass(frozen=True)
class BindNak(_PduBase):
    """bind_nak (C706 12.6.4.5; MS-RPCE 2.2.2.9). ``extra`` keeps any trailing octets."""

    call_id: int
    reject_reason: int
    versions: tuple[tuple[int, int], ...] = ((5, 0),)
    extra: bytes = b""
    flags: int = PFC_FIRST_FRAG | PFC_LAST_FRAG
    drep: bytes = DREP_LE
    minor_version: int = 0
    ptype: ClassVar[PType] = PType.BIND_NAK

    def encode(self) -> bytes:
        body = struct.pack("<HB", self.reject_reason, len(self.versions))
        body += b"".join(struct.pack("<BB", a, b) for a, b in self.versions)
        return _frame(
            self.ptype, self.flags, self.call_id, body + self.extra, None, self.drep,
            self.minor_version,
        )


@dataclass(frozen=True)
class Auth3(_PduBase):
    """rpc_auth_3 (MS-RPCE 2.2.2.10): four pad octets, then the auth verifier."""

    call_id: int
    auth: AuthVerifier
    pad: bytes = b"\x00\x00\x00\x00"
    flags: int = PFC_FIRST_FRAG | PFC_LAST_FRAG
    drep: bytes = DREP_LE
    minor_version: int = 0
    ptype: ClassVar[PType] = PType.AUTH3

    def encode(self) -> bytes:
        return _frame(
            self.ptype, self.flags, self.call_id, self.pad, self.auth, self.drep,
            self.minor_version,
        )


@dataclass(frozen=True)
class Request(_PduBase):
    """request (C706 12.6.4.9). ``stub`` excludes the auth padding."""

    call_id: int
    opnum: int
    stub: bytes
    context_id: int = 0
    alloc_hint: int = 0
    object_uuid: uuid.UUID | None = None
    flags: int = PFC_FIRST_FRAG | PFC_LAST_FRAG
    auth: AuthVerifier | None = None
    drep: bytes = DREP_LE
    minor_version: int = 0
    ptype: ClassVar[PType] = PType.REQUEST

    def header_body(self) -> bytes:
        out = struct.pack("<IHH", self.alloc_hint, self.context_id, self.opnum)
        if self.object_uuid is not None:
            out += self.object_uuid.bytes_le
        return out

    def encode(self) -> bytes:
        flags = self.flags & ~PFC_OBJECT_UUID & 0xFF
        if self.object_uuid is not None:
            flags |= PFC_OBJECT_UUID  # C706 12.6.3.1: the object field is present iff set
        return _frame(
            self.ptype, flags, self.call_id, self.header_body() + self.stub, self.auth,
            self.drep, self.minor_version,
        )


@dataclass(frozen=True)
class Response(_PduBase):
    """response (C706 12.6.4.10). ``stub`` excludes the auth padding."""

    call_id: int
    stub: bytes
    context_id: int = 0
    alloc_hint: int = 0
    cancel_count: int = 0
    reserved: int = 0
    flags: int = PFC_FIRST_FRAG | PFC_LAST_FRAG
    auth: AuthVerifier | None = None
    drep: bytes = DREP_LE
    minor_version: int = 0
    ptype: ClassVar[PType] = PType.RESPONSE

    def header_body(self) -> bytes:
        return struct.pack(
            "<IHBB", self.alloc_hint, self.context_id, self.cancel_count, self.reserved
        )

    def encode(self) -> bytes:
        return _frame(
            self.ptype, self.flags, self.call_id, self.header_body() + self.stub, self.auth,
            self.drep, self.minor_version,
        )


_RESP_BODY = struct.Struct("<IHBB")
_ZERO_SIG = bytes(16)


def encode_response_fragment(call_id: int, stub: bytes, context_id: int, alloc_hint: int,
                             flags: int, auth_level: int = 0, auth_context_id: int = 0,
                             auth_pad: int = 0) -> bytes:
    """The octets of ``Response(...).encode()`` for one fragment, without the dataclasses.

    With ``auth_level`` > 0 the PDU carries an NTLM auth verifier (``auth_pad`` zero pad
    octets, the sec_trailer, a 16-octet zero signature to be filled in by signing), as
    ``Response(auth=AuthVerifier(AUTHN_WINNT, auth_level, auth_context_id, bytes(16),
    bytes(auth_pad)))`` encodes it. The server's hot path (one per ORPC reply).
    """
    body = _RESP_BODY.pack(alloc_hint, context_id, 0, 0)
    if auth_level:
        tail = (b"\x00" * auth_pad
                + _TRAILER.pack(AUTHN_WINNT, auth_level, auth_pad, 0, auth_context_id)
                + _ZERO_SIG)
        auth_len = 16
    else:
        tail, auth_len = b"", 0
    frag_len = HEADER_SIZE + 8 + len(stub) + len(tail)
    if frag_len > MAX_FRAG:
        raise RpcProtocolError(f"PDU of {frag_len} bytes does not fit in one fragment")
    return b"".join((_HDR.pack(5, 0, PType.RESPONSE, flags, DREP_LE, frag_len, auth_len,
                               call_id), body, stub, tail))


@dataclass(frozen=True)
class Fault(_PduBase):
    """fault (C706 12.6.4.7): status, reserved2, then an optional stub."""

    call_id: int
    status: int
    context_id: int = 0
    alloc_hint: int = 0
    cancel_count: int = 0
    reserved: int = 0
    reserved2: int = 0
    stub: bytes = b""
    flags: int = PFC_FIRST_FRAG | PFC_LAST_FRAG
    auth: AuthVerifier | None = None
    drep: bytes = DREP_LE
    minor_version: int = 0
    ptype: ClassVar[PType] = PType.FAULT

    def encode(self) -> bytes:
        body = struct.pack(
            "<IHBBII", self.alloc_hint, self.context_id, self.cancel_count, self.reserved,
            self.status, self.reserved2,
        )
        return _frame(
            self.ptype, self.flags, self.call_id, body + self.stub, self.auth, self.drep,
            self.minor_version,
        )


@dataclass(frozen=True)
class _Simple(_PduBase):
    call_id: int
    body: bytes = b""
    flags: int = PFC_FIRST_FRAG | PFC_LAST_FRAG
    auth: AuthVerifier | None = None
    drep: bytes = DREP_LE
    minor_version: int = 0

    def encode(self) -> bytes:
        return _frame(
            self.ptype, self.flags, self.call_id, self.body, self.auth, self.drep,
            self.minor_version,
        )


@dataclass(frozen=True)
class Shutdown(_Simple):
    """shutdown (C706 12.6.4.11): server to client, no body."""

    ptype: ClassVar[PType] = PType.SHUTDOWN


@dataclass(frozen=True)
class CoCancel(_Simple):
    """co_cancel (C706 12.6.4.6)."""

    ptype: ClassVar[PType] = PType.CO_CANCEL


@dataclass(frozen=True)
class Orphaned(_Simple):
    """orphaned (C706 12.6.4.8)."""

    ptype: ClassVar[PType] = PType.ORPHANED


Pdu = (
    Bind | AlterContext | BindAck | AlterContextResp | BindNak | Auth3 | Request | Response
    | Fault | Shutdown | CoCancel | Orphaned
)


# ---------------------------------------------------------------------------------------
# Parsing


class Header(NamedTuple):
    """The common 16-octet header (C706 12.6.3.1). A tuple: one per PDU parsed, made cheaply."""

    minor: int
    ptype: int
    flags: int
    drep: bytes
    frag_length: int
    auth_length: int
    call_id: int


def peek_frag_length(data: bytes | bytearray) -> int | None:
    """frag_length of the PDU at the start of ``data``, or None if under 10 octets.

    Raises RpcProtocolError if the header can already be seen to be unusable.
    """
    if len(data) < 10:
        return None
    if data[0] != 5:
        raise RpcProtocolError(
            f"RPC version {data[0]} is not 5",
            reject_reason=REJECT_PROTOCOL_VERSION_NOT_SUPPORTED,
        )
    if data[4] & 0xF0 != 0x10:
        # Choice: only little-endian senders are supported (docs/wire-rpc.md).
        raise RpcProtocolError(
            "big-endian data representation is not supported",
            reject_reason=REJECT_PROTOCOL_VERSION_NOT_SUPPORTED,
        )
    frag_len: int = struct.unpack_from("<H", data, 8)[0]
    if frag_len < HEADER_SIZE:
        raise RpcProtocolError(f"frag_length {frag_len} is shorter than the header")
    return frag_len


def parse_header(data: bytes) -> Header:
    """Parse and check the common header of one whole PDU."""
    if len(data) < HEADER_SIZE:
        raise RpcProtocolError(f"PDU of {len(data)} bytes is shorter than the header")
    vers, minor, ptype, flags, drep, frag_len, auth_len, call_id = _HDR.unpack_from(data)
    if vers != 5 or minor not in (0, 1):
        # C706 12.6.3.1 rpc_vers 5, rpc_vers_minor 0 (MS-RPCE 2.2.2.2 also allows 1).
        raise RpcProtocolError(
            f"RPC version {vers}.{minor} is not 5.0 or 5.1",
            reject_reason=REJECT_PROTOCOL_VERSION_NOT_SUPPORTED,
            call_id=call_id,
        )
    if drep[0] & 0xF0 != 0x10 or drep[0] & 0x0F != 0 or drep[1] != 0:
        # Choice: only little-endian, ASCII, IEEE senders (docs/wire-rpc.md).
        raise RpcProtocolError(
            f"data representation {drep.hex()} is not little-endian ASCII IEEE",
            reject_reason=REJECT_PROTOCOL_VERSION_NOT_SUPPORTED,
            call_id=call_id,
        )
    if frag_len != len(data):
        raise RpcProtocolError(
            f"frag_length {frag_len} does not match the {len(data)} bytes given",
            call_id=call_id,
        )
    if auth_len and HEADER_SIZE + SEC_TRAILER_SIZE + auth_len > frag_len:
        raise RpcProtocolError(
            f"auth_length {auth_len} does not fit in a {frag_len}-byte PDU", call_id=call_id
        )
    return Header(minor, ptype, flags, bytes(drep), frag_len, auth_len, call_id)


def _split_auth(
    data: bytes, hdr: Header, body_start: int
) -> tuple[bytes, AuthVerifier | None]:
    """Split the PDU body (from ``body_start``) from its auth verifier (with padding)."""
    if hdr.auth_length == 0:
        return data[body_start:], None
    trailer_at = hdr.frag_length - hdr.auth_length - SEC_TRAILER_SIZE
    if trailer_at < body_start:
        raise RpcProtocolError("the auth verifier overlaps the PDU body", call_id=hdr.call_id)
    a_type, a_level, pad_len, reserved, ctx = _TRAILER.unpack_from(data, trailer_at)
    if trailer_at - pad_len < body_start:
        raise RpcProtocolError(
            f"auth_pad_length {pad_len} is longer than the body", call_id=hdr.call_id
        )
    body_end = trailer_at - pad_len
    auth = AuthVerifier(
        auth_type=a_type,
        auth_level=a_level,
        auth_context_id=ctx,
        credentials=data[trailer_at + SEC_TRAILER_SIZE :],
        padding=data[body_end:trailer_at],
        reserved=reserved,
    )
    return data[body_start:body_end], auth


def _need(data: bytes, end: int, what: str, call_id: int) -> None:
    if end > len(data):
        raise RpcProtocolError(f"PDU too short for its {what}", call_id=call_id)


def _parse_contexts(body: bytes, offset: int, call_id: int) -> tuple[ContextElement, ...]:
    _need(body, offset + 4, "context list", call_id)
    count = body[offset]
    offset += 4
    out: list[ContextElement] = []
    for _ in range(count):
        _need(body, offset + 24, "context element", call_id)
        ctx_id, n_ts, reserved = struct.unpack_from("<HBB", body, offset)
        abstract = SyntaxId.decode(body, offset + 4)
        offset += 24
        _need(body, offset + 20 * n_ts, "transfer syntaxes", call_id)
        ts = tuple(SyntaxId.decode(body, offset + 20 * i) for i in range(n_ts))
        offset += 20 * n_ts
        if n_ts == 0:
            raise RpcProtocolError(
                f"presentation context {ctx_id} offers no transfer syntax", call_id=call_id
            )
        out.append(ContextElement(ctx_id, abstract, ts, reserved))
    if offset != len(body):
        raise RpcProtocolError("trailing octets after the context list", call_id=call_id)
    return tuple(out)


def _parse_bind(data: bytes, hdr: Header, cls: type[Bind]) -> Bind:
    body, auth = _split_auth(data, hdr, HEADER_SIZE)
    _need(body, 8, "bind header", hdr.call_id)
    max_xmit, max_recv, assoc = struct.unpack_from("<HHI", body)
    contexts = _parse_contexts(body, 8, hdr.call_id)
    return cls(
        call_id=hdr.call_id, contexts=contexts, max_xmit_frag=max_xmit,
        max_recv_frag=max_recv, assoc_group_id=assoc, flags=hdr.flags, auth=auth,
        drep=hdr.drep, minor_version=hdr.minor,
    )


def _parse_bind_ack(data: bytes, hdr: Header, cls: type[BindAck]) -> BindAck:
    body, auth = _split_auth(data, hdr, HEADER_SIZE)
    _need(body, 10, "bind_ack header", hdr.call_id)
    max_xmit, max_recv, assoc, port_len = struct.unpack_from("<HHIH", body)
    offset = 10
    _need(body, offset + port_len, "secondary address", hdr.call_id)
    port = body[offset : offset + port_len]
    if port and port[-1] != 0:
        raise RpcProtocolError("secondary address is not NUL-terminated", call_id=hdr.call_id)
    offset += port_len
    pad = -(HEADER_SIZE + offset) % 4
    _need(body, offset + pad + 4, "result list", hdr.call_id)
    offset += pad
    count = body[offset]
    offset += 4
    results: list[ContextResult] = []
    for _ in range(count):
        _need(body, offset + 24, "context result", hdr.call_id)
        res, reason = struct.unpack_from("<HH", body, offset)
        results.append(ContextResult(res, reason, SyntaxId.decode(body, offset + 4)))
        offset += 24
    if offset != len(body):
        raise RpcProtocolError("trailing octets after the result list", call_id=hdr.call_id)
    ack = cls(
        call_id=hdr.call_id, results=tuple(results), max_xmit_frag=max_xmit,
        max_recv_frag=max_recv, assoc_group_id=assoc, secondary_address=port,
        flags=hdr.flags, auth=auth, drep=hdr.drep, minor_version=hdr.minor,
    )
    return ack


def _parse_bind_nak(data: bytes, hdr: Header) -> BindNak:
    if hdr.auth_length:
        raise RpcProtocolError("bind_nak carries no auth verifier", call_id=hdr.call_id)
    body = data[HEADER_SIZE:]
    _need(body, 3, "bind_nak body", hdr.call_id)
    reason, count = struct.unpack_from("<HB", body)
    _need(body, 3 + 2 * count, "bind_nak versions", hdr.call_id)
    versions = tuple((body[3 + 2 * i], body[4 + 2 * i]) for i in range(count))
    return BindNak(
        call_id=hdr.call_id, reject_reason=reason, versions=versions,
        extra=body[3 + 2 * count :], flags=hdr.flags, drep=hdr.drep, minor_version=hdr.minor,
    )


def _parse_auth3(data: bytes, hdr: Header) -> Auth3:
    body, auth = _split_auth(data, hdr, HEADER_SIZE)
    if auth is None:
        raise RpcProtocolError("auth3 without an auth verifier", call_id=hdr.call_id)
    return Auth3(
        call_id=hdr.call_id, auth=auth, pad=body, flags=hdr.flags, drep=hdr.drep,
        minor_version=hdr.minor,
    )


def _parse_request(data: bytes, hdr: Header) -> Request:
    start = HEADER_SIZE + 8 + (16 if hdr.flags & PFC_OBJECT_UUID else 0)
    _need(data, start, "request header", hdr.call_id)
    alloc_hint, ctx_id, opnum = struct.unpack_from("<IHH", data, HEADER_SIZE)
    obj = None
    if hdr.flags & PFC_OBJECT_UUID:
        obj = guid_from_bytes_le(data[HEADER_SIZE + 8 : HEADER_SIZE + 24])
    stub, auth = _split_auth(data, hdr, start)
    return Request(
        call_id=hdr.call_id, opnum=opnum, stub=stub, context_id=ctx_id,
        alloc_hint=alloc_hint, object_uuid=obj, flags=hdr.flags & ~PFC_OBJECT_UUID & 0xFF,
        auth=auth, drep=hdr.drep, minor_version=hdr.minor,
    )


def _parse_response(data: bytes, hdr: Header) -> Response:
    start = HEADER_SIZE + 8
    _need(data, start, "response header", hdr.call_id)
    alloc_hint, ctx_id, cancel, reserved = struct.unpack_from("<IHBB", data, HEADER_SIZE)
    stub, auth = _split_auth(data, hdr, start)
    return Response(
        call_id=hdr.call_id, stub=stub, context_id=ctx_id, alloc_hint=alloc_hint,
        cancel_count=cancel, reserved=reserved, flags=hdr.flags, auth=auth, drep=hdr.drep,
        minor_version=hdr.minor,
    )


def _parse_fault(data: bytes, hdr: Header) -> Fault:
    start = HEADER_SIZE + 16
    _need(data, start, "fault body", hdr.call_id)
    alloc_hint, ctx_id, cancel, reserved, status, reserved2 = struct.unpack_from(
        "<IHBBII", data, HEADER_SIZE
    )
    stub, auth = _split_auth(data, hdr, start)
    return Fault(
        call_id=hdr.call_id, status=status, context_id=ctx_id, alloc_hint=alloc_hint,
        cancel_count=cancel, reserved=reserved, reserved2=reserved2, stub=stub,
        flags=hdr.flags, auth=auth, drep=hdr.drep, minor_version=hdr.minor,
    )


_SIMPLE: dict[int, type[Shutdown] | type[CoCancel] | type[Orphaned]] = {
    PType.SHUTDOWN: Shutdown,
    PType.CO_CANCEL: CoCancel,
    PType.ORPHANED: Orphaned,
}


def parse_pdu(data: bytes) -> Pdu:
    """Parse exactly one complete connection-oriented PDU."""
    data = bytes(data)
    hdr = parse_header(data)
    ptype = hdr.ptype
    if ptype == PType.BIND:
        return _parse_bind(data, hdr, Bind)
    if ptype == PType.ALTER_CONTEXT:
        return _parse_bind(data, hdr, AlterContext)
    if ptype == PType.BIND_ACK:
        return _parse_bind_ack(data, hdr, BindAck)
    if ptype == PType.ALTER_CONTEXT_RESP:
        return _parse_bind_ack(data, hdr, AlterContextResp)
    if ptype == PType.BIND_NAK:
        return _parse_bind_nak(data, hdr)
    if ptype == PType.AUTH3:
        return _parse_auth3(data, hdr)
    if ptype == PType.REQUEST:
        return _parse_request(data, hdr)
    if ptype == PType.RESPONSE:
        return _parse_response(data, hdr)
    if ptype == PType.FAULT:
        return _parse_fault(data, hdr)
    simple = _SIMPLE.get(ptype)
    if simple is not None:
        body, auth = _split_auth(data, hdr, HEADER_SIZE)
        return simple(
            call_id=hdr.call_id, body=body, flags=hdr.flags, auth=auth, drep=hdr.drep,
            minor_version=hdr.minor,
        )
    raise RpcProtocolError(
        f"PDU type {ptype} is not a connection-oriented PDU", call_id=hdr.call_id
    )
