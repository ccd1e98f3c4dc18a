"""The asyncio runtime of one emulated Windows host: RPCSS on 135, WMI on its dynamic port.

Each TCP connection gets a sans-IO :class:`wmilab.wire.rpc_conn.ServerConnection`; the
firewall gate, the NTLM logon, DCOM activation and access, and WMI namespace security are
all decided by the model (see gate.py, auth.py, rpcss.py, exporter.py and docs/host.md).
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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, cast

from wmilab import hresult as hr
from wmilab import steps
from wmilab.errors import ConfigError
from wmilab.host.auth import ModelAuthenticator, ntlm_names, token_of
from wmilab.host.callback import CallbackRunner
from wmilab.host.exporter import EXPORTER_INTERFACES, WmiExporter
from wmilab.host.gate import Gate, GateDecision
from wmilab.host.listeners import SharedListeners
from wmilab.host.loopback_map import LoopbackMap
from wmilab.host.pinging import GcSettings
from wmilab.host.rpcss import RPCSS_INTERFACES, Rpcss
from wmilab.host.runtime import CallContext, HostRuntime, Reply
from wmilab.model.ports import RPC_ENDPOINT_MAPPER, PortRange
from wmilab.model.world import World
from wmilab.wire import ids, rpc
from wmilab.wire.dcom import RpcFaultReply
from wmilab.wire.rpc_conn import (
    Authenticated,
    Bound,
    CallReceived,
    ConnState,
    LogonFailed,
    ProtocolViolation,
    ServerConnection,
)

__all__ = ["HostBindError", "HostServer", "Limits", "Service"]

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only

log = logging.getLogger("wmilab.host")

RPC_E_SERVERFAULT = hr.RPC_E_SERVERFAULT.code  # from the status-code catalogue
# Read after every PDU: plain values (an Enum member read from its class is slow on 3.11).
_CLOSED, _BOUND = ConnState.CLOSED, ConnState.BOUND
_FILETIME_EPOCH = 11_644_473_600  # seconds from 1601-01-01 to 1970-01-01


@dataclass(frozen=True)
class Limits:
    """Bounds that keep one host's memory and sockets in check (docs/host.md)."""

    max_connections: int = 256  # per host, both ports; more are reset at once
    bind_timeout: float = 30.0  # seconds a connection may stay without a bind
    idle_timeout: float = 900.0  # seconds without a PDU once bound (impacket pings at 120 s)
    max_request_size: int = 4 * 1024 * 1024  # reassembled request stub bytes (MS-RPCE: 4 MB)
    # Last-resort bound on live IPIDs in the WMI object exporter; objects otherwise live and
    # die by references and pinging (host/pinging.py).
    max_objects: int = 65_536
    gc: GcSettings = field(default_factory=GcSettings)  # ping period and timeout


class HostBindError(OSError):
    """A listening socket could not be bound; the message says what to do."""


class _Listening(Protocol):
    """A listening socket of a host: an asyncio server, or a route on a shared listener."""

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class Service(Protocol):
    """What an extra listener of a host (the sink exporter, host/sink.py) provides."""

    kind: str  # name in HostServer.ports and in the log

    @property
    def interfaces(self) -> tuple[rpc.SyntaxId, ...]: ...

    def decide(self, peer: str) -> GateDecision: ...

    def handle(self, ev: CallReceived, ctx: CallContext) -> tuple[str, Reply]: ...


def _filetime() -> int:
    return int((time.time() + _FILETIME_EPOCH) * 10_000_000)


