"""Authentication levels by the names the command line uses (RPC_C_AUTHN_LEVEL_*, MS-RPCE
2.2.1.1.8). Kept apart so that option parsing does not load the client."""

from __future__ import annotations

from wmilab.wire.rpc import AuthLevel

__all__ = ["AUTH_LEVELS"]

AUTH_LEVELS = {"connect": AuthLevel.CONNECT, "pkt": AuthLevel.PKT,
               "integrity": AuthLevel.PKT_INTEGRITY, "privacy": AuthLevel.PKT_PRIVACY}
