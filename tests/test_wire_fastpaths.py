"""The wire layer's fast paths give the same values and errors as the plain ones.

NdrReader reads with struct.unpack_from at aligned offsets, GUIDs come from a bounded cache,
NdrWriter pads only when it must, and the NTLM MAC hashes the sequence number and the message
without joining them: each is checked here against the straightforward computation.
"""

from __future__ import annotations

import hmac
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmilab.wire import dcom, ntlm, rpc
from wmilab.wire.dcom import NdrReader, NdrWriter, StubError, orpc
from wmilab.wire.ntlm import LogonAttempt, NtlmServerNames, _HmacMd5
from wmilab.wire.rpc import AuthLevel
from wmilab.wire.rpc_conn import CallReceived, ClientConnection, ClientCredentials, ServerConnection

_FORMATS = {"u16": ("<H", 2), "u32": ("<I", 4), "i32": ("<i", 4), "u64": ("<Q", 8)}


def _reference(data: bytes, ops: list[str]) -> list[object]:
    """What the reads give, computed the long way; "error" once data runs out."""
    pos, out = 0, []
    for op in ops:
        if op == "u8":
            if pos + 1 > len(data):
                return [*out, "error"]
            out.append(data[pos])
            pos += 1
            continue
        if op == "guid":
            pos += -pos % 4
            if pos + 16 > len(data):
                return [*out, "error"]
            out.append(uuid.UUID(bytes_le=data[pos:pos + 16]))
            pos += 16
            continue
        fmt, size = _FORMATS[op]
        pos += -pos % size
        if pos + size > len(data):
            return [*out, "error"]
        out.append(struct.unpack(fmt, data[pos:pos + size])[0])
        pos += size
    return out


@given(st.binary(max_size=80), st.lists(st.sampled_from(["u8", "u16", "u32", "i32", "u64",
                                                         "guid"]), max_size=12))
def test_ndr_reader_reads_what_the_octets_say(data: bytes, ops: list[str]) -> None:
    r = NdrReader(data, "test")
    got: list[object] = []
    for op in ops:
        try:
            got.append(getattr(r, op)())
        except StubError:
            got.append("error")
            break
    assert got == _reference(data, ops)


def test_truncated_read_names_where_and_how_much() -> None:
    r = NdrReader(b"\x01\x02\x03\x04\x05", "ExecQuery")
    assert r.u8() == 1
    with pytest.raises(StubError, match=r"truncated at byte 4 \(needs 4 more, has 1\)"):
        r.u32()


@given(st.lists(st.binary(min_size=16, max_size=16), max_size=50))
def test_guid_cache_gives_equal_uuids(raws: list[bytes]) -> None:
    for raw in raws:
        assert rpc.guid_from_bytes_le(raw) == uuid.UUID(bytes_le=raw)
        assert rpc.guid_from_bytes_le(raw) is rpc.guid_from_bytes_le(bytearray(raw))


def test_guid_cache_stays_bounded_and_correct() -> None:
    raws = [i.to_bytes(16, "little") for i in range(rpc._GUIDS_MAX + 10)]
    for raw in raws:
        rpc.guid_from_bytes_le(raw)
    assert len(rpc._GUIDS) <= rpc._GUIDS_MAX
    assert all(rpc.guid_from_bytes_le(raw) == uuid.UUID(bytes_le=raw) for raw in raws)


@given(st.lists(st.tuples(st.sampled_from(["u8", "u16", "u32", "i32", "u64"]),
                          st.integers(0, 2**31 - 1)), max_size=20))
def test_ndr_writer_pads_with_zeros_to_each_alignment(ops: list[tuple[str, int]]) -> None:
    w = NdrWriter()
    want = bytearray()
    for op, v in ops:
        getattr(w, op)(v & 0xFF if op == "u8" else v)
        if op == "u8":
            want += struct.pack("<B", v & 0xFF)
            continue
        fmt, size = _FORMATS[op]
        want += b"\x00" * (-len(want) % size)
        want += struct.pack(fmt, v & 0xFFFF if op == "u16" else v)
    assert w.getvalue() == bytes(want)


@given(st.binary(max_size=100), st.binary(max_size=200), st.binary(max_size=8))
def test_hmac_md5_with_prefix_is_rfc2104(key: bytes, message: bytes, prefix: bytes) -> None:
    want = hmac.new(key, prefix + message, "md5").digest()
    assert _HmacMd5(key).digest(message, prefix) == want
    assert _HmacMd5(key).digest(prefix + message) == want


@given(st.integers(0, 2**32 - 1), st.binary(max_size=300), st.integers(0, 0xFFFF),
       st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2, 3]),
       st.sampled_from([0, 2, 4, 5, 6]), st.integers(0, 2**32 - 1), st.integers(0, 7))
