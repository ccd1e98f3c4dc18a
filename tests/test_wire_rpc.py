"""MS-RPCE PDU codec and connection state machines, byte for byte."""

from __future__ import annotations

import struct
import uuid

import pytest
from impacket.dcerpc.v5 import rpcrt
from impacket.uuid import uuidtup_to_bin

from wmilab.wire import rpc
from wmilab.wire.ntlm import LogonAttempt, NtlmServerNames
from wmilab.wire.rpc import (
    NDR,
    NDR64,
    NULL_SYNTAX,
    AuthVerifier,
    ContextElement,
    ContextResult,
    RpcProtocolError,
    SyntaxId,
    parse_pdu,
)
from wmilab.wire.rpc_conn import (
    REQUEST_TOO_LARGE_STATUS,
    Authenticated,
    BindAcked,
    BindNakReceived,
    Bound,
    CallReceived,
    ClientConnection,
    ClientCredentials,
    ConnState,
    Event,
    LogonFailed,
    ProtocolViolation,
    ResponseReceived,
    RpcStateError,
    ServerConnection,
)

ECHO = SyntaxId(uuid.UUID("6b5df4d4-3d4b-4a2f-9a0e-0c1f2e3d4c5b"), 1, 0)
OTHER = SyntaxId(uuid.UUID("11111111-2222-3333-4444-555555555555"), 1, 0)
BTFN = SyntaxId(uuid.UUID("6cb71c2c-9812-4540-0300-000000000000"), 1, 0)
NAMES = NtlmServerNames("HOSTB", "HOSTB", "hostb", "hostb")
OBJ = uuid.UUID("00000000-1111-2222-3333-444444444444")


def _imp_syntax(s: SyntaxId) -> bytes:
    out: bytes = uuidtup_to_bin((str(s.uuid), f"{s.major}.{s.minor}"))
    return out


# ---------------------------------------------------------------------------------------
# Codec


SAMPLES: list[rpc.Pdu] = [
    rpc.Bind(call_id=1, contexts=(ContextElement(0, ECHO, (NDR,)),)),
    rpc.Bind(
        call_id=2,
        contexts=(ContextElement(0, ECHO, (NDR, NDR64)), ContextElement(1, ECHO, (BTFN,))),
        max_xmit_frag=5840, max_recv_frag=5840, assoc_group_id=0x1234,
        auth=AuthVerifier(10, 6, 79231, b"NTLMSSP\x00token", b"\xff\xff"),
    ),
    rpc.AlterContext(call_id=3, contexts=(ContextElement(1, OTHER, (NDR,)),)),
    rpc.BindAck(
        call_id=1, results=(ContextResult(0, 0, NDR), ContextResult(2, 2)),
        max_xmit_frag=4280, max_recv_frag=4280, assoc_group_id=0x5A5A,
        secondary_address=b"135\x00", auth=AuthVerifier(10, 5, 1, b"challenge"),
    ),
    rpc.AlterContextResp(call_id=4, results=(ContextResult(3, 3),)),
    rpc.BindNak(call_id=5, reject_reason=rpc.REJECT_AUTHENTICATION_TYPE_NOT_RECOGNIZED),
    rpc.Auth3(call_id=6, auth=AuthVerifier(10, 2, 79231, b"authenticate"), pad=b"    "),
    rpc.Request(call_id=7, opnum=3, stub=b"abcdef", context_id=1, alloc_hint=6),
    rpc.Request(
        call_id=8, opnum=6, stub=b"abcde", object_uuid=OBJ, flags=rpc.PFC_FIRST_FRAG,
        auth=AuthVerifier(10, 6, 9, b"S" * 16, b"\xbb\xbb\xbb"),
    ),
    rpc.Response(call_id=7, stub=b"xyz", alloc_hint=3, context_id=1),
    rpc.Response(call_id=9, stub=b"wxyz", flags=rpc.PFC_LAST_FRAG,
                 auth=AuthVerifier(10, 5, 9, b"\x01" + b"\x00" * 15)),
    rpc.Fault(call_id=7, status=rpc.NCA_S_OP_RNG_ERROR,
              flags=rpc.PFC_FIRST_FRAG | rpc.PFC_LAST_FRAG | rpc.PFC_DID_NOT_EXECUTE),
    rpc.Shutdown(call_id=0),
    rpc.CoCancel(call_id=7),
    rpc.Orphaned(call_id=7),
]


