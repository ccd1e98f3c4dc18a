"""``netsh int ipv4 set|show dynamicport tcp``: the TCP dynamic port range of Vista and later.

From Windows Vista / Server 2008 on, the RPC runtime gives a dynamic endpoint (the WMI
service, a sink) a port of the TCP/IP stack's dynamic port range, 49152-65535 by default, which
``netsh int ipv4 set dynamicport tcp start=N num=M`` changes (KB 929851). XP SP2 and Server
2003 SP1 have no such command: their netsh has no ``dynamicport`` (their range, 1025-5000, is
``MaxUserPort``'s, KB 196271). :func:`parse` reads one command; :func:`show` prints the range as
``netsh int ipv4 show dynamicport tcp`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wmilab.errors import ConfigError
from wmilab.model import oses

__all__ = ["MIN_NUM", "MIN_START", "DynamicPorts", "is_dynamicport", "parse", "show"]

# KB 929851: "The minimum range of ports that can be set is 255. The minimum start port that
# can be set is 1025. The maximum end port (based on the range being configured) cannot
# exceed 65535."
MIN_NUM = 255
MIN_START = 1025
MAX_END = 65535
# What netsh prints for a value it refuses (ERROR_INVALID_PARAMETER's text, MS-ERREF 2.2;
# Choice, docs/choices.md: netsh's exact line for each bound is not documented).
_INVALID = "The parameter is incorrect."


@dataclass(frozen=True)
class DynamicPorts:
    """A TCP dynamic port range as netsh gives it: first port and number of ports."""

    start: int
    num: int

    @property
    def end(self) -> int:
        return self.start + self.num - 1


@dataclass(frozen=True)
class Command:
    verb: str  # "set" or "show"
    protocol: str  # "tcp" or "udp"
    ports: DynamicPorts | None  # set only


def is_dynamicport(words: Sequence[str]) -> bool:
    """Is this netsh command line (``netsh`` optional) in the ``int ipv4|ipv6`` context?"""
    w = [x.lower() for x in words]
    if w and w[0].removesuffix(".exe") == "netsh":
        w = w[1:]
    return bool(w) and w[0] in ("int", "interface")


def parse(words: Sequence[str], os: str) -> Command:
    """``[netsh] int ipv4 set dynamicport tcp start=N num=M`` or ``... show dynamicport tcp``.

    ConfigError with netsh's wording where Windows has one; on XP SP2 / 2003 SP1 the command
    does not exist (KB 929851 documents it from Vista on)."""
    w = list(words)
    if w and w[0].lower().removesuffix(".exe") == "netsh":
        w = w[1:]
    spec = oses.get(os)
    if not spec.modern:
        raise ConfigError(f"netsh {' '.join(w[:2])} ... dynamicport does not exist on "
                          f"{spec.title}: the dynamic port range is new in Windows Vista and "
                          "Server 2008 (KB 929851); XP and 2003 use 1025-5000 (KB 154596)")
    if len(w) < 4 or w[1].lower() not in ("ipv4", "ipv6") or \
            w[2].lower() not in ("set", "show") or \
            w[3].lower() not in ("dynamicport", "dynamicportrange", "dynamic"):
        raise ConfigError("The following command was not found: " + " ".join(w[:4]) +
                          " (wmilab models netsh int ipv4 set|show dynamicport tcp only)")
    if w[1].lower() == "ipv6":
        # The range is set per IP version (KB 929851); the seed's flows are IPv4.
        raise ConfigError("wmilab's hosts use IPv4: give netsh int ipv4 ... dynamicport")
    verb = w[2].lower()
    rest = w[4:]
    if not rest:
        raise ConfigError("The syntax supplied for this command is not valid. (give tcp or "
                          "udp, e.g. netsh int ipv4 show dynamicport tcp)")
    protocol = rest[0].lower()
    if protocol.startswith("protocol="):
        protocol = protocol.partition("=")[2]
    if protocol not in ("tcp", "udp"):
        raise ConfigError(f"'{rest[0]}' is not a valid value for protocol: give tcp or udp")
    if verb == "show":
        if len(rest) > 1:
            raise ConfigError(f"The syntax supplied for this command is not valid. ({rest[1]!r}"
                              " is no parameter of show dynamicport)")
        return Command("show", protocol, None)
    values: dict[str, str] = {}
    for arg in rest[1:]:
        key, eq, value = arg.partition("=")
        key = key.lower()
        if not eq or key not in ("start", "num", "store"):
            raise ConfigError(f"The syntax supplied for this command is not valid. ({arg!r}: "
                              "the parameters are start=, num= and store=)")
        values[key] = value
    if "start" not in values or "num" not in values:
        raise ConfigError("The syntax supplied for this command is not valid. (both start= "
                          "and num= are required)")
    if values.get("store", "persistent").lower() not in ("active", "persistent"):
        raise ConfigError(f"'{values['store']}' is not a valid value for store: active or "
                          "persistent")
    try:
        start, num = int(values["start"]), int(values["num"])
    except ValueError:
        raise ConfigError(f"{_INVALID} (start and num are whole numbers)") from None
    if start < MIN_START:
        raise ConfigError(f"{_INVALID} (the start port is at least {MIN_START}: KB 929851)")
    if num < MIN_NUM:
        raise ConfigError(f"{_INVALID} (num is at least {MIN_NUM} ports: KB 929851)")
    if start + num - 1 > MAX_END:
        raise ConfigError(f"{_INVALID} (start={start} num={num} ends at {start + num - 1}, "
                          f"past {MAX_END}: KB 929851)")
    return Command("set", protocol, DynamicPorts(start, num))


def default(os: str) -> DynamicPorts:
    r = oses.get(os).dynamic_ports
    return DynamicPorts(r.start, len(r))


def show(protocol: str, ports: DynamicPorts) -> str:
    """What ``netsh int ipv4 show dynamicport tcp`` prints (KB 929851's command)."""
    # Choice (docs/choices.md): the layout of Windows 10 / Server 2022's output.
    title = f"Protocol {protocol} Dynamic Port Range"
    return (f"\n{title}\n{'-' * 33}\nStart Port      : {ports.start}\n"
            f"Number of Ports : {ports.num}\n\n")
