"""DUALSTRINGARRAY (MS-DCOM 2.2.19): string and security bindings, packed and NDR forms."""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from wmilab.wire.dcom.constants import (
    RPC_C_AUTHN_GSS_KERBEROS,
    RPC_C_AUTHN_GSS_NEGOTIATE,
    RPC_C_AUTHN_NONE,
    RPC_C_AUTHN_WINNT,
    TOWER_NCACN_IP_TCP,
)
from wmilab.wire.dcom.ndr import NdrReader, NdrWriter, StubError


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
        raise ValueError("a DUALSTRINGARRAY needs at least one network address")
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
    # The first UTF-16 NUL at an even distance from ``pos`` (bytes.find, not a loop per char).
    end = body.find(b"\x00\x00", pos)
    while end != -1 and (end - pos) % 2:
        end = body.find(b"\x00\x00", end + 1)
    if end == -1:
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