@pytest.mark.parametrize("pdu", SAMPLES, ids=lambda p: type(p).__name__)
def test_every_pdu_round_trips(pdu: rpc.Pdu) -> None:
    data = pdu.encode()
    assert struct.unpack_from("<H", data, 8)[0] == len(data)  # frag_length
    assert data[2] == pdu.ptype
    again = parse_pdu(data)
    assert again == pdu
    assert again.encode() == data


def test_bind_matches_impacket_encoder() -> None:
    item = rpcrt.CtxItem()
    item["AbstractSyntax"] = _imp_syntax(ECHO)
    item["TransferSyntax"] = _imp_syntax(NDR)
    item["ContextID"] = 0
    item["TransItems"] = 1
    bind = rpcrt.MSRPCBind()
    bind.addCtxItem(item)
    hdr = rpcrt.MSRPCHeader()
    hdr["type"] = rpcrt.MSRPC_BIND
    hdr["pduData"] = bind.getData()
    hdr["call_id"] = 1
    theirs = hdr.get_packet()
    ours = rpc.Bind(call_id=1, contexts=(ContextElement(0, ECHO, (NDR,)),))
    assert ours.encode() == theirs
    assert parse_pdu(theirs) == ours


def test_request_with_object_uuid_matches_impacket_encoder() -> None:
    req = rpcrt.MSRPCRequestHeader()
    req["op_num"] = 3
    req["pduData"] = b"abcdef"
    req["call_id"] = 9
    req["ctx_id"] = 1
    req["alloc_hint"] = 6
    req["uuid"] = OBJ.bytes_le
    req["flags"] |= rpcrt.PFC_OBJECT_UUID
    theirs = req.get_packet()
    ours = rpc.Request(call_id=9, opnum=3, stub=b"abcdef", context_id=1, alloc_hint=6,
                       object_uuid=OBJ)
    assert ours.encode() == theirs
    parsed = parse_pdu(theirs)
    assert isinstance(parsed, rpc.Request)
    assert parsed.object_uuid == OBJ and parsed.opnum == 3


def test_auth3_matches_impacket_encoder() -> None:
    trailer = rpcrt.SEC_TRAILER()
    trailer["auth_type"] = 10
    trailer["auth_level"] = 6
    trailer["auth_ctx_id"] = 79231
    hdr = rpcrt.MSRPCHeader()
    hdr["type"] = rpcrt.MSRPC_AUTH3
    hdr["pduData"] = b"    "
    hdr["sec_trailer"] = trailer
    hdr["auth_data"] = b"NTLMSSP\x00rest"
    hdr["call_id"] = 1
    theirs = hdr.get_packet()
    ours = rpc.Auth3(call_id=1, auth=AuthVerifier(10, 6, 79231, b"NTLMSSP\x00rest"),
                     pad=b"    ")
    assert ours.encode() == theirs


def test_bind_ack_and_fault_decode_with_impacket() -> None:
    ack = rpc.BindAck(
        call_id=1, results=(ContextResult(0, 0, NDR), ContextResult(2, 1)),
        max_xmit_frag=4280, max_recv_frag=5840, assoc_group_id=77,
        secondary_address=b"49154\x00", auth=AuthVerifier(10, 5, 3, b"chal"),
    ).encode()
    theirs = rpcrt.MSRPCBindAck(ack)
    assert theirs["max_tfrag"] == 4280 and theirs["max_rfrag"] == 5840
    assert theirs["SecondaryAddr"] == "49154"
    assert theirs["ctx_num"] == 2
    assert theirs.getCtxItem(1)["TransferSyntax"] == _imp_syntax(NDR)
    assert theirs.getCtxItem(2)["Result"] == 2 and theirs.getCtxItem(2)["Reason"] == 1
    assert theirs["auth_data"] == b"chal"
    fault = rpc.Fault(call_id=4, status=rpc.STATUS_ACCESS_DENIED).encode()
    assert len(fault) == 32
    resp = rpcrt.MSRPCRespHeader(fault)
    assert struct.unpack("<L", resp["pduData"][:4])[0] == 5
    nak = rpc.BindNak(call_id=1, reject_reason=8).encode()
    assert rpcrt.MSRPCBindNak(rpcrt.MSRPCHeader(nak)["pduData"])["RejectedReason"] == 8


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x05\x00\x0b\x03\x10\x00\x00\x00", None),  # shorter than the header
        (bytes.fromhex("04000b031000000010000000" "01000000"), 4),  # RPC version 4
        (bytes.fromhex("05000b030000000010000000" "01000000"), 4),  # big-endian drep
        (bytes.fromhex("05000b031000000020000000" "01000000"), None),  # frag_len lies
        (bytes.fromhex("050000031000000018000800" "01000000") + b"\0" * 8, None),  # auth_len
    ],
)
def test_malformed_headers_raise_rpc_protocol_error(data: bytes, reason: int | None) -> None:
    with pytest.raises(RpcProtocolError) as err:
        parse_pdu(data)
    if reason is not None:
        assert err.value.reject_reason == reason