def test_response_fragment_octets_equal_the_dataclass_encoding(
        call_id: int, stub: bytes, ctx: int, hint: int, flags: int, level: int,
        auth_ctx: int, pad: int) -> None:
    auth = (rpc.AuthVerifier(rpc.AUTHN_WINNT, level, auth_ctx, bytes(16), bytes(pad))
            if level else None)
    want = rpc.Response(call_id=call_id, stub=stub, context_id=ctx, alloc_hint=hint,
                        flags=flags, auth=auth).encode()
    got = rpc.encode_response_fragment(call_id, stub, ctx, hint, flags, level, auth_ctx,
                                       pad if level else 0)
    assert got == want


def test_response_fragment_too_big_is_refused_like_the_dataclass() -> None:
    with pytest.raises(rpc.RpcProtocolError, match="does not fit in one fragment"):
        rpc.encode_response_fragment(1, bytes(0xFFFF), 0, 0, 3)


# -- ServerConnection's fast path (_fast_request, one-fragment replies) against the general
# one: same events, same octets queued (replies included), same state after every PDU.

_ECHO = rpc.SyntaxId(uuid.UUID("6b5df4d4-3d4b-4a2f-9a0e-0c1f2e3d4c5b"), 1, 0)
_NAMES = NtlmServerNames("HOSTB", "HOSTB", "hostb", "hostb")


class _Alice:
    def logon(self, attempt: LogonAttempt) -> object | None:
        return "alice" if attempt.user == "alice" and attempt.check_password("pw") else None


def _servers(level: int) -> tuple[ClientConnection, list[ServerConnection]]:
    """One client and two servers in the same state (same randomness), one taking the fast
    path for requests and one not."""
    servers = [ServerConnection([_ECHO], _Alice(), ntlm_names=_NAMES, filetime=lambda: 7,
                                random_bytes=lambda n: b"\x5a" * n) for _ in range(2)]
    servers[1].fast_path = False
    cli = ClientConnection(credentials=ClientCredentials("alice", "pw", "HOSTB"),
                           auth_level=level)
    cli.bind(_ECHO)
    bind = cli.data_to_send()
    acks = [srv.receive_data(bind) and srv.data_to_send() for srv in servers]
    assert acks[0] == acks[1]
    cli.receive_data(acks[0])
    auth3 = cli.data_to_send()
    for srv in servers:
        srv.receive_data(auth3)
    return cli, servers


_SIZES = st.one_of(st.integers(0, 40), st.integers(80, 300), st.just(9000))  # 9000: fragments
_STEP = st.tuples(
    st.sampled_from(["call", "call", "flip", "cut", "again", "unsigned-ctx", "big"]),
    st.builds(lambda n, b: bytes((i * 7 + b) & 0xFF for i in range(n)), _SIZES,
              st.integers(0, 255)), st.integers(0, 40), st.booleans())


@settings(deadline=None)  # NTLM over up to 9000-octet stubs: slow on a loaded machine
@given(st.sampled_from([AuthLevel.PKT_INTEGRITY, AuthLevel.PKT_PRIVACY]),
       st.lists(_STEP, min_size=1, max_size=8))
def test_fast_request_path_equals_the_general_one(level: int,
                                                  steps: list[tuple[str, bytes, int, bool]]
                                                  ) -> None:
    cli, (fast, slow) = _servers(level)
    last = b""
    for kind, stub, where, with_object in steps:
        cli.request(3, stub, object_uuid=uuid.UUID(int=where) if with_object else None)
        pdu = cli.data_to_send()
        if kind == "flip":  # one octet changed anywhere: header, stub, trailer or signature
            at = where * 7 % len(pdu)
            pdu = pdu[:at] + bytes([pdu[at] ^ 0x41]) + pdu[at + 1:]
        elif kind == "cut":
            pdu = pdu[: max(1, len(pdu) - 1 - where)]
        elif kind == "again" and last:
            pdu = last  # a replay: same call id and sequence number
        elif kind == "unsigned-ctx":
            pdu = pdu[:20] + bytes([9]) + pdu[21:]  # an unknown presentation context id
        elif kind == "big":
            fast.max_request_size = slow.max_request_size = len(stub) // 2
        last = pdu
        got = [srv.receive_data(pdu) for srv in (fast, slow)]
        assert repr(got[0]) == repr(got[1])
        for srv, events in zip((fast, slow), got, strict=True):
            for ev in events:
                if isinstance(ev, CallReceived):
                    srv.send_response(ev.call_id, ev.stub[::-1])
        assert fast.data_to_send() == slow.data_to_send()
        assert _state(fast) == _state(slow)
    # Both still agree on the next signature (the NTLM sequence numbers moved alike).
    if not fast.closed:
        sec_f, sec_s = fast.security[cli_ctx(fast)], slow.security[cli_ctx(slow)]
        assert sec_f.session is not None and sec_s.session is not None
        assert (sec_f.session.in_seq, sec_f.session.out_seq) == (
            sec_s.session.in_seq, sec_s.session.out_seq)


