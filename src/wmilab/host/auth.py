"""NTLM logon on an emulated host, decided by the model's directory.

The wire layer (wire/ntlm.py) checks the NTLMv2 proof; who the client is, whether a wrong
password, an unknown account, Guest or an anonymous null session gets in, is decided by
``world.directory.network_logon`` — the same call ``flow`` makes at step c1.logon.
"""

from __future__ import annotations

import logging

from wmilab import steps
from wmilab.model import oses
from wmilab.model.identity import Logon, Token
from wmilab.model.world import World
from wmilab.wire.ntlm import LogonAttempt, NtlmServerNames

__all__ = ["ModelAuthenticator", "ntlm_names", "token_of"]

log = logging.getLogger("wmilab.host")


def ntlm_names(world: World, host: str) -> NtlmServerNames:
    """What the host's NTLM CHALLENGE says about it (MS-NLMP 2.2.1.2 TargetInfo)."""
    domain = world.directory.domain_of(host)
    name = host.upper()
    # The VERSION a CHALLENGE carries when the client negotiates it (MS-NLMP 2.2.2.10): the
    # host's Windows version from the OS catalogue, e.g. 5.1.2600 for XP.
    major, minor, build = (int(x) for x in oses.get(world.configs[host].os).version.split("."))
    version = (major, minor, build)
    if domain is None:
        # A workgroup computer names itself as its domain (MS-NLMP 3.2.5.1.1 TargetName).
        return NtlmServerNames(name, name, host.lower(), host.lower(), version=version)
    dns = world.directory.domain_spec(domain).dns or domain.lower()
    return NtlmServerNames(name, domain.upper(), f"{host.lower()}.{dns}", dns, dns,
                           domain_joined=True, version=version)


def token_of(identity: object) -> Token | None:
    """The access token of an RPC identity produced by :class:`ModelAuthenticator`."""
    if isinstance(identity, Logon):
        return identity.token
    if isinstance(identity, Token):
        return identity
    return None


class ModelAuthenticator:
    """``wire.ntlm.Authenticator`` for one host: every answer comes from the directory."""

    def __init__(self, world: World, host: str, peer: str = "") -> None:
        self.world = world
        self.host = host
        self.peer = peer

    def logon(self, attempt: LogonAttempt) -> object | None:
        # The question flow asks at c1.logon (wmilab.steps); an anonymous AUTHENTICATE (no
        # user name) is the directory's null session (MS-NLMP 3.2.5.1.2).
        principal = "" if attempt.anonymous or not attempt.user else (
            f"{attempt.domain}\\{attempt.user}")
        result = steps.logon(self.world, self.host, principal, attempt.check_password)
        log.info("%s logon %s\\%s from %s: %s (%s)", self.host, attempt.domain, attempt.user,
                 self.peer or "?", "ok" if result.ok else "refused", result.reason)
        if not result.ok or result.token is None:
            return None
        return result
