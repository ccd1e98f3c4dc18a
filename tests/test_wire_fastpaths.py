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
from hypothesis import given
from hypothesis import strategies as st

from wmilab.wire import rpc
from wmilab.wire.dcom import NdrReader, NdrWriter, StubError
from wmilab.wire.ntlm import _HmacMd5

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
