"""``winmgmt /standalonehost [level]`` and ``winmgmt /sharedhost``: where the WMI service runs.

By default the WMI service (winmgmt) runs inside a shared svchost.exe and DCOM gives it a
dynamic RPC port. ``winmgmt /standalonehost`` moves it into a svchost.exe of its own with the
fixed DCOM endpoint ncacn_ip_tcp 24158; the optional level is that process's authentication
level, 4 (packet) when not given. ``winmgmt /sharedhost`` moves it back (Learn "winmgmt";
"Setting Up a Fixed Port for WMI"). Both exist from Windows Vista / Server 2008 on (Learn
"winmgmt", Requirements). The process is still svchost.exe hosting the service winmgmt, so a
firewall rule naming program svchost.exe and service winmgmt still describes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wmilab.errors import ConfigError
from wmilab.model import oses

__all__ = ["DEFAULT_LEVEL", "FIXED_PORT", "WmiHost", "parse"]

# Learn "winmgmt" /standalonehost: 'The default endpoint is "ncacn_ip_tcp.0.24158"'.
FIXED_PORT = 24158
# Learn "winmgmt": "If level is not specified, the default is 4 (RPC_C_AUTHN_LEVEL_PKT)".
DEFAULT_LEVEL = 4
# RPC_C_AUTHN_LEVEL_DEFAULT (0) to RPC_C_AUTHN_LEVEL_PKT_PRIVACY (6) (MS-RPCE 2.2.1.1.8).
_LEVELS = range(0, 7)


@dataclass(frozen=True)
class WmiHost:
    """The WMI service in its own svchost.exe (``standalone``) at ``level``, or shared."""

    standalone: bool
    level: int = DEFAULT_LEVEL


SHARED = WmiHost(False)


def parse(words: Sequence[str], os: str) -> WmiHost:
    """``winmgmt /standalonehost [level]`` or ``winmgmt /sharedhost`` (``-`` works as ``/``)."""
    spec = oses.get(os)
    if not spec.modern:
        raise ConfigError(f"winmgmt {' '.join(words[1:2])} does not exist on {spec.title}: "
                          "/standalonehost and /sharedhost are new in Windows Vista and Server "
                          "2008 (Learn \"winmgmt\")")
    args = list(words[1:])
    if not args:
        raise ConfigError("give /standalonehost [level] or /sharedhost (wmilab models these "
                          "switches of winmgmt)")
    switch = "/" + args[0].lower().lstrip("/-")
    if switch == "/sharedhost":
        if len(args) > 1:
            raise ConfigError(f"/sharedhost takes no argument, not {args[1]!r}")
        return SHARED
    if switch != "/standalonehost":
        raise ConfigError(f"{args[0]!r} is not a switch of winmgmt that wmilab models "
                          "(/standalonehost [level], /sharedhost)")
    if len(args) > 2:
        raise ConfigError(f"/standalonehost takes one level at most, not {args[2]!r}")
    if len(args) == 1:
        return WmiHost(True)
    try:
        level = int(args[1])
    except ValueError:
        level = -1
    if level not in _LEVELS or level == 0:
        raise ConfigError(f"{args[1]!r} is not an authentication level: give 1 (none) to 6 "
                          "(packet privacy), 4 when left out (Learn \"winmgmt\")")
    return WmiHost(True, level)
