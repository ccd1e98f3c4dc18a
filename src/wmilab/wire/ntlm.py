"""NTLM (MS-NLMP) for both roles: messages, NTLMv2 verification, session security.

Sans-IO: nothing here reads a clock or a socket. The acceptor is given the FILETIME to
put in the CHALLENGE's MsvAvTimestamp, and a source of random octets (``os.urandom`` by
default) for the server challenge.

Logon policy is not decided here. :class:`NtlmAcceptor` hands the host's
:class:`Authenticator` a :class:`LogonAttempt` (domain, user, workstation, whether it is
an anonymous logon) with ``check_password`` / ``check_nt_hash`` functions that test a
candidate secret against the NTLMv2 response; the host returns an identity object (any
value it likes) or ``None`` to refuse. See docs/wire-rpc.md.

The hash and key-derivation primitives come from ``impacket.ntlm`` (MD4 NT hash,
HMAC-MD5, SIGNKEY/SEALKEY); RC4 from ``Cryptodome`` (an impacket dependency).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from Cryptodome.Cipher import ARC4

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4 as _OpenSslArc4
    from cryptography.hazmat.primitives.ciphers import Cipher as _OpenSslCipher
except ImportError:  # pragma: no cover - cryptography comes with impacket (pyOpenSSL)
    _OpenSslArc4 = None  # type: ignore[assignment, misc]
from impacket import ntlm as _imp

from wmilab.errors import WireError

__all__ = [
    "AcceptResult",
    "AuthenticateMessage",
    "Authenticator",
    "ChallengeMessage",
    "LogonAttempt",
    "NegotiateMessage",
    "NtlmAcceptor",
    "NtlmError",
    "NtlmInitiator",
    "NtlmServerNames",
    "NtlmSession",
    "encode_av_pairs",
    "parse_authenticate",
    "parse_av_pairs",
    "parse_challenge",
    "parse_negotiate",
]

# NegotiateFlags (MS-NLMP 2.2.2.5).
NEGOTIATE_UNICODE = 0x00000001
NEGOTIATE_OEM = 0x00000002
REQUEST_TARGET = 0x00000004
NEGOTIATE_SIGN = 0x00000010
NEGOTIATE_SEAL = 0x00000020
NEGOTIATE_DATAGRAM = 0x00000040
NEGOTIATE_LM_KEY = 0x00000080
NEGOTIATE_NTLM = 0x00000200
NEGOTIATE_ANONYMOUS = 0x00000800
NEGOTIATE_OEM_DOMAIN_SUPPLIED = 0x00001000
NEGOTIATE_OEM_WORKSTATION_SUPPLIED = 0x00002000
NEGOTIATE_ALWAYS_SIGN = 0x00008000
TARGET_TYPE_DOMAIN = 0x00010000
TARGET_TYPE_SERVER = 0x00020000
NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
NEGOTIATE_IDENTIFY = 0x00100000
REQUEST_NON_NT_SESSION_KEY = 0x00400000
NEGOTIATE_TARGET_INFO = 0x00800000
NEGOTIATE_VERSION = 0x02000000
NEGOTIATE_128 = 0x20000000
NEGOTIATE_KEY_EXCH = 0x40000000
NEGOTIATE_56 = 0x80000000

# AV_PAIR ids (MS-NLMP 2.2.2.1); none above 10 is ever sent.
AV_EOL = 0
AV_NB_COMPUTER_NAME = 1
AV_NB_DOMAIN_NAME = 2
AV_DNS_COMPUTER_NAME = 3
AV_DNS_DOMAIN_NAME = 4
AV_DNS_TREE_NAME = 5
AV_FLAGS = 6
AV_TIMESTAMP = 7
AV_SINGLE_HOST = 8
AV_TARGET_NAME = 9
AV_CHANNEL_BINDINGS = 10
AV_FLAG_MIC_PRESENT = 0x00000002  # MsvAvFlags bit (MS-NLMP 2.2.2.1)

SIGNATURE = b"NTLMSSP\x00"
NTLMSSP_REVISION_W2K3 = 0x0F  # MS-NLMP 2.2.2.10

# Flags the acceptor is willing to echo back when the client asks (MS-NLMP 3.2.5.1.1).
_ECHOED = (
    REQUEST_TARGET | NEGOTIATE_SIGN | NEGOTIATE_SEAL | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY | NEGOTIATE_VERSION | NEGOTIATE_128
    | NEGOTIATE_KEY_EXCH | NEGOTIATE_56 | NEGOTIATE_IDENTIFY
)
_ZERO16 = b"\x00" * 16


class NtlmError(WireError):
    """A malformed or out-of-sequence NTLM message."""


# ---------------------------------------------------------------------------------------
# Primitives


def _hmac_md5(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, "md5").digest()


def nt_hash(password: str) -> bytes:
    """NTOWFv1: MD4 of the UTF-16LE password (MS-NLMP 3.3.1)."""
    out: bytes = _imp.compute_nthash(password)
    return out


def response_key_nt(nt: bytes, user: str, domain: str) -> bytes:
    """NTOWFv2 (MS-NLMP 3.3.2): HMAC_MD5(NT hash, UPPER(user) + domain) in UTF-16LE."""
    return _hmac_md5(nt, (user.upper() + domain).encode("utf-16-le", "surrogatepass"))


def _xor(a: bytes, b: bytes) -> bytes:
    n = len(a)
    return (int.from_bytes(a, "little") ^ int.from_bytes(b[:n], "little")).to_bytes(n, "little")


def _rc4_stream(key: bytes) -> Callable[[bytes], bytes]:
    """An RC4 keystream XORed into the data it is given, call after call.

    cryptography's (OpenSSL) RC4 costs a third of pycryptodomex's on a 4 KiB PDU and a
    fifteenth on a 16-octet checksum; both come with impacket (cryptography through
    pyOpenSSL). pycryptodomex serves where cryptography is missing or refuses the key.
    """
    if _OpenSslArc4 is not None:
        try:
            encrypt: Callable[[bytes], bytes] = _OpenSslCipher(
                _OpenSslArc4(key), mode=None).encryptor().update
            return encrypt
        except Exception:  # an OpenSSL without RC4, or a key length it does not take
            pass
    fallback: Callable[[bytes], bytes] = ARC4.new(key).encrypt
    return fallback


def _rc4(key: bytes, data: bytes) -> bytes:
    return _rc4_stream(key)(data)


def _decode(raw: bytes, unicode: bool, what: str) -> str:
    if not unicode:
        return raw.decode("latin-1")  # Choice: OEM code page treated as Latin-1
    if len(raw) % 2:
        raise NtlmError(f"{what} has an odd number of bytes for UTF-16")
    return raw.decode("utf-16-le", "surrogatepass")


def _encode(text: str, unicode: bool) -> bytes:
    return text.encode("utf-16-le", "surrogatepass") if unicode else text.encode("latin-1")


def parse_av_pairs(data: bytes) -> list[tuple[int, bytes]]:
    """AV_PAIR list up to (not including) MsvAvEOL (MS-NLMP 2.2.2.1)."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    while True:
        if offset + 4 > len(data):
            raise NtlmError("AV_PAIR list is not terminated by MsvAvEOL")
        av_id, av_len = struct.unpack_from("<HH", data, offset)
        offset += 4
        if av_id == AV_EOL:
            return out
        if offset + av_len > len(data):
            raise NtlmError(f"AV_PAIR {av_id} runs past the end of the list")
        out.append((av_id, data[offset : offset + av_len]))
        offset += av_len


