"""An asyncio ncacn_ip_tcp client over the sans-IO :class:`ClientConnection`.

Used by the emulated host B to call a client's sink (host/callback.py, Connection 2) and by
wmilab's own WMI client (client/). Failures raise :class:`RpcCallError` with the HRESULT a
Windows caller would see: 0x800706BA when the server cannot be reached, the fault status
(as HRESULT_FROM_WIN32 when it is a Win32 code) when the call is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from types import TracebackType

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


class RpcClient:
    """One ncacn_ip_tcp connection driven by a sans-IO :class:`ClientConnection`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: ClientConnection, call_timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.call_timeout = call_timeout

    @classmethod
    async def connect(cls, host: str, port: int, *, local_address: str | None = None,
                      credentials: ClientCredentials | None = None,
                      auth_level: int = AuthLevel.NONE, connect_timeout: float = 5.0,
                      call_timeout: float = 30.0) -> RpcClient:
        """Connect (from ``local_address`` if given); a refusal raises 0x800706BA."""
        local = (local_address, 0) if local_address else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=local), connect_timeout)
        except (OSError, TimeoutError) as e:
            # A blocked or closed port: RPC_S_SERVER_UNAVAILABLE (seed: 0x800706ba).
            raise RpcCallError(RPC_S_SERVER_UNAVAILABLE,
                               f"cannot connect to {host}:{port}: {e or 'timed out'}") from None
        level = auth_level if credentials is not None else AuthLevel.NONE
        conn = ClientConnection(credentials=credentials, auth_level=level)
        return cls(reader, writer, conn, call_timeout)

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    async def _flush(self) -> None:
        """Send what the connection queued (requests, binds, AUTH3), if anything."""
        data = self.conn.data_to_send()
        if not data:
            return
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (OSError, RuntimeError) as e:
            # uvloop (host/eventloop.py) raises RuntimeError where asyncio raises OSError: a
            # write on a connection the peer has already reset.
            raise RpcCallError(RPC_S_SERVER_UNAVAILABLE, f"connection lost: {e}") from None

    async def _next_event(self) -> Event:
        while True:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), self.call_timeout)
            except TimeoutError:
                raise RpcCallError(RPC_S_SERVER_UNAVAILABLE, "no answer in time") from None
            except OSError as e:
                # A firewall drop is emulated with a RST (docs/host.md): 0x800706BA.
                raise RpcCallError(RPC_S_SERVER_UNAVAILABLE, f"connection lost: {e}") from None
            if not data:
                raise RpcCallError(RPC_S_SERVER_UNAVAILABLE, "connection closed by the server")
            events = self.conn.receive_data(data)
            await self._flush()
            for ev in events:
                if isinstance(ev, ProtocolViolation):
                    raise RpcCallError(RPC_S_CALL_FAILED, f"protocol violation: {ev.reason}")
            if events:
                return events[0]

    async def bind(self, interface: uuid.UUID) -> None:
        """Bind the interface (version 0.0, MS-DCOM 2.1); NTLM runs here when authenticated."""
        self.conn.bind(rpc.SyntaxId(interface, 0, 0))
        await self._flush()
        ev = await self._next_event()  # its AUTH3, if any, is sent there
        if isinstance(ev, BindAcked) and ev.accepted:
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