def test_pad_length_longer_than_body_is_rejected() -> None:
    good = rpc.Request(call_id=1, opnum=0, stub=b"ab",
                       auth=AuthVerifier(10, 5, 0, b"S" * 16, b"\0\0")).encode()
    bad = bytearray(good)
    bad[len(good) - 16 - 6] = 40  # auth_pad_length
    with pytest.raises(RpcProtocolError, match="auth_pad_length"):
        parse_pdu(bytes(bad))


def test_btfn_features_are_read_from_the_uuid() -> None:
    assert rpc.btfn_features(BTFN) == 3
    assert rpc.btfn_features(NDR) is None
    assert rpc.btfn_features(SyntaxId(BTFN.uuid, 2, 0)) is None


# ---------------------------------------------------------------------------------------
# ServerConnection


class Accounts:
    def __init__(self, anonymous: bool = False) -> None:
        self.anonymous = anonymous
        self.attempts: list[LogonAttempt] = []

    def logon(self, attempt: LogonAttempt) -> object | None:
        self.attempts.append(attempt)
        if attempt.anonymous:
            return "NT AUTHORITY\\ANONYMOUS LOGON" if self.anonymous else None
        if attempt.user == "alice" and attempt.check_password("pw"):
            return "alice"
        return None


def _server(**kw: object) -> ServerConnection:
    return ServerConnection([ECHO], Accounts(), ntlm_names=NAMES, secondary_address="135",
                            **kw)  # type: ignore[arg-type]


def _pair(level: int, user: str = "alice", password: str = "pw",
          server: ServerConnection | None = None) -> tuple[ClientConnection, ServerConnection,
                                                           list[Event]]:
    srv = server or _server()
    creds = ClientCredentials(user, password, "HOSTB") if level > 1 else None
    cli = ClientConnection(credentials=creds, auth_level=level)
    cli.bind(ECHO)
    events = srv.receive_data(cli.data_to_send())
    events += cli.receive_data(srv.data_to_send())
    events += srv.receive_data(cli.data_to_send())
    return cli, srv, events


def _only(data: bytes) -> rpc.Pdu:
    return parse_pdu(data)


@pytest.mark.parametrize("level", [2, 5, 6])
def test_bind_ack_echoes_auth_level_and_context(level: int) -> None:
    srv = _server()
    cli = ClientConnection(credentials=ClientCredentials("alice", "pw"), auth_level=level)
    cli.bind(ECHO)
    events = srv.receive_data(cli.data_to_send())
    ack = _only(srv.data_to_send())
    assert isinstance(ack, rpc.BindAck) and not isinstance(ack, rpc.AlterContextResp)
    assert ack.auth is not None
    assert (ack.auth.auth_type, ack.auth.auth_level, ack.auth.auth_context_id) == (
        10, level, 79231)
    assert ack.secondary_address == b"135\x00"
    assert ack.results == (ContextResult(0, 0, NDR),)
    assert events == [Bound(0, ECHO, NDR)]
    # The credentials are a CHALLENGE_MESSAGE.
    assert ack.auth.credentials[:12] == b"NTLMSSP\x00\x02\x00\x00\x00"


