"""impacket's DCERPC client, unmodified, against ServerConnection on 127.0.0.1."""

from __future__ import annotations

import socket
import socketserver
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from impacket.dcerpc.v5 import transport
from impacket.dcerpc.v5.rpcrt import (
    RPC_C_AUTHN_LEVEL_CONNECT,
    RPC_C_AUTHN_LEVEL_PKT_INTEGRITY,
    RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
    DCERPCException,
)
from impacket.uuid import uuidtup_to_bin

from wmilab.wire import rpc
from wmilab.wire.ntlm import LogonAttempt, NtlmServerNames
from wmilab.wire.rpc_conn import (
    Authenticated,
    CallReceived,
    Event,
    LogonFailed,
    ProtocolViolation,
    ServerConnection,
)

ECHO = rpc.SyntaxId(uuid.UUID("6b5df4d4-3d4b-4a2f-9a0e-0c1f2e3d4c5b"), 1, 0)
ECHO2 = rpc.SyntaxId(uuid.UUID("0b6edbfa-4a24-4fc6-8a23-942b1eca65d1"), 2, 0)
NAMES = NtlmServerNames("HOSTB", "HOSTB", "hostb", "hostb")
PASSWORD = "Secret1!"


class Accounts:
    """A host-side authenticator: one local account, anonymous refused."""

    def logon(self, attempt: LogonAttempt) -> object | None:
        if attempt.user.lower() == "alice" and attempt.check_password(PASSWORD):
            return f"HOSTB\\{attempt.user}"
        return None


@dataclass
class EchoServer:
    port: int
    events: list[Event] = field(default_factory=list)


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    log: list[Event] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            conn = ServerConnection(
                [ECHO, ECHO2], Accounts(), ntlm_names=NAMES, secondary_address=str(port),
                filetime=lambda: 133_000_000_000_000_000,
            )
            while not conn.closed:
                data = sock.recv(65536)
                if not data:
                    return
                events = conn.receive_data(data)
                log.extend(events)
                for ev in events:
                    if isinstance(ev, CallReceived):
                        if ev.opnum == 0:
                            conn.send_response(ev.call_id, ev.stub[::-1])
                        else:
                            conn.send_fault(ev.call_id, rpc.NCA_S_OP_RNG_ERROR,
                                            did_not_execute=True)
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield EchoServer(port, log)
    finally:
        srv.shutdown()
        srv.server_close()


def _dce(port: int, level: int, password: str = PASSWORD,
         tamper: Callable[[bytes], bytes] | None = None) -> Any:
    t = transport.DCERPCTransportFactory(f"ncacn_ip_tcp:127.0.0.1[{port}]")
    t.set_credentials("alice", password, "HOSTB")
    t.set_connect_timeout(5)
    if tamper is not None:
        original = t.send

        def send(data: bytes, forceWriteAndx: int = 0, forceRecv: int = 0) -> Any:
            return original(tamper(data), forceWriteAndx, forceRecv)

        t.send = send
    dce = t.get_dce_rpc()
    dce.set_credentials("alice", password, "HOSTB")
    dce.set_auth_level(level)
    dce.connect()
    return dce


def _iface(s: rpc.SyntaxId) -> bytes:
    out: bytes = uuidtup_to_bin((str(s.uuid), f"{s.major}.{s.minor}"))
    return out


LEVELS = [RPC_C_AUTHN_LEVEL_CONNECT, RPC_C_AUTHN_LEVEL_PKT_INTEGRITY,
          RPC_C_AUTHN_LEVEL_PKT_PRIVACY]


@pytest.mark.parametrize("level", LEVELS)
def test_impacket_call_small_and_fragmented(echo_server: EchoServer, level: int) -> None:
    dce = _dce(echo_server.port, level)
    dce.bind(_iface(ECHO))
    dce.call(0, b"hello, wmilab")
    assert dce.recv() == b"balimw ,olleh"
    big = bytes(i * 7 % 251 for i in range(20_001))  # fragments in both directions
    dce.call(0, big)
    assert dce.recv() == big[::-1]
    dce.disconnect()
    auth = [e for e in echo_server.events if isinstance(e, Authenticated)]
    assert [(a.auth_level, a.identity) for a in auth] == [(level, "HOSTB\\alice")]
    calls = [e for e in echo_server.events if isinstance(e, CallReceived)]
    assert [len(c.stub) for c in calls] == [13, 20_001]
    assert all(c.identity == "HOSTB\\alice" and c.auth_level == level for c in calls)


@pytest.mark.parametrize("level", [RPC_C_AUTHN_LEVEL_PKT_INTEGRITY,
                                   RPC_C_AUTHN_LEVEL_PKT_PRIVACY])
