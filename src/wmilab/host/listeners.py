"""Listening sockets shared by the hosts of a big loopback lab, and the descriptor limit.

A host normally listens on its own address (``loop.create_server`` per host and port: two
sockets per host at least). With ``SharedListeners`` one socket per port serves every host
that listens on that port: it is bound to the wildcard address **on the loopback interface
only** (``SO_BINDTODEVICE lo``), and each accepted connection goes to the host whose
address it was made to (its local address, ``getsockname``). A connection to an address no
host of the lab holds (``127.0.0.1``, or the machine's own address dialled from the machine
itself, which also arrives on ``lo``) is reset at once, before any byte is read. Packets
from other interfaces never reach the socket. docs/lab.md "Many hosts" and docs/choices.md
give the reasons; ``LoopbackLab`` picks this mode for labs too big for per-host sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import resource
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wmilab.model.ports import PortRange

__all__ = ["SharedListeners", "SharedRoute", "raise_descriptor_limit"]

log = logging.getLogger("wmilab.host")

# Linux's loopback interface: 127.0.0.0/8 is delivered on it, and so is traffic the machine
# sends to its own addresses.
LOOPBACK_INTERFACE = b"lo"
_BACKLOG = 1024
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a RST
# Choice (docs/choices.md): with shared sockets, the dynamic ports the hosts of one range
# listen on come from at most this many ports of the range, each drawn at random; beyond
# it a host takes one of them at random. Independent draws would need a socket for nearly
# every port of a range (3,976 on XP) in a big lab.
PORTS_PER_RANGE = 512


def raise_descriptor_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit when ``needed`` descriptors would not
    fit under the soft one; log what was done, or why it could not be. Returns the soft limit
    in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed <= soft:
        return soft
    target = hard if hard != resource.RLIM_INFINITY else max(needed, soft)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as e:
            log.warning("this lab needs about %d file descriptors; the soft limit is %d and "
                        "raising it to the hard limit %d failed: %s", needed, soft, hard, e)
            return soft
        log.info("raised this process's file descriptor limit (RLIMIT_NOFILE) from %d to "
                 "its hard limit %d for about %d descriptors", soft, target, needed)
        soft = target
    if needed > soft:
        log.warning("this lab needs about %d file descriptors but the hard limit "
                    "(RLIMIT_NOFILE) is %d: raise it (ulimit -Hn, systemd LimitNOFILE=) or "
                    "spread the hosts with --workers", needed, hard)
    return soft


class _PortListener:
    """One listening socket on a port, bound to the wildcard address on ``lo``."""

    def __init__(self, owner: SharedListeners, sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.routes: dict[str, Callable[[], asyncio.Protocol]] = {}
        self._paused: asyncio.TimerHandle | None = None

    def on_readable(self) -> None:
        loop = self.owner.loop
        for _ in range(_BACKLOG):
            try:
                conn, _peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # As asyncio does: stop accepting for a second, the backlog waits.
                    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                    log.error("port %d: cannot accept a connection: %s (RLIMIT_NOFILE %d, "
                              "hard %d); accepting again in 1 s", self.port, e.strerror,
                              soft, hard)
                    loop.remove_reader(self.sock)
                    self._paused = loop.call_later(1.0, self._resume)
                    return
                if e.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue
                raise
            try:
                local = conn.getsockname()[0]
            except OSError:
                conn.close()
                continue
            factory = self.routes.get(local)
            if factory is None:
                # Not a lab host's address: never served, reset before reading a byte.
                log.info("port %d: reset a connection to %s, which is no host of this lab",
                         self.port, local)
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                conn.close()
                continue
            conn.setblocking(False)
            self.owner.adopt(conn, factory)

    def _resume(self) -> None:
        self._paused = None
        if self.sock.fileno() >= 0:
            self.owner.loop.add_reader(self.sock, self.on_readable)

    def close(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
        elif self.sock.fileno() >= 0:
            self.owner.loop.remove_reader(self.sock)
        self.sock.close()


class SharedRoute:
    """One host address served on a shared port; ``close()`` takes it off again."""

    def __init__(self, listener: _PortListener, address: str) -> None:
        self.listener = listener
        self.address = address
        self.port = listener.port

    def close(self) -> None:
        self.listener.owner.unroute(self.listener, self.address)

    async def wait_closed(self) -> None:
        return None


class SharedListeners:
    """One listening socket per port for every host of a lab (see the module's text)."""

    def __init__(self, ports_per_range: int = PORTS_PER_RANGE) -> None:
        self.ports_per_range = ports_per_range
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ports: dict[int, _PortListener] = {}
        self._pools: dict[tuple[tuple[int, int], ...], list[int]] = {}
        self._free: dict[str, int] = {}  # a port asked as 0 by role: the one picked first
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    @property
    def sockets(self) -> int:
        """Listening sockets open now."""
        return len(self._ports)

    def draw(self, ports: PortRange, rng: random.Random) -> int:
        """A port of the dynamic range ``ports`` for a host's listener: drawn at random
        while the lab listens on fewer than ``ports_per_range`` ports of that range, else
        one of those at random."""
        pool = self._pools.get(ports.spans, [])
        if len(pool) >= self.ports_per_range:
            return rng.choice(pool)
        return ports.pick(rng)

    def route(self, address: str, port: int, factory: Callable[[], asyncio.Protocol],
              role: str = "", pool: PortRange | None = None) -> SharedRoute:
        """Serve connections to ``address:port`` with protocols from ``factory``.

        Port 0 means the free port this object picked for ``role`` the first time (so that
        every host's RPCSS shares one). Raises OSError(EADDRINUSE) if that address already
        listens on the port here, or the port cannot be bound (another program holds it).
        """
        self._loop = asyncio.get_running_loop()
        if port == 0 and role in self._free:
            port = self._free[role]
        listener = self._ports.get(port) if port else None
        if listener is None:
            listener = self._bind(port)
            self._ports[listener.port] = listener
            if port == 0:
                self._free[role] = listener.port
        if address in listener.routes:
            raise OSError(errno.EADDRINUSE, f"{address}:{listener.port} is served already")
        listener.routes[address] = factory
        if pool is not None:
            taken = self._pools.setdefault(pool.spans, [])
            if listener.port not in taken:
                taken.append(listener.port)
        return SharedRoute(listener, address)

    def _bind(self, port: int) -> _PortListener:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Never a wildcard socket without this: it restricts the socket to packets that
            # arrive on the loopback interface (socket(7) SO_BINDTODEVICE; without
            # CAP_NET_RAW since Linux 5.7, kernel commit c427bfec18f2). If it fails, the
            # bind fails: the lab reports it rather than listen on every interface.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, LOOPBACK_INTERFACE)
            sock.bind(("0.0.0.0", port))
            sock.listen(_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        listener = _PortListener(self, sock)
        self.loop.add_reader(sock, listener.on_readable)
        return listener

    def unroute(self, listener: _PortListener, address: str) -> None:
        listener.routes.pop(address, None)
        if not listener.routes and self._ports.get(listener.port) is listener:
            del self._ports[listener.port]
            for role, port in list(self._free.items()):
                if port == listener.port:
                    del self._free[role]
            for pool in self._pools.values():
                if listener.port in pool:
                    pool.remove(listener.port)
            listener.close()

    def adopt(self, conn: socket.socket, factory: Callable[[], asyncio.Protocol]) -> None:
        """Give an accepted socket its transport and protocol (asyncio's own accept does
        the same in a task)."""
        task = self.loop.create_task(self._adopt(conn, factory))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _adopt(self, conn: socket.socket, factory: Callable[[], asyncio.Protocol]) -> None:
        try:
            await self.loop.connect_accepted_socket(factory, conn)
        except OSError as e:
            log.info("could not take a connection: %s", e)
            conn.close()

    def close(self) -> None:
        for listener in list(self._ports.values()):
            listener.close()
        self._ports.clear()
        self._free.clear()
        self._pools.clear()
