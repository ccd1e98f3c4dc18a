"""An emulated host under load and malformed input, over real loopback sockets.

A thousand idle connections, connections over the cap, malformed PDUs at each stage of a
connection, and a hypothesis fuzz of a real bind + request exchange: after each, a real
client (aiowmi) must still be served. Also the sans-IO unit tests of the fragment-size check
in wire/rpc_conn/. Free ports, no root needed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make, remote_admin_pair
from wmilab.host.server import Limits
from wmilab.lab.loopback import LoopbackLab
from wmilab.wire import ids, rpc
from wmilab.wire.rpc import NDR, ContextElement, SyntaxId
from wmilab.wire.rpc_conn import (
    REQUEST_TOO_LARGE_STATUS,
    BindAcked,
    ClientConnection,
    ClientCredentials,
    ProtocolViolation,
    ServerConnection,
)

pytestmark = pytest.mark.slow

LOGIN = SyntaxId(ids.IID_IWBEMLEVEL1LOGIN, 0, 0)
FRAG = 2048  # the max fragment our raw clients negotiate (server max_recv_frag after bind)


def _scenario() -> dict[str, Any]:
    return remote_admin_pair()


class Host:
    """Host B of a fresh scenario, served from a background thread's event loop."""

    def __init__(self, limits: Limits | None) -> None:
        self.lab = LoopbackLab(make(_scenario()).world, client_host="A",
                               ports={135: 0}, limits=limits)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.lab.start(), self.loop).result(30)
        self.server = self.lab.servers["B"]
        self.address = str(self.lab.map.loopback("B"))

    @property
    def wmi(self) -> int:
        return self.server.ports["wmi"]

    @property
    def rpcss(self) -> int:
        return self.server.ports["rpcss"]

    def open_connections(self) -> int:
        """Connections the host holds (its own bookkeeping, read on its loop)."""
        async def count() -> int:
            return len(self.server._connections)

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(10)

    def wait_connections(self, want: Callable[[int], bool], timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            n = self.open_connections()
            if want(n) or time.monotonic() > deadline:
                return n
            time.sleep(0.05)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.lab.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def start_host() -> Iterator[Callable[..., Host]]:
    hosts: list[Host] = []

    def start(limits: Limits | None = None) -> Host:
        h = Host(limits)
        hosts.append(h)
        return h

    yield start
    for h in hosts:
        h.close()


def aiowmi_caption(host: Host) -> str:
    """A real client's whole session: activation, login, query; the OS caption it read."""
    from aiowmi.connection import Connection
    from aiowmi.query import Query

    async def session() -> str:
        conn = Connection(host.address, "admin", "Adm1n!", domain="CORP", port=host.rpcss)
        try:
            await conn.connect(timeout=10)
            service = await conn.negotiate_ntlm()
            await conn.login_ntlm(service, "root/cimv2")
            async with Query("SELECT Caption FROM Win32_OperatingSystem").context(
                    conn, service) as qc:
                async for props in qc.results():
                    return str(props["Caption"].value)
            return ""
        finally:
            conn.close()

    try:
        return asyncio.run(asyncio.wait_for(session(), 30))
    finally:
        # aiowmi's close() leaves its WMI-port socket to the garbage collector; collect it
        # so the host sees the connection end (connection counts below are exact).
        gc.collect()


XP = "Microsoft Windows XP Professional"


# ------------------------------------------------------------------------------------------
# Raw sockets


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def read_pdus(sock: socket.socket, timeout: float = 5.0) -> tuple[list[rpc.Pdu], bool]:
    """PDUs received until the peer closes (closed=True) or ``timeout`` passes quietly."""
    sock.settimeout(timeout)
    buf = b""
    closed = False
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        buf += chunk
    pdus: list[rpc.Pdu] = []
    while (n := rpc.peek_frag_length(buf)) is not None and len(buf) >= n:
        pdus.append(rpc.parse_pdu(buf[:n]))
        buf = buf[n:]
    assert buf == b"", f"a partial PDU from the host: {buf.hex()}"
    return pdus, closed


def connection_outcome(address: str, port: int, timeout: float = 2.0) -> str:
    """What a new connection meets: "closed, nothing sent", "open and silent" or PDUs."""
    try:
        sock = socket.create_connection((address, port), timeout=10)
    except ConnectionResetError:  # the RST beat connect() back to the caller
        return "closed, nothing sent"
    with sock:
        pdus, was_closed = read_pdus(sock, timeout=timeout)
    if pdus:
        return f"{len(pdus)} PDUs"
    return "closed, nothing sent" if was_closed else "open and silent"


def read_one(sock: socket.socket, timeout: float = 5.0) -> rpc.Fault:
    """The next PDU, which must be a fault (the connection stays open)."""
    sock.settimeout(timeout)
    data = b""
    while (n := rpc.peek_frag_length(data)) is None or len(data) < n:
        chunk = sock.recv(65536)
        assert chunk, "the host closed the connection"
        data += chunk
    assert len(data) == n
    pdu = rpc.parse_pdu(data)
    assert isinstance(pdu, rpc.Fault), pdu
    return pdu


def bind_pdu(call_id: int = 1, contexts: tuple[ContextElement, ...] | None = None) -> bytes:
    if contexts is None:
        contexts = (ContextElement(0, LOGIN, (NDR,)),)
    return rpc.Bind(call_id=call_id, contexts=contexts, max_xmit_frag=FRAG,
                    max_recv_frag=FRAG).encode()


def bound(host: Host) -> socket.socket:
    """An unauthenticated connection to the WMI port with context 0 bound."""
    sock = socket.create_connection((host.address, host.wmi), timeout=10)
    sock.sendall(bind_pdu())
    sock.settimeout(10)
    data = b""
    while (n := rpc.peek_frag_length(data)) is None or len(data) < n:
        chunk = sock.recv(65536)
        assert chunk, "the host closed a valid bind"
        data += chunk
    ack = rpc.parse_pdu(data)
    assert isinstance(ack, rpc.BindAck) and ack.results[0].result == rpc.RESULT_ACCEPTANCE
    return sock


def bound_authenticated(host: Host) -> socket.socket:
    """Bind with NTLM at PKT_PRIVACY and send AUTH3; then the connection idles."""
    sock = socket.create_connection((host.address, host.wmi), timeout=10)
    conn = ClientConnection(credentials=ClientCredentials("admin", "Adm1n!", "CORP"),
                            auth_level=rpc.AuthLevel.PKT_PRIVACY)
    conn.bind(LOGIN)
    sock.sendall(conn.data_to_send())
    while True:
        data = sock.recv(65536)
        assert data, "the host closed a valid bind"
        if any(isinstance(e, BindAcked) for e in conn.receive_data(data)):
            break
    sock.sendall(conn.data_to_send())
    return sock


def request(call_id: int = 2, *, stub: bytes = b"\x00" * 16, context_id: int = 0,
            alloc_hint: int | None = None,
            flags: int = rpc.PFC_FIRST_FRAG | rpc.PFC_LAST_FRAG) -> bytes:
    return rpc.Request(call_id=call_id, opnum=3, stub=stub, context_id=context_id,
                       alloc_hint=len(stub) if alloc_hint is None else alloc_hint,
                       object_uuid=uuid.uuid4(), flags=flags).encode()


def one_fault(pdus: list[rpc.Pdu]) -> rpc.Fault:
    assert len(pdus) == 1 and isinstance(pdus[0], rpc.Fault), pdus
    return pdus[0]


def one_nak(pdus: list[rpc.Pdu]) -> rpc.BindNak:
    assert len(pdus) == 1 and isinstance(pdus[0], rpc.BindNak), pdus
    return pdus[0]


# ------------------------------------------------------------------------------------------
# Load


def test_a_thousand_idle_connections_leave_the_host_serving(start_host: Callable[..., Host]
                                                           ) -> None:
    # The default cap (Limits.max_connections, 256) would refuse a real client during such a
    # flood; this host is given room for it (see docs/benchmarks.md, "Emulated hosts").
    host = start_host(Limits(max_connections=2100))
    rss0 = _rss()
    silent = [socket.create_connection((host.address, port), timeout=10)
              for port in (host.rpcss, host.wmi) for _ in range(500)]
    assert host.wait_connections(lambda n: n == 1000) == 1000
    assert aiowmi_caption(host) == XP  # served during
    idle = [bound_authenticated(host) for _ in range(1000)]
    assert host.wait_connections(lambda n: n == 2000) == 2000
    assert aiowmi_caption(host) == XP
    grown = _rss() - rss0
    # Both ends of 2,000 connections live in this process; a few KiB each is the budget.
    assert grown < 2000 * 24 * 1024, f"RSS grew {grown / 2**20:.1f} MiB"
    for s in silent + idle:
        s.close()
    assert host.wait_connections(lambda n: n == 0) == 0  # every connection object is gone
    assert aiowmi_caption(host) == XP  # and after


def test_over_the_cap_the_oldest_silent_connection_makes_room(
        start_host: Callable[..., Host]) -> None:
    host = start_host(Limits(max_connections=50, bind_timeout=2.0))
    socks = [socket.create_connection((host.address, host.wmi), timeout=10) for _ in range(200)]
    t0 = time.monotonic()
    closed = 0
    for s in socks[:150]:
        pdus, was_closed = read_pdus(s, timeout=2.0)
        closed += was_closed and not pdus
    assert closed == 150  # the 150 oldest silent ones were closed to admit newer ones
    assert time.monotonic() - t0 < 5.0
    assert host.open_connections() == 50  # the cap holds
    # The admitted ones never bind: they are closed after the bind timeout, not kept.
    assert host.wait_connections(lambda n: n == 0, timeout=10) == 0
    pdus, was_closed = read_pdus(socks[-1], timeout=1.0)
    assert was_closed and not pdus
    assert aiowmi_caption(host) == XP
    for s in socks:
        s.close()


def test_silent_connections_cannot_lock_a_real_client_out(start_host: Callable[..., Host]) -> None:
    host = start_host(Limits(max_connections=50, bind_timeout=30.0))
    socks = [socket.create_connection((host.address, host.wmi), timeout=10) for _ in range(50)]
    assert host.wait_connections(lambda n: n == 50) == 50
    assert aiowmi_caption(host) == XP  # admitted by closing the oldest silent connection
    for s in socks:
        s.close()


def test_bound_connections_are_never_evicted_new_ones_are_reset(
        start_host: Callable[..., Host]) -> None:
    host = start_host(Limits(max_connections=20, bind_timeout=30.0))
    bound = [bound_authenticated(host) for _ in range(20)]
    assert host.wait_connections(lambda n: n == 20) == 20
    # Reset at once: nothing unbound can make room. The RST may reach the caller during
    # connect() or at the first read; both are the same outcome and both are asserted.
    assert connection_outcome(host.address, host.wmi) == "closed, nothing sent"
    assert host.open_connections() == 20
    for s in bound:
        s.close()


# ------------------------------------------------------------------------------------------
# Malformed PDUs, one stage at a time (answers: docs/wire-rpc.md, docs/host.md)


def _bad_version() -> bytes:
    data = bytearray(bind_pdu())
    data[0] = 4
    return bytes(data)


def _short_frag_length() -> bytes:
    data = bytearray(bind_pdu())
    struct.pack_into("<H", data, 8, 12)
    return bytes(data)


def _unknown_ptype() -> bytes:
    data = bytearray(bind_pdu())
    data[2] = 20  # C706 12.6.4 defines PTYPEs 0-19 (19 is orphaned)
    return bytes(data)


def _auth3_without_bind() -> bytes:
    return rpc.Auth3(call_id=1, auth=rpc.AuthVerifier(rpc.AUTHN_WINNT, 6, 7, b"x" * 60)
                     ).encode()


@pytest.mark.parametrize(("make_pdu", "answer"), [
    # C706 12.6.3.1: protocol_version_not_supported, then close.
    (_bad_version, ("nak", rpc.REJECT_PROTOCOL_VERSION_NOT_SUPPORTED)),
    (_short_frag_length, ("nak", rpc.REJECT_REASON_NOT_SPECIFIED)),
    # A bind with no presentation context: bind_nak reason_not_specified (Samba, vs Windows).
    (lambda: bind_pdu(contexts=()), ("nak", rpc.REJECT_REASON_NOT_SPECIFIED)),
    # C706 12.6.4: a PDU type that is not connection-oriented is a protocol error.
    (_unknown_ptype, ("fault", rpc.NCA_S_PROTO_ERROR)),
    # docs/wire-rpc.md: auth3 for a security context that is not waiting for one.
    (_auth3_without_bind, ("fault", rpc.NCA_S_PROTO_ERROR)),
    # C706 12.6: a request before bind.
    (lambda: request(), ("fault", rpc.NCA_S_PROTO_ERROR)),
], ids=["bad-version", "frag-length-under-header", "bind-0-contexts", "unknown-ptype",
        "auth3-without-bind", "request-before-bind"])
def test_malformed_first_pdu_is_refused_and_closed(
        start_host: Callable[..., Host], make_pdu: Callable[[], bytes],
        answer: tuple[str, int]) -> None:
    host = start_host()
    with socket.create_connection((host.address, host.wmi), timeout=10) as s:
        s.sendall(make_pdu())
        pdus, closed = read_pdus(s)
    kind, code = answer
    if kind == "nak":
        assert one_nak(pdus).reject_reason == code
    else:
        assert one_fault(pdus).status == code
    assert closed
    assert host.wait_connections(lambda n: n == 0) == 0
    assert aiowmi_caption(host) == XP


def test_fragment_over_max_recv_frag_is_refused_from_its_header(
        start_host: Callable[..., Host]) -> None:
    host = start_host()
    # Before bind the limit is the host's own (5840): a bind announcing more is refused
    # without waiting for its octets.
    with socket.create_connection((host.address, host.wmi), timeout=10) as s:
        head = bytearray(bind_pdu()[:16])
        struct.pack_into("<H", head, 8, 6000)
        s.sendall(bytes(head))
        pdus, closed = read_pdus(s)
    assert one_nak(pdus).reject_reason == rpc.REJECT_REASON_NOT_SPECIFIED and closed
    # After bind, the negotiated max_recv_frag (FRAG): fault nca_s_proto_error, close.
    with bound(host) as s:
        full = request(stub=b"\x00" * (FRAG + 64))
        s.sendall(full[:24])  # the header only: the rest never needs to come
        pdus, closed = read_pdus(s)
    fault = one_fault(pdus)
    assert fault.status == rpc.NCA_S_PROTO_ERROR and closed
    assert fault.call_id == 2 and not fault.flags & rpc.PFC_DID_NOT_EXECUTE
    assert aiowmi_caption(host) == XP


def test_truncated_fragment_then_close_frees_the_connection(
        start_host: Callable[..., Host]) -> None:
    host = start_host()
    for data in (bind_pdu()[:30], b"\x05\x00"):
        with socket.create_connection((host.address, host.wmi), timeout=10) as s:
            s.sendall(data)
            assert host.wait_connections(lambda n: n == 1) == 1
    assert host.wait_connections(lambda n: n == 0) == 0
    with bound(host) as s:
        s.sendall(request(stub=b"\x00" * 64)[:40])
    assert host.wait_connections(lambda n: n == 0) == 0
    assert aiowmi_caption(host) == XP


def test_a_fragment_stream_that_never_ends_is_cut_at_the_request_limit(
        start_host: Callable[..., Host]) -> None:
    host = start_host(Limits(max_request_size=256 * 1024))
    chunk = b"\x00" * 1024
    with bound(host) as s:
        s.sendall(request(call_id=9, stub=chunk, alloc_hint=0, flags=rpc.PFC_FIRST_FRAG))
        sent = 1
        try:
            while sent < 1000:  # never PFC_LAST_FRAG
                s.sendall(request(call_id=9, stub=chunk, alloc_hint=0, flags=0))
                sent += 1
        except (BrokenPipeError, ConnectionResetError):
            pass
        pdus, closed = read_pdus(s)
    # MS-RPCE: a request over the limit gets fault status 5, and the host closes.
    assert one_fault(pdus).status == REQUEST_TOO_LARGE_STATUS and closed
    assert sent < 1000
    assert aiowmi_caption(host) == XP


def test_a_huge_alloc_hint_is_refused_on_the_first_fragment(
        start_host: Callable[..., Host]) -> None:
    host = start_host()
    with bound(host) as s:
        s.sendall(request(alloc_hint=0xFFFFFFF0, flags=rpc.PFC_FIRST_FRAG))
        pdus, closed = read_pdus(s)
    fault = one_fault(pdus)
    assert fault.status == REQUEST_TOO_LARGE_STATUS and fault.call_id == 2 and closed
    assert aiowmi_caption(host) == XP


def test_request_on_an_unknown_context_is_refused_and_the_connection_stays(
        start_host: Callable[..., Host]) -> None:
    host = start_host()
    with bound(host) as s:
        s.sendall(request(call_id=5, context_id=7))
        fault = read_one(s)
        # C706 appendix E nca_s_unk_if, did not execute; the connection goes on.
        assert fault.status == rpc.NCA_S_UNK_IF and fault.flags & rpc.PFC_DID_NOT_EXECUTE
        s.sendall(request(call_id=6))  # context 0, now served
        # Unauthenticated, the call runs as ANONYMOUS LOGON and the DCOM access check
        # refuses it (docs/host.md, c1.access): fault 5, and the connection still stays.
        assert read_one(s).status == rpc.STATUS_ACCESS_DENIED
        s.sendall(request(call_id=7))
        assert read_one(s).call_id == 7
    assert aiowmi_caption(host) == XP


# ------------------------------------------------------------------------------------------
# Fuzz: random mutations of a real bind + request exchange


def _real_exchange() -> bytes:
    """What a client sends first: bind IWbemLevel1Login, then a call on context 0."""
    client = ClientConnection()
    client.bind(LOGIN)
    data = client.data_to_send()
    client.receive_data(rpc.BindAck(call_id=1, results=(rpc.ContextResult(
        rpc.RESULT_ACCEPTANCE, 0, NDR),)).encode())
    client.request(ids.WbemLevel1LoginOp.NTLM_LOGIN, b"\x00" * 40, object_uuid=uuid.uuid4())
    return data + client.data_to_send()


EXCHANGE = _real_exchange()
_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(EXCHANGE) - 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(EXCHANGE) - 1), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, len(EXCHANGE)), st.integers(0, 255)),
    st.tuples(st.just("u16"), st.integers(0, len(EXCHANGE) - 2), st.integers(0, 0xFFFF)),
)