def encode_av_pairs(pairs: list[tuple[int, bytes]]) -> bytes:
    return b"".join(struct.pack("<HH", i, len(v)) + v for i, v in pairs) + b"\x00" * 4


def _version_bytes(version: tuple[int, int, int]) -> bytes:
    major, minor, build = version
    return struct.pack("<BBH3xB", major, minor, build, NTLMSSP_REVISION_W2K3)


# ---------------------------------------------------------------------------------------
# Messages


def _fields(data: bytes, offset: int, what: str) -> bytes:
    if offset + 8 > len(data):
        raise NtlmError(f"message too short for its {what} field")
    length, _maxlen, start = struct.unpack_from("<HHI", data, offset)
    if length == 0:
        return b""
    if start + length > len(data):
        raise NtlmError(f"{what} runs past the end of the message")
    return data[start : start + length]


def _min_payload_offset(data: bytes, field_offsets: tuple[int, ...]) -> int:
    starts = [len(data)]
    for off in field_offsets:
        length, _m, start = struct.unpack_from("<HHI", data, off)
        if length:
            starts.append(start)
    return min(starts)


def _check_header(data: bytes, msg_type: int, minimum: int) -> int:
    if len(data) < minimum:
        raise NtlmError(f"NTLM message of {len(data)} bytes is too short")
    if data[:8] != SIGNATURE:
        raise NtlmError("not an NTLMSSP message")
    got: int = struct.unpack_from("<I", data, 8)[0]
    if got != msg_type:
        raise NtlmError(f"expected NTLM message type {msg_type}, got {got}")
    flags: int = struct.unpack_from("<I", data, {1: 12, 2: 20, 3: 60}[msg_type])[0]
    return flags


def _pack_payload(
    fixed_len: int, items: list[bytes]
) -> tuple[list[tuple[int, int, int]], bytes]:
    fields: list[tuple[int, int, int]] = []
    payload = b""
    for item in items:
        fields.append((len(item), len(item), fixed_len + len(payload)))
        payload += item
    return fields, payload


@dataclass(frozen=True)
class NegotiateMessage:
    """NEGOTIATE_MESSAGE (MS-NLMP 2.2.1.1)."""

    flags: int
    domain: bytes = b""
    workstation: bytes = b""
    version: bytes | None = None

    def encode(self) -> bytes:
        fixed = 40 if self.version is not None else 32
        fields, payload = _pack_payload(fixed, [self.domain, self.workstation])
        out = SIGNATURE + struct.pack("<II", 1, self.flags)
        out += b"".join(struct.pack("<HHI", *f) for f in fields)
        if self.version is not None:
            out += self.version
        return out + payload


