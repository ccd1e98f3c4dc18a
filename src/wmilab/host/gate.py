"""The in-process firewall gate: asks the host's firewall model about each new connection.

The gate never decides by itself. For every accepted TCP connection it turns the peer's
loopback address into the scenario address of the host it stands for, and asks
``HostModel.inbound`` the same question ``flow`` asks at steps c1.rpcss-port and
c1.wmi-port. A refused connection is closed with a RST (docs/host.md).

A connection from another host of the lab must also leave that host: the gate asks the
caller's own outbound rules the question ``flow`` asks on A's side of those steps
(``steps.caller_outbound``), unless it is an emulated service's own connection (B's
callback, which asked its own outbound rules before connecting; host/service_sockets.py).
The netns lab leaves this to the nftables output chain of the caller's namespace
(``outbound=False``; lab/nft.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal

from wmilab import steps
from wmilab.errors import ConfigError
from wmilab.host.loopback_map import LoopbackMap
from wmilab.host.service_sockets import is_service_socket
from wmilab.model.ports import RPC_ENDPOINT_MAPPER
from wmilab.model.world import World

__all__ = ["Gate", "GateDecision", "default_client"]


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    source: IPv4Address  # the scenario address the peer stands for
    source_host: str | None
    port: int  # the model port (135 or the WMI port)
    rule: str


def default_client(world: World, host: str, calls: list[tuple[str, str]]) -> str | None:
    """The ``from`` host of the first call (source, target) that targets ``host``."""
    for source, target in calls:
        if target == host:
            return source
    return None


class Gate:
    """Firewall decisions for connections to one emulated host."""

    def __init__(self, world: World, host: str, addresses: LoopbackMap | None = None,
                 client_host: str | None = None, outbound: bool = True) -> None:
        if host not in world.configs:
            raise ConfigError(f"no host {host!r} in the scenario", ("hosts", host))
        if client_host is not None and client_host not in world.configs:
            raise ConfigError(f"--client {client_host!r} is not a host of the scenario",
                              ("client",))
        self.world = world
        self.host = host
        self.addresses = addresses or LoopbackMap.for_world(world)
        self.client_host = client_host
        self.outbound = outbound

    def source_of(self, peer: str) -> tuple[IPv4Address, str | None]:
        """The scenario address (and host) a peer's loopback address stands for."""
        host = self.addresses.host_at(peer)
        if host is not None:
            scenario = self.addresses.scenario_address(peer)
            assert scenario is not None
            return scenario, host
        # Choice: a source that is no host's loopback address (127.0.0.1 for impacket) comes
        # from the configured client host, so firewall scopes behave as in the model.
        if self.client_host is not None:
            return self.world.configs[self.client_host].address.ip, self.client_host
        try:
            return IPv4Address(peer), None
        except ValueError:
            return IPv4Address("127.0.0.1"), None

    def decide(self, peer: str, model_port: int, peer_port: int | None = None) -> GateDecision:
        source, source_host = self.source_of(peer)
        model = self.world.host(self.host)
        purpose: Literal["rpcss", "wmi"] = ("rpcss" if model_port == RPC_ENDPOINT_MAPPER
                                            else "wmi")
        if (self.outbound and source_host is not None
                and not (peer_port is not None and is_service_socket(peer, peer_port))):
            # The caller's own firewall first, as flow asks it (A's side of the step).
            sender = self.world.host(source_host)
            out = steps.caller_outbound(sender, model, purpose)
            if not out.ok:
                return GateDecision(False, source, source_host, model_port,
                                    f"{source_host}'s outbound rules: {out.reason}")
        # The same questions flow asks at c1.rpcss-port and c1.wmi-port (wmilab.steps).
        if purpose == "rpcss":
            check = steps.rpcss_port(model, source)
        else:
            # The port the WMI service drew from the model's range (host/server.py).
            check = steps.wmi_port(model, source, model_port)
        return GateDecision(check.ok, source, source_host, model_port, check.reason)