class HostServer:
    """Serves one scenario host on one IP address: RPCSS (135) and the WMI exporter.

    ``ports`` maps the well-known port 135 to the port to bind (0 picks a free one), for
    tests without root. The WMI service (and a sink exporter) listen on a port drawn at
    random from the host's dynamic RPC range (``HostModel.rpc_ports``), as the RPC runtime
    assigns one (KB 154596); ``rng`` makes the draw reproducible in tests. ``client_host``
    is the scenario host a connection from an address that is no host's loopback address
    stands for. With ``listeners`` the host's WMI service is served by the lab's shared
    listening sockets (host/listeners.py) instead of a socket of its own; RPCSS keeps its
    own socket on 135.
    """

    def __init__(self, world: World, host: str, *, address: str | None = None,
                 addresses: LoopbackMap | None = None, client_host: str | None = None,
                 ports: Mapping[int, int] | None = None, limits: Limits | None = None,
                 rng: random.Random | None = None,
                 listeners: SharedListeners | None = None) -> None:
        if host not in world.configs:
            raise ConfigError(f"no host {host!r} in the scenario (hosts: "
                              f"{', '.join(world.configs)})", ("hosts", host))
        self.world = world
        self.name = host
        self.model = world.host(host)
        self.addresses = addresses or LoopbackMap.for_world(world)
        self.address = address or str(self.addresses.loopback(host))
        self.gate = Gate(world, host, self.addresses, client_host)
        self.limits = limits or Limits()
        ports = dict(ports or {})
        self.port_map = ports
        self.rng = rng if rng is not None else random.SystemRandom()
        # The port each listener stands for in the model: 135, and the dynamic port WMI got
        # (set when it is bound, from the model's range).
        self.model_ports = {"rpcss": RPC_ENDPOINT_MAPPER}
        self._wanted = {"rpcss": ports.get(RPC_ENDPOINT_MAPPER, RPC_ENDPOINT_MAPPER)}
        # Where the OXID resolver of another machine listens (Connection 2): 135 unless the lab
        # binds free ports (LoopbackLab sets this to its own lookup).
        self.resolver_port: Callable[[str], int] = lambda address: RPC_ENDPOINT_MAPPER
        self.callbacks = CallbackRunner(self)
        self.ports: dict[str, int] = {}
        self.runtime: HostRuntime | None = None
        self.rpcss: Rpcss | None = None
        self.exporter: WmiExporter | None = None
        self.shared = listeners
        self._servers: list[_Listening] = []
        self._extra: dict[str, _Listening] = {}
        self._connections: dict[_RpcProtocol, None] = {}  # insertion order: oldest first
        self.names = ntlm_names(world, host)
        self._gc_timer: asyncio.TimerHandle | None = None

    @property
    def client_host(self) -> str | None:
        """The scenario host that a connection from no host's address stands for: the gate
        holds it, for inbound connections and for the callback alike (one holder)."""
        return self.gate.client_host

    @client_host.setter
    def client_host(self, host: str | None) -> None:
        self.gate.client_host = host

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            for kind in ("wmi", "rpcss"):
                if kind == "wmi":
                    # The model says where WMI listens: a port of the dynamic range, or
                    # the fixed 24158 after winmgmt /standalonehost (HostModel.wmi_ports).
                    srv, port = await self._bind_dynamic(lambda: _RpcProtocol(self, "wmi"),
                                                         "wmi", self.model.wmi_ports,
                                                         self.shared)
                else:
                    # Choice (docs/choices.md): 135 keeps a socket per host even in a lab
                    # of shared sockets; a wildcard on the well-known port would take it
                    # from every other lab and program on the machine's loopback.
                    srv, port = await self._listen(lambda: _RpcProtocol(self, "rpcss"),
                                                   self._wanted[kind], "the RPCSS")
                self._servers.append(srv)
                self.ports[kind] = port
                self.model_ports[kind] = (RPC_ENDPOINT_MAPPER if kind == "rpcss"
                                          else self.ports[kind])
                if kind == "wmi":
                    self.runtime = HostRuntime(self.world, self.name,
                                               wmi_listen_port=self.ports["wmi"],
                                               max_objects=self.limits.max_objects,
                                               gc=self.limits.gc)
                    self.rpcss = Rpcss(self.runtime)
                    self.exporter = WmiExporter(self.runtime, self.callbacks)
        except HostBindError:
            await self.stop()
            raise
        except OSError as e:
            await self.stop()
            port = self._wanted["rpcss"]
            hint = ""
            if e.errno == errno.EACCES and port < 1024:
                hint = (f"; binding port {port} needs root or "
                        f"`sysctl net.ipv4.ip_unprivileged_port_start={port}`")
            elif e.errno == errno.EADDRINUSE:
                hint = ("; another lab or program already listens there (a `wmilab lab` left "
                        "running?): stop it, or give this lab its own addresses with "
                        "--loopback-net, e.g. 127.77.0.0/16")
            raise HostBindError(e.errno or 0, f"{self.name}: cannot listen on "
                                f"{self.address}:{port}: {e.strerror or e}{hint}") from None
        log.info("%s listening on %s (RPCSS %d, WMI %d)", self.name, self.address,
                 self.ports["rpcss"], self.ports["wmi"])
        self._schedule_gc()

    def _schedule_gc(self) -> None:
        """Sweep the ping sets once per ping period (MS-DCOM 3.1.2.2, host/pinging.py)."""
        loop = asyncio.get_running_loop()
        self._gc_timer = loop.call_later(self.limits.gc.ping_period, self._gc)

    def _gc(self) -> None:
        if self.runtime is not None:
            self.runtime.pings.collect()
        self._schedule_gc()

    def wanted_port(self, model_port: int) -> int:
        """The port to bind for a model port (``ports`` maps it, e.g. to 0 for a free one)."""
        return self.port_map.get(model_port, model_port)

    async def _listen(self, factory: Callable[[], asyncio.Protocol], port: int, what: str,
                      shared: SharedListeners | None = None,
                      pool: PortRange | None = None) -> tuple[_Listening, int]:
        """Listen on this host's address, or HostBindError; returns the listener and the
        port bound. With ``shared``, the address is routed on the lab's listener of that
        port (a port of the dynamic range ``pool``).

        asyncio skips an address whose socket cannot be created, taking the error for an
        unsupported address family, and returns a server with no socket; out of file
        descriptors, that is what happens. So an empty server is turned into an error that
        names the limit.
        """
        if shared is not None:
            try:
                route = shared.route(self.address, port, factory, pool=pool)
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    raise self._out_of_descriptors(e, port, what) from None
                raise
            return route, route.port
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(factory, self.address, port, reuse_address=True)
        if srv.sockets:
            return srv, srv.sockets[0].getsockname()[1]
        srv.close()
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
            why: OSError = OSError(0, "no socket could be created")
        except OSError as e:
            why = e
        raise self._out_of_descriptors(why, port, what)

    def _out_of_descriptors(self, why: OSError, port: int, what: str) -> HostBindError:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        hint = ""
        if why.errno in (errno.EMFILE, errno.ENFILE):
            if self.shared is not None:
                need = ("each host needs a listening socket for RPCSS, and the lab one per "
                        "WMI port its hosts share")
                share = ""
            else:
                need = "each host needs at least two listening sockets"
                share = " or let the hosts share listening sockets (--listeners shared)"
            hint = (f"; this process may open {soft} file descriptors (RLIMIT_NOFILE, hard "
                    f"limit {hard}) and {need}: raise the limit (ulimit -n), serve fewer "
                    f"hosts per process (--workers){share}")
        return HostBindError(why.errno or 0, f"{self.name}: cannot listen on {self.address}:"
                             f"{port} for {what}: {why.strerror or why}{hint}")

    async def _bind_dynamic(self, factory: Callable[[], asyncio.Protocol], what: str,
                            ports: PortRange | None = None,
                            shared: SharedListeners | None = None
                            ) -> tuple[_Listening, int]:
        """Listen on a port drawn from the host's dynamic RPC range (the model's
        ``rpc_ports``, the one source of the range), or from ``ports``; a port in use is
        skipped, as the RPC runtime takes the next free one."""
        ports = self.model.rpc_ports if ports is None else ports
        last: OSError | None = None
        fair = self._fair_ports(ports) if what == "wmi" and shared is None else []
        for i in range(min(64, len(ports))):
            port = (fair[i] if i < len(fair) else ports.pick(self.rng)) if shared is None \
                else shared.draw(ports, self.rng)
            try:
                return await self._listen(factory, port, f"the {what}", shared, pool=ports)
            except HostBindError:
                raise
            except OSError as e:
                if e.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                last = e
        raise HostBindError(getattr(last, "errno", 0) or 0,
                            f"{self.name}: no free port for the {what} in {ports.source}: "
                            f"{ports.describe()} on {self.address}")

    def _fair_ports(self, ports: PortRange) -> list[int]:
        """WMI ports, in the order to try, at which the firewall answers every host of the
        scenario as ``check`` answers for the whole range (steps.wmi_port with and without
        the port). Windows may hand the service any port of the range (KB 154596) and check
        judges by that, so the emulated host never takes a port that a rule naming part of
        the range happens to open or close. Empty (a plain draw) when no rule names a port
        of the range, or beyond 512 hosts, where the check would cost too much (docs/host.md)."""
        edges = [p for p in self.model.port_edges() if p in ports]
        if not edges or len(self.world.configs) > 512:
            return []
        sources = [self.world.host(h).address.ip for h in self.world.configs]
        wanted = [steps.wmi_port(self.model, s).ok for s in sources]
        candidates = {*edges, *(ports.pick(self.rng) for _ in range(8))}
        fair = [p for p in candidates
                if all(steps.wmi_port(self.model, s, p).ok == w for s, w in zip(sources, wanted, strict=True))]
        self.rng.shuffle(fair)
        return fair

    async def add_listener(self, service: Service, port: int | None) -> int:
        """Serve ``service`` on ``port`` of this host's address, or on a port of the dynamic
        RPC range when ``port`` is None; returns the bound port."""
        try:
            if port is None:
                srv, bound = await self._bind_dynamic(
                    lambda: _RpcProtocol(self, service.kind, service), service.kind)
            else:
                srv, bound = await self._listen(
                    lambda: _RpcProtocol(self, service.kind, service), port,
                    f"the {service.kind}")
        except HostBindError:
            raise
        except OSError as e:
            raise HostBindError(e.errno or 0, f"{self.name}: cannot listen on {self.address}:"
                                f"{port} for the {service.kind}: {e.strerror or e}") from None
        self._servers.append(srv)
        self._extra[service.kind] = srv
        self.ports[service.kind] = bound
        log.info("%s listening on %s:%d (%s)", self.name, self.address, self.ports[service.kind],
                 service.kind)
        return self.ports[service.kind]

    async def remove_listener(self, kind: str) -> None:
        srv = self._extra.pop(kind, None)
        if srv is None:
            return
        srv.close()
        for conn in [c for c in self._connections if c.kind == kind]:
            conn.close()
        with contextlib.suppress(Exception):
            await srv.wait_closed()
        if srv in self._servers:
            self._servers.remove(srv)
        self.ports.pop(kind, None)

    async def stop(self) -> None:
        if self._gc_timer is not None:
            self._gc_timer.cancel()
            self._gc_timer = None
        await self.callbacks.close()
        for srv in self._servers:
            srv.close()
        for conn in list(self._connections):
            conn.close()
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await srv.wait_closed()
        self._servers.clear()
        self._extra.clear()

    async def __aenter__(self) -> HostServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    # -- connection bookkeeping -------------------------------------------------------------

    def _admit(self, conn: _RpcProtocol) -> bool:
        if len(self._connections) >= self.limits.max_connections:
            # Choice (docs/host.md): when full, the oldest connection that never bound makes
            # room, so silent connections cannot lock real clients out; bound ones stay.
            idle = next((c for c in self._connections if c.conn is None or not c.conn.bound),
                        None)
            if idle is None:
                return False
            log.info("%s %s: closing the oldest unbound connection to admit a new one",
                     self.name, idle.peer)
            idle.close()
            self._connections.pop(idle, None)
        self._connections[conn] = None
        return True

    def _forget(self, conn: _RpcProtocol) -> None:
        self._connections.pop(conn, None)


