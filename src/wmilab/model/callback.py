"""Connection 2: the identities and authentication levels B tries when it calls A's sink.

One ladder, asked by ``flow`` (step c2.access) and by the emulated host that makes the
callback (host/callback.py), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from wmilab.model import oses
from wmilab.model.decision import Check
from wmilab.model.identity import Directory, Token

# RPC_C_AUTHN_LEVEL_* (MS-RPCE 2.2.1.1.8).
AUTHN_LEVEL_NONE = 1
AUTHN_LEVEL_CONNECT = 2
AUTHN_LEVEL_PKT_INTEGRITY = 5
AUTHN_LEVEL_PKT_PRIVACY = 6

# MS-WMI 3.1.1.1.3, product-behavior note: Windows starts at RPC_C_AUTHN_LEVEL_PKT_PRIVACY and
# lowers the level on each failed call; XP and Server 2003 go down to RPC_C_AUTHN_LEVEL_NONE.
# Choice (docs/choices.md): the authenticated rungs are privacy, integrity and connect (the
# levels the wire core speaks); CALL and PKT (3, 4) are skipped. NONE means no authentication,
# which A sees as ANONYMOUS LOGON.
AUTHENTICATED_LEVELS = (AUTHN_LEVEL_PKT_PRIVACY, AUTHN_LEVEL_PKT_INTEGRITY, AUTHN_LEVEL_CONNECT)


# HKLM\SOFTWARE\Microsoft\WBEM\CIMOM, read by the WMI service that calls back (B): "If the
# AllowAnonymousCallback value is set to 0, the WMI service prevents anonymous callbacks to the
# client. If the value is set to 1, the WMI service allows anonymous callbacks" (Learn
# WmiSdk/connecting-to-wmi-remotely-starting-with-vista, "CIMOM Settings").
ALLOW_ANONYMOUS_CALLBACK = "AllowAnonymousCallback"
CIMOM_KEY = "HKLM\\SOFTWARE\\Microsoft\\WBEM\\CIMOM"


def anonymous_fallback(os: str, registry: Mapping[str, object], host: str = "") -> Check:
    """May the WMI service of ``host`` (B) call a sink back without authentication?

    XP SP2 / Server 2003 SP1 lower the level down to RPC_C_AUTHN_LEVEL_NONE unasked (MS-WMI
    3.1.1.1.3 product behavior note). From Vista on, only with AllowAnonymousCallback = 1
    (absent counts as 0: Learn WmiSdk/connecting-to-wmi-remotely-starting-with-vista, the
    value "needs to be modified to allow anonymous callbacks").
    """
    where = host or "B"
    spec = oses.get(os)
    if not spec.anonymous_callback_opt_in:
        return Check(True, f"WMI on {spec.title} lowers a refused callback down to no "
                     "authentication (MS-WMI 3.1.1.1.3)", "anonymous-callback")
    value = registry.get(ALLOW_ANONYMOUS_CALLBACK)
    if value == 1:
        return Check(True, f"{ALLOW_ANONYMOUS_CALLBACK} = 1 on {where} lets WMI call back "
                     "anonymously", "anonymous-callback")
    shown = "absent" if value is None else f"= {value}"
    return Check(False, f"WMI on {where} ({spec.title}) makes no anonymous callback: "
                 f"{CIMOM_KEY}\\{ALLOW_ANONYMOUS_CALLBACK} is {shown} (Learn \"Setting up a "
                 "Remote WMI Connection\", CIMOM Settings)", "anonymous-callback")


class Rung(NamedTuple):
    """One attempt of B's callback: who B is on A, and at which authentication level."""

    token: Token
    level: int


def ladder(directory: Directory, server: str, client: str | None, *,
           anonymous: bool = True, privacy_only: bool = False) -> tuple[Rung, ...]:
    """Every attempt ``server`` (B) makes to call the sink on ``client`` (A), in order.

    ``client`` is None when the sink's address stands for no host of the scenario.
    ``anonymous``: may B fall back to an unauthenticated call (:func:`anonymous_fallback`).
    ``privacy_only``: the call's namespace requires encryption, so B calls back only at
    RPC_C_AUTHN_LEVEL_PKT_PRIVACY ("Both incoming data requests and asynchronous callbacks
    must be encrypted", Learn WmiSdk/securing-wmi-namespaces; MS-WMI 2.2.30.3). An empty ladder means
    B does not call the sink at all.
    """
    if client is None:
        # Choice (docs/choices.md): with no scenario host to stand for, the callback is anonymous.
        tokens: tuple[Token, ...] = (directory.anonymous_token(server),)
    else:
        # MS-WMI 3.1.1.1.3: "The server MUST try to make the calls by using the machine
        # principal name"; whom A sees (machine account, or ANONYMOUS LOGON) is the directory's.
        tokens = directory.callback_tokens(server, client)
    out: list[Rung] = []
    for token in tokens:
        if token.anonymous:
            if anonymous and not privacy_only:
                out.append(Rung(token, AUTHN_LEVEL_NONE))
        elif privacy_only:
            out.append(Rung(token, AUTHN_LEVEL_PKT_PRIVACY))
        else:
            out.extend(Rung(token, level) for level in AUTHENTICATED_LEVELS)
    return tuple(out)


def identities(rungs: tuple[Rung, ...]) -> tuple[Token, ...]:
    """The distinct identities of a ladder, in order (access checks do not depend on level)."""
    seen: dict[str, Token] = {}
    for rung in rungs:
        seen.setdefault(rung.token.user + ("/anon" if rung.token.anonymous else ""), rung.token)
    return tuple(seen.values())
