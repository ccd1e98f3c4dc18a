"""Fragment sizing and per-PDU signing/sealing shared by both connection roles (MS-RPCE)."""

from __future__ import annotations

from wmilab.wire import rpc
from wmilab.wire.ntlm import NtlmSession
from wmilab.wire.rpc import AuthLevel, AuthVerifier

# MS-RPCE 3.3.3.5.4 (ms-rpce/f5a0d94f): "The combined length of the stub data for all
# fragments of a request SHOULD not exceed 4 megabytes. If it exceeds 4 megabytes, the
# server implementation SHOULD return a fault packet with the status field set to 0x00000005."
MAX_REQUEST_SIZE = 4 * 1024 * 1024
REQUEST_TOO_LARGE_STATUS = 0x00000005
MUST_RECV_FRAG_SIZE = 1432  # C706 ch. 12 rpc_c_assoc_must_recv_frag_size
SIG_LEN = 16  # NTLM MESSAGE_SIGNATURE (MS-NLMP 2.2.2.9)
REQ_HDR = 24
RESP_HDR = 24


def trailer_padding(length_before_trailer: int) -> bytes:
    """Pad so the sec_trailer starts 4-aligned (MS-RPCE 2.2.2.11)."""
    return b"\x00" * (-length_before_trailer % 4)


def protect_pdu(encoded: bytes, stub_start: int, enc_len: int, level: int,
             session: NtlmSession) -> bytes:
    """Sign (level 3-5) or seal (6) a PDU whose last 16 octets are a placeholder.

    The signature covers the whole PDU up to the signature, header included, and is
    computed over the plaintext (MS-RPCE 3.3.1.5.2.2; MS-NLMP 3.4.3).
    """
    msg = encoded[:-SIG_LEN]
    if level == AuthLevel.PKT_PRIVACY:
        sealed, sig = session.seal(encoded[stub_start : stub_start + enc_len], lambda _p: msg)
        return encoded[:stub_start] + sealed + encoded[stub_start + enc_len : -SIG_LEN] + sig
    return msg + session.sign(msg)


def unprotect_fragment(frag: bytes, stub_start: int, auth: AuthVerifier, level: int,
               session: NtlmSession) -> bytes | None:
    """Verify (and for privacy decrypt) one fragment; the plaintext stub, or None."""
    return unprotect_stub(frag, stub_start, auth.credentials, auth.auth_pad_length, level,
                          session)


def unprotect_stub(frag: bytes, stub_start: int, sig: bytes, pad: int, level: int,
                   session: NtlmSession) -> bytes | None:
    """unprotect_fragment from the verifier's signature and auth_pad_length alone."""
    trailer_at = len(frag) - len(sig) - rpc.SEC_TRAILER_SIZE
    if level == AuthLevel.PKT_PRIVACY:
        sealed = frag[stub_start:trailer_at]
        head, tail = frag[:stub_start], frag[trailer_at : len(frag) - len(sig)]
        plain = session.unseal(sealed, sig, lambda p: head + p + tail, clear_tail=pad)
        return None if plain is None else plain[: len(plain) - pad]
    if not session.verify(frag[: len(frag) - len(sig)], sig):
        return None
    return frag[stub_start : trailer_at - pad]


def split_stub(stub: bytes, room: int) -> list[bytes]:
    if not stub:
        return [b""]
    return [stub[i : i + room] for i in range(0, len(stub), room)]


def frag_room(max_frag: int, header: int, level: int) -> int:
    """Stub octets per fragment: a multiple of 8 (Choice, as Windows does)."""
    overhead = header + (rpc.SEC_TRAILER_SIZE + SIG_LEN + 3 if level >= AuthLevel.CALL else 0)
    return max(8, (max_frag - overhead) // 8 * 8)
