"""Shared listening sockets (host/listeners.py): one socket per port for every host of a
lab, each connection served by the host whose address it was made to, and nothing else."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from conftest import loopback_net
from wmilab.host.listeners import LOOPBACK_INTERFACE, SharedListeners


def _addresses(n: int) -> list[str]:
    base = loopback_net().rsplit(".", 1)[0]
    return [f"{base}.{i + 10}" for i in range(n)]


class _Echo(asyncio.Protocol):
    """Answers each connection with the name of the host it was given to."""

    def __init__(self, name: str, made: list[str]) -> None:
        self.name, self.made = name, made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.made.append(self.name)
        transport.write(self.name.encode())
        transport.close()


async def _read(address: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(address, port)
    try:
        return await asyncio.wait_for(reader.read(100), 5)
    finally:
        writer.close()


async def _outcome(address: str, port: int) -> bytes | str:
    try:
        return await _read(address, port)
    except ConnectionError as e:
        return type(e).__name__


def test_each_connection_goes_to_the_host_of_its_local_address() -> None:
    a, b, stranger = _addresses(3)

    async def main() -> None:
        shared = SharedListeners()
        made: list[str] = []
        ra = shared.route(a, 0, lambda: _Echo("A", made), role="rpcss")
        rb = shared.route(b, 0, lambda: _Echo("B", made), role="rpcss")
        try:
            # Port 0 for the same role is one free port, shared by both hosts.
            assert ra.port == rb.port and shared.sockets == 1
            assert await _read(a, ra.port) == b"A"
            assert await _read(b, ra.port) == b"B"
            assert await _read(a, ra.port) == b"A"
            # An address that is no host's: reset before any protocol exists.
            assert await _outcome(stranger, ra.port) == "ConnectionResetError"
            assert await _outcome("127.0.0.1", ra.port) == "ConnectionResetError"
            assert made == ["A", "B", "A"]
            # The same address twice on one port is refused, as a second bind would be.
            with pytest.raises(OSError) as info:
                shared.route(a, ra.port, lambda: _Echo("A2", made))
            assert info.value.errno == errno.EADDRINUSE
        finally:
            shared.close()

    asyncio.run(main())


def test_the_socket_is_the_wildcard_on_the_loopback_interface_only() -> None:
    (a,) = _addresses(1)

    async def main() -> None:
        shared = SharedListeners()
        route = shared.route(a, 0, asyncio.Protocol)
        try:
            (listener,) = shared._ports.values()
            sock = listener.sock
            assert sock.getsockname() == ("0.0.0.0", route.port)
            device = sock.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16)
            assert device.rstrip(b"\0") == LOOPBACK_INTERFACE
        finally:
            shared.close()

    asyncio.run(main())


def test_the_last_host_leaving_a_port_closes_its_socket() -> None:
    a, b = _addresses(2)

    async def main() -> None:
        shared = SharedListeners()
        ra = shared.route(a, 0, asyncio.Protocol, role="wmi")
        rb = shared.route(b, 0, asyncio.Protocol, role="wmi")
        port = ra.port
        ra.close()
        assert shared.sockets == 1
        # A's address is no longer served although the socket still listens for B.
        assert await _outcome(a, port) == "ConnectionResetError"
        rb.close()
        assert shared.sockets == 0
        with pytest.raises(ConnectionRefusedError):
            await _read(b, port)
        # The port is free again: a per-address socket can take it.
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((a, port))
        probe.close()

    asyncio.run(main())
