"""Loopback lab: every host of a scenario on its own 127.x.y.z address, in one event loop.

Which address each host gets is :class:`wmilab.host.loopback_map.LoopbackMap` (re-exported
here, with ``loopback_network`` for ``--loopback-net``); the in-process firewall gate uses
the same map to tell who a peer is.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from ipaddress import IPv4Network
from types import TracebackType
from typing import TYPE_CHECKING

from wmilab.host.loopback_map import LOOPBACK, LoopbackMap, loopback_network
from wmilab.host.server import HostServer, Limits
from wmilab.model.ports import RPC_ENDPOINT_MAPPER
from wmilab.model.world import World

if TYPE_CHECKING:
    from wmilab.scenario import Scenario

__all__ = ["LOOPBACK", "LoopbackLab", "LoopbackMap", "loopback_network"]


class LoopbackLab:
    """Every host of a world served on its loopback address, in the running event loop.

    ``async with LoopbackLab(world) as lab: ...``; ``lab.servers[name]`` is each
    :class:`wmilab.host.server.HostServer`. ``ports`` maps the well-known port 135 to the
    port actually bound, for tests without root; the WMI service and sinks take a port of
    their host's dynamic RPC range (``rng`` makes the draw reproducible).
    """

    def __init__(self, world: World, *, client_host: str | None = None,
                 default_clients: Mapping[str, str] | None = None,
                 ports: Mapping[int, int] | None = None,
                 hosts: list[str] | None = None, limits: Limits | None = None,
                 network: IPv4Network | None = None,
                 rng: random.Random | None = None) -> None:
        self.world = world
        self.map = LoopbackMap.for_world(world, network)
        names = hosts if hosts is not None else list(world.configs)
        clients = dict(default_clients or {})
        self.servers: dict[str, HostServer] = {}
        for name in names:
            self.servers[name] = HostServer(
                world, name, address=str(self.map.loopback(name)), addresses=self.map,
                client_host=client_host or clients.get(name), ports=ports, limits=limits,
                rng=rng)
            # Connection 2: B finds A's OXID resolver where the lab bound it (135, or a free
            # port in tests), as a real B finds it on the well-known port.
            self.servers[name].resolver_port = self.resolver_port

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
                     network: IPv4Network | None = None) -> LoopbackLab:
        """Every host of a scenario; each host's default client is the ``from`` host of
        the first call that targets it (``client_host`` overrides it for all)."""
        clients: dict[str, str] = {}
        for c in scenario.calls:
            clients.setdefault(c.target, c.source)
        return cls(scenario.world, client_host=client_host, default_clients=clients,
                   ports=ports, limits=limits, network=network)

    async def start(self) -> None:
        started: list[str] = []
        try:
            for name, server in self.servers.items():
                await server.start()
                started.append(name)
        except BaseException:
            for name in started:
                await self.servers[name].stop()
            raise

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.stop()

    async def __aenter__(self) -> LoopbackLab:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
