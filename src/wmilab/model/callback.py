"""Connection 2: the identities and authentication levels B tries when it calls A's sink.

One ladder, asked by ``flow`` (step c2.access) and by the emulated host that makes the
callback (host/callback.py), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

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


class Rung(NamedTuple):
    """One attempt of B's callback: who B is on A, and at which authentication level."""

    token: Token
    level: int


def ladder(directory: Directory, server: str, client: str | None) -> tuple[Rung, ...]:
    """Every attempt ``server`` (B) makes to call the sink on ``client`` (A), in order.

    ``client`` is None when the sink's address stands for no host of the scenario.
    """
    if client is None:
        # Choice (docs/choices.md): with no scenario host to stand for, the callback is anonymous.
        return (Rung(directory.anonymous_token(server), AUTHN_LEVEL_NONE),)
    out: list[Rung] = []
    # MS-WMI 3.1.1.1.3: "The server MUST try to make the calls by using the machine principal
    # name"; whom A sees (machine account, or ANONYMOUS LOGON) is the directory's.
    for token in directory.callback_tokens(server, client):
        if token.anonymous:
            out.append(Rung(token, AUTHN_LEVEL_NONE))
        else:
            out.extend(Rung(token, level) for level in AUTHENTICATED_LEVELS)
    return tuple(out)


def identities(rungs: tuple[Rung, ...]) -> tuple[Token, ...]:
    """The distinct identities of a ladder, in order (access checks do not depend on level)."""
    seen: dict[str, Token] = {}
    for rung in rungs:
        seen.setdefault(rung.token.user + ("/anon" if rung.token.anonymous else ""), rung.token)
    return tuple(seen.values())
