"""Hypothesis fuzzing: parsers and state machines raise only their own errors, never hang."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import get_args

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wmilab.wire import ntlm, rpc
from wmilab.wire.ntlm import LogonAttempt, NtlmAcceptor, NtlmError, NtlmInitiator
from wmilab.wire.rpc import AuthVerifier, ContextElement, RpcProtocolError, SyntaxId
from wmilab.wire.rpc_conn import (
    CallReceived,
    ClientConnection,
    ClientCredentials,
    Event,
    ProtocolViolation,
    ServerConnection,
)

ECHO = SyntaxId(uuid.UUID("6b5df4d4-3d4b-4a2f-9a0e-0c1f2e3d4c5b"), 1, 0)
NAMES = ntlm.NtlmServerNames("HOSTB", "HOSTB", "hostb", "hostb")
FUZZ = settings(max_examples=int(os.environ.get("WMILAB_FUZZ_EXAMPLES", "300")), deadline=2000,
                suppress_health_check=[HealthCheck.too_slow])


class Accounts:
    def logon(self, attempt: LogonAttempt) -> object | None:
        return "alice" if attempt.check_password("pw") else None


def _pdu_prefix(ptype: int) -> st.SearchStrategy[bytes]:
    """A plausible header followed by random octets, with frag_length made to match."""

    def build(flags: int, auth_len: int, body: bytes) -> bytes:
        n = 16 + len(body)
        return (bytes([5, 0, ptype, flags]) + b"\x10\0\0\0" + n.to_bytes(2, "little")
                + auth_len.to_bytes(2, "little") + b"\x01\0\0\0" + body)

    return st.builds(build, st.integers(0, 255), st.integers(0, 64),
                     st.binary(max_size=200))


ANY_PDU_BYTES = st.one_of(
    st.binary(max_size=300),
    st.integers(0, 20).flatmap(_pdu_prefix),
)


@FUZZ
@given(ANY_PDU_BYTES)
def test_parse_pdu_raises_only_rpc_protocol_error(data: bytes) -> None:
    try:
        pdu = rpc.parse_pdu(data)
    except RpcProtocolError:
        return
    # Whatever parses re-encodes to something that parses the same way.
    assert rpc.parse_pdu(pdu.encode()) == pdu


syntaxes = st.builds(SyntaxId, st.uuids(), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
verifiers = st.builds(
    AuthVerifier, st.integers(0, 255), st.integers(0, 255), st.integers(0, 2**32 - 1),
    st.binary(min_size=1, max_size=40), st.binary(max_size=7),
)
pdus = st.one_of(
    st.builds(rpc.Request, call_id=st.integers(0, 2**32 - 1), opnum=st.integers(0, 0xFFFF),
              stub=st.binary(max_size=100), context_id=st.integers(0, 0xFFFF),
              object_uuid=st.none() | st.uuids(), flags=st.integers(0, 0x7F),
              auth=st.none() | verifiers),
    st.builds(rpc.Response, call_id=st.integers(0, 2**32 - 1), stub=st.binary(max_size=100),
              auth=st.none() | verifiers),
    st.builds(rpc.Bind, call_id=st.integers(0, 2**32 - 1),
              contexts=st.lists(st.builds(ContextElement, st.integers(0, 0xFFFF), syntaxes,
                                          st.lists(syntaxes, min_size=1, max_size=3)
                                          .map(tuple)), max_size=4).map(tuple),
              auth=st.none() | verifiers),
    st.builds(rpc.Auth3, call_id=st.integers(0, 2**32 - 1), auth=verifiers),
    st.builds(rpc.Fault, call_id=st.integers(0, 2**32 - 1), status=st.integers(0, 2**32 - 1)),
)


@FUZZ
@given(pdus)
def test_generated_pdus_round_trip(pdu: rpc.Pdu) -> None:
    assert rpc.parse_pdu(pdu.encode()) == pdu


@FUZZ
@given(st.lists(ANY_PDU_BYTES, max_size=6), st.integers(1, 50))
def test_server_connection_survives_garbage(chunks: list[bytes], step: int) -> None:
    srv = ServerConnection([ECHO], Accounts(), ntlm_names=NAMES)
    bind = rpc.Bind(call_id=1, contexts=(ContextElement(0, ECHO, (rpc.NDR,)),)).encode()
    stream = bind + b"".join(chunks)
    events = []
    for i in range(0, len(stream), step):
        events += srv.receive_data(stream[i : i + step])
        srv.data_to_send()
    assert all(isinstance(e, get_args(Event)) for e in events)
    if any(isinstance(e, ProtocolViolation) for e in events):
        assert srv.closed
        assert srv.receive_data(b"more") == []


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 400))
def test_server_connection_survives_mutated_authenticated_traffic(noise: bytes,
                                                                  where: int) -> None:
    srv = ServerConnection([ECHO], Accounts(), ntlm_names=NAMES)
    cli = ClientConnection(credentials=ClientCredentials("alice", "pw"), auth_level=6)
    cli.bind(ECHO)
    srv.receive_data(cli.data_to_send())
    cli.receive_data(srv.data_to_send())
    cli.request(0, b"payload" * 20)
    stream = cli.data_to_send()  # AUTH3, then the sealed request
    where %= len(stream)
    mutated = stream[:where] + noise + stream[where + len(noise):]
    events = srv.receive_data(mutated)
    for e in events:
        if isinstance(e, CallReceived):
            # Anything accepted must be exactly what the client sealed.
            assert e.stub == b"payload" * 20


@FUZZ
@given(st.binary(max_size=300))
def test_client_connection_survives_garbage(data: bytes) -> None:
    cli = ClientConnection(credentials=ClientCredentials("alice", "pw"), auth_level=5)
    cli.bind(ECHO)
    events = cli.receive_data(data)
    violations = [e for e in events if isinstance(e, ProtocolViolation)]
    if cli.closed:
        # A protocol error closes the connection, and says so once, as the last event.
        assert violations and violations[-1] is events[-1] and violations[-1].close
        return
    assert not violations
    # Still open: every complete fragment it took was understood (no byte is dropped in
    # silence), and a partial fragment waits for more.
    if len(data) >= 16 and data[0] == 5:
        frag_length = int.from_bytes(data[8:10], "little" if data[4] & 0x10 else "big")
        if 16 <= frag_length <= len(data):
            assert events, "a complete fragment went by without an event or a close"


ntlm_messages = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda t, rest: b"NTLMSSP\x00" + bytes([t, 0, 0, 0]) + rest,
              st.integers(1, 3), st.binary(max_size=200)),
)


@FUZZ
@given(ntlm_messages)
def test_ntlm_parsers_raise_only_ntlm_error(data: bytes) -> None:
    for parse in (ntlm.parse_negotiate, ntlm.parse_challenge, ntlm.parse_authenticate,
                  ntlm.parse_av_pairs):
        with contextlib.suppress(NtlmError):
            parse(data)


@FUZZ
@given(ntlm_messages, st.binary(max_size=8), st.integers(0, 300))
def test_ntlm_handshake_survives_garbage(data: bytes, noise: bytes, where: int) -> None:
    acc = NtlmAcceptor(NAMES, filetime=0)
    init = NtlmInitiator("alice", "pw")
    try:
        acc.process_negotiate(data)
    except NtlmError:
        acc = NtlmAcceptor(NAMES, filetime=0)
    acc2 = NtlmAcceptor(NAMES, filetime=0)
    token = init.authenticate(acc2.process_negotiate(init.negotiate()))
    where %= len(token)
    mutated = token[:where] + noise + token[where + len(noise):]
    for a, t in ((acc, data), (acc2, mutated)):
        try:
            result = a.process_authenticate(t, Accounts())
        except NtlmError:
            continue
        if result.ok:
            assert result.user == "alice"