def _mutate(data: bytes, steps: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for op, at, value in steps:
        at = min(at, max(len(out) - 1, 0))
        if op == "flip" and out:
            out[at] ^= value
        elif op == "cut":
            del out[at:]
        elif op == "insert":
            out[at:at] = bytes([value])
        elif op == "u16" and len(out) >= at + 2:
            struct.pack_into("<H", out, at, value)
    return bytes(out)


@pytest.fixture(scope="module")
def fuzz_host() -> Iterator[Host]:
    host = Host(Limits(bind_timeout=1.0))
    yield host
    host.close()


@settings(max_examples=int(os.environ.get("WMILAB_FUZZ_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_mutation, min_size=1, max_size=4))
def test_mutated_exchanges_never_stop_the_host(fuzz_host: Host,
                                               steps: list[tuple[str, int, int]]) -> None:
    with socket.create_connection((fuzz_host.address, fuzz_host.wmi), timeout=10) as s:
        s.sendall(_mutate(EXCHANGE, steps))
        pdus, _ = read_pdus(s, timeout=0.3)
    # Whatever came back is well formed and of a type a server sends.
    assert all(isinstance(p, rpc.BindAck | rpc.BindNak | rpc.Fault | rpc.Response)
               for p in pdus), pdus
    with bound(fuzz_host) as s:  # the next client is served
        s.sendall(request(call_id=3))
        assert read_one(s).status == rpc.STATUS_ACCESS_DENIED  # anonymous, c1.access


def test_after_the_fuzz_a_real_client_is_served_and_nothing_leaks(fuzz_host: Host) -> None:
    assert fuzz_host.wait_connections(lambda n: n == 0, timeout=5) == 0
    assert aiowmi_caption(fuzz_host) == XP


# ------------------------------------------------------------------------------------------
# wire/rpc_conn/, sans-IO: fragments over max_recv_frag are refused, not buffered


def _server_bound(max_xmit: int = FRAG) -> ServerConnection:
    srv = ServerConnection([LOGIN])
    srv.receive_data(rpc.Bind(call_id=1, contexts=(ContextElement(0, LOGIN, (NDR,)),),
                              max_xmit_frag=max_xmit, max_recv_frag=max_xmit).encode())
    ack = rpc.parse_pdu(srv.data_to_send())
    assert isinstance(ack, rpc.BindAck) and ack.max_recv_frag == max_xmit
    return srv


def test_rpc_conn_refuses_a_fragment_over_the_negotiated_max_recv_frag() -> None:
    srv = _server_bound()
    header = request(call_id=4, stub=b"\x00" * FRAG)[:24]  # frag_length FRAG + 40
    events = srv.receive_data(header)
    assert [type(e) for e in events] == [ProtocolViolation] and srv.closed
    fault = rpc.parse_pdu(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and fault.status == rpc.NCA_S_PROTO_ERROR
    assert fault.call_id == 4 and not fault.flags & rpc.PFC_DID_NOT_EXECUTE
    assert srv.receive_data(b"\x00" * 4096) == []  # nothing more is read or buffered


def test_rpc_conn_accepts_a_fragment_of_exactly_max_recv_frag() -> None:
    srv = _server_bound()
    pdu = request(call_id=4, stub=b"\x00" * (FRAG - 40))
    assert len(pdu) == FRAG
    events = srv.receive_data(pdu)
    assert len(events) == 1 and not srv.closed
    assert events[0].__class__.__name__ == "CallReceived"


def test_rpc_conn_refuses_an_oversized_bind_before_negotiation() -> None:
    srv = ServerConnection([LOGIN])
    head = bytearray(bind_pdu()[:16])
    struct.pack_into("<H", head, 8, srv.max_recv_frag + 1)
    events = srv.receive_data(bytes(head))
    assert [type(e) for e in events] == [ProtocolViolation] and srv.closed
    nak = rpc.parse_pdu(srv.data_to_send())
    assert isinstance(nak, rpc.BindNak) and nak.reject_reason == rpc.REJECT_REASON_NOT_SPECIFIED


def test_rpc_conn_naks_a_bind_without_contexts_and_a_huge_alloc_hint_faults() -> None:
    srv = ServerConnection([LOGIN])
    srv.receive_data(bind_pdu(contexts=()))
    nak = rpc.parse_pdu(srv.data_to_send())
    assert isinstance(nak, rpc.BindNak) and srv.closed and not srv.bound
    srv = _server_bound()
    srv.receive_data(request(alloc_hint=srv.max_request_size + 1, flags=rpc.PFC_FIRST_FRAG))
    fault = rpc.parse_pdu(srv.data_to_send())
    assert isinstance(fault, rpc.Fault) and srv.closed
    assert fault.status == REQUEST_TOO_LARGE_STATUS