def test_bind_answers_each_context_and_feature_negotiation() -> None:
    srv = _server()
    bind = rpc.Bind(call_id=1, contexts=(
        ContextElement(0, ECHO, (NDR64,)),
        ContextElement(1, ECHO, (NDR64, NDR)),
        ContextElement(2, OTHER, (NDR,)),
        ContextElement(3, ECHO, (BTFN,)),
    ))
    events = srv.receive_data(bind.encode())
    ack = _only(srv.data_to_send())
    assert isinstance(ack, rpc.BindAck)
    assert ack.results == (
        ContextResult(2, rpc.REASON_PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED, NULL_SYNTAX),
        ContextResult(0, 0, NDR),
        ContextResult(2, rpc.REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED, NULL_SYNTAX),
        ContextResult(3, 3, NULL_SYNTAX),  # MS-RPCE 3.3.1.5.3 negotiate_ack
    )
    assert events == [Bound(1, ECHO, NDR)]


def test_fragment_sizes_are_negotiated_down() -> None:
    srv = _server()
    srv.receive_data(rpc.Bind(call_id=1, contexts=(ContextElement(0, ECHO, (NDR,)),),
                              max_xmit_frag=9000, max_recv_frag=2048).encode())
    ack = _only(srv.data_to_send())
    assert isinstance(ack, rpc.BindAck)
    assert (ack.max_xmit_frag, ack.max_recv_frag) == (2048, 5840)
    srv.receive_data(rpc.Request(call_id=2, opnum=0, stub=b"x").encode())
    srv.send_response(2, bytes(10_000))
    frags = srv.data_to_send()
    sizes = []
    while frags:
        n = struct.unpack_from("<H", frags, 8)[0]
        sizes.append(n)
        frags = frags[n:]
    assert len(sizes) == 5 and max(sizes) <= 2048


def test_byte_at_a_time_delivery_gives_the_same_events() -> None:
    srv = _server()
    data = rpc.Bind(call_id=1, contexts=(ContextElement(0, ECHO, (NDR,)),)).encode()
    data += rpc.Request(call_id=2, opnum=4, stub=b"hello").encode()
    events: list[Event] = []
    for i in range(len(data)):
        events += srv.receive_data(data[i : i + 1])
    assert [type(e) for e in events] == [Bound, CallReceived]
    call = events[1]
    assert isinstance(call, CallReceived)
    assert (call.call_id, call.opnum, call.stub, call.auth_level, call.identity) == (
        2, 4, b"hello", 1, None)


@pytest.mark.parametrize(
    ("verifier", "reason"),
    [
        (AuthVerifier(9, 6, 1, b"spnego"), rpc.REJECT_AUTHENTICATION_TYPE_NOT_RECOGNIZED),
        (AuthVerifier(10, 6, 1, b"not ntlm"), rpc.REJECT_INVALID_CHECKSUM),
        (AuthVerifier(10, 1, 1, b"NTLMSSP"), rpc.REJECT_REASON_NOT_SPECIFIED),
    ],
)
def test_bind_with_bad_auth_gets_bind_nak_and_close(verifier: AuthVerifier,
                                                    reason: int) -> None:
    srv = _server()
    events = srv.receive_data(rpc.Bind(
        call_id=1, contexts=(ContextElement(0, ECHO, (NDR,)),), auth=verifier).encode())
    nak = _only(srv.data_to_send())
    assert isinstance(nak, rpc.BindNak) and nak.reject_reason == reason
    assert isinstance(events[-1], ProtocolViolation) and srv.closed