def test_impacket_alter_context_runs_a_second_ntlm_handshake(
    echo_server: EchoServer, level: int
) -> None:
    dce = _dce(echo_server.port, level)
    dce.bind(_iface(ECHO))
    dce.call(0, b"one")
    assert dce.recv() == b"eno"
    dce2 = dce.alter_ctx(_iface(ECHO2))
    dce2.call(0, b"two" * 3000)
    assert dce2.recv() == b"owt" * 3000
    dce.disconnect()
    auth = [e for e in echo_server.events if isinstance(e, Authenticated)]
    assert len({a.auth_context_id for a in auth}) == 2
    calls = [e for e in echo_server.events if isinstance(e, CallReceived)]
    assert [c.interface for c in calls] == [ECHO, ECHO2]
    assert calls[0].auth_context_id != calls[1].auth_context_id


def test_impacket_unknown_opnum_gets_op_rng_error(echo_server: EchoServer) -> None:
    dce = _dce(echo_server.port, RPC_C_AUTHN_LEVEL_PKT_PRIVACY)
    dce.bind(_iface(ECHO))
    dce.call(7, b"x")
    with pytest.raises(DCERPCException, match="nca_s_op_rng_error"):
        dce.recv()
    dce.call(0, b"still works")  # a fault for one call leaves the connection usable
    assert dce.recv() == b"skrow llits"
    dce.disconnect()


def test_impacket_unknown_interface_is_rejected_at_bind(echo_server: EchoServer) -> None:
    dce = _dce(echo_server.port, RPC_C_AUTHN_LEVEL_PKT_INTEGRITY)
    other = rpc.SyntaxId(uuid.UUID("11111111-2222-3333-4444-555555555555"), 1, 0)
    with pytest.raises(DCERPCException, match="abstract_syntax_not_supported"):
        dce.bind(_iface(other))
    dce.disconnect()


@pytest.mark.parametrize("level", LEVELS)
def test_impacket_wrong_password_gets_access_denied(echo_server: EchoServer,
                                                    level: int) -> None:
    dce = _dce(echo_server.port, level, password="wrong")
    dce.bind(_iface(ECHO))  # NTLM's third leg (auth3) has no reply, as on Windows
    dce.call(0, b"x")
    with pytest.raises(DCERPCException, match="rpc_s_access_denied"):
        dce.recv()
    dce.disconnect()
    assert any(isinstance(e, LogonFailed) and e.user == "alice" for e in echo_server.events)
    assert not any(isinstance(e, CallReceived) for e in echo_server.events)


@pytest.mark.parametrize("level", [RPC_C_AUTHN_LEVEL_PKT_INTEGRITY,
                                   RPC_C_AUTHN_LEVEL_PKT_PRIVACY])
def test_impacket_tampered_request_is_rejected(echo_server: EchoServer, level: int) -> None:
    def tamper(data: bytes) -> bytes:
        if data[2] == rpc.PType.REQUEST and len(data) > 30:
            return data[:26] + bytes([data[26] ^ 0x01]) + data[27:]
        return data

    dce = _dce(echo_server.port, level, tamper=tamper)
    dce.bind(_iface(ECHO))
    dce.call(0, b"pay me 100 dollars")
    with pytest.raises(DCERPCException, match="rpc_s_access_denied"):
        dce.recv()
    dce.disconnect()
    assert not any(isinstance(e, CallReceived) for e in echo_server.events)
    assert any(isinstance(e, ProtocolViolation) for e in echo_server.events)


# ---------------------------------------------------------------------------------------
# aiowmi's RPC layer (its DCOM layer needs the host; only bind + sealed/signed calls here)


@pytest.mark.parametrize("level", [RPC_C_AUTHN_LEVEL_PKT_INTEGRITY,
                                   RPC_C_AUTHN_LEVEL_PKT_PRIVACY])
def test_aiowmi_bind_and_calls(echo_server: EchoServer, level: int) -> None:
    import asyncio

    from aiowmi.connection import Connection
    from aiowmi.rpc.request import RpcRequest
    from aiowmi.rpc.response import RpcResponse
    from aiowmi.uuid import uuid_ver_to_bin

    async def run() -> list[bytes]:
        conn = Connection("127.0.0.1", "alice", PASSWORD, "HOSTB", port=echo_server.port,
                          loop=asyncio.get_running_loop())
        await conn.connect(timeout=5)
        proto = conn._protocol
        proto._auth_level = level
        proto._context_id = 4242
        await conn._bind_ntlm(uuid_ver_to_bin(str(ECHO.uuid), "1.0"), proto)
        answers = []
        # aiowmi expects replies to end in a zero HRESULT; the echo reverses the stub.
        for stub in (b"\0\0\0\0odd-length!", b"\0\0\0\0" + b"x" * 3001):
            request = RpcRequest(op_num=0)
            request.set_pdu_data(stub)
            pkg = (request.seal_data(proto) if level == RPC_C_AUTHN_LEVEL_PKT_PRIVACY
                   else request.sign_data(proto))
            response = await proto.get_dcom_response(pkg, size=RpcResponse.SIZE, timeout=5)
            answers.append(response.get_message(proto))
        conn.close()
        return answers

    answers = asyncio.run(run())
    assert answers == [b"!htgnel-ddo\0\0\0\0", b"x" * 3001 + b"\0\0\0\0"]
    calls = [e for e in echo_server.events if isinstance(e, CallReceived)]
    assert [c.auth_level for c in calls] == [level, level]
