"""An asyncio ncacn_ip_tcp client over the sans-IO :class:`ClientConnection`.

Used by the emulated host B to call a client's sink (host/callback.py, Connection 2) and by
wmilab's own WMI client (client/). Failures raise :class:`RpcCallError` with the HRESULT a
Windows caller would see: 0x800706BA when the server cannot be reached, the fault status
(as HRESULT_FROM_WIN32 when it is a Win32 code) when the call is refused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import uuid
from types import TracebackType
from typing import Self, cast

from wmilab import hresult as hr
from wmilab.wire import dcom, ids, rpc
from wmilab.wire.rpc import AuthLevel
from wmilab.wire.rpc_conn import (
    BindAcked,
    BindNakReceived,
    ClientConnection,
    ClientCredentials,
    Event,
    FaultReceived,
    ProtocolViolation,
    ResponseReceived,
)

__all__ = ["RpcCallError", "RpcClient"]

RPC_S_SERVER_UNAVAILABLE = hr.RPC_S_SERVER_UNAVAILABLE.code
RPC_S_CALL_FAILED = hr.RPC_S_CALL_FAILED.code
E_NOINTERFACE = dcom.E_NOINTERFACE


class RpcCallError(Exception):
    """An RPC call failed; ``hresult`` is what the caller sees (0x800706BA, ...)."""

    def __init__(self, hresult: int, reason: str) -> None:
        super().__init__(f"0x{hresult:08X}: {reason}")
        self.hresult = hresult
        self.reason = reason


class _RpcProtocol(asyncio.Protocol):
    """Feeds what arrives to the sans-IO connection and keeps its events for the caller.

    One protocol object per connection and no stream reader or read task in between: the
    doctor opens two connections per host and hundreds of hosts at once (docs/benchmarks.md).
    """

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.events: collections.deque[Event] = collections.deque()
        self.error: RpcCallError | None = None  # raised once the events before it are read
        self.waiter: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's TCPTransport is not an asyncio.Transport subclass.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.error is not None:
            return
        events = self.conn.receive_data(data)
        for ev in events:
            if isinstance(ev, ProtocolViolation):
                # A violation anywhere in what came is what the caller sees next.
                self.events.clear()
                self._fail(RpcCallError(RPC_S_CALL_FAILED, f"protocol violation: {ev.reason}"))
                return
        if events:
            self.events.extend(events)
            self._wake()

    def eof_received(self) -> bool | None:
        self._fail(RpcCallError(RPC_S_SERVER_UNAVAILABLE, "connection closed by the server"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        # A firewall drop is emulated with a RST (docs/host.md): 0x800706BA.
        self._fail(RpcCallError(RPC_S_SERVER_UNAVAILABLE, f"connection lost: {exc}" if exc
                                else "connection closed by the server"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, error: RpcCallError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)


class RpcClient:
    """One ncacn_ip_tcp connection driven by a sans-IO :class:`ClientConnection`."""

    def __init__(self, proto: _RpcProtocol, call_timeout: float) -> None:
        self._proto = proto
        self.conn = proto.conn
        self.call_timeout = call_timeout

    @classmethod
    async def connect(cls, host: str, port: int, *, local_address: str | None = None,
                      credentials: ClientCredentials | None = None,
                      auth_level: int = AuthLevel.NONE, connect_timeout: float = 5.0,
                      call_timeout: float = 30.0, sock: socket.socket | None = None) -> Self:
        """Connect (from ``local_address`` if given, or on ``sock``, a bound non-blocking
        socket that is closed on failure); a refusal raises 0x800706BA."""
        try:
            return await cls.open(host, port, local_address=local_address,
                                  credentials=credentials, auth_level=auth_level,
                                  connect_timeout=connect_timeout, call_timeout=call_timeout,
                                  sock=sock)
        except (OSError, TimeoutError) as e:
            # A blocked or closed port: RPC_S_SERVER_UNAVAILABLE (seed: 0x800706ba).
            raise RpcCallError(RPC_S_SERVER_UNAVAILABLE,
                               f"cannot connect to {host}:{port}: {e or 'timed out'}") from None

    @classmethod
    async def open(cls, host: str, port: int, *, local_address: str | None,
                   credentials: ClientCredentials | None, auth_level: int,
                   connect_timeout: float, call_timeout: float,
                   sock: socket.socket | None = None) -> Self:
        """Connect; OSError or TimeoutError as the socket gave them (callers classify)."""
        level = auth_level if credentials is not None else AuthLevel.NONE
        proto = _RpcProtocol(ClientConnection(credentials=credentials, auth_level=level))
        local = (local_address, 0) if local_address else None
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(connect_timeout):
            if sock is None:
                await loop.create_connection(lambda: proto, host, port, local_addr=local)
            else:
                try:
                    await loop.sock_connect(sock, (host, port))
                    await loop.create_connection(lambda: proto, sock=sock)
                except BaseException:
                    sock.close()
                    raise
        return cls(proto, call_timeout)

    def sockname(self) -> tuple[str, int] | None:
        """This end's (address, port), while connected."""
        t = self._proto.transport
        name = t.get_extra_info("sockname") if t is not None else None
        return (str(name[0]), int(name[1])) if name else None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the socket (FIN); waits at most a second for the transport to let go."""
        proto = self._proto
        if proto.transport is None:
            return
        proto.transport.close()
        if not proto.closed.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await asyncio.shield(proto.closed)

    async def _flush(self) -> None:
        """Send what the connection queued (requests, binds, AUTH3), if anything.

        The AUTH3 that a bind_ack makes is not sent on its own: it leaves with the next
        request or alter_context, in one write (docs/choices.md).
        """
        data = self.conn.data_to_send()
        if not data:
            return
        t = self._proto.transport
        if t is None or t.is_closing():
            err = self._proto.error
            raise RpcCallError(RPC_S_SERVER_UNAVAILABLE, err.reason if err is not None
                               else "connection lost: the transport is closed")
        try:
            t.write(data)
        except (OSError, RuntimeError) as e:
            # uvloop (host/eventloop.py) raises RuntimeError where asyncio raises OSError: a
            # write on a connection the peer has already reset.
            raise RpcCallError(RPC_S_SERVER_UNAVAILABLE, f"connection lost: {e}") from None

    async def _next_event(self) -> Event:
        proto = self._proto
        if proto.events:
            return proto.events.popleft()
        if proto.error is not None:
            raise proto.error
        loop = asyncio.get_running_loop()
        waiter = proto.waiter = loop.create_future()
        timer = loop.call_later(self.call_timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            proto.waiter = None
        if proto.events:
            return proto.events.popleft()
        if proto.error is not None:
            raise proto.error
        raise RpcCallError(RPC_S_SERVER_UNAVAILABLE, "no answer in time")

    async def bind(self, interface: uuid.UUID, *more: uuid.UUID) -> None:
        """Bind the interface (version 0.0, MS-DCOM 2.1) on context 0, and those of ``more``
        on contexts 1, 2, ... in the same bind; NTLM runs here when authenticated. Only the
        first must be accepted (``conn.contexts`` says which of the others were)."""
        self.conn.bind(rpc.SyntaxId(interface, 0, 0),
                       more=tuple(rpc.SyntaxId(i, 0, 0) for i in more))
        await self._flush()
        ev = await self._next_event()  # its AUTH3 leaves with the next request
        if isinstance(ev, BindAcked) and ev.results \
                and ev.results[0].result == rpc.RESULT_ACCEPTANCE:
            return
        if isinstance(ev, FaultReceived):
            raise RpcCallError(hr.from_win32(ev.status), "bind refused by a fault")
        # Choice: a rejected bind (interface not served) is reported as E_NOINTERFACE.
        why = f"reason {ev.reject_reason}" if isinstance(ev, BindNakReceived) else "not accepted"
        raise RpcCallError(E_NOINTERFACE, f"bind of {ids.NAMES.get(interface, interface)} "
                           f"rejected ({why})")

    async def call(self, opnum: int, stub: bytes, object_uuid: uuid.UUID | None = None,
                   context_id: int | None = None) -> bytes:
        """Send one request (on ``context_id``, else the connection's first context); the
        response stub, or RpcCallError with the fault's HRESULT."""
        if context_id is None:
            call_id = self.conn.request(opnum, stub, object_uuid=object_uuid)
        else:
            call_id = self.conn.request(opnum, stub, context_id=context_id,
                                        object_uuid=object_uuid)
        await self._flush()
        while True:
            ev = await self._next_event()
            if isinstance(ev, ResponseReceived) and ev.call_id == call_id:
                return ev.stub
            if isinstance(ev, FaultReceived):
                # A fault's status is a Win32 code or an HRESULT (MS-RPCE 2.2.2.4): fault 5
                # rpc_s_access_denied is E_ACCESSDENIED 0x80070005 (MS-ERREF 2.1.2).
                raise RpcCallError(hr.from_win32(ev.status),
                                   f"fault 0x{ev.status:08X}")


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)  # woken with no event and no error: the call timed out
