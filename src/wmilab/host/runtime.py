"""What the RPCSS and WMI handlers of one emulated host share: model, repository, objects."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from wmilab import hresult as hr
from wmilab.host.objects import ObjectTable
from wmilab.host.pinging import GcSettings, PingSets
from wmilab.model.identity import Token
from wmilab.model.world import HostModel, World
from wmilab.repository import Change, MachineFacts, Repository
from wmilab.wire import rpc
from wmilab.wire.dcom import DualStringArray, RpcFaultReply, encode_dsa_packed, tcp_bindings

__all__ = [
    "BAD_STUB", "OP_RANGE", "RPC_E_DISCONNECTED", "CallContext", "HostRuntime", "Reply",
    "ResolverEntry", "repository_for",
]

Reply = bytes | RpcFaultReply

# Replies every object exporter of a host (WMI, sink) gives alike.
# Choice: a call on an IPID the exporter does not know gets a fault RPC_E_DISCONNECTED, what
# Windows returns for a released or reclaimed object (impacket dcomrt INTERFACE.request
# names this case).
RPC_E_DISCONNECTED = hr.RPC_E_DISCONNECTED.code  # from the status-code catalogue
OP_RANGE = RpcFaultReply(rpc.NCA_S_OP_RNG_ERROR)  # C706 appendix E
BAD_STUB = RpcFaultReply(rpc.STATUS_BAD_STUB_DATA)  # MS-RPCE: unmarshalling failures use 0x6F7


@dataclass(frozen=True)
class CallContext:
    """Who is calling and through which address."""

    token: Token
    local_address: str  # the address the client connected to (for string bindings)
    peer: str
    auth_level: int | None = None  # RPC_C_AUTHN_LEVEL of the call (None: not known)


@dataclass(frozen=True)
class ResolverEntry:
    """Another object exporter of this host (the sink) that the OXID resolver answers for."""

    bindings: Callable[[str], DualStringArray]  # local address dialled -> string bindings
    ipid_rem_unknown: uuid.UUID


def repository_for(world: World, host: str) -> Repository:
    """The WMI repository of a scenario host, built from its configuration."""
    cfg = world.configs[host]
    spec = MachineFacts(hostname=host, os=cfg.os, domain=cfg.domain, workgroup=cfg.workgroup,
                    ipv4=str(cfg.address.ip), prefix=cfg.address.network.prefixlen,
                    features=cfg.features)
    return Repository.for_host(spec)


class HostRuntime:
    """One emulated computer: its model, repository and the WMI object exporter's table."""

    def __init__(self, world: World, host: str, *, wmi_listen_port: int,
                 max_objects: int = 65_536, gc: GcSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.world = world
        self.name = host
        self.model: HostModel = world.host(host)
        # Choice (docs/host.md "Many hosts"): the repository is built on its first use, so
        # an idle host of a big lab costs no classes or instances.
        self._repository: Repository | None = None
        self._change_listeners: list[Callable[[Change], None]] = []
        self.table = ObjectTable(max_entries=max_objects, clock=clock)
        # The OXID resolver's ping sets for this exporter's OIDs (MS-DCOM 3.1.2.5.1).
        self.pings = PingSets(self.table, gc)
        self.wmi_listen_port = wmi_listen_port
        # MS-DCOM 3.1.2.5.1.1: the OXID resolver knows every object exporter of the machine;
        # besides the WMI service's, the sink exporter (unsecapp role) registers here.
        self.exporters: dict[int, ResolverEntry] = {}
        # Bindings per dialled address (a handful of addresses; DualStringArray is frozen).
        self._bindings: dict[tuple[str, int | None], DualStringArray] = {}
        self._packed: dict[str, bytes] = {}  # resolver bindings' octets per dialled address

    @property
    def repository(self) -> Repository:
        """The host's WMI repository, built from its configuration on first use."""
        repo = self._repository
        if repo is None:
            repo = self._repository = repository_for(self.world, self.name)
            repo.listeners.extend(self._change_listeners)
        return repo

    @property
    def repository_built(self) -> bool:
        return self._repository is not None

    def on_change(self, listener: Callable[[Change], None]) -> None:
        """Call ``listener`` with every change of the repository (once it exists: a
        repository not yet built has had no change)."""
        self._change_listeners.append(listener)
        if self._repository is not None:
            self._repository.listeners.append(listener)

    def register_exporter(self, oxid: int, entry: ResolverEntry) -> None:
        self.exporters[oxid] = entry

    def unregister_exporter(self, oxid: int) -> None:
        self.exporters.pop(oxid, None)

    def exporter_bindings(self, local_address: str) -> DualStringArray:
        """String bindings ``ADDR[port]`` of the WMI exporter, with the dialled address.

        MS-DCOM 2.2.19.3; both clients pick the binding that holds the address they dialled
        (impacket dcomrt INTERFACE.connect, aiowmi get_binding).
        """
        return self._cached_bindings(local_address, self.wmi_listen_port)

    def resolver_bindings(self, local_address: str) -> DualStringArray:
        """The OXID resolver's bindings: the address alone, port 135 is well known
        (MS-DCOM 2.2.19.3: the resolver's string bindings carry no endpoint)."""
        return self._cached_bindings(local_address, None)

    def resolver_bindings_packed(self, local_address: str) -> bytes:
        """``encode_dsa_packed(self.resolver_bindings(local_address))``, kept per address."""
        packed = self._packed.get(local_address)
        if packed is None:
            if len(self._packed) >= 256:
                self._packed.clear()
            packed = self._packed[local_address] = encode_dsa_packed(
                self.resolver_bindings(local_address))
        return packed

    def _cached_bindings(self, local_address: str, port: int | None) -> DualStringArray:
        key = (local_address, port)
        dsa = self._bindings.get(key)
        if dsa is None:
            if len(self._bindings) >= 256:
                self._bindings.clear()
            dsa = self._bindings[key] = tcp_bindings([local_address], port)
        return dsa