@dataclass(frozen=True)
class ChallengeMessage:
    """CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2)."""

    flags: int
    server_challenge: bytes
    target_name: bytes = b""
    target_info: bytes = b""
    version: bytes | None = None

    def encode(self) -> bytes:
        fields, payload = _pack_payload(56, [self.target_name, self.target_info])
        out = SIGNATURE + struct.pack("<I", 2) + struct.pack("<HHI", *fields[0])
        out += struct.pack("<I", self.flags) + self.server_challenge + b"\x00" * 8
        out += struct.pack("<HHI", *fields[1])
        out += self.version if self.version is not None else b"\x00" * 8
        return out + payload

    def av_pairs(self) -> list[tuple[int, bytes]]:
        return parse_av_pairs(self.target_info)


@dataclass(frozen=True)
class AuthenticateMessage:
    """AUTHENTICATE_MESSAGE (MS-NLMP 2.2.1.3). String fields are raw octets."""

    flags: int
    lm_response: bytes = b""
    nt_response: bytes = b""
    domain: bytes = b""
    user: bytes = b""
    workstation: bytes = b""
    encrypted_session_key: bytes = b""
    version: bytes | None = None
    mic: bytes | None = None

    def encode(self) -> bytes:
        fixed = 88 if self.mic is not None else (72 if self.version is not None else 64)
        items = [
            self.lm_response, self.nt_response, self.domain, self.user, self.workstation,
            self.encrypted_session_key,
        ]
        fields, payload = _pack_payload(fixed, items)
        out = SIGNATURE + struct.pack("<I", 3)
        out += b"".join(struct.pack("<HHI", *f) for f in fields)
        out += struct.pack("<I", self.flags)
        if fixed >= 72:
            out += self.version if self.version is not None else b"\x00" * 8
        if fixed == 88:
            out += self.mic if self.mic is not None else _ZERO16
        return out + payload


def parse_negotiate(data: bytes) -> NegotiateMessage:
    data = bytes(data)
    flags = _check_header(data, 1, 16)
    # Windows XP-era clients may send only the first 16 octets (MS-NLMP 2.2.1.1 note).
    if len(data) < 32:
        return NegotiateMessage(flags)
    domain = _fields(data, 16, "DomainName")
    workstation = _fields(data, 24, "Workstation")
    version = None
    if flags & NEGOTIATE_VERSION and _min_payload_offset(data, (16, 24)) >= 40:
        version = data[32:40]
    return NegotiateMessage(flags, domain, workstation, version)


def parse_challenge(data: bytes) -> ChallengeMessage:
    data = bytes(data)
    flags = _check_header(data, 2, 48)
    target_name = _fields(data, 12, "TargetName")
    target_info = _fields(data, 40, "TargetInfo")
    version = None
    if _min_payload_offset(data, (12, 40)) >= 56:
        version = data[48:56]
    return ChallengeMessage(flags, data[24:32], target_name, target_info, version)


def parse_authenticate(data: bytes) -> AuthenticateMessage:
    data = bytes(data)
    flags = _check_header(data, 3, 64)
    names = ("LmChallengeResponse", "NtChallengeResponse", "DomainName", "UserName",
             "Workstation", "EncryptedRandomSessionKey")
    offsets = (12, 20, 28, 36, 44, 52)
    lm, nt, domain, user, ws, key = (
        _fields(data, off, name) for off, name in zip(offsets, names, strict=True)
    )
    first = _min_payload_offset(data, offsets)
    version = data[64:72] if first >= 72 else None
    mic = data[72:88] if first >= 88 else None
    return AuthenticateMessage(flags, lm, nt, domain, user, ws, key, version=version, mic=mic)


# ---------------------------------------------------------------------------------------
# Session security (MS-NLMP 3.4)


class _Keystream:
    """An RC4 keystream that can be looked at before it is consumed."""

    def __init__(self, key: bytes) -> None:
        # The cipher is made on first use: an OpenSSL RC4 context is ~1 KiB, and a bound
        # connection that stays idle never needs one.
        self._key: bytes | None = key
        self._rc4: Callable[[bytes], bytes] | None = None
        self._buf = b""
        self._pos = 0  # keystream octets before it are consumed

    def _start(self) -> Callable[[bytes], bytes]:
        assert self._key is not None
        self._rc4, self._key = _rc4_stream(self._key), None
        return self._rc4

    def _encrypt(self, data: bytes) -> bytes:
        return (self._rc4 or self._start())(data)

    def peek(self, n: int) -> bytes:
        pos = self._pos
        if len(self._buf) - pos < n:
            rest = self._buf[pos:]
            self._buf = rest + self._encrypt(b"\x00" * max(n - len(rest), 4096))
            self._pos = pos = 0
        return self._buf[pos:pos + n]

    def consume(self, n: int) -> None:
        if len(self._buf) - self._pos < n:
            self.peek(n)
        self._pos += n

    def apply(self, data: bytes) -> bytes:
        if self._pos == len(self._buf):
            # Nothing peeked ahead (always so for the outbound direction): RC4 itself XORs
            # the next keystream octets into the data.
            return self._encrypt(data)
        out = _xor(data, self.peek(len(data)))
        self.consume(len(data))
        return out


