"""Loopback lab: every host of a scenario on its own 127.x.y.z address, in one event loop.

Which address each host gets is :class:`wmilab.host.loopback_map.LoopbackMap` (re-exported
here, with ``loopback_network`` for ``--loopback-net``); the in-process firewall gate uses
the same map to tell who a peer is.
"""

from __future__ import annotations

import logging
import random
import resource
from collections.abc import Callable, Mapping
from ipaddress import IPv4Network
from types import TracebackType
from typing import TYPE_CHECKING

from wmilab.errors import ConfigError
from wmilab.host.listeners import SharedListeners, raise_descriptor_limit
from wmilab.host.loopback_map import LOOPBACK, LoopbackMap, loopback_network
from wmilab.host.server import HostServer, Limits
from wmilab.model.ports import RPC_ENDPOINT_MAPPER
from wmilab.model.world import World

if TYPE_CHECKING:
    from wmilab.scenario import Scenario

__all__ = ["LISTENER_MODES", "LOOPBACK", "LoopbackLab", "LoopbackMap", "loopback_network"]

log = logging.getLogger("wmilab.lab")

# How the hosts of a loopback lab listen (docs/lab.md "Many hosts"): each on its own
# sockets, on sockets shared by all hosts (host/listeners.py), or per-host while two sockets
# per host fit in half the descriptor limit and shared beyond.
LISTENER_MODES = ("auto", "per-host", "shared")
# Descriptors kept for everything but listening sockets (connections, logs, the loop).
_RESERVE = 256


class LoopbackLab:
    """Every host of a world served on its loopback address, in the running event loop.

    ``async with LoopbackLab(world) as lab: ...``; ``lab.servers[name]`` is each
    :class:`wmilab.host.server.HostServer`. ``ports`` maps the well-known port 135 to the
    port actually bound, for tests without root; the WMI service and sinks take a port of
    their host's dynamic RPC range (``rng`` makes the draw reproducible). ``listeners`` is
    one of LISTENER_MODES.
    """

    def __init__(self, world: World, *, client_host: str | None = None,
                 default_clients: Mapping[str, str] | None = None,
                 ports: Mapping[int, int] | None = None,
                 hosts: list[str] | None = None, limits: Limits | None = None,
                 network: IPv4Network | None = None,
                 rng: random.Random | None = None, listeners: str = "auto") -> None:
        if listeners not in LISTENER_MODES:
            raise ConfigError(f"listeners {listeners!r}: one of {', '.join(LISTENER_MODES)}",
                              ("listeners",))
        self.world = world
        self.map = LoopbackMap.for_world(world, network)
        names = hosts if hosts is not None else list(world.configs)
        clients = dict(default_clients or {})
        self.listener_mode = listeners
        self.shared: SharedListeners | None = None
        if self.sharing(len(names)):
            self.shared = SharedListeners()
        self.servers: dict[str, HostServer] = {}
        for name in names:
            self.servers[name] = HostServer(
                world, name, address=str(self.map.loopback(name)), addresses=self.map,
                client_host=client_host or clients.get(name), ports=ports, limits=limits,
                rng=rng, listeners=self.shared)
            # Connection 2: B finds A's OXID resolver where the lab bound it (135, or a free
            # port in tests), as a real B finds it on the well-known port.
            self.servers[name].resolver_port = self.resolver_port

    def sharing(self, hosts: int) -> bool:
        """Whether ``hosts`` hosts share listening sockets in this lab's listener mode."""
        if self.listener_mode != "auto":
            return self.listener_mode == "shared"
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        usable = hard if hard != resource.RLIM_INFINITY else 1 << 20
        return 2 * hosts > usable // 2

    def descriptors_needed(self) -> int:
        """About how many descriptors the lab's listening sockets take, plus a reserve."""
        if self.shared is None:
            return 2 * len(self.servers) + _RESERVE
        # 135 per host, and one per shared WMI port: at most one per host, and at most
        # ports_per_range per dynamic range (host/listeners.py).
        ranges = {s.model.wmi_ports.spans for s in self.servers.values()}
        dynamic = min(len(self.servers), self.shared.ports_per_range * len(ranges))
        return len(self.servers) + dynamic + _RESERVE

    def listening_sockets(self) -> int:
        """Listening sockets open now: the hosts' own and the shared ones."""
        own = sum(len(s.ports) for s in self.servers.values())
        if self.shared is None:
            return own
        return own - len(self.servers) + self.shared.sockets  # each host's WMI is shared

    def resolver_port(self, address: str) -> int:
        """The port of the OXID resolver at a loopback address (135 unless remapped)."""
        host = self.map.host_at(address)
        server = self.servers.get(host) if host is not None else None
        if server is not None and "rpcss" in server.ports:
            return server.ports["rpcss"]
        return RPC_ENDPOINT_MAPPER

    @classmethod
    def for_scenario(cls, scenario: Scenario, *, client_host: str | None = None,
                     ports: Mapping[int, int] | None = None,
                     limits: Limits | None = None,
                     network: IPv4Network | None = None,
                     listeners: str = "auto") -> LoopbackLab:
        """Every host of a scenario; each host's default client is the ``from`` host of
        the first call that targets it (``client_host`` overrides it for all)."""
        clients: dict[str, str] = {}
        for c in scenario.calls:
            clients.setdefault(c.target, c.source)
        return cls(scenario.world, client_host=client_host, default_clients=clients,
                   ports=ports, limits=limits, network=network, listeners=listeners)

    async def start(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Start every host; ``progress(done, total)`` is called every 250 hosts and at
        the end (a readiness signal for whoever waits on a big lab)."""
        raise_descriptor_limit(self.descriptors_needed())
        if self.shared is not None:
            log.info("%d hosts share listening sockets for their WMI ports (one per port, "
                     "on lo); each keeps its own on 135", len(self.servers))
        started: list[str] = []
        try:
            total = len(self.servers)
            for name, server in self.servers.items():
                await server.start()
                started.append(name)
                if progress is not None and (len(started) % 250 == 0 or len(started) == total):
                    progress(len(started), total)
        except BaseException:
            for name in started:
                await self.servers[name].stop()
            if self.shared is not None:
                self.shared.close()
            raise

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.stop()
        if self.shared is not None:
            self.shared.close()

    async def __aenter__(self) -> LoopbackLab:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