def _state(srv: ServerConnection) -> tuple[object, ...]:
    partial = {cid: (p.opnum, p.context_id, p.object_uuid, p.size, p.chunks)
               for cid, p in srv._partial.items()}
    return srv.state, srv.pending_calls(), partial, sorted(srv._discard), bytes(srv._buf)


def cli_ctx(srv: ServerConnection) -> int:
    return next(iter(srv.security))


def test_fast_request_path_is_taken_for_a_signed_call() -> None:
    cli, (fast, _slow) = _servers(AuthLevel.PKT_PRIVACY)
    cli.request(3, b"hello", object_uuid=uuid.UUID(int=5))
    pdu = cli.data_to_send()
    events: list[object] = []
    assert fast._fast_request(pdu, events)  # type: ignore[arg-type]
    assert [type(e) for e in events] == [CallReceived]
    assert events[0].stub.startswith(b"hello")  # type: ignore[attr-defined]


def _orpcthis_long_way(r: NdrReader) -> tuple[object, ...]:
    """ORPCTHIS read field by field (MS-DCOM 2.2.13.3), as read_orpcthis did before."""
    major, minor, flags = r.u16(), r.u16(), r.u32()
    r.u32()
    cid = r.guid()
    ext = r.ptr()
    if ext:  # where the stub is not at offset 0 the extents pointer may be set
        orpc._skip_extent_array(r)
    return (major, minor), flags, cid, bool(ext)


@given(st.binary(max_size=48), st.integers(0, 3))
def test_orpcthis_read_in_one_unpack_equals_the_long_way(data: bytes, skip: int) -> None:
    data = data if len(data) < 28 else data[:28] + b"\x00\x00\x00\x00" + data[32:]  # no extents
    results = []
    for read in (lambda r: (lambda t: (t.version, t.flags, t.cid, t.has_extensions))(
            dcom.read_orpcthis(r)), _orpcthis_long_way):
        r = NdrReader(data, "test")
        r.pos = skip  # not at the start of the stub: the field-by-field reading serves
        try:
            results.append((read(r), r.pos))
        except StubError as e:
            results.append((str(e), -1))
    assert results[0] == results[1]


@given(st.integers(0, 2**32 - 1))
def test_orpc_hresult_reply_equals_the_ndr_writer(hresult: int) -> None:
    w = NdrWriter()
    dcom.write_orpcthat(w)
    w.u32(hresult)
    assert dcom.build_orpc_hresult_reply(hresult) == w.getvalue()


# -- NTLM session security, one PDU at a time -------------------------------------------------

_FLAGS = st.sampled_from([
    ntlm.NEGOTIATE_EXTENDED_SESSIONSECURITY | ntlm.NEGOTIATE_128 | ntlm.NEGOTIATE_SEAL
    | ntlm.NEGOTIATE_KEY_EXCH,
    ntlm.NEGOTIATE_EXTENDED_SESSIONSECURITY | ntlm.NEGOTIATE_128 | ntlm.NEGOTIATE_SEAL,
])
# A PDU as the RPC layer hands it over: header, stub, auth padding, sec_trailer.
_PDU = st.tuples(st.binary(min_size=16, max_size=40), st.binary(max_size=300),
                 st.integers(0, 3), st.binary(min_size=8, max_size=8))


def _pair(flags: int) -> tuple[ntlm.NtlmSession, ntlm.NtlmSession, ntlm.NtlmSession]:
    """A client and two servers in the same state, one for each way of doing it."""
    key = bytes(range(16))
    return (ntlm.NtlmSession(key, flags, initiator=True),
            ntlm.NtlmSession(key, flags, initiator=False),
            ntlm.NtlmSession(key, flags, initiator=False))


def _session_state(s: ntlm.NtlmSession) -> tuple[object, ...]:
    ks_in, ks_out = s._in_ks, s._out_ks
    return (s.in_seq, s.out_seq, s._clear_tail, ks_in._buf[ks_in._pos:ks_in._pos + 64],
            ks_out._buf[ks_out._pos:ks_out._pos + 64])


@given(_FLAGS, st.lists(st.tuples(_PDU, st.sampled_from(["sealed", "clear-tail", "tampered",
                                                         "replay"])), min_size=1, max_size=6))