def test_second_bind_and_request_before_bind_are_protocol_errors() -> None:
    srv = _server()
    srv.receive_data(rpc.Request(call_id=1, opnum=0, stub=b"").encode())
    fault = _only(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and fault.status == rpc.NCA_S_PROTO_ERROR
    assert srv.closed
    srv = _server()
    bind = rpc.Bind(call_id=1, contexts=(ContextElement(0, ECHO, (NDR,)),)).encode()
    srv.receive_data(bind)
    srv.data_to_send()
    srv.receive_data(bind)
    assert isinstance(_only(srv.data_to_send()), rpc.BindNak) and srv.closed


def test_client_states_follow_bind_nak_rebind_and_violation() -> None:
    """IDLE -> BINDING -> (bind_nak) IDLE -> BINDING -> BOUND -> (garbage) CLOSED."""
    cli = ClientConnection()
    assert cli.state is ConnState.IDLE
    with pytest.raises(RpcStateError):
        cli.request(0, b"x")  # no call before a bind (C706 12.6.4.3)
    first = cli.bind(ECHO)
    assert cli.state is ConnState.BINDING
    with pytest.raises(RpcStateError):
        cli.bind(ECHO)  # one bind in flight at a time
    nak = rpc.BindNak(call_id=first, reject_reason=rpc.REJECT_REASON_NOT_SPECIFIED).encode()
    assert cli.receive_data(nak) == [BindNakReceived(first, rpc.REJECT_REASON_NOT_SPECIFIED)]
    assert cli.state is ConnState.IDLE
    srv = _server()
    cli.data_to_send()  # the refused bind is not re-sent
    cli.bind(ECHO)
    srv.receive_data(cli.data_to_send())
    cli.receive_data(srv.data_to_send())
    assert cli.state is ConnState.BOUND and cli.bound and srv.state is ConnState.BOUND
    with pytest.raises(RpcStateError):
        cli.bind(OTHER)  # a second bind: alter_context is the way (C706 12.6.4.3)
    events = cli.receive_data(b"\xff" * 16)
    assert [type(e) for e in events] == [ProtocolViolation]
    assert cli.state is ConnState.CLOSED and cli.closed and not cli.bound
    with pytest.raises(RpcStateError):
        cli.request(0, b"x")


def test_one_outbox_keeps_auto_replies_and_responses_in_order() -> None:
    """AUTH3 then two calls from the client, bind_ack then two replies from the server:
    each side's octets come out of data_to_send() once, in the order they were made."""
    srv = _server()
    cli = ClientConnection(credentials=ClientCredentials("alice", "pw"), auth_level=5)
    cli.bind(ECHO)
    srv.receive_data(cli.data_to_send())
    cli.receive_data(srv.data_to_send())  # queues AUTH3 in the client's outbox
    first, second = cli.request(1, b"one"), cli.request(2, b"two")
    calls = srv.receive_data(cli.data_to_send())
    assert [type(e) for e in calls] == [Authenticated, CallReceived, CallReceived]
    srv.send_response(second, b"2")
    srv.send_response(first, b"1")
    replies = srv.data_to_send()
    assert srv.data_to_send() == b"" and cli.data_to_send() == b""
    assert cli.receive_data(replies) == [ResponseReceived(second, b"2"),
                                         ResponseReceived(first, b"1")]


def test_unknown_presentation_context_faults_but_keeps_connection() -> None:
    cli, srv, _ = _pair(1)
    cli.request(0, b"abc", context_id=5)
    data = cli.data_to_send()
    assert srv.receive_data(data) == []
    fault = _only(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and fault.status == rpc.NCA_S_UNK_IF
    assert fault.flags & rpc.PFC_DID_NOT_EXECUTE
    assert not srv.closed
    cli.request(0, b"abc")
    data = cli.data_to_send()
    assert [type(e) for e in srv.receive_data(data)] == [CallReceived]


def test_oversized_request_gets_fault_5_and_close() -> None:
    cli, srv, _ = _pair(5, server=_server(max_request_size=10_000))
    cli.request(0, bytes(30_000))
    data = cli.data_to_send()
    events = srv.receive_data(data)
    assert isinstance(events[-1], ProtocolViolation)
    fault = _only(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and fault.status == REQUEST_TOO_LARGE_STATUS
    assert srv.closed


@pytest.mark.parametrize("level", [2, 4, 5, 6])
def test_client_and_server_round_trip_with_fragments(level: int) -> None:
    cli, srv, events = _pair(level)
    assert any(isinstance(e, Authenticated) and e.identity == "alice" for e in events)
    stub = bytes(i % 253 for i in range(50_000))
    cid = cli.request(9, stub, object_uuid=OBJ)
    data = cli.data_to_send()
    assert data.count(b"\x05\x00\x00") >= 12  # fragmented
    (call,) = srv.receive_data(data)
    assert isinstance(call, CallReceived)
    assert (call.call_id, call.opnum, call.object_uuid, call.stub) == (cid, 9, OBJ, stub)
    assert call.auth_level == level and call.identity == "alice"
    srv.send_response(cid, stub[::-1])
    reply = srv.data_to_send()
    assert cli.receive_data(reply) == [ResponseReceived(cid, stub[::-1])]
    with pytest.raises(RpcStateError):
        srv.send_response(cid, b"again")


def test_sealed_stub_is_not_in_clear_on_the_wire() -> None:
    cli, srv, _ = _pair(6)
    secret = b"the password is hunter2" * 3
    cid = cli.request(0, secret)
    data = cli.data_to_send()
    assert secret not in data
    (call,) = srv.receive_data(data)
    assert isinstance(call, CallReceived) and call.stub == secret
    srv.send_response(cid, secret[::-1])
    reply = srv.data_to_send()
    assert secret[::-1] not in reply
    assert cli.receive_data(reply) == [ResponseReceived(cid, secret[::-1])]


def test_sealed_request_with_clear_padding_is_accepted() -> None:
    """aiowmi encrypts only the stub and sends the auth padding in clear."""
    cli, srv, _ = _pair(6)
    session = cli.security[79231].session
    assert session is not None
    stub = b"odd-length-stub"  # 15 octets: one pad octet
    pad = b"\xff"
    plain = rpc.Request(call_id=50, opnum=4, stub=stub,
                        auth=AuthVerifier(10, 6, 79231, b"\0" * 16, pad)).encode()
    sealed, sig = session.seal(stub, lambda _p: plain[:-16])
    wire = plain[:24] + sealed + plain[24 + len(stub) : -16] + sig
    (call,) = srv.receive_data(wire)
    assert isinstance(call, CallReceived) and call.stub == stub


@pytest.mark.parametrize("level", [5, 6])
def test_tampered_request_is_refused_with_access_denied(level: int) -> None:
    cli, srv, _ = _pair(level)
    cli.request(0, b"transfer 100 to bob")
    data = cli.data_to_send()
    bad = data[:30] + bytes([data[30] ^ 0x20]) + data[31:]
    events = srv.receive_data(bad)
    assert [type(e) for e in events] == [ProtocolViolation]
    fault = _only(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and fault.status == rpc.STATUS_ACCESS_DENIED
    assert srv.closed


@pytest.mark.parametrize("region", ["sealed stub", "auth padding", "sec trailer", "signature"])
def test_tampered_sealed_request_is_refused_at_the_unseal_step(region: str) -> None:
    # Privacy: the stub and padding are encrypted, the signature is over the plaintext. A bit
    # flipped anywhere is refused where the fragment is unsealed, before any call is made.
    cli, srv, _ = _pair(6)
    cli.request(0, b"odd-length stub")  # 15 octets: one pad octet
    data = cli.data_to_send()
    pad = data[-16 - rpc.SEC_TRAILER_SIZE + 2]
    assert pad == 1
    trailer = len(data) - 16 - rpc.SEC_TRAILER_SIZE
    at = {"sealed stub": 24 + 3, "auth padding": trailer - 1, "sec trailer": trailer + 3,
          "signature": len(data) - 5}[region]
    bad = data[:at] + bytes([data[at] ^ 0x04]) + data[at + 1:]
    events = srv.receive_data(bad)
    assert not any(isinstance(e, CallReceived) for e in events)
    (violation,) = [e for e in events if isinstance(e, ProtocolViolation)]
    assert violation.reason == "request signature does not verify"
    fault = _only(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and fault.status == rpc.STATUS_ACCESS_DENIED
    assert srv.closed


def test_header_is_covered_by_the_signature() -> None:
    cli, srv, _ = _pair(5)
    cli.request(3, b"payload!")
    data = cli.data_to_send()
    bad = data[:22] + struct.pack("<H", 4) + data[24:]  # opnum 3 -> 4
    assert isinstance(srv.receive_data(bad)[0], ProtocolViolation)


def test_unsigned_request_on_integrity_connection_is_refused() -> None:
    _cli, srv, _ = _pair(5)
    srv.receive_data(rpc.Request(call_id=77, opnum=0, stub=b"x").encode())
    fault = _only(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and fault.status == rpc.STATUS_ACCESS_DENIED


@pytest.mark.parametrize(("bound", "sent"), [(5, 6), (6, 5), (4, 5), (5, 4)])
def test_request_at_another_level_than_its_context_is_refused(bound: int, sent: int) -> None:
    # What impacket's set_auth_level() would do if the next call stayed on the same context:
    # the sec_trailer names the bound context at another level. Refused either way (Samba's
    # dcerpc_ncacn_pull_pkt_auth; docs/wire-rpc.md), before any stub reaches the host.
    cli, srv, _ = _pair(bound)
    (sec,) = cli.security.values()
    sec.auth_level = sent
    cli.request(0, b"payload!")
    events = srv.receive_data(cli.data_to_send())
    assert not any(isinstance(e, CallReceived) for e in events)
    (violation,) = [e for e in events if isinstance(e, ProtocolViolation)]
    assert violation.reason == "call at another auth level than bound"
    fault = _only(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and fault.status == rpc.STATUS_ACCESS_DENIED
    assert srv.closed


def test_unsigned_request_on_a_pkt_level_context_is_refused() -> None:
    # impacket at RPC_C_AUTHN_LEVEL_PKT binds and sends AUTH3 at level 4 but then sends its
    # requests with no sec_trailer (it signs only at integrity and privacy): refused.
    _cli, srv, _ = _pair(4)
    srv.receive_data(rpc.Request(call_id=78, opnum=0, stub=b"x").encode())
    fault = _only(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and fault.status == rpc.STATUS_ACCESS_DENIED
    assert srv.closed


@pytest.mark.parametrize("level", [2, 5, 6])
def test_wrong_password_fails_logon_and_calls_are_denied(level: int) -> None:
    cli, srv, events = _pair(level, password="nope")
    assert [type(e) for e in events if not isinstance(e, (Bound, BindAcked))] == [LogonFailed]
    if level == 2:
        cli.request(0, b"x")
        data = cli.data_to_send()
    else:
        # The client cannot sign without a session; forge an unsigned call instead.
        data = rpc.Request(call_id=99, opnum=0, stub=b"x",
                           auth=AuthVerifier(10, level, 79231, b"\0" * 16)).encode()
    srv.receive_data(data)
    fault = _only(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and fault.status == rpc.STATUS_ACCESS_DENIED
    assert srv.closed


def test_replayed_auth3_is_rejected() -> None:
    srv = _server()
    cli = ClientConnection(credentials=ClientCredentials("alice", "pw"), auth_level=5)
    cli.bind(ECHO)
    srv.receive_data(cli.data_to_send())
    cli.receive_data(srv.data_to_send())
    auth3 = cli.data_to_send()
    assert [type(e) for e in srv.receive_data(auth3)] == [Authenticated]
    events = srv.receive_data(auth3)
    assert [type(e) for e in events] == [ProtocolViolation]
    fault = _only(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and fault.status == rpc.NCA_S_PROTO_ERROR


def test_alter_context_adds_a_second_security_context() -> None:
    srv = ServerConnection([ECHO, OTHER], Accounts(), ntlm_names=NAMES)
    cli = ClientConnection(credentials=ClientCredentials("alice", "pw"), auth_level=6)
    cli.bind(ECHO)
    srv.receive_data(cli.data_to_send())
    cli.receive_data(srv.data_to_send())
    srv.receive_data(cli.data_to_send())
    cli.alter_context(OTHER, 1)
    events = srv.receive_data(cli.data_to_send())
    resp = _only(srv.data_to_send())
    assert isinstance(resp, rpc.AlterContextResp)
    assert resp.auth is not None and resp.auth.auth_context_id == 79232
    assert resp.secondary_address == b""
    assert events == [Bound(1, OTHER, NDR)]
    cli.receive_data(resp.encode())
    assert [type(e) for e in srv.receive_data(cli.data_to_send())] == [Authenticated]
    _cid = cli.request(1, b"on the new context", context_id=1)
    data = cli.data_to_send()
    (call,) = srv.receive_data(data)
    assert isinstance(call, CallReceived)
    assert (call.interface, call.auth_context_id) == (OTHER, 79232)
    # The first context still works, with its own sequence numbers and keys.
    _cid2 = cli.request(0, b"old", auth_context_id=79231)
    data2 = cli.data_to_send()
    (call2,) = srv.receive_data(data2)
    assert isinstance(call2, CallReceived) and call2.auth_context_id == 79231


def test_anonymous_logon_is_left_to_the_host() -> None:
    accounts = Accounts(anonymous=True)
    srv = ServerConnection([ECHO], accounts, ntlm_names=NAMES)
    _, _, events = _pair(2, user="", password="", server=srv)
    (auth,) = [e for e in events if isinstance(e, Authenticated)]
    assert auth.anonymous and auth.identity == "NT AUTHORITY\\ANONYMOUS LOGON"
    assert accounts.attempts[0].anonymous
    assert not accounts.attempts[0].check_password("")
    srv2 = ServerConnection([ECHO], Accounts(anonymous=False), ntlm_names=NAMES)
    _, _, events2 = _pair(2, user="", password="", server=srv2)
    assert any(isinstance(e, LogonFailed) for e in events2)


def test_server_without_authenticator_refuses_ntlm() -> None:
    srv = ServerConnection([ECHO])
    cli = ClientConnection(credentials=ClientCredentials("alice", "pw"), auth_level=5)
    cli.bind(ECHO)
    srv.receive_data(cli.data_to_send())
    nak = _only(srv.data_to_send())
    assert isinstance(nak, rpc.BindNak)
    assert nak.reject_reason == rpc.REJECT_AUTHENTICATION_TYPE_NOT_RECOGNIZED


def test_fault_reply_carries_the_call_id_and_flag() -> None:
    cli, srv, _ = _pair(5)
    cid = cli.request(42, b"")
    data = cli.data_to_send()
    srv.receive_data(data)
    srv.send_fault(cid, rpc.NCA_S_OP_RNG_ERROR, did_not_execute=True)
    fault = _only(srv.data_to_send())
    assert isinstance(fault, rpc.Fault)
    assert fault.call_id == cid and fault.status == 0x1C010002
    assert fault.flags == rpc.PFC_FIRST_FRAG | rpc.PFC_LAST_FRAG | rpc.PFC_DID_NOT_EXECUTE


def test_one_bind_proposes_several_interfaces_and_auth3_rides_with_the_first_call() -> None:
    unknown = SyntaxId(uuid.UUID("0badc0de-0000-0000-0000-000000000001"), 0, 0)
    srv = ServerConnection([ECHO, OTHER], Accounts(), ntlm_names=NAMES)
    cli = ClientConnection(credentials=ClientCredentials("alice", "pw"), auth_level=6)
    cli.bind(ECHO, more=(unknown, OTHER))
    bind = _only(cli.data_to_send())
    assert isinstance(bind, rpc.Bind)
    assert [(c.context_id, c.abstract_syntax) for c in bind.contexts] == [
        (0, ECHO), (1, unknown), (2, OTHER)]
    events = srv.receive_data(bind.encode())
    assert events == [Bound(0, ECHO, NDR), Bound(2, OTHER, NDR)]
    ack = srv.data_to_send()
    assert [r.result for r in _only(ack).results] == [  # type: ignore[attr-defined]
        rpc.RESULT_ACCEPTANCE, rpc.RESULT_PROVIDER_REJECTION, rpc.RESULT_ACCEPTANCE]
    (acked,) = cli.receive_data(ack)
    assert isinstance(acked, BindAcked) and cli.contexts == {0: ECHO, 2: OTHER}
    # The AUTH3 waits in the outbox and leaves in one write with the first request: the
    # server takes both PDUs from one read, logon first.
    cid = cli.request(1, b"on the third context", context_id=2)
    both = cli.data_to_send()
    first = rpc.peek_frag_length(both)
    assert first is not None and isinstance(_only(both[:first]), rpc.Auth3)
    got = srv.receive_data(both)
    assert [type(e) for e in got] == [Authenticated, CallReceived]
    call = got[1]
    assert isinstance(call, CallReceived) and (call.call_id, call.interface) == (cid, OTHER)
