"""The RPC runtime's policy for unauthenticated clients (HKLM\\SOFTWARE\\Policies\\Microsoft\\
Windows NT\\Rpc): ``RestrictRemoteClients`` and ``EnableAuthEpResolution``.

``RestrictRemoteClients`` (Learn "RPC Interface Restriction"; MS-RPCE 3.1.1.1.3):
- 0 (NONE): the RPC runtime adds no restriction;
- 1 (DEFAULT, "Authenticated"): remote anonymous calls are rejected, except on interfaces
  registered with RPC_IF_ALLOW_CALLBACKS_WITH_NO_AUTH and a security callback;
- 2 (HIGH, "Authenticated without exceptions"): every remote anonymous call is rejected.

Absent, it is 1 on client editions and 0 on server editions (TechNet cc781010, "RPC Interface
Restriction", Windows Server 2003 SP1; Learn "Restrictions for Unauthenticated RPC Clients"
policy text). The seed's flows meet it in one place only: the anonymous callback of Connection
2 (B calls A's sink as ANONYMOUS LOGON). At 1 that callback still works: XP SP2 is a client
edition with 1 by default, and the seed makes its anonymous callback work by granting ANONYMOUS
LOGON Remote Access on A, so DCOM's interfaces are exempt (they are registered for
unauthenticated calls and check access themselves). At 2 it is rejected. Every other call of
the seed's flows is authenticated (NTLM), so neither 1 nor 2 touches them.

``EnableAuthEpResolution`` makes RPC clients authenticate to the endpoint mapper when they
resolve a dynamic endpoint (Learn "RPC Interface Restriction"). DCOM does not ask the endpoint
mapper: the client resolves the object exporter's bindings with IObjectExporter::ResolveOxid2
on port 135 (MS-DCOM 3.2.4.1.1.3), so the value has no effect on remote WMI; it is accepted
and changes nothing (docs/choices.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from wmilab.errors import ConfigError
from wmilab.model import oses

__all__ = ["DEFAULT", "ENABLE_AUTH_EP_RESOLUTION", "HIGH", "NONE", "RESTRICT_REMOTE_CLIENTS",
           "restrict_remote_clients"]

RESTRICT_REMOTE_CLIENTS = "RestrictRemoteClients"
ENABLE_AUTH_EP_RESOLUTION = "EnableAuthEpResolution"
# RPC_RESTRICT_REMOTE_CLIENT_NONE / _DEFAULT / _HIGH (rpcdce.h; MS-RPCE 3.1.1.1.3).
NONE, DEFAULT, HIGH = 0, 1, 2


def restrict_remote_clients(os: str, registry: Mapping[str, object]) -> int:
    """The RestrictRemoteClients level in force on ``os``."""
    value = registry.get(RESTRICT_REMOTE_CLIENTS)
    if value is None:
        # TechNet cc781010: absent means 0 on server editions, 1 on client editions.
        return NONE if oses.get(os).server else DEFAULT
    if value not in (NONE, DEFAULT, HIGH):
        raise ConfigError(f"{value!r} is not a level of RestrictRemoteClients: 0 (none), 1 "
                          "(authenticated) or 2 (authenticated without exceptions)",
                          (RESTRICT_REMOTE_CLIENTS,))
    assert isinstance(value, int)
    return value


def check_enable_auth_ep_resolution(registry: Mapping[str, object]) -> None:
    """EnableAuthEpResolution is a switch: 0 or 1 (Learn "RPC Interface Restriction")."""
    value = registry.get(ENABLE_AUTH_EP_RESOLUTION)
    if value is not None and value not in (0, 1):
        raise ConfigError(f"{value!r} is not a value of EnableAuthEpResolution: 0 (disabled) or "
                          "1 (enabled)", (ENABLE_AUTH_EP_RESOLUTION,))