def test_unseal_pdu_and_seal_pdu_equal_unseal_and_seal(
        flags: int, steps: list[tuple[tuple[bytes, bytes, int, bytes], str]]) -> None:
    """The server's per-PDU unsealing and sealing (rpc_conn fast paths) give the octets and
    leave the state that unseal and seal give, for padding sealed or left clear (aiowmi)."""
    cli, fast, slow = _pair(flags)
    last = None
    for (head, stub, pad, trailer), kind in steps:
        plain = stub + b"\x00" * pad
        n = len(plain) - pad if kind == "clear-tail" else len(plain)
        rest = plain[n:]
        sealed, sig = cli.seal(plain[:n], lambda p: b"".join((head, p, rest, trailer)))  # noqa: B023
        frag = head + sealed + rest + trailer + sig
        if kind == "tampered":
            frag = frag[:len(head)] + bytes([frag[len(head)] ^ 1]) + frag[len(head) + 1:] \
                if len(plain) else frag[:-1] + bytes([frag[-1] ^ 1])
        elif kind == "replay" and last is not None:
            frag = last
        last = frag
        end = len(frag) - 16 - 8
        got_fast = fast.unseal_pdu(frag, len(head), end, frag[end + 8:], pad)
        h, t = frag[:len(head)], frag[end:end + 8]
        got_slow = slow.unseal(frag[len(head):end], frag[end + 8:],
                               lambda p: h + p + t, clear_tail=pad)  # noqa: B023
        assert got_fast == got_slow
        assert _session_state(fast) == _session_state(slow)
        reply = stub[::-1] + b"\x00" * pad
        sealed_s, sig_s = slow.seal(reply, lambda p: head + p + trailer)  # noqa: B023
        assert fast.seal_pdu(head, reply, trailer) == head + sealed_s + trailer + sig_s
        assert _session_state(fast) == _session_state(slow)


@given(_FLAGS, st.lists(st.tuples(_PDU, st.sampled_from(["signed", "tampered", "replay"])),
                        min_size=1, max_size=6))
def test_verify_pdu_and_sign_pdu_equal_verify_and_sign(
        flags: int, steps: list[tuple[tuple[bytes, bytes, int, bytes], str]]) -> None:
    cli, fast, slow = _pair(flags)
    last = None
    for (head, stub, pad, trailer), kind in steps:
        msg = head + stub + b"\x00" * pad + trailer
        frag = msg + cli.sign(msg)
        if kind == "tampered":
            frag = frag[:3] + bytes([frag[3] ^ 0x10]) + frag[4:]
        elif kind == "replay" and last is not None:
            frag = last
        last = frag
        end = len(frag) - 16
        assert fast.verify_pdu(frag, end) == slow.verify(frag[:end], frag[end:])
        assert _session_state(fast) == _session_state(slow)
        parts = (head, stub[::-1], b"\x00" * pad, trailer)
        joined = b"".join(parts)
        assert fast.sign_pdu(parts) == joined + slow.sign(joined)
        assert _session_state(fast) == _session_state(slow)


# -- ExecQuery read with three unpacks -------------------------------------------------------


@given(st.text(max_size=40), st.text(max_size=200), st.integers(0, 2**32 - 1),
       st.sampled_from(["as-is", "cut", "flip", "context", "extensions"]), st.integers(0, 400))
def test_exec_query_fast_read_equals_the_ndr_reader(language: str, query: str, flags: int,
                                                    kind: str, where: int) -> None:
    from wmilab.wire import wmi

    stub = wmi.build_exec_query_request(query, flags, language)
    if kind == "cut":
        stub = stub[:where % (len(stub) + 1)]
    elif kind == "flip":
        at = where % len(stub)
        stub = stub[:at] + bytes([stub[at] ^ 0xFF]) + stub[at + 1:]
    elif kind == "context":  # a pCtx pointer: an object follows, the NDR reader's job
        stub = stub[:-4] + struct.pack("<I", 0x00020008)
    elif kind == "extensions":
        stub = stub[:28] + struct.pack("<I", 0x00020000) + stub[32:]
    fast = wmi._parse_exec_query_fast(wmi.Op.EXEC_QUERY, stub)
    if fast is None:
        return  # declined: parse_wbem_services reads it the general way
    general = wmi._parse_wbem_services(wmi.Op.EXEC_QUERY, stub)
    assert repr(fast) == repr(general)
    assert wmi.parse_wbem_services(wmi.Op.EXEC_QUERY, stub) == general


def test_exec_query_fast_read_is_taken_for_impacket_and_aiowmi_requests() -> None:
    from wmilab.wire import wmi

    stub = wmi.build_exec_query_request("SELECT * FROM Win32_OperatingSystem")
    fast = wmi._parse_exec_query_fast(20, stub)
    assert fast is not None and fast.query == "SELECT * FROM Win32_OperatingSystem"
    assert fast.query_language == "WQL" and fast.semisync and fast.forward_only
