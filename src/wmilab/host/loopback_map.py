"""The loopback address each host of a scenario is served on, and back.

A scenario address such as ``192.168.10.2`` stands for the loopback address ``127.168.10.2``
(the first octet becomes 127). With another loopback network, such as ``127.77.0.0/16``, the
scenario address keeps only its host bits (``127.77.10.2``): tests and parallel labs each
take a network of their own, so they never meet on an address. Two scenario addresses that
would land on the same loopback address, or on ``127.0.0.0/24`` (which holds ``127.0.0.1``,
the address unconfigured clients use), move to the next free address, in host-name order,
so the map is deterministic. The in-process firewall gate (host/gate.py) turns a peer's
loopback address back into the scenario address of the host it stands for (docs/host.md);
the lab (lab/loopback.py) puts each host on its address.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network

from wmilab.errors import ConfigError
from wmilab.model.world import World

__all__ = ["LOOPBACK", "DirectMap", "LoopbackMap", "loopback_network"]

_LOOPBACK_FIRST = int(IPv4Address("127.0.1.0"))  # Choice: 127.0.0.0/24 stays for real clients
LOOPBACK = IPv4Network("127.0.0.0/8")


def loopback_network(text: str) -> IPv4Network:
    """Parse ``--loopback-net``: a network inside 127.0.0.0/8; ConfigError otherwise."""
    try:
        net = IPv4Network(text.strip(), strict=False)
    except ValueError as e:
        raise ConfigError(f"{text!r} is not a network such as 127.77.0.0/16: {e}") from None
    if not net.subnet_of(LOOPBACK) or net.num_addresses < 256:
        raise ConfigError(f"{text!r} must be a network of at least 256 addresses inside "
                          "127.0.0.0/8, such as 127.77.0.0/16")
    return net


class LoopbackMap:
    """Scenario address <-> loopback address, one to one, for the hosts of a world."""

    def __init__(self, addresses: Mapping[str, IPv4Address],
                 network: IPv4Network = LOOPBACK) -> None:
        self.network = network
        base, mask = int(network.network_address), int(network.hostmask)
        first = max(base + 1, _LOOPBACK_FIRST)
        last = int(network.broadcast_address) - 1
        self._by_host: dict[str, IPv4Address] = {}
        self._scenario: dict[IPv4Address, IPv4Address] = {}
        self._hosts: dict[IPv4Address, str] = {}
        taken: set[IPv4Address] = set()
        for host in sorted(addresses, key=str.lower):
            scenario_ip = addresses[host]
            wanted = int(scenario_ip) & mask | base
            candidate = min(max(wanted, first), last)
            while IPv4Address(candidate) in taken:
                candidate += 1
                if candidate > last:
                    candidate = first
            loop = IPv4Address(candidate)
            taken.add(loop)
            self._by_host[host] = loop
            self._scenario[loop] = scenario_ip
            self._hosts[loop] = host

    @classmethod
    def for_world(cls, world: World, network: IPv4Network | None = None) -> LoopbackMap:
        return cls({name: cfg.address.ip for name, cfg in world.configs.items()},
                   network or LOOPBACK)

    def loopback(self, host: str) -> IPv4Address:
        """The loopback address host ``host`` listens on."""
        try:
            return self._by_host[host]
        except KeyError:
            raise ConfigError(f"no host {host!r} in the lab", ("hosts", host)) from None

    def host_at(self, address: IPv4Address | str) -> str | None:
        """The host whose loopback address this is, or None (for example 127.0.0.1)."""
        try:
            return self._hosts.get(IPv4Address(address))
        except ValueError:
            return None

    def scenario_address(self, address: IPv4Address | str) -> IPv4Address | None:
        """The scenario address a loopback address stands for, or None."""
        try:
            return self._scenario.get(IPv4Address(address))
        except ValueError:
            return None

    def items(self) -> list[tuple[str, IPv4Address]]:
        return sorted(self._by_host.items())


class DirectMap(LoopbackMap):
    """Hosts on their own scenario addresses (the netns lab, docs/lab.md): each address
    stands for itself."""

    def __init__(self, addresses: Mapping[str, IPv4Address],
                 network: IPv4Network = LOOPBACK) -> None:
        self.network = IPv4Network("0.0.0.0/0")  # scenario addresses, anywhere
        self._by_host = dict(addresses)
        self._scenario = {ip: ip for ip in addresses.values()}
        self._hosts = {ip: host for host, ip in addresses.items()}
