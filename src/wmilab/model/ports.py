"""Where each program of the seed's picture listens: TCP 135, and a dynamic RPC port.

RPCSS listens on the well-known port 135. The WMI service and the sink (unsecapp.exe or the
client's own program) are RPC servers on *dynamic* ports: the RPC runtime hands each one a
port from the host's dynamic range when it starts listening, so nobody can know the number
beforehand. The model therefore knows such a port only as "some port of this range"
(:class:`PortRange`), and the emulated hosts draw the real port from the same object.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from wmilab.errors import ConfigError
from wmilab.model import oses

# RPCSS's endpoint mapper and OXID resolver listen on TCP 135 (MS-RPCE 2.2.1.1.7; MS-DCOM 2.1).
RPC_ENDPOINT_MAPPER = 135

# The registry values under HKLM\Software\Microsoft\Rpc\Internet (Learn: "Configuring the
# Registry for Port Allocations and Selective Binding"; KB 154596).
PORTS = "Ports"
PORTS_INTERNET_AVAILABLE = "PortsInternetAvailable"
USE_INTERNET_PORTS = "UseInternetPorts"
RPC_INTERNET_VALUES = (PORTS, PORTS_INTERNET_AVAILABLE, USE_INTERNET_PORTS)


@dataclass(frozen=True)
class PortRange:
    """A set of TCP ports as sorted, disjoint, inclusive ranges, and where it comes from."""

    spans: tuple[tuple[int, int], ...]
    source: str

    def __post_init__(self) -> None:
        if not self.spans:
            raise ValueError("a port range needs at least one port")

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.spans)

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and any(lo <= port <= hi for lo, hi in self.spans)

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self.spans:
            yield from range(lo, hi + 1)

    def describe(self) -> str:
        """``1025-5000`` or ``5000-5020, 6000``."""
        return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.spans)

    def pick(self, rng: random.Random) -> int:
        """One port of the range, uniformly at random (as the RPC runtime assigns one)."""
        n = rng.randrange(len(self))
        for lo, hi in self.spans:
            if n <= hi - lo:
                return lo + n
            n -= hi - lo + 1
        raise AssertionError("unreachable")

    @classmethod
    def of(cls, spans: Sequence[tuple[int, int]], source: str) -> PortRange:
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(spans):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return cls(tuple(merged), source)


def parse_ports(value: Sequence[str]) -> list[tuple[int, int]]:
    """The REG_MULTI_SZ ``Ports``: each string one port or an inclusive range (``5000-5100``).

    An entry outside 0-65535 or a string that cannot be read makes the RPC runtime treat the
    whole configuration as invalid (Learn: "Configuring the Registry for Port Allocations").
    """
    out: list[tuple[int, int]] = []
    for i, text in enumerate(value):
        lo_t, dash, hi_t = text.strip().partition("-")
        try:
            lo = int(lo_t.strip())
            hi = int(hi_t.strip()) if dash else lo
        except ValueError:
            raise ConfigError(f"{text!r} is not a port or a range such as 5000-5100",
                              (PORTS, i)) from None
        if not (0 <= lo <= 65535 and 0 <= hi <= 65535):
            raise ConfigError(f"{text!r} is outside 0-65535", (PORTS, i))
        if hi < lo:
            raise ConfigError(f"{text!r}: the range ends before it starts", (PORTS, i))
        out.append((lo, hi))
    if not out:
        raise ConfigError("an empty Ports list leaves RPC no port to use", (PORTS,))
    return out


def dynamic_range(os: str, registry: Mapping[str, object],
                  tcp: tuple[int, int] | None = None) -> PortRange:
    """The ports the RPC runtime of ``os`` may give a dynamic endpoint (WMI, the sink).

    Without ``Rpc\\Internet\\Ports``: the TCP dynamic port range, which is ``tcp`` (first
    port, number of ports) when ``netsh int ipv4 set dynamicport tcp`` changed it on Vista and
    later (KB 929851: the RPC runtime takes its dynamic ports from it), else the OS's range
    (model/oses.py ``dynamic_ports``; 1025-5000 on XP SP2 and Server 2003 SP1, KB 154596, KB
    929851). With it (it wins over the TCP range: the runtime then restricts itself to the
    listed ports; docs/choices.md), the
    listed ports are the Internet-available ones when PortsInternetAvailable is Y, the
    intranet-only ones when N; UseInternetPorts Y gives a server that asks for no particular
    pool Internet-available ports, N intranet-only ones (Learn: "Configuring the Registry for
    Port Allocations and Selective Binding"; KB 154596 sets both to Y). WMI and unsecapp ask
    for no pool, so they use the listed ports exactly when the two values agree.
    """
    ports = registry.get(PORTS)
    if ports is None and tcp is not None:
        lo, hi = tcp[0], tcp[0] + tcp[1] - 1
        return PortRange.of([(lo, hi)], f"the dynamic port range {lo}-{hi} set with netsh int "
                            f"ipv4 set dynamicport tcp start={tcp[0]} num={tcp[1]} (KB 929851)")
    if ports is None:
        spec = oses.get(os)
        lo, hi = spec.dynamic_ports.start, spec.dynamic_ports.stop - 1
        # 49152-65535 from Vista / Server 2008 on (KB 929851), 1025-5000 before (KB 154596).
        kb = "KB 929851" if spec.modern else "KB 154596"
        return PortRange.of([(lo, hi)], f"the dynamic RPC range {lo}-{hi} of {spec.title} "
                            f"({kb})")
    assert isinstance(ports, (list, tuple))
    spans = parse_ports([str(p) for p in ports])
    pia, uip = registry.get(PORTS_INTERNET_AVAILABLE), registry.get(USE_INTERNET_PORTS)
    if pia is None or uip is None:
        # "If a key is missing ... the entire configuration is marked as invalid" (same page).
        # Choice (docs/choices.md): refused, rather than modelling RPC that cannot listen.
        missing = PORTS_INTERNET_AVAILABLE if pia is None else USE_INTERNET_PORTS
        raise ConfigError(f"Rpc\\Internet\\Ports is set but {missing} is not; Windows then "
                          "treats the whole port configuration as invalid and RPC servers "
                          "cannot listen on TCP (set both, to \"Y\", as KB 154596 does)",
                          (missing,))
    if str(pia).upper() != str(uip).upper():
        # Choice (docs/choices.md): the complement pool's bounds are undocumented.
        raise ConfigError(f"PortsInternetAvailable = {pia!r} with UseInternetPorts = {uip!r} "
                          "gives WMI the ports *not* listed in Ports, which wmilab does not "
                          "model; set both to \"Y\" (KB 154596)", (USE_INTERNET_PORTS,))
    text = ", ".join(str(p) for p in ports)
    return PortRange.of(spans, f"the restricted RPC range Rpc\\Internet\\Ports = {text}")