class _RpcProtocol(asyncio.Protocol):
    """One TCP connection to RPCSS or to the WMI exporter."""

    def __init__(self, server: HostServer, kind: str, service: Service | None = None) -> None:
        self.server = server
        self.kind = kind
        self.service = service
        self.transport: asyncio.Transport | None = None
        self.conn: ServerConnection | None = None
        self.peer = "?"
        self.local = server.address
        self._timer: asyncio.TimerHandle | None = None
        # The loop that serves this connection, kept from connection_made: on CPython 3.11
        # asyncio.get_running_loop() costs a getpid() system call, one per request if asked
        # on every read.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline = 0.0  # loop.time() at which the connection is closed (see _arm)
        self._timer_at = 0.0  # when self._timer fires
        self._sock: Any = None
        self._ctx: CallContext | None = None  # of the last call, and the identity it was for
        self._ctx_identity: object = None

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        srv = self.server
        peer = transport.get_extra_info("peername") or ("?", 0)
        local = transport.get_extra_info("sockname") or (srv.address, 0)
        self.peer, self.local = f"{peer[0]}", f"{local[0]}"
        if self.service is not None:
            decision = self.service.decide(self.peer)
            model_port = decision.port
        else:
            model_port = srv.model_ports[self.kind]
            decision = srv.gate.decide(self.peer, model_port, int(peer[1]))
        who = f"{decision.source}" + (f" ({decision.source_host})" if decision.source_host else "")
        if not decision.allowed:
            # Choice: a dropped SYN cannot be emulated on loopback; a RST at once makes the
            # client fail with RPC_S_SERVER_UNAVAILABLE as a drop would (seed: 0x800706ba).
            log.info("%s %s:%d from %s: dropped by the firewall (%s)", srv.name, self.local,
                     model_port, who, decision.rule)
            self._reset()
            return
        if not srv._admit(self):
            log.warning("%s %s:%d from %s: refused, %d connections open", srv.name, self.local,
                        model_port, who, srv.limits.max_connections)
            self._reset()
            return
        self._tune_socket(transport)
        log.info("%s %s:%d connection from %s:%s as %s (%s)", srv.name, self.local, model_port,
                 peer[0], peer[1], who, decision.rule)
        if self.service is not None:
            interfaces = self.service.interfaces
        else:
            interfaces = RPCSS_INTERFACES if self.kind == "rpcss" else EXPORTER_INTERFACES
        self.conn = ServerConnection(
            interfaces, ModelAuthenticator(srv.world, srv.name, self.peer),
            ntlm_names=srv.names, filetime=_filetime,
            max_request_size=srv.limits.max_request_size,
            secondary_address=str(srv.ports.get(self.kind, 0)),
        )
        self._arm(srv.limits.bind_timeout)

    def _tune_socket(self, transport: asyncio.Transport) -> None:
        # Replies go out at once (no Nagle delay); see data_received for the ACKs.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def _quickack(self) -> None:
        # Linux delays ACKs by up to 40 ms; a client that writes a request in two segments
        # (impacket) then waits for our ACK on every call. TCP_QUICKACK is reset by the
        # kernel after each read, so it is set again after each one (bench/bench_wire.py).
        if self._sock is not None and _QUICKACK is not None:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def data_received(self, data: bytes) -> None:
        conn, transport = self.conn, self.transport
        if conn is None or transport is None or transport.is_closing():
            return
        call = conn.receive_call(data)  # the usual read: one whole request, verified
        if call is not None:
            self._call(conn, call)
        else:
            for ev in conn.receive_data(data):
                if type(ev) is CallReceived:
                    self._call(conn, ev)
                else:
                    self._event(ev)
        out = conn.data_to_send()
        if out:
            transport.write(out)
            if transport.get_write_buffer_size():
                self._quickack()  # see below
        else:
            # A reply sent now carries the ACK of what we read; only without one (a partial
            # PDU, AUTH3, a reply still queued) must the ACK be forced (see _quickack).
            self._quickack()
        state = conn.state
        if state is _CLOSED:
            self.close()
            return
        # Once bound, a quiet connection may stay for the idle timeout.
        limits = self.server.limits
        seconds = limits.idle_timeout if state is _BOUND else limits.bind_timeout
        loop = self._loop
        if loop is not None and self._timer is not None:
            # _arm's usual case inline (the deadline moves later: only stored).
            deadline = loop.time() + seconds
            if self._timer_at <= deadline:
                self._deadline = deadline
                return
        self._arm(seconds)

    def _event(self, ev: object) -> None:
        """Log an event other than a call."""
        srv = self.server
        if isinstance(ev, CallReceived):
            assert self.conn is not None
            self._call(self.conn, ev)
        elif isinstance(ev, Bound):
            log.debug("%s %s bound %s", srv.name, self.peer, ids.NAMES.get(
                ev.interface.uuid, str(ev.interface.uuid)))
        elif isinstance(ev, Authenticated):
            log.info("%s %s authenticated %s\\%s at level %d", srv.name, self.peer,
                     ev.domain, ev.user, ev.auth_level)
        elif isinstance(ev, LogonFailed):
            log.info("%s %s logon of %s\\%s failed: %s", srv.name, self.peer, ev.domain,
                     ev.user, ev.reason)
        elif isinstance(ev, ProtocolViolation):
            log.info("%s %s protocol violation: %s", srv.name, self.peer, ev.reason)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server._forget(self)

    # -- helpers ------------------------------------------------------------------------------

    def _call(self, conn: ServerConnection, ev: CallReceived) -> None:
        srv = self.server
        rpcss, exporter = srv.rpcss, srv.exporter
        assert rpcss is not None and exporter is not None
        # The fields read here, in one unpack of the NamedTuple.
        call_id, _context_id, opnum, object_uuid, stub, _iface, auth_level, _auth_ctx, identity \
            = ev
        ctx = self._ctx
        if ctx is None or identity is not self._ctx_identity or auth_level != ctx.auth_level:
            # One context per security context of the connection, not one per call.
            token = token_of(identity)
            if token is None:
                # An unauthenticated call runs as ANONYMOUS LOGON (MS-RPCE 3.3.3.4.3: no
                # security context means no client identity).
                token = srv.world.directory.anonymous_token(srv.name)
            ctx = self._ctx = CallContext(token, self.local, self.peer, auth_level)
            self._ctx_identity = identity
        token = ctx.token
        reply: Reply
        try:
            if self.service is not None:
                name, reply = self.service.handle(ev, ctx)
            elif self.kind == "rpcss":
                name = ids.op_name(ev.interface.uuid, opnum)
                reply = rpcss.handle(ev.interface, opnum, stub, ctx)
            else:
                name, reply = exporter.handle(opnum, object_uuid, stub, ctx)
        except Exception:
            log.exception("%s %s: internal error in opnum %d", srv.name, self.peer, opnum)
            name, reply = f"opnum {opnum}", RpcFaultReply(RPC_E_SERVERFAULT)
        if isinstance(reply, RpcFaultReply):
            log.info("%s %s %s as %s -> fault 0x%08X", srv.name, self.peer, name, token.name,
                     reply.status)
            not_run = reply.status in (rpc.NCA_S_OP_RNG_ERROR, rpc.NCA_S_UNK_IF)
            conn.send_fault(call_id, reply.status, did_not_execute=not_run)
            return
        if log.isEnabledFor(logging.INFO):
            status = struct.unpack("<I", reply[-4:])[0] if len(reply) >= 4 else 0
            log.info("%s %s %s as %s -> 0x%08X", srv.name, self.peer, name, token.name, status)
        conn.send_response(call_id, reply)

    def _arm(self, seconds: float) -> None:
        """Close the connection ``seconds`` from now unless it is armed again before.

        Called on every read, so it only stores the deadline; the one timer handle is
        replaced only when the deadline moves earlier, and when it fires before a deadline
        that moved later it re-arms itself for that deadline (_check_deadline).
        """
        loop = self._loop or asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._deadline = deadline
        timer = self._timer  # never a cancelled one: close() and expiry drop it
        if timer is not None and self._timer_at <= deadline:
            return
        if timer is not None:
            timer.cancel()
        self._timer = loop.call_at(deadline, self._check_deadline)
        self._timer_at = deadline

    def _check_deadline(self) -> None:
        loop = self._loop or asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._check_deadline)
            self._timer_at = self._deadline
            return
        self._timer = None
        self._expire()

    def _expire(self) -> None:
        log.info("%s %s: closed after %s", self.server.name, self.peer,
                 "the idle timeout" if self.conn is not None and self.conn.bound
                 else "waiting for a bind")
        self.close()

    def _reset(self) -> None:
        """Abortive close: SO_LINGER 0 makes the kernel answer with a RST."""
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