class _HmacMd5:
    """HMAC_MD5 with one key (RFC 2104), its inner and outer pads hashed once.

    A session signs every PDU with the same key; starting from copies of the two padded
    MD5 states gives the same MAC as hmac.new(key, message, "md5") in about half the time.
    """

    def __init__(self, key: bytes) -> None:
        padded = (hashlib.md5(key).digest() if len(key) > 64 else key).ljust(64, b"\x00")
        self._inner = hashlib.md5(padded.translate(_IPAD))
        self._outer = hashlib.md5(padded.translate(_OPAD))

    def digest(self, message: bytes, prefix: bytes = b"") -> bytes:
        """HMAC_MD5(key, prefix + message), without joining the two first."""
        inner = self._inner.copy()
        if prefix:
            inner.update(prefix)
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_U32 = struct.Struct("<I")
_SIG_VERSION = b"\x01\x00\x00\x00"  # NTLMSSP_MESSAGE_SIGNATURE Version 1 (MS-NLMP 2.2.2.9.1)

# RFC 2104: the key XOR 0x36 (ipad) and XOR 0x5C (opad), octet by octet.
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class NtlmSession:
    """Signing and sealing with extended session security (MS-NLMP 3.4.3, 3.4.4.2).

    One keystream and one sequence number per direction: the initiator's outbound
    direction uses the client-to-server keys, the acceptor's the server-to-client ones.
    """

    def __init__(self, exported_session_key: bytes, flags: int, *, initiator: bool) -> None:
        self.flags = flags
        self.session_key = exported_session_key
        self.extended = bool(flags & NEGOTIATE_EXTENDED_SESSIONSECURITY)
        self.key_exch = bool(flags & NEGOTIATE_KEY_EXCH)
        if not self.extended:
            # Choice: NTLMv1-style session security is not implemented (docs/wire-rpc.md).
            self._out_sign = self._in_sign = b""
            self._out_ks = self._in_ks = _Keystream(exported_session_key or _ZERO16)
        else:
            c_sign: bytes = _imp.SIGNKEY(flags, exported_session_key, "Client")
            s_sign: bytes = _imp.SIGNKEY(flags, exported_session_key, "Server")
            c_seal: bytes = _imp.SEALKEY(flags, exported_session_key, "Client")
            s_seal: bytes = _imp.SEALKEY(flags, exported_session_key, "Server")
            if initiator:
                self._out_sign, self._in_sign = c_sign, s_sign
                self._out_ks, self._in_ks = _Keystream(c_seal), _Keystream(s_seal)
            else:
                self._out_sign, self._in_sign = s_sign, c_sign
                self._out_ks, self._in_ks = _Keystream(s_seal), _Keystream(c_seal)
        self.out_seq = 0
        self.in_seq = 0
        self._macs: dict[bytes, _HmacMd5] = {}
        self._in_mac: _HmacMd5 | None = None  # the two below, once a PDU method needs them
        self._out_mac: _HmacMd5 | None = None
        self._clear_tail = False  # the peer's last padded PDU left its padding unsealed

    def _require(self) -> None:
        if not self.extended:
            raise NtlmError("session security needs NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY")

    def _checksum(self, key: bytes, seq: int, message: bytes) -> bytes:
        mac = self._macs.get(key)
        if mac is None:
            mac = self._macs[key] = _HmacMd5(key)
        return mac.digest(message, _U32.pack(seq))[:8]

    def sign(self, message: bytes) -> bytes:
        """MAC of ``message`` with the next outbound sequence number (MS-NLMP 3.4.4.2)."""
        self._require()
        seq = self.out_seq
        checksum = self._checksum(self._out_sign, seq, message)
        if self.key_exch:
            checksum = self._out_ks.apply(checksum)
        self.out_seq = (seq + 1) & 0xFFFFFFFF
        return struct.pack("<I", 1) + checksum + struct.pack("<I", seq)

    def seal(self, to_encrypt: bytes, to_sign: Callable[[bytes], bytes]) -> tuple[bytes, bytes]:
        """Encrypt, then sign ``to_sign(plaintext)`` (MS-NLMP 3.4.3: seal is encrypt + MAC)."""
        self._require()
        sealed = self._out_ks.apply(to_encrypt)
        return sealed, self.sign(to_sign(to_encrypt))

    def _expected(self, message: bytes, ks_offset: int) -> bytes:
        checksum = self._checksum(self._in_sign, self.in_seq, message)
        if self.key_exch:
            checksum = _xor(checksum, self._in_ks.peek(ks_offset + 8)[ks_offset:])
        return struct.pack("<I", 1) + checksum + struct.pack("<I", self.in_seq)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Check an inbound signature; on success the inbound state advances."""
        self._require()
        if len(signature) != 16 or not hmac.compare_digest(
            self._expected(message, 0), signature
        ):
            return False
        if self.key_exch:
            self._in_ks.consume(8)
        self.in_seq = (self.in_seq + 1) & 0xFFFFFFFF
        return True

    # -- one PDU at a time (the RPC server's fast paths) ------------------------------------
    #
    # The same octets and state changes as seal/unseal above, for a PDU given as its parts:
    # the MAC takes the parts one after the other instead of their concatenation, and the
    # steps are inline rather than spread over _checksum, _Keystream.peek and the rest, as
    # these run for every request and reply (tests/test_wire_fastpaths.py holds them to the
    # general path).

    def seal_pdu(self, head: bytes, plain: bytes, trailer: bytes) -> bytes:
        """``head + sealed(plain) + trailer + signature`` of head + plain + trailer (the RPC
        header, the stub with its padding, the sec_trailer: MS-RPCE 3.3.1.5.2.2)."""
        ks = self._out_ks
        if not self.extended or ks._pos != len(ks._buf):
            sealed, sig = self.seal(plain, lambda p: head + p + trailer)
            return b"".join((head, sealed, trailer, sig))
        rc4 = ks._rc4 or ks._start()
        sealed = rc4(plain)
        seq = self.out_seq
        mac = self._out_mac or self._pdu_macs()[1]
        inner = mac._inner.copy()
        inner.update(_U32.pack(seq))
        inner.update(head)
        inner.update(plain)
        inner.update(trailer)
        outer = mac._outer.copy()
        outer.update(inner.digest())
        checksum = outer.digest()[:8]
        if self.key_exch:
            checksum = rc4(checksum)
        self.out_seq = (seq + 1) & 0xFFFFFFFF
        return b"".join((head, sealed, trailer, _SIG_VERSION, checksum, _U32.pack(seq)))

    def sign_pdu(self, parts: tuple[bytes, ...]) -> bytes:
        """``msg + sign(msg)`` for ``msg = b"".join(parts)`` (a PDU up to its signature)."""
        mac = self._out_mac or self._pdu_macs()[1]
        seq = self.out_seq
        inner = mac._inner.copy()
        inner.update(_U32.pack(seq))
        for part in parts:
            inner.update(part)
        outer = mac._outer.copy()
        outer.update(inner.digest())
        checksum = outer.digest()[:8]
        if self.key_exch:
            ks = self._out_ks
            checksum = ((ks._rc4 or ks._start())(checksum) if ks._pos == len(ks._buf)
                        else ks.apply(checksum))
        self.out_seq = (seq + 1) & 0xFFFFFFFF
        return b"".join((*parts, _SIG_VERSION, checksum, _U32.pack(seq)))

    def verify_pdu(self, frag: bytes, end: int) -> bool:
        """``verify(frag[:end], frag[end:])``."""
        mac = self._in_mac or self._pdu_macs()[0]
        signature = frag[end:]
        if len(signature) != 16:
            return False
        seq = _U32.pack(self.in_seq)
        inner = mac._inner.copy()
        inner.update(seq)
        inner.update(frag[:end])
        outer = mac._outer.copy()
        outer.update(inner.digest())
        checksum = outer.digest()[:8]
        ks = self._in_ks
        pos = 0
        if self.key_exch:
            if len(ks._buf) - ks._pos < 8:
                ks.peek(8)
            pos = ks._pos
            checksum = _xor(checksum, ks._buf[pos:pos + 8])
        if not hmac.compare_digest(b"".join((_SIG_VERSION, checksum, seq)), signature):
            return False
        if self.key_exch:
            ks._pos = pos + 8
        self.in_seq = (self.in_seq + 1) & 0xFFFFFFFF
        return True

    def unseal_pdu(self, frag: bytes, start: int, end: int, signature: bytes,
                   clear_tail: int) -> bytes | None:
        """``unseal(frag[start:end], signature, lambda p: frag[:start] + p + frag[end:...])``
        for a PDU whose signature follows ``frag[end:end + 8]`` (the sec_trailer); the
        plaintext, or None with the state unchanged."""
        self._require()
        if len(signature) != 16:
            return None
        sealed = frag[start:end]
        head = frag[:start]
        trailer = frag[end:end + 8]
        size = len(sealed)
        lengths: tuple[int, ...] = (size,)
        if 0 < clear_tail <= size:
            short = size - clear_tail
            lengths = (short, size) if self._clear_tail else (size, short)
        ks = self._in_ks
        mac = self._in_mac or self._pdu_macs()[0]
        seq = _U32.pack(self.in_seq)
        key_exch = self.key_exch
        for n in lengths:
            need = n + 8 if key_exch else n
            if len(ks._buf) - ks._pos < need:
                ks.peek(need)
            pos = ks._pos
            stream = ks._buf[pos:pos + need]
            plain = (int.from_bytes(sealed[:n], "little")
                     ^ int.from_bytes(stream[:n], "little")).to_bytes(n, "little") + sealed[n:]
            inner = mac._inner.copy()
            inner.update(seq)
            inner.update(head)
            inner.update(plain)
            inner.update(trailer)
            outer = mac._outer.copy()
            outer.update(inner.digest())
            checksum = outer.digest()[:8]
            if key_exch:
                checksum = _xor(checksum, stream[n:])
            if hmac.compare_digest(b"".join((_SIG_VERSION, checksum, seq)), signature):
                ks._pos = pos + need
                self.in_seq = (self.in_seq + 1) & 0xFFFFFFFF
                if n != size:
                    self._clear_tail = True
                elif clear_tail > 0:
                    self._clear_tail = False
                return plain
        return None

    def _mac(self, key: bytes) -> _HmacMd5:
        mac = self._macs.get(key)
        if mac is None:
            mac = self._macs[key] = _HmacMd5(key)
        return mac

    def _pdu_macs(self) -> tuple[_HmacMd5, _HmacMd5]:
        """The inbound and outbound MACs, kept on first use (NtlmError without extended
        session security, as _require)."""
        self._require()
        self._in_mac, self._out_mac = self._mac(self._in_sign), self._mac(self._out_sign)
        return self._in_mac, self._out_mac

    def unseal(
        self,
        sealed: bytes,
        signature: bytes,
        to_sign: Callable[[bytes], bytes],
        clear_tail: int = 0,
    ) -> bytes | None:
        """Decrypt ``sealed`` and verify ``signature`` over ``to_sign(plaintext)``.

        If ``clear_tail`` > 0 the sender may have left that many trailing octets (the
        RPC auth padding) unencrypted; both readings are tried and the one whose
        signature verifies is kept. Returns None (state unchanged) if neither verifies.
        """
        self._require()
        if len(signature) != 16:
            return None
        lengths = [len(sealed)]
        if 0 < clear_tail <= len(sealed):
            # A peer seals its padding always or never: the reading that verified last time
            # is tried first, saving a MAC per PDU for a peer that leaves it clear (aiowmi).
            short = len(sealed) - clear_tail
            lengths = [short, len(sealed)] if self._clear_tail else [len(sealed), short]
        for n in lengths:
            plain = _xor(sealed[:n], self._in_ks.peek(n)) + sealed[n:]
            if hmac.compare_digest(self._expected(to_sign(plain), n), signature):
                self._in_ks.consume(n + (8 if self.key_exch else 0))
                self.in_seq = (self.in_seq + 1) & 0xFFFFFFFF
                if n != len(sealed):
                    self._clear_tail = True
                elif clear_tail > 0:
                    self._clear_tail = False
                return plain
        return None


# ---------------------------------------------------------------------------------------
# Acceptor (server role)


@dataclass(frozen=True)
class NtlmServerNames:
    """What the CHALLENGE says about the server (MS-NLMP 2.2.1.2 and 3.2.5.1.1).

    ``domain_joined`` selects TargetName = NetBIOS domain with TARGET_TYPE_DOMAIN, else
    NetBIOS computer name with TARGET_TYPE_SERVER. A workgroup host passes its computer
    names as the domain names too, as Windows does.
    """

    netbios_computer: str
    netbios_domain: str
    dns_computer: str
    dns_domain: str
    dns_tree: str | None = None
    domain_joined: bool = False
    version: tuple[int, int, int] = (10, 0, 17763)

    def av_pairs(self, filetime: int) -> list[tuple[int, bytes]]:
        def u(s: str) -> bytes:
            return s.encode("utf-16-le")

        pairs = [
            (AV_NB_DOMAIN_NAME, u(self.netbios_domain)),
            (AV_NB_COMPUTER_NAME, u(self.netbios_computer)),
            (AV_DNS_DOMAIN_NAME, u(self.dns_domain)),
            (AV_DNS_COMPUTER_NAME, u(self.dns_computer)),
        ]
        if self.dns_tree:
            pairs.append((AV_DNS_TREE_NAME, u(self.dns_tree)))
        pairs.append((AV_TIMESTAMP, struct.pack("<Q", filetime & 0xFFFFFFFFFFFFFFFF)))
        return pairs


@dataclass
class LogonAttempt:
    """One AUTHENTICATE, as the host's :class:`Authenticator` sees it.

    ``check_password(pw)`` / ``check_nt_hash(h)`` return True when the candidate secret
    reproduces the client's NTLMv2 proof; the first success fixes the session key.
    For an anonymous attempt both always return False.
    """

    domain: str
    user: str
    workstation: str
    anonymous: bool
    ntlm_v2: bool
    _checker: Callable[[bytes], bool] = field(repr=False)

    def check_nt_hash(self, nt: bytes) -> bool:
        return self._checker(nt)

    def check_password(self, password: str) -> bool:
        return self._checker(nt_hash(password))


class Authenticator(Protocol):
    """Supplied by the host: decides whether a logon succeeds and as whom.

    ``logon`` returns any identity value (passed back in the RPC events) or None to
    refuse. It calls ``attempt.check_password`` for the stored password of the account
    it resolves; the wire layer knows nothing about accounts, Guest or anonymity rules.
    """

    def logon(self, attempt: LogonAttempt) -> object | None: ...


@dataclass(frozen=True)
class AcceptResult:
    """The outcome of one AUTHENTICATE."""

    identity: object | None
    session: NtlmSession | None
    domain: str
    user: str
    workstation: str
    anonymous: bool
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.identity is not None


class NtlmAcceptor:
    """Server side of one NTLM handshake: NEGOTIATE -> CHALLENGE -> AUTHENTICATE.

    Each acceptor issues one challenge and accepts exactly one AUTHENTICATE; a second
    one (a replay) raises NtlmError.
    """

    def __init__(
        self,
        names: NtlmServerNames,
        *,
        filetime: int,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.names = names
        self.filetime = filetime
        self._random = random_bytes
        self.state = "initial"
        self._negotiate = b""
        self._challenge = b""
        self._challenge_flags = 0
        self._server_challenge = b""

    def process_negotiate(self, token: bytes) -> bytes:
        if self.state != "initial":
            raise NtlmError(f"NEGOTIATE received in state {self.state}")
        neg = parse_negotiate(token)
        # MS-NLMP 3.2.5.1.1: answer with the intersection of what both sides support.
        flags = (neg.flags & _ECHOED) | NEGOTIATE_NTLM | NEGOTIATE_TARGET_INFO
        flags |= NEGOTIATE_UNICODE if neg.flags & NEGOTIATE_UNICODE else NEGOTIATE_OEM
        if flags & NEGOTIATE_EXTENDED_SESSIONSECURITY:
            flags &= ~NEGOTIATE_LM_KEY  # MS-NLMP 2.2.2.5: ESS wins over LM_KEY
        unicode = bool(flags & NEGOTIATE_UNICODE)
        target_name = b""
        if neg.flags & REQUEST_TARGET:
            # MS-NLMP 3.2.5.1.1: TargetName is the domain if joined, else the server.
            if self.names.domain_joined:
                flags |= TARGET_TYPE_DOMAIN
                target_name = _encode(self.names.netbios_domain, unicode)
            else:
                flags |= TARGET_TYPE_SERVER
                target_name = _encode(self.names.netbios_computer, unicode)
        self._server_challenge = self._random(8)
        if len(self._server_challenge) != 8:
            raise NtlmError("random source returned the wrong number of bytes")
        version = (
            _version_bytes(self.names.version) if flags & NEGOTIATE_VERSION else None
        )
        challenge = ChallengeMessage(
            flags=flags,
            server_challenge=self._server_challenge,
            target_name=target_name,
            target_info=encode_av_pairs(self.names.av_pairs(self.filetime)),
            version=version,
        ).encode()
        self._negotiate = bytes(token)
        self._challenge = challenge
        self._challenge_flags = flags
        self.state = "challenged"
        return challenge

    def process_authenticate(self, token: bytes, authenticator: Authenticator) -> AcceptResult:
        if self.state != "challenged":
            # MS-NLMP 3.2.5.1.2: a server challenge is used once; replays are refused.
            raise NtlmError(f"AUTHENTICATE received in state {self.state}")
        self.state = "failed"
        msg = parse_authenticate(token)
        unicode = bool(self._challenge_flags & NEGOTIATE_UNICODE)
        domain = _decode(msg.domain, unicode, "DomainName")
        user = _decode(msg.user, unicode, "UserName")
        workstation = _decode(msg.workstation, unicode, "Workstation")
        # MS-NLMP 3.2.5.1.2 / 3.3.2: anonymous = empty user, empty NT response, LM Z(1).
        anonymous = user == "" and msg.nt_response == b"" and msg.lm_response in (b"", b"\0")
        ntlm_v2 = len(msg.nt_response) > 24
        if not anonymous and ntlm_v2 and len(msg.nt_response) < 16 + 28:
            raise NtlmError("NTLMv2 response is too short")
        blob = msg.nt_response[16:]
        proof = msg.nt_response[:16]
        matched: list[bytes] = []

        def check(nt: bytes) -> bool:
            # Choice: only NTLMv2 responses are verified (docs/wire-rpc.md).
            if anonymous or not ntlm_v2 or len(nt) != 16:
                return False
            key = response_key_nt(nt, user, domain)
            ok = hmac.compare_digest(_hmac_md5(key, self._server_challenge + blob), proof)
            if ok and not matched:
                matched.append(_hmac_md5(key, proof))  # SessionBaseKey (MS-NLMP 3.3.2)
            return ok

        attempt = LogonAttempt(domain, user, workstation, anonymous, ntlm_v2, check)

        def fail(reason: str) -> AcceptResult:
            return AcceptResult(None, None, domain, user, workstation, anonymous, reason)

        identity = authenticator.logon(attempt)
        if identity is None:
            return fail("logon refused")
        # NTLMv2 KeyExchangeKey = SessionBaseKey (MS-NLMP 3.4.5.1); anonymous: zero key.
        kx_key = matched[0] if matched else _ZERO16
        flags = self._challenge_flags & (msg.flags | NEGOTIATE_UNICODE | NEGOTIATE_NTLM
                                         | NEGOTIATE_TARGET_INFO)
        if flags & NEGOTIATE_KEY_EXCH and msg.encrypted_session_key:
            if len(msg.encrypted_session_key) != 16:
                raise NtlmError("EncryptedRandomSessionKey is not 16 bytes")
            exported = _rc4(kx_key, msg.encrypted_session_key)  # MS-NLMP 3.2.5.1.2
        else:
            flags &= ~NEGOTIATE_KEY_EXCH
            exported = kx_key
        if ntlm_v2 and msg.mic is not None:
            try:
                av = dict(parse_av_pairs(blob[28:]))
            except NtlmError:
                av = {}
            av_flags = av.get(AV_FLAGS, b"\0\0\0\0")
            if len(av_flags) == 4 and struct.unpack("<I", av_flags)[0] & AV_FLAG_MIC_PRESENT:
                zeroed = bytes(token[:72]) + _ZERO16 + bytes(token[88:])
                mic = _hmac_md5(exported, self._negotiate + self._challenge + zeroed)
                if not hmac.compare_digest(mic, msg.mic):  # MS-NLMP 3.2.5.1.2 MIC check
                    return fail("MIC does not match")
        self.state = "done"
        session = NtlmSession(exported, flags, initiator=False)
        return AcceptResult(identity, session, domain, user, workstation, anonymous)


# ---------------------------------------------------------------------------------------
# Initiator (client role)

_CLIENT_FLAGS = (
    NEGOTIATE_UNICODE | REQUEST_TARGET | NEGOTIATE_SIGN | NEGOTIATE_SEAL | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN | NEGOTIATE_EXTENDED_SESSIONSECURITY | NEGOTIATE_TARGET_INFO
    | NEGOTIATE_128 | NEGOTIATE_KEY_EXCH | NEGOTIATE_56
)


class NtlmInitiator:
    """Client side of one NTLMv2 handshake with key exchange, signing and sealing.

    ``user == ""`` with no password/hash makes an anonymous AUTHENTICATE.
    """

    def __init__(
        self,
        user: str,
        password: str = "",
        domain: str = "",
        workstation: str = "",
        *,
        nt_hash_value: bytes | None = None,
        filetime: int = 0,
        random_bytes: Callable[[int], bytes] = os.urandom,
        version: tuple[int, int, int] | None = None,
    ) -> None:
        self.user = user
        self.domain = domain
        self.workstation = workstation
        self.anonymous = user == "" and password == "" and nt_hash_value is None
        self._nt = nt_hash_value if nt_hash_value is not None else nt_hash(password)
        self.filetime = filetime
        self._random = random_bytes
        self.state = "initial"
        self.session: NtlmSession | None = None
        self.challenge: ChallengeMessage | None = None  # the server's, once it came
        self.flags = _CLIENT_FLAGS | (NEGOTIATE_ANONYMOUS if self.anonymous else 0)
        # MS-NLMP 2.2.2.10: with ``version`` the client negotiates NEGOTIATE_VERSION, so the
        # server's CHALLENGE carries its own VERSION (debugging information only).
        self.version = _version_bytes(version) if version is not None else None
        if self.version is not None:
            self.flags |= NEGOTIATE_VERSION

    def negotiate(self) -> bytes:
        if self.state != "initial":
            raise NtlmError(f"negotiate() called in state {self.state}")
        self.state = "negotiated"
        return NegotiateMessage(self.flags, version=self.version).encode()

    def authenticate(self, challenge_token: bytes) -> bytes:
        if self.state != "negotiated":
            raise NtlmError(f"authenticate() called in state {self.state}")
        self.state = "failed"
        chal = parse_challenge(challenge_token)
        self.challenge = chal
        flags = self.flags & (chal.flags | NEGOTIATE_ANONYMOUS)
        flags |= chal.flags & (NEGOTIATE_UNICODE | NEGOTIATE_NTLM | NEGOTIATE_TARGET_INFO)
        unicode = bool(flags & NEGOTIATE_UNICODE)
        if self.anonymous:
            nt_resp, lm_resp, kx_key = b"", b"\x00", _ZERO16  # MS-NLMP 3.1.5.1.2
        else:
            av = dict(parse_av_pairs(chal.target_info))
            stamp = av.get(AV_TIMESTAMP) or struct.pack("<Q", self.filetime)
            client_challenge = self._random(8)
            key = response_key_nt(self._nt, self.user, self.domain)
            # MS-NLMP 3.3.2: temp = 1,1,Z(6),Time,ClientChallenge,Z(4),ServerName,Z(4)
            temp = (b"\x01\x01" + b"\x00" * 6 + stamp + client_challenge + b"\x00" * 4
                    + chal.target_info + b"\x00" * 4)
            proof = _hmac_md5(key, chal.server_challenge + temp)
            nt_resp = proof + temp
            lm_resp = _hmac_md5(key, chal.server_challenge + client_challenge) + client_challenge
            kx_key = _hmac_md5(key, proof)
        if flags & NEGOTIATE_KEY_EXCH:
            exported = self._random(16)
            enc_key = _rc4(kx_key, exported)
        else:
            exported, enc_key = kx_key, b""
        msg = AuthenticateMessage(
            flags=flags,
            lm_response=lm_resp,
            nt_response=nt_resp,
            domain=_encode(self.domain, unicode),
            user=_encode(self.user, unicode),
            workstation=_encode(self.workstation, unicode),
            encrypted_session_key=enc_key,
            version=self.version if flags & NEGOTIATE_VERSION else None,
        )
        self.session = NtlmSession(exported, flags, initiator=True)
        self.state = "done"
        return msg.encode()
