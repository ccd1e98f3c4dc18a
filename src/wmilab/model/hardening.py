"""The DCOM authentication hardening of KB 5004442 (CVE-2021-26414): server stage, client level.

A server (B) with the hardening on refuses every activation below packet integrity and logs
System event 10036. Whether it is on follows from the newest monthly update installed and
one registry value (KB 5004442, "Timeline" and "Registry setting to enable or disable the
hardening changes"):

- before June 2021: not installed;
- June 2021 (phase 1): off unless ``RequireIntegrityActivationAuthenticationLevel`` = 1;
- June 2022 (phase 2): on unless that value is 0;
- March 2023 (phase 3): on; the value is ignored.

A Windows client (A) that has the update raises its activations below packet integrity
(``RaiseActivationAuthenticationLevel``: 1 raises the default level only, 2 also an explicit
level; absent, 1 before the November 8, 2022 update and 2 from it; KB 5004442, "Registry
settings to raise the activation authentication level"). Anonymous activations are not
raised ("all non-anonymous activation requests").
"""

from __future__ import annotations

from dataclasses import dataclass

from wmilab.errors import ConfigError
from wmilab.model import oses

__all__ = ["LEVELS", "PKT_INTEGRITY", "Hardening", "call_level", "client_level", "event_10036",
           "level_name",
           "parse_level", "server_hardening"]

# RPC_C_AUTHN_LEVEL_* (Learn com/com-authentication-level-constants): the scenario's names.
LEVELS: dict[str, int] = {"none": 1, "connect": 2, "call": 3, "pkt": 4, "integrity": 5,
                          "privacy": 6}
_CONSTANTS = {1: "RPC_C_AUTHN_LEVEL_NONE", 2: "RPC_C_AUTHN_LEVEL_CONNECT",
              3: "RPC_C_AUTHN_LEVEL_CALL", 4: "RPC_C_AUTHN_LEVEL_PKT",
              5: "RPC_C_AUTHN_LEVEL_PKT_INTEGRITY", 6: "RPC_C_AUTHN_LEVEL_PKT_PRIVACY"}
PKT_INTEGRITY = 5

PHASE1, PHASE2, PHASE3 = "2021-06", "2022-06", "2023-03"
RAISE_ALL_FROM = "2022-11"  # RaiseActivationAuthenticationLevel defaults to 2 from then
REQUIRE = "RequireIntegrityActivationAuthenticationLevel"
RAISE = "RaiseActivationAuthenticationLevel"


def parse_level(text: str) -> int:
    level = LEVELS.get(text.strip().lower())
    if level is None:
        raise ConfigError(f"{text!r} is not an authentication level; expected one of: "
                          f"{', '.join(LEVELS)}")
    return level


def level_name(level: int) -> str:
    return _CONSTANTS.get(level, f"level {level}")


@dataclass(frozen=True)
class Hardening:
    """The server side on one host: does it refuse activations below packet integrity?"""

    enforced: bool
    why: str


def server_hardening(os: str, month: str, registry: dict[str, object]) -> Hardening:
    spec = oses.get(os)
    if not spec.modern:
        return Hardening(False, f"{spec.title} has no DCOM hardening (KB 5004442 is for "
                         "Windows 7 / Server 2008 and later)")
    value = registry.get(REQUIRE)
    if month < PHASE1:
        return Hardening(False, f"the newest update ({month}) predates the DCOM hardening of "
                         "June 2021 (KB 5004442)")
    if month >= PHASE3:
        return Hardening(True, f"the {month} update enforces the DCOM hardening (KB 5004442 "
                         "phase 3, March 2023: it can no longer be turned off)")
    if month >= PHASE2:
        if value == 0:
            return Hardening(False, f"{REQUIRE} = 0 turns the hardening off (KB 5004442 "
                             "phase 2, before March 2023)")
        return Hardening(True, f"the {month} update turns the DCOM hardening on by default "
                         "(KB 5004442 phase 2, June 2022)")
    if value == 1:
        return Hardening(True, f"{REQUIRE} = 1 turns the hardening on (KB 5004442 phase 1)")
    return Hardening(False, "the hardening is installed but off by default (KB 5004442 "
                     "phase 1, June 2021)")


def client_level(os: str, month: str, registry: dict[str, object],
                 requested: int | None) -> tuple[int, str]:
    """The level A's activation request reaches B with, and why.

    Without ``requested`` the WMI client of A's OS uses its default (OsSpec
    ``activation_auth_level``).
    """
    spec = oses.get(os)
    level = spec.activation_auth_level if requested is None else requested
    how = (f"the WMI client of {spec.title} activates at {level_name(level)}"
           if requested is None else f"the program asks for {level_name(level)}")
    if not spec.modern or month < PHASE1 or level >= PKT_INTEGRITY or level <= 1:
        return level, how
    raise_value = registry.get(RAISE)
    if raise_value is None:
        raise_value = 2 if month >= RAISE_ALL_FROM else 1
    if raise_value == 2 or (raise_value == 1 and requested is None):
        return PKT_INTEGRITY, (f"{how}; A raises it to RPC_C_AUTHN_LEVEL_PKT_INTEGRITY "
                               f"({RAISE} = {raise_value}, KB 5004442)")
    return level, f"{how}; A does not raise an explicit level ({RAISE} = {raise_value})"


def call_level(os: str, requested: int | None) -> tuple[int, str]:
    """The level A's calls into WMI (NTLMLogin and every later call) are made at, and why.

    The program's level, else the WMI client default of A's OS (OsSpec
    ``activation_auth_level``: "remote connections default to RPC_C_AUTHN_LEVEL_PKT" from
    Vista on, MSDocs WmiSdk/securing-a-remote-wmi-connection). KB 5004442's raise acts on
    activation requests only ("all non-anonymous activation requests"), so it is not applied.
    """
    spec = oses.get(os)
    if requested is not None:
        return requested, f"the program asks for {level_name(requested)}"
    level = spec.activation_auth_level
    return level, f"the WMI client of {spec.title} calls at {level_name(level)} by default"


def event_10036(domain: str, user: str, sid: str, address: str) -> str:
    """The System event B logs when it refuses an activation (KB 5004442, "New DCOM error
    events": event 10036, source DistributedCOM)."""
    return (f"Event 10036 (DistributedCOM): The server-side authentication level policy does "
            f"not allow the user {domain}\\{user} SID ({sid}) from address {address} to "
            "activate DCOM server. Please raise the activation authentication level at least "
            "to RPC_C_AUTHN_LEVEL_PKT_INTEGRITY in client application.")
