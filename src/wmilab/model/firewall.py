"""Windows Firewall of XP SP2 / Server 2003 SP1: local settings, GP merge, decisions.

``LocalFirewall`` is the state that ``netsh firewall`` edits (one ``ProfileSettings``
per profile). :func:`effective` lays Group Policy over it for one profile and
precomputes lookup tables, so :meth:`EffectiveFirewall.decide` is a couple of dict
lookups and scope matches per inbound connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING, Literal, TypeVar

from wmilab.errors import ConfigError
from wmilab.model import oses
from wmilab.model.addresses import Scope, SourceTable

if TYPE_CHECKING:
    from wmilab.model.policy import FirewallPolicy
    from wmilab.model.ports import PortRange

Origin = Literal["local", "policy"]


class Profile(StrEnum):
    # Domain profile when on the network of the computer's domain, else standard (cc739685).
    DOMAIN = "domain"
    STANDARD = "standard"

    @property
    def label(self) -> str:
        return "Domain" if self is Profile.DOMAIN else "Standard"


class Service(StrEnum):
    # netsh firewall set service types (bb490617; cc737332).
    FILEANDPRINT = "FILEANDPRINT"
    REMOTEADMIN = "REMOTEADMIN"
    REMOTEDESKTOP = "REMOTEDESKTOP"
    UPNP = "UPNP"

    @property
    def display(self) -> str:
        return SERVICE_NAMES[self]


SERVICE_NAMES: dict[Service, str] = {
    Service.FILEANDPRINT: "File and Printer Sharing",
    Service.REMOTEADMIN: "Remote Administration",
    Service.REMOTEDESKTOP: "Remote Desktop",
    Service.UPNP: "UPnP Framework",
}

# Ports each predefined exception opens, with the names netsh shows for them.
SERVICE_PORTS: dict[Service, tuple[tuple[str, int, str], ...]] = {
    # File and printer sharing: UDP 137, 138, TCP 139, 445 (GP "Allow file and printer
    # sharing exception" explain text; names as XP's `show portopening` prints them).
    Service.FILEANDPRINT: (
        ("TCP", 139, "NetBIOS Session Service"),
        ("TCP", 445, "SMB over TCP"),
        ("UDP", 137, "NetBIOS Name Service"),
        ("UDP", 138, "NetBIOS Datagram Service"),
    ),
    # Remote administration: TCP 135 and 445 (GP "Allow remote administration exception").
    Service.REMOTEADMIN: (
        ("TCP", 135, "RPC Endpoint Mapper"),
        ("TCP", 445, "SMB over TCP"),
    ),
    # Remote Desktop: TCP 3389 (GP "Allow Remote Desktop exception").
    Service.REMOTEDESKTOP: (("TCP", 3389, "Remote Desktop"),),
    # UPnP framework: TCP 2869 and UDP 1900 (GP "Allow UPnP framework exception").
    Service.UPNP: (
        ("TCP", 2869, "UPnP Framework over TCP"),
        ("UDP", 1900, "SSDP Component of UPnP Framework"),
    ),
}

# ICMP types netsh/GP know, with the descriptions `show icmpsetting` prints (cc773099).
ICMP_TYPES: dict[int, str] = {
    2: "Allow outbound packet too big",
    3: "Allow outbound destination unreachable",
    4: "Allow outbound source quench",
    5: "Allow redirect",
    8: "Allow inbound echo request",
    9: "Allow inbound router request",
    11: "Allow outbound time exceeded",
    12: "Allow outbound parameter problem",
    13: "Allow inbound timestamp request",
    17: "Allow inbound mask request",
}

DEFAULT_WINDIR = r"C:\WINDOWS"

_VAR = re.compile(r"%(windir|systemroot|programfiles|systemdrive)%", re.IGNORECASE)


def normalize_program(path: str, windir: str = DEFAULT_WINDIR) -> str:
    """Canonical form of a program path: variables expanded, lower case, backslashes."""
    text = path.strip().strip('"').replace("/", "\\")
    win = windir.rstrip("\\")
    drive = win[:2] if len(win) >= 2 and win[1] == ":" else "C:"

    def expand(m: re.Match[str]) -> str:
        name = m.group(1).lower()
        if name in ("windir", "systemroot"):
            return win
        if name == "systemdrive":
            return drive
        return drive + r"\Program Files"

    text = _VAR.sub(expand, text)
    text = re.sub(r"\\{2,}", r"\\", text)
    return text.lower()


SVCHOST = normalize_program(r"%windir%\system32\svchost.exe")
LSASS = normalize_program(r"%windir%\system32\lsass.exe")
UNSECAPP = normalize_program(r"%windir%\system32\wbem\unsecapp.exe")
SESSMGR = normalize_program(r"%windir%\system32\sessmgr.exe")


# ---- connections and verdicts --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inbound:
    """An unsolicited inbound connection attempt to this host.

    ``program`` is the normalized path of the program listening on ``port``; for
    ``protocol="ICMP"`` the ``port`` field holds the ICMP type.
    """

    source: IPv4Address
    port: int
    program: str
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class FirewallDecision:
    allowed: bool
    rule: str
    origin: Literal["off", "local", "policy", "none"]

    def __bool__(self) -> bool:
        return self.allowed


# ---- local (netsh-editable) state -----------------------------------------------------


@dataclass
class ServiceSetting:
    enabled: bool
    scope: Scope


@dataclass
class PortOpening:
    name: str
    enabled: bool
    scope: Scope


@dataclass
class AllowedProgram:
    path: str  # as typed
    name: str
    enabled: bool
    scope: Scope


@dataclass
class LoggingSettings:
    # Defaults: log off, C:\WINDOWS\pfirewall.log, 4 MB (windowsitpro "Windows Firewall").
    file: str = r"%windir%\pfirewall.log"
    max_kb: int = 4096
    dropped: bool = False
    connections: bool = False

    def copy(self) -> LoggingSettings:
        return LoggingSettings(self.file, self.max_kb, self.dropped, self.connections)


# Default scopes of the predefined exceptions. Choice (netfw.inf as recalled, not verified
# against a primary source): File and Printer Sharing and UPnP default to the subnet,
# Remote Desktop and Remote Administration to any computer.
DEFAULT_SERVICE_SCOPES: dict[Service, Scope] = {
    Service.FILEANDPRINT: Scope.subnet(),
    Service.REMOTEADMIN: Scope.all(),
    Service.REMOTEDESKTOP: Scope.all(),
    Service.UPNP: Scope.subnet(),
}


@dataclass
class ProfileSettings:
    opmode_enabled: bool
    exceptions_allowed: bool
    services: dict[Service, ServiceSetting]
    ports: dict[tuple[str, int], PortOpening]
    programs: dict[str, AllowedProgram]
    icmp: dict[int, bool]
    notifications: bool = True
    multicast_response: bool = True

    @classmethod
    def defaults(cls, os: str) -> ProfileSettings:
        spec = oses.get(os)
        # XP SP2: firewall on; Server 2003 SP1: off (seed; the OS catalogue).
        on = spec.firewall_on
        programs: dict[str, AllowedProgram] = {}
        if spec.remote_assistance_exception:
            # Choice: XP SP2 ships the Remote Assistance program exception enabled
            # (Exceptions tab default); Server 2003 SP1 does not.
            programs[SESSMGR] = AllowedProgram(
                r"%windir%\system32\sessmgr.exe", "Remote Assistance", True, Scope.all())
        return cls(
            opmode_enabled=on,
            exceptions_allowed=True,
            # No predefined exception is enabled by default (GP texts: "does not open").
            services={s: ServiceSetting(False, DEFAULT_SERVICE_SCOPES[s]) for s in Service},
            ports={},
            programs=programs,
            # The default configuration blocks all ICMP message types (TechNet cc773099).
            icmp={t: False for t in ICMP_TYPES},
            # Notifications and unicast responses are on by default (GP explain texts:
            # "If you do not configure ... Windows Firewall waits 3 s for unicast responses").
            notifications=True,
            multicast_response=True,
        )

    def copy(self) -> ProfileSettings:
        return ProfileSettings(
            opmode_enabled=self.opmode_enabled,
            exceptions_allowed=self.exceptions_allowed,
            services={k: ServiceSetting(v.enabled, v.scope) for k, v in self.services.items()},
            ports={k: PortOpening(v.name, v.enabled, v.scope) for k, v in self.ports.items()},
            programs={k: AllowedProgram(v.path, v.name, v.enabled, v.scope)
                      for k, v in self.programs.items()},
            icmp=dict(self.icmp),
            notifications=self.notifications,
            multicast_response=self.multicast_response,
        )


SUPPORTED_OS = oses.NAMES


@dataclass
class LocalFirewall:
    """The local Windows Firewall configuration of one host (what netsh edits)."""

    os: str
    current: Profile
    profiles: dict[Profile, ProfileSettings]
    # Logging is one setting for the whole firewall on XP SP2 (`set logging` has no
    # profile parameter; `show config` prints one "Log configuration" block).
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    @classmethod
    def defaults(cls, os: str, current: Profile) -> LocalFirewall:
        if os not in SUPPORTED_OS:
            raise ConfigError(f"os must be one of {', '.join(SUPPORTED_OS)}, not {os!r}")
        return cls(os, Profile(current), {p: ProfileSettings.defaults(os) for p in Profile})

    def reset(self) -> None:
        """`netsh firewall reset`: defaults, firewall on whatever the platform (seed)."""
        self.profiles = {p: ProfileSettings.defaults(self.os) for p in Profile}
        for ps in self.profiles.values():
            ps.opmode_enabled = True
        self.logging = LoggingSettings()

    def copy(self) -> LocalFirewall:
        return LocalFirewall(self.os, self.current,
                             {p: s.copy() for p, s in self.profiles.items()},
                             self.logging.copy())

    def profile(self, profile: Profile | None = None) -> ProfileSettings:
        return self.profiles[self.current if profile is None else profile]


# ---- effective firewall ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EffectiveService:
    service: Service
    enabled: bool
    scope: Scope
    origin: Origin


@dataclass(frozen=True, slots=True)
class EffectivePort:
    protocol: str
    port: int
    name: str
    enabled: bool
    scope: Scope
    origin: Origin


@dataclass(frozen=True, slots=True)
class EffectiveProgram:
    program: str  # normalized
    path: str  # as typed
    name: str
    enabled: bool
    scope: Scope
    origin: Origin


@dataclass(frozen=True, slots=True)
class _Rule:
    description: str
    scope: Scope
    origin: Origin
    allow: FirewallDecision


def _rule(description: str, scope: Scope, origin: Origin) -> _Rule:
    return _Rule(description, scope, origin, FirewallDecision(True, f"allowed by {description}", origin))


def _where(origin: Origin) -> str:
    return "Group Policy" if origin == "policy" else "local"


@dataclass(frozen=True)
class EffectiveFirewall:
    """Group Policy laid over the local settings of one profile."""

    profile: Profile
    enabled: bool
    enabled_origin: Origin
    exceptions_allowed: bool
    exceptions_origin: Origin
    services: Mapping[Service, EffectiveService]
    ports: tuple[EffectivePort, ...]
    programs: tuple[EffectiveProgram, ...]
    local_programs_honoured: bool
    local_ports_honoured: bool
    icmp: Mapping[int, bool]
    icmp_origin: Origin
    notifications: bool
    notifications_origin: Origin
    multicast_response: bool
    multicast_origin: Origin
    logging: LoggingSettings
    logging_origin: Origin
    _port_rules: Mapping[tuple[str, int], tuple[_Rule, ...]] = field(repr=False)
    _program_rules: Mapping[str, tuple[_Rule, ...]] = field(repr=False)
    _hidden: Mapping[tuple[str, int] | str, FirewallDecision] = field(repr=False)
    _off: FirewallDecision = field(repr=False)
    _closed: FirewallDecision = field(repr=False)
    _admissions: dict[tuple[str, int, str], Admission] = field(
        default_factory=dict, repr=False, compare=False)
    _dynamic: dict[tuple[PortRange, str], Admission | None] = field(
        default_factory=dict, repr=False, compare=False)

    # -- queries for remedies --------------------------------------------------------
    def service_forced(self, service: Service) -> bool:
        """True when Group Policy decides this service, so netsh cannot change it."""
        return self.services[service].origin == "policy"

    def open_ports(self) -> list[EffectivePort]:
        """Statically open ports (enabled port openings and predefined exceptions)."""
        out: list[EffectivePort] = []
        for s in Service:
            es = self.services[s]
            if es.enabled:
                for proto, port, name in SERVICE_PORTS[s]:
                    out.append(EffectivePort(proto, port, name, True, es.scope, es.origin))
        out.extend(p for p in self.ports if p.enabled)
        return out

    # -- who may connect: the one place an inbound decision is made -------------------
    def admission(self, port: int, program: str, protocol: str = "TCP",
                  service: str = "") -> Admission:
        """Which sources may open an unsolicited connection to ``port`` on which
        ``program`` listens (for ICMP, ``port`` is the type): the scopes of the rules that
        admit, in the order they are tried, and the verdict for every other source.

        :meth:`decide` (the flow, the in-process gate) and the nftables compiler
        (lab/nft.py) both read this, so they cannot disagree.
        """
        key = (protocol, port, program)
        found = self._admissions.get(key)
        if found is None:
            found = self._admission(protocol, port, program)
            self._admissions[key] = found
        return found

    def _admission(self, protocol: str, port: int, program: str) -> Admission:
        if not self.enabled:
            return Admission((_Rule("", Scope.all(), "local", self._off),), self._off)
        if not self.exceptions_allowed:
            return Admission((), self._closed)
        key = (protocol, port)
        port_rules = self._port_rules.get(key, ())
        prog_rules = self._program_rules.get(program, ())
        rules = port_rules + prog_rules
        if rules:
            r = rules[0]
            # Choice: the first rule names the refusal ("admits only ... ; SRC is outside").
            return Admission(rules, None, f"{r.description} admits only "
                             f"{r.scope.describe()}", r.origin)
        hidden = self._hidden.get(key)
        if hidden is None:
            hidden = self._hidden.get(program)
        if hidden is not None:
            return Admission((), hidden)
        what = f"ICMP type {port}" if protocol == "ICMP" else f"{protocol} {port} to {program}"
        return Admission((), FirewallDecision(
            False, f"no exception of the {self.profile} profile allows {what}", "none"))

    # -- the hot path ----------------------------------------------------------------
    def decide(self, conn: Inbound, local_subnet: IPv4Network, service: str = "") -> FirewallDecision:
        # ``service`` is for WFAS rules (model/wfas.py); this firewall knows programs only.
        return self.admission(conn.port, conn.program, conn.protocol).decide(
            conn.source, local_subnet)

    def decide_dynamic(self, source: IPv4Address, ports: PortRange, program: str,
                       local_subnet: IPv4Network, service: str = "") -> FirewallDecision:
        """An unsolicited TCP connection to ``program`` on a dynamic RPC port.

        The RPC runtime picks the port from ``ports`` when the program starts listening
        (KB 154596), so only what admits *every* port it may pick lets the connection in
        for sure: a program exception for ``program`` (Remote Administration's svchost.exe
        and lsass.exe: GP "Allow remote administration exception"; an allowed program), or
        port openings that together cover the whole range. A guessed single port does not.
        """
        adm = self.dynamic_admission(ports, program)
        if adm is not None:
            return adm.decide(source, local_subnet)
        # Port openings in the range: which ports they cover depends on the source.
        prog_rules = self._program_rules.get(program, ())
        for r in prog_rules:
            if r.scope.matches(source, local_subnet):
                return r.allow
        covered: dict[int, _Rule] = {}
        for (proto, port), rules in self._port_rules.items():
            if proto != "TCP" or port not in ports:
                continue
            for r in rules:
                if r.scope.matches(source, local_subnet):
                    covered[port] = r
                    break
        if len(covered) == len(ports):
            first = covered[min(covered)]
            return FirewallDecision(True, f"allowed by port openings that cover every port of "
                           f"{ports.describe()}, from which {program}'s dynamic RPC port is "
                           "taken", first.origin)
        if prog_rules:
            return self._outside(prog_rules[0], source)
        hidden = self._hidden.get(program)
        if hidden is not None:
            return hidden
        if covered:
            return FirewallDecision(False, f"port openings admit only {len(covered)} of the "
                           f"{len(ports)} ports {program} may get (e.g. TCP {min(covered)}) "
                           f"from {ports.source}; Windows picks the port when the program "
                           "starts listening, so a guessed port is no exception for it", "none")
        return self._no_dynamic(ports, program)

    def dynamic_admission(self, ports: PortRange, program: str,
                          service: str = "") -> Admission | None:
        """:meth:`decide_dynamic` for every source at once, when it is one ordered list of
        scopes: always, unless TCP port openings lie in ``ports`` (then what they cover
        depends on the source, and None is returned). ``service``: for WFAS rules only."""
        key = (ports, program)
        found: Admission | None = self._dynamic.get(key, _UNKNOWN)
        if found is not _UNKNOWN:
            return found
        if not self.enabled:
            found = Admission((_Rule("", Scope.all(), "local", self._off),), self._off)
        elif not self.exceptions_allowed:
            found = Admission((), self._closed)
        elif any(proto == "TCP" and port in ports for proto, port in self._port_rules):
            found = None
        else:
            prog_rules = self._program_rules.get(program, ())
            hidden = self._hidden.get(program)
            if prog_rules:
                r = prog_rules[0]
                found = Admission(prog_rules, None, f"{r.description} admits only "
                                  f"{r.scope.describe()}", r.origin)
            elif hidden is not None:
                found = Admission((), hidden)
            else:
                found = Admission((), self._no_dynamic(ports, program))
        self._dynamic[key] = found
        return found

    @staticmethod
    def _outside(r: _Rule, source: IPv4Address) -> FirewallDecision:
        return FirewallDecision(False, f"{r.description} admits only {r.scope.describe()}; "
                                f"{source} is outside it", r.origin)

    def _no_dynamic(self, ports: PortRange, program: str) -> FirewallDecision:
        where = f"{program} on its dynamic RPC port, taken from {ports.source}"
        return FirewallDecision(False, f"no exception of the {self.profile} profile allows TCP "
                                f"to {where}", "none")


@dataclass(frozen=True, slots=True)
class Admission:
    """Who the effective firewall lets in to one (protocol, port, program).

    ``rules`` are tried in order and the first whose scope holds the source admits it;
    every other source is refused with ``refusal`` (or, when ``refusal`` is None, with a
    verdict naming the source and ``scope_text``).
    """

    rules: tuple[_Rule, ...]
    refusal: FirewallDecision | None
    scope_text: str = ""
    refusal_origin: Origin = "local"

    @property
    def scopes(self) -> tuple[Scope, ...]:
        """The scopes that admit: empty when nobody may connect. (A WFAS block rule is a
        rule whose verdict refuses; it comes first in ``rules`` and is left out here.)"""
        return tuple(r.scope for r in self.rules if r.allow.allowed)

    def decide(self, source: IPv4Address, local_subnet: IPv4Network) -> FirewallDecision:
        for r in self.rules:
            if r.scope.matches(source, local_subnet):
                return r.allow
        if self.refusal is not None:
            return self.refusal
        return FirewallDecision(False, f"{self.scope_text}; {source} is outside it", self.refusal_origin)

    def table(self, local_subnet: IPv4Network) -> SourceTable[FirewallDecision]:
        """:meth:`decide` compiled for a host on ``local_subnet``: each source's verdict,
        except the refusal that names the source (None: ask :meth:`decide`)."""
        return SourceTable.of(tuple((r.scope, r.allow) for r in self.rules), local_subnet,
                              self.refusal)


_UNKNOWN = Admission((), None)  # "not asked yet" in EffectiveFirewall._dynamic


def _tri(policy_value: bool | None, local_value: bool) -> tuple[bool, Origin]:
    if policy_value is None:
        return local_value, "local"
    return policy_value, "policy"


def effective(
    local: LocalFirewall,
    policy: FirewallPolicy,
    profile: Profile,
    windir: str = DEFAULT_WINDIR,
) -> EffectiveFirewall:
    """Merge Group Policy over the local settings of ``profile`` (see docs/firewall.md)."""
    ls = local.profiles[profile]
    pp = policy.profile(profile)
    title = profile.label

    # "Protect all network connections": Enabled runs the firewall, Disabled stops it,
    # Not Configured leaves it to the local administrator (GP explain text).
    enabled, enabled_origin = _tri(pp.protect_all, ls.opmode_enabled)
    # "Do not allow exceptions": Enabled overrides every setting that allows unsolicited
    # traffic; Disabled clears the local "Don't allow exceptions" box (GP explain text).
    exc_policy = None if pp.no_exceptions is None else not pp.no_exceptions
    exceptions_allowed, exceptions_origin = _tri(exc_policy, ls.exceptions_allowed)

    # Predefined exceptions: Enabled forces open to the GP addresses, Disabled forces
    # closed even against local settings, Not Configured is local (GP explain texts).
    services: dict[Service, EffectiveService] = {}
    for s in Service:
        sp = pp.service(s)
        loc = ls.services[s]
        if sp.state is None:
            services[s] = EffectiveService(s, loc.enabled, loc.scope, "local")
        else:
            services[s] = EffectiveService(s, sp.state, sp.scope if sp.state else loc.scope,
                                           "policy")

    port_rules: dict[tuple[str, int], list[_Rule]] = {}
    program_rules: dict[str, list[_Rule]] = {}
    hidden: dict[tuple[str, int] | str, FirewallDecision] = {}

    # Ports a GP-Disabled FAP/RD/UPnP setting blocks against *local* port exceptions
    # ("If an administrator attempts to open these ports by adding them to a local port
    # exceptions list, Windows Firewall does not open the ports" - GP explain texts).
    blocked_local_ports: dict[tuple[str, int], Service] = {}
    for s in (Service.FILEANDPRINT, Service.REMOTEDESKTOP, Service.UPNP):
        if pp.service(s).state is False:
            for proto, port, _name in SERVICE_PORTS[s]:
                blocked_local_ports[(proto, port)] = s

    for s in Service:
        es = services[s]
        if not es.enabled:
            continue
        desc = f"the {s.display} exception ({_where(es.origin)}, {es.scope.describe()})"
        for proto, port, _name in SERVICE_PORTS[s]:
            port_rules.setdefault((proto, port), []).append(_rule(desc, es.scope, es.origin))
        if s is Service.REMOTEADMIN:
            # RemoteAdmin also lets svchost.exe and lsass.exe receive unsolicited traffic
            # on their dynamic RPC ports (GP "Allow remote administration exception").
            for prog in (normalize_program(SVCHOST, windir), normalize_program(LSASS, windir)):
                program_rules.setdefault(prog, []).append(_rule(desc, es.scope, es.origin))

    # ---- program exceptions -------------------------------------------------------
    gp_define = pp.define_programs
    gp_progs = pp.programs if gp_define else ()
    # "Allow local program exceptions": Enabled honours the local list; Disabled ignores it;
    # Not Configured honours it only if "Define program exceptions" is also Not Configured.
    local_programs_ok = pp.allow_local_programs is True or (
        pp.allow_local_programs is None and gp_define is None)
    # A Disabled GP definition overrides every Enabled one, local ones included
    # ("Define program exceptions" explain text, note on conflicting Status values).
    gp_disabled_progs = {normalize_program(e.path, windir) for e in gp_progs if not e.enabled}
    eff_programs: list[EffectiveProgram] = []
    combined: dict[str, EffectiveProgram] = {}
    for e in gp_progs:
        prog = normalize_program(e.path, windir)
        if not e.enabled or prog in gp_disabled_progs:
            continue
        prev = combined.get(prog)
        # Scope parameters are combined for multiple entries (explain text).
        scope = e.scope if prev is None else prev.scope.union(e.scope)
        combined[prog] = EffectiveProgram(prog, e.path, e.name, True, scope, "policy")
    for prog in gp_disabled_progs:
        e0 = next(e for e in gp_progs if normalize_program(e.path, windir) == prog)
        eff_programs.append(EffectiveProgram(prog, e0.path, e0.name, False, e0.scope, "policy"))
        hidden[prog] = FirewallDecision(
            False, f"Group Policy lists program {e0.path} as Disabled in the {title} profile",
            "policy")
    for ep in combined.values():
        eff_programs.append(ep)
        program_rules.setdefault(ep.program, []).append(_rule(
            f"the program exception {ep.name} ({ep.path}, Group Policy, {ep.scope.describe()})",
            ep.scope, "policy"))
    ra_disabled = pp.service(Service.REMOTEADMIN).state is False
    ra_blocked = {normalize_program(SVCHOST, windir), normalize_program(LSASS, windir)}
    for prog, ap in ls.programs.items():
        if not local_programs_ok:
            hidden.setdefault(prog, FirewallDecision(
                False,
                f"the local program exception {ap.name} is ignored: Group Policy \"Define "
                f"program exceptions\" is configured and \"Allow local program exceptions\" is "
                f"not Enabled in the {title} profile", "policy"))
            continue
        if prog in gp_disabled_progs:
            continue
        if ra_disabled and prog in ra_blocked:
            # Choice: GP RemoteAdmin Disabled "prevents SVCHOST.EXE and LSASS.EXE from
            # receiving unsolicited incoming messages", so local exceptions for them are void.
            hidden.setdefault(prog, FirewallDecision(
                False, f"Group Policy disables Remote Administration in the {title} profile, "
                f"which keeps {ap.path} from receiving unsolicited traffic", "policy"))
            continue
        eff_programs.append(EffectiveProgram(prog, ap.path, ap.name, ap.enabled, ap.scope,
                                             "local"))
        if ap.enabled:
            program_rules.setdefault(prog, []).append(_rule(
                f"the program exception {ap.name} ({ap.path}, local, {ap.scope.describe()})",
                ap.scope, "local"))
        else:
            hidden.setdefault(prog, FirewallDecision(
                False, f"the local program exception {ap.name} is disabled in the {title} profile",
                "local"))

    # ---- port exceptions (same pair semantics as programs: "Define port exceptions") ----
    gp_ports = pp.ports if pp.define_ports else ()
    local_ports_ok = pp.allow_local_ports is True or (
        pp.allow_local_ports is None and pp.define_ports is None)
    gp_disabled_ports = {(e.protocol, e.port) for e in gp_ports if not e.enabled}
    eff_ports: list[EffectivePort] = []
    combined_ports: dict[tuple[str, int], EffectivePort] = {}
    for q in gp_ports:
        key = (q.protocol, q.port)
        if not q.enabled or key in gp_disabled_ports:
            continue
        prevp = combined_ports.get(key)
        scope = q.scope if prevp is None else prevp.scope.union(q.scope)
        combined_ports[key] = EffectivePort(q.protocol, q.port, q.name, True, scope, "policy")
    for key in gp_disabled_ports:
        e1 = next(q for q in gp_ports if (q.protocol, q.port) == key)
        eff_ports.append(EffectivePort(e1.protocol, e1.port, e1.name, False, e1.scope, "policy"))
        hidden[key] = FirewallDecision(
            False, f"Group Policy lists port {key[0]} {key[1]} as Disabled in the {title} profile",
            "policy")
    for epp in combined_ports.values():
        eff_ports.append(epp)
        port_rules.setdefault((epp.protocol, epp.port), []).append(_rule(
            f"the port exception {epp.name} ({epp.protocol} {epp.port}, Group Policy, "
            f"{epp.scope.describe()})", epp.scope, "policy"))
    for key, po in ls.ports.items():
        if not local_ports_ok:
            hidden.setdefault(key, FirewallDecision(
                False,
                f"the local port opening {po.name} is ignored: Group Policy \"Define port "
                f"exceptions\" is configured and \"Allow local port exceptions\" is not Enabled "
                f"in the {title} profile", "policy"))
            continue
        if key in gp_disabled_ports:
            continue
        if key in blocked_local_ports:
            svc = blocked_local_ports[key]
            hidden.setdefault(key, FirewallDecision(
                False, f"Group Policy disables the {svc.display} exception in the {title} "
                f"profile, which also blocks local openings of {key[0]} {key[1]}", "policy"))
            continue
        eff_ports.append(EffectivePort(key[0], key[1], po.name, po.enabled, po.scope, "local"))
        if po.enabled:
            port_rules.setdefault(key, []).append(_rule(
                f"the port opening {po.name} ({key[0]} {key[1]}, local, {po.scope.describe()})",
                po.scope, "local"))
        else:
            hidden.setdefault(key, FirewallDecision(
                False, f"the local port opening {po.name} is disabled in the {title} profile",
                "local"))

    # ---- ICMP -----------------------------------------------------------------------
    if pp.icmp is None:
        icmp = dict(ls.icmp)
        icmp_origin: Origin = "local"
    else:
        # Enabled: only the listed types; Disabled: none (GP "Allow ICMP exceptions").
        icmp = {t: (t in pp.icmp_types) for t in ICMP_TYPES}
        icmp_origin = "policy"
    for t, on in icmp.items():
        if on:
            port_rules.setdefault(("ICMP", t), []).append(_rule(
                f"the ICMP setting \"{ICMP_TYPES[t]}\" ({_where(icmp_origin)})", Scope.all(),
                icmp_origin))
    # If any setting opens TCP 445, inbound echo requests are allowed even if the ICMP
    # settings block them (GP "Allow ICMP exceptions" note). Choice: also for local
    # settings, as the Control Panel forces echo on with File and Printer Sharing.
    for r in port_rules.get(("TCP", 445), []):
        port_rules.setdefault(("ICMP", 8), []).append(_rule(
            f"inbound echo request, allowed because {r.description} opens TCP 445",
            r.scope, r.origin))

    notifications, notifications_origin = _tri(
        None if pp.prohibit_notifications is None else not pp.prohibit_notifications,
        ls.notifications)
    multicast, multicast_origin = _tri(
        None if pp.prohibit_unicast is None else not pp.prohibit_unicast, ls.multicast_response)
    # "Allow logging": Enabled uses the GP options, Disabled logs nothing, Not Configured
    # is local (GP explain text).
    logging_origin: Origin = "policy"
    if pp.logging is None:
        logging, logging_origin = local.logging.copy(), "local"
    elif pp.logging:
        o = pp.logging_options
        logging = LoggingSettings(o.file, o.max_kb, o.dropped, o.connections)
    else:
        logging = LoggingSettings(local.logging.file, local.logging.max_kb, False, False)

    off = FirewallDecision(True, f"Windows Firewall is off in the {profile} profile"
                  f" ({_where(enabled_origin)} setting)", "off")
    closed = FirewallDecision(
        False,
        f"\"Don't allow exceptions\" is on in the {profile} profile "
        f"({_where(exceptions_origin)} setting), so every exception is ignored",
        exceptions_origin)
    return EffectiveFirewall(
        profile=profile,
        enabled=enabled,
        enabled_origin=enabled_origin,
        exceptions_allowed=exceptions_allowed,
        exceptions_origin=exceptions_origin,
        services=services,
        ports=tuple(eff_ports),
        programs=tuple(eff_programs),
        local_programs_honoured=local_programs_ok,
        local_ports_honoured=local_ports_ok,
        icmp=icmp,
        icmp_origin=icmp_origin,
        notifications=notifications,
        notifications_origin=notifications_origin,
        multicast_response=multicast,
        multicast_origin=multicast_origin,
        logging=logging,
        logging_origin=logging_origin,
        _port_rules=_freeze(port_rules),
        _program_rules=_freeze(program_rules),
        _hidden=hidden,
        _off=off,
        _closed=closed,
    )


_K = TypeVar("_K")


def _freeze(table: Mapping[_K, Iterable[_Rule]]) -> dict[_K, tuple[_Rule, ...]]:
    return {k: tuple(v) for k, v in table.items()}
