"""Windows Firewall with Advanced Security (Windows Vista and later): rules, groups, decisions.

:class:`LocalWfas` is what ``netsh advfirewall`` edits: the state of each profile (domain,
private, public) and the rule list, which starts with the built-in rules of the OS
(:func:`builtin_rules`). :func:`effective` merges Group Policy rules over it for the profile
in use and orders the result: block rules first, then allow rules. Every decision, the one
for a source address (:meth:`EffectiveWfas.decide`), the one for a dynamic RPC port
(:meth:`EffectiveWfas.decide_dynamic`) and the question which sources may reach a listener
(:meth:`EffectiveWfas.admission`, which the nftables compiler reads), walks that one ordered list through
:meth:`EffectiveWfas.candidates`.

Rule semantics (Learn "Windows Firewall with Advanced Security" / "Windows Firewall rules"):
a connection matches a rule when the rule is enabled, applies to the profile in use, and
its direction, protocol, program, service, local ports and remote addresses all match; a
block rule that matches wins over any allow rule; inbound traffic that matches no allow
rule is blocked (default inbound action Block, outbound Allow).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from wmilab.errors import ConfigError
from wmilab.model import oses
from wmilab.model.addresses import Scope
from wmilab.model.firewall import (
    SVCHOST,
    UNSECAPP,
    Admission,
    EffectivePort,
    FirewallDecision,
    Inbound,
    normalize_program,
)
from wmilab.model.firewall import _Rule as _FwRule
from wmilab.model.ports import RPC_ENDPOINT_MAPPER, PortRange

__all__ = [
    "RA_GROUP", "WMI_GROUP", "EffectiveWfas", "LocalWfas", "PortSpec", "ProfileState",
    "Rule", "WfProfile", "WfasPolicy", "builtin_rules", "builtin_rules_remote_admin", "effective",
]


class WfProfile(StrEnum):
    # Vista and later: domain, private and public (Learn "Windows Firewall profiles").
    DOMAIN = "domain"
    PRIVATE = "private"
    PUBLIC = "public"

    @property
    def label(self) -> str:
        return self.value.capitalize()


ALL_PROFILES = frozenset(WfProfile)

# The keyword ports of a rule (netsh advfirewall "localport=RPC|RPC-EPMap"): RPC is every
# dynamic RPC endpoint, RPC-EPMap the RPC endpoint mapper (Learn netsh advfirewall firewall
# add rule, localport; MS-RPCE 2.2.1.1.7 for TCP 135).
RPC = "RPC"
RPC_EPMAP = "RPC-EPMap"


@dataclass(frozen=True, slots=True)
class PortSpec:
    """A rule's local ports: inclusive spans and keywords; empty means any port."""

    spans: tuple[tuple[int, int], ...] = ()
    keywords: frozenset[str] = frozenset()

    @property
    def any(self) -> bool:
        return not self.spans and not self.keywords

    def matches(self, port: int, rpc: PortRange) -> bool:
        if self.any:
            return True
        if RPC in self.keywords and port in rpc:
            return True
        if RPC_EPMAP in self.keywords and port == RPC_ENDPOINT_MAPPER:
            return True
        return any(lo <= port <= hi for lo, hi in self.spans)

    def covers(self, ports: PortRange, rpc: PortRange) -> bool:
        """True when every port of ``ports`` matches."""
        if self.any or (RPC in self.keywords and all(
                any(rl <= lo and hi <= rh for rl, rh in rpc.spans) for lo, hi in ports.spans)):
            return True
        return all(any(sl <= lo and hi <= sh for sl, sh in self.spans) for lo, hi in ports.spans)

    def intersects(self, ports: PortRange, rpc: PortRange) -> bool:
        """True when at least one port of ``ports`` matches."""
        if self.any:
            return True
        if RPC in self.keywords and any(lo <= rh and rl <= hi for lo, hi in ports.spans
                                        for rl, rh in rpc.spans):
            return True
        if RPC_EPMAP in self.keywords and RPC_ENDPOINT_MAPPER in ports:
            return True
        return any(lo <= sh and sl <= hi for lo, hi in ports.spans for sl, sh in self.spans)

    def text(self) -> str:
        if self.any:
            return "Any"
        parts = sorted(self.keywords) + [str(lo) if lo == hi else f"{lo}-{hi}"
                                         for lo, hi in self.spans]
        return ",".join(parts)

    @classmethod
    def parse(cls, text: str) -> PortSpec:
        """netsh's ``localport=``: ``any``, numbers, ranges, ``RPC``, ``RPC-EPMap``."""
        t = text.strip()
        if t.lower() == "any":
            return cls()
        spans: list[tuple[int, int]] = []
        keywords: set[str] = set()
        for part in t.split(","):
            p = part.strip()
            kw = {"rpc": RPC, "rpc-epmap": RPC_EPMAP}.get(p.lower())
            if kw is not None:
                keywords.add(kw)
                continue
            lo_text, _, hi_text = p.partition("-")
            try:
                lo = int(lo_text)
                hi = int(hi_text) if hi_text else lo
            except ValueError:
                raise ConfigError(f"'{p}' is not a port, a range or RPC / RPC-EPMap") from None
            if not (0 < lo <= hi <= 65535):
                raise ConfigError(f"'{p}' is not a port range within 1-65535")
            spans.append((lo, hi))
        return cls(tuple(sorted(spans)), frozenset(keywords))


@dataclass(frozen=True, slots=True)
class Rule:
    """One WFAS rule. ``program``/``service`` None means any; ``service="*"`` any service."""

    name: str
    direction: Literal["in", "out"] = "in"
    action: Literal["allow", "block"] = "allow"
    enabled: bool = True
    profiles: frozenset[WfProfile] = ALL_PROFILES
    program: str | None = None  # normalized (firewall.normalize_program)
    program_text: str | None = None  # as typed
    service: str | None = None  # lower case short name, "*" = any service
    protocol: Literal["TCP", "UDP", "ANY"] = "ANY"
    local_ports: PortSpec = PortSpec()
    remote: Scope = field(default_factory=Scope.all)
    group: str = ""
    rule_id: str = ""  # the built-in rule's id (WMI-WINMGMT-In-TCP), "" for added rules
    origin: Literal["local", "policy"] = "local"
    description: str = ""  # netsh's description=, shown by show rule ... verbose
    # remoteport= / -RemotePort: the peer's ports, modelled for outbound rules only (an
    # inbound connection's remote port is the client's ephemeral one).
    remote_ports: PortSpec = PortSpec()

    def matches_identity(self, protocol: str, program: str, service: str) -> bool:
        """Protocol, program and service (a service rule needs a service: "*" any)."""
        if self.protocol != "ANY" and self.protocol != protocol:
            return False
        if self.program is not None and self.program != program:
            return False
        return self.service is None or (
            bool(service) if self.service == "*" else self.service == service)

    def matches_listener(self, conn: Inbound, service: str, rpc: PortRange) -> bool:
        """Everything but the remote address, for an inbound TCP/UDP connection."""
        return (self.matches_identity(conn.protocol, conn.program, service)
                and self.local_ports.matches(conn.port, rpc))

    def describe(self) -> str:
        where = "Group Policy" if self.origin == "policy" else "local"
        return f"the {self.action} rule \"{self.name}\" ({where}, {self.remote.describe()})"


# ---- the built-in rule groups ------------------------------------------------------------

# Group and rule names as the registry's FirewallRules and netsh show them (Learn
# "Connecting to WMI Remotely Starting with Windows Vista": netsh advfirewall firewall set
# rule group="windows management instrumentation (wmi)" new enable=yes).
WMI_GROUP = "Windows Management Instrumentation (WMI)"
RA_GROUP = "Remote Administration"
_DOMAIN = frozenset({WfProfile.DOMAIN})
_PRIV_PUB = frozenset({WfProfile.PRIVATE, WfProfile.PUBLIC})
_SUBNET = Scope.subnet()
_SYSTEM = "system"  # the System process (SMB on TCP 445)


def builtin_rules(os: str) -> tuple[Rule, ...]:
    """The built-in rules of ``os`` that wmilab models, disabled as Windows ships them.

    "Windows Management Instrumentation (WMI)": DCOM-In (RPCSS on TCP 135), WMI-In (winmgmt,
    any port), ASync-In (unsecapp.exe) and WMI-Out, each once for the domain profile from any
    address and once for private and public from the local subnet, all disabled (Learn
    "Connecting to WMI Remotely Starting with Windows Vista"; rule ids and scopes: the
    FirewallRules registry values, docs/choices.md). "Remote Administration" where the OS
    still has it (RPC, RPC-EPMap, NP-In; disabled).
    """
    spec = oses.get(os)
    if not spec.modern:
        raise ConfigError(f"{spec.title} has no Windows Firewall with Advanced Security")
    rules: list[Rule] = []
    for suffix, profiles, scope in (("-NoScope", _DOMAIN, Scope.all()),
                                    ("", _PRIV_PUB, _SUBNET)):
        rules += _wmi_group(profiles, scope, suffix)
        if spec.remote_admin_group:
            rules += _remote_admin(profiles, scope, suffix)
    return tuple(rules)


def _wmi_group(profiles: frozenset[WfProfile], scope: Scope, suffix: str) -> list[Rule]:
    # The private/public copies of all four, WMI-Out included, carry RA4=LocalSubnet
    # (FirewallRules registry values, docs/choices.md). Descriptions: the rules' shipped
    # text ("Inbound rule to allow WMI traffic for remote Windows Management
    # Instrumentation. [TCP]"), as exported rule lists and GPO scripts quote it.
    def wmi(rid: str, label: str, direction: Literal["in", "out"], program: str,
            service: str | None, ports: PortSpec, what: str) -> Rule:
        tag = "TCP 135" if ports.spans else "TCP"
        text = (f"{'Inbound' if direction == 'in' else 'Outbound'} rule to allow {what} "
                f"traffic for remote Windows Management Instrumentation. [{tag}]")
        return Rule(f"Windows Management Instrumentation ({label})", direction, "allow",
                    False, profiles, program, _typed(program), service, "TCP", ports,
                    scope, WMI_GROUP, rid + suffix, description=text)
    return [
        wmi("WMI-RPCSS-In-TCP", "DCOM-In", "in", SVCHOST, "rpcss",
            PortSpec(((RPC_ENDPOINT_MAPPER, RPC_ENDPOINT_MAPPER),)), "DCOM"),
        wmi("WMI-WINMGMT-In-TCP", "WMI-In", "in", SVCHOST, "winmgmt", PortSpec(), "WMI"),
        wmi("WMI-WINMGMT-Out-TCP", "WMI-Out", "out", SVCHOST, "winmgmt", PortSpec(), "WMI"),
        wmi("WMI-ASYNC-In-TCP", "ASync-In", "in", UNSECAPP, None, PortSpec(),
            "Asynchronous WMI"),
    ]


def _remote_admin(profiles: frozenset[WfProfile], scope: Scope, suffix: str) -> list[Rule]:
    # RemoteAdmin-In-TCP (svchost.exe, any service, RPC), RemoteAdmin-RPCSS-In-TCP (RPCSS,
    # RPC-EPMap) and RemoteAdmin-NP-In-TCP (System, TCP 445), disabled (docs/choices.md).
    def ra(rid: str, label: str, program: str, service: str | None, ports: PortSpec) -> Rule:
        return Rule(f"Remote Administration ({label})", "in", "allow", False, profiles,
                    program, _typed(program), service, "TCP", ports, scope, RA_GROUP,
                    rid + suffix)
    return [
        ra("RemoteAdmin-In-TCP", "RPC", SVCHOST, "*", PortSpec(keywords=frozenset({RPC}))),
        ra("RemoteAdmin-RPCSS-In-TCP", "RPC-EPMAP", SVCHOST, "rpcss",
           PortSpec(keywords=frozenset({RPC_EPMAP}))),
        ra("RemoteAdmin-NP-In-TCP", "NP-In", _SYSTEM, None, PortSpec(((445, 445),))),
    ]


def builtin_rules_remote_admin(os: str) -> tuple[Rule, ...]:
    """The rules of "Remote Administration" for every profile, from any address: what
    ``netsh firewall set service type=REMOTEADMIN`` creates where the OS lacks the group."""
    oses.get(os)
    return tuple(_remote_admin(ALL_PROFILES, Scope.all(), "-NoScope"))


def _typed(program: str) -> str:
    if program == SVCHOST:
        return r"%SystemRoot%\system32\svchost.exe"
    if program == UNSECAPP:
        return r"%systemroot%\system32\wbem\unsecapp.exe"
    return "System" if program == _SYSTEM else program


# ---- local state ---------------------------------------------------------------------------


@dataclass
class ProfileState:
    # Factory defaults of every profile: firewall on, inbound Block, outbound Allow (Learn
    # "Windows Firewall with Advanced Security": default behaviour).
    enabled: bool = True
    inbound_block: bool = True
    # "BlockInboundAlways" (netsh firewallpolicy; "Block all connections" in the snap-in):
    # inbound connections are blocked even where an allow rule matches (Learn "Netsh
    # AdvFirewall set ... firewallpolicy").
    inbound_always: bool = False
    outbound_block: bool = False
    local_rules: bool = True  # "Apply local firewall rules" (only Group Policy turns it off)


@dataclass
class LocalWfas:
    """The local WFAS configuration of one host (what netsh advfirewall edits).

    ``policy_rules`` are the Group Policy rules in force, for display only (``show rule``
    lists them; no local command edits them)."""

    os: str
    profiles: dict[WfProfile, ProfileState]
    rules: list[Rule]
    policy_rules: tuple[Rule, ...] = ()

    @classmethod
    def defaults(cls, os: str) -> LocalWfas:
        spec = oses.get(os)
        return cls(os, {p: ProfileState(enabled=spec.firewall_on) for p in WfProfile},
                   list(builtin_rules(os)))

    def copy(self) -> LocalWfas:
        return LocalWfas(self.os, {p: replace(s) for p, s in self.profiles.items()},
                         list(self.rules), self.policy_rules)

    def reset(self) -> None:
        """``netsh advfirewall reset``: the factory rules and profile settings."""
        fresh = LocalWfas.defaults(self.os)
        self.profiles, self.rules = fresh.profiles, fresh.rules


@dataclass(frozen=True)
class WfasPolicy:
    """Firewall rules and profile settings from Group Policy (GPO "Windows Firewall with
    Advanced Security"): None leaves a setting to the local configuration."""

    rules: tuple[Rule, ...] = ()
    enabled: bool | None = None
    local_rules: bool | None = None  # "Apply local firewall rules": No ignores local rules
    # Per profile (the GPO's Domain / Private / Public Profile tabs): (firewall state,
    # apply local firewall rules); a profile listed here overrides the two fields above.
    per_profile: tuple[tuple[WfProfile, bool | None, bool | None], ...] = ()

    def settings(self, profile: WfProfile) -> tuple[bool | None, bool | None]:
        """(firewall state, apply local firewall rules) that Group Policy sets for
        ``profile``; None where it leaves the local setting."""
        for p, state, local in self.per_profile:
            if p is profile:
                return state, local
        return self.enabled, self.local_rules


# ---- the effective, ordered rule set -------------------------------------------------------


@dataclass(frozen=True)
class EffectiveWfas:
    """The rules that apply in one profile, block rules first, and the profile's state."""

    profile: WfProfile
    enabled: bool
    enabled_origin: Literal["local", "policy"]
    inbound_block: bool
    rules: tuple[Rule, ...]  # enabled inbound rules of this profile, block before allow
    ignored: tuple[Rule, ...]  # disabled rules of this profile, and local ones GP turns off
    local_rules: bool
    rpc: PortRange
    subnet: IPv4Network
    block_all: bool = False  # firewallpolicy blockinboundalways: allow rules do not apply
    # Per listener (not per source): the matching rules and the no-rule verdicts, so that a
    # decision is a short walk over a few rules (bench/bench_check.py).
    _memo: dict[object, object] = field(default_factory=dict, repr=False, compare=False)

    def candidates(self, conn: Inbound, service: str) -> tuple[Rule, ...]:
        """The ordered rules that match ``conn`` on everything but the remote address."""
        key = (conn.protocol, conn.port, conn.program, service)
        found = self._memo.get(key)
        if found is None:
            found = tuple(r for r in self.rules if r.matches_listener(conn, service, self.rpc))
            self._memo[key] = found
        return found  # type: ignore[return-value]

    def _touching(self, ports: PortRange, program: str, service: str) -> tuple[Rule, ...]:
        key = ("dyn", ports, program, service)
        found = self._memo.get(key)
        if found is None:
            found = tuple(r for r in self.rules if _touches(r, program, service, ports, self.rpc))
            self._memo[key] = found
        return found  # type: ignore[return-value]

    def _none_verdict(self, what: str, conn: Inbound, service: str) -> FirewallDecision:
        key = ("none", what)
        found = self._memo.get(key)
        if found is None:
            found = FirewallDecision(False, self._no_rule(what, conn, service), "none")
            self._memo[key] = found
        return found  # type: ignore[return-value]

    def open_ports(self) -> list[EffectivePort]:
        """Ports enabled allow rules name explicitly (no program): what the nftables compiler
        opens besides the emulated listeners. Ranges are left out (no listener there)."""
        out: list[EffectivePort] = []
        for r in self.rules:
            if r.action != "allow" or r.program is not None or r.protocol == "ANY":
                continue
            for lo, hi in r.local_ports.spans:
                if lo == hi:
                    out.append(EffectivePort(r.protocol, lo, r.name, True, r.remote, r.origin))
        return out

    def admission(self, port: int, program: str, protocol: str = "TCP",
                  service: str = "") -> Admission:
        """Who may open a connection to ``port`` where ``program`` (``service``) listens:
        the matching rules in order (block rules first, as refusing rules), then the verdict
        for every other source. :meth:`decide`, the in-process gate and the nftables compiler
        (lab/nft.py, through ``HostModel.admission``) all read this one answer."""
        key = ("adm", protocol, port, program, service)
        found = self._memo.get(key)
        if found is None:
            found = self._admission(port, program, protocol, service)
            self._memo[key] = found
        return found  # type: ignore[return-value]

    def _admission(self, port: int, program: str, protocol: str, service: str) -> Admission:
        if not self.enabled:
            off = FirewallDecision(True, f"Windows Firewall is off in the {self.profile} profile "
                          f"({self.enabled_origin} setting)", "off")
            return Admission((_FwRule("", Scope.all(), "local", off),), off)
        conn = Inbound(IPv4Address("0.0.0.0"), port, program, protocol)
        cands = self.candidates(conn, service)
        rules = tuple(_FwRule(r.describe(), r.remote, r.origin, FirewallDecision(
            r.action == "allow",
            f"allowed by {r.describe()}" if r.action == "allow" else
            f"blocked by {r.describe()}: a block rule wins over every allow rule", r.origin))
            for r in cands)
        if not self.inbound_block:
            # Default inbound action Allow (firewallpolicy allowinbound): what no block rule
            # refuses comes in (Learn "Windows Firewall with Advanced Security", default
            # behaviour). One last rule for every source, so nftables accepts it too.
            dflt = self._default_allow()
            return Admission((*rules, _FwRule("", Scope.all(), "local", dflt)), dflt)
        if not cands:
            what = f"{protocol} {port} to {program}" + (
                f" (service {service})" if service else "")
            return Admission((), self._none_verdict(what, conn, service))
        first = cands[0]
        return Admission(rules, None, f"{first.describe()} admits only "
                         f"{first.remote.describe()}", first.origin)

    def _default_allow(self) -> FirewallDecision:
        return FirewallDecision(True, f"no block rule matches and the default inbound action "
                                f"of the {self.profile} profile is Allow (firewallpolicy "
                                "allowinbound)", "local")

    def decide(self, conn: Inbound, local_subnet: IPv4Network | None = None,
               service: str = "") -> FirewallDecision:
        subnet = self.subnet if local_subnet is None else local_subnet
        return self.admission(conn.port, conn.program, conn.protocol, service).decide(
            conn.source, subnet)

    def _no_rule(self, what: str, conn: Inbound, service: str) -> str:
        off = [r for r in self.ignored
               if r.direction == "in" and r.matches_listener(conn, service, self.rpc)]
        base = (f"no enabled inbound rule of the {self.profile} profile allows {what}; "
                "the default inbound action is Block")
        if off:
            r = off[0]
            why = ("the profile blocks all inbound connections, allowed ones too (firewallpolicy "
                   "blockinboundalways)" if self.block_all and r.enabled and r.action == "allow"
                   else "Group Policy turns local rules off" if r.origin == "local" and r.enabled
                   else "it is disabled")
            grp = f" (group \"{r.group}\")" if r.group else ""
            return f"{base}; the rule \"{r.name}\"{grp} would allow it, but {why}"
        return base

    def decide_dynamic(self, source: IPv4Address, ports: PortRange, program: str,
                       local_subnet: IPv4Network | None = None, service: str = "") -> FirewallDecision:
        """A connection to ``program`` on a port the RPC runtime picks from ``ports``
        (KB 154596): allowed only if an allow rule that holds the source admits every port of
        the range and no block rule that holds it touches any port of it."""
        subnet = self.subnet if local_subnet is None else local_subnet
        return self.dynamic_admission(ports, program, service).decide(source, subnet)

    def dynamic_admission(self, ports: PortRange, program: str, service: str = "") -> Admission:
        """:meth:`decide_dynamic` for every source: the rules that touch the range in the order
        they decide. A block rule that matches any port of it refuses; then (default inbound
        Block) an allow rule that covers every port admits, before one that covers only some,
        which refuses (a guessed port is no rule for the program); a source no allow rule
        holds is refused naming the first allow rule's scope."""
        key = ("dyn-adm", ports, program, service)
        found = self._memo.get(key)
        if found is None:
            found = self._dynamic_admission(ports, program, service)
            self._memo[key] = found
        return found  # type: ignore[return-value]

    def _dynamic_admission(self, ports: PortRange, program: str, service: str) -> Admission:
        if not self.enabled:
            return self.admission(ports.spans[0][0], program, "TCP", service)
        touching = self._touching(ports, program, service)
        blocks = tuple(_FwRule(r.describe(), r.remote, r.origin, FirewallDecision(
            False, f"blocked by {r.describe()}: a block rule wins over every allow rule",
            r.origin)) for r in touching if r.action == "block")
        if not self.inbound_block:
            dflt = self._default_allow()
            return Admission((*blocks, _FwRule("", Scope.all(), "local", dflt)), dflt)
        allows = [r for r in touching if r.action == "allow"]
        covering = tuple(_FwRule(r.describe(), r.remote, r.origin, FirewallDecision(
            True, f"allowed by {r.describe()}, which admits every port of {ports.describe()} "
            f"({ports.source})", r.origin)) for r in allows if r.local_ports.covers(ports, self.rpc))
        partial = tuple(_FwRule(r.describe(), r.remote, r.origin, FirewallDecision(
            False, f"{r.describe()} admits only local ports {r.local_ports.text()}, but "
            f"{program} listens on a port Windows picks from {ports.describe()} "
            f"({ports.source}); a guessed port is no rule for it", "none"))
            for r in allows if not r.local_ports.covers(ports, self.rpc))
        rules = (*blocks, *covering, *partial)
        if allows:
            first = allows[0]
            return Admission(rules, None, f"{first.describe()} admits only "
                             f"{first.remote.describe()}", first.origin)
        what = f"TCP to {program} on its dynamic RPC port" + (
            f" (service {service})" if service else "") + f", a port of {ports.describe()}"
        return Admission(rules, self._none_verdict(
            what, Inbound(IPv4Address("0.0.0.0"), ports.spans[0][0], program), service))


def _touches(r: Rule, program: str, service: str, ports: PortRange, rpc: PortRange) -> bool:
    """Does ``r`` match a TCP connection to ``program`` for at least one port of ``ports``?"""
    return r.matches_identity("TCP", program, service) and r.local_ports.intersects(ports, rpc)


def effective(local: LocalWfas, policy: WfasPolicy, profile: WfProfile, rpc: PortRange,
              subnet: IPv4Network) -> EffectiveWfas:
    """Group Policy merged over the local configuration for ``profile``.

    GP rules and local rules both apply unless GP sets "Apply local firewall rules" to No;
    GP's profile state wins over the local one (Learn "Windows Firewall with Advanced
    Security" Group Policy: "Rule merging"; docs/firewall.md).
    """
    ps = local.profiles[profile]
    gp_state, gp_local = policy.settings(profile)
    enabled = ps.enabled if gp_state is None else gp_state
    enabled_origin: Literal["local", "policy"] = "local" if gp_state is None else "policy"
    local_ok = ps.local_rules if gp_local is None else gp_local
    active: list[Rule] = []
    ignored: list[Rule] = []
    for r in (*policy.rules, *local.rules):
        if profile not in r.profiles or r.direction != "in":
            continue
        if not r.enabled or (r.origin == "local" and not local_ok) or (
                ps.inbound_always and r.action == "allow"):
            ignored.append(r)
        else:
            active.append(r)
    ordered = tuple(r for r in active if r.action == "block") + tuple(
        r for r in active if r.action == "allow")
    return EffectiveWfas(profile, enabled, enabled_origin,
                         ps.inbound_block or ps.inbound_always, ordered, tuple(ignored),
                         local_ok, rpc, subnet, ps.inbound_always)


OUT_ALLOWED = FirewallDecision(True, "no outbound rule blocks it and the default outbound "
                                "action is Allow", "none")


def outbound(local: LocalWfas, policy: WfasPolicy, profile: WfProfile, subnet: IPv4Network,
             dest: IPv4Address, ports: PortRange, program: str | None,
             service: str = "") -> FirewallDecision:
    """May this computer open a TCP connection to ``dest`` on a port of ``ports`` (one port,
    or the range the peer's RPC runtime picks from)? ``program`` (``service``) is the program
    that connects, None when unknown (the calling program on A). As for inbound dynamic
    ports (KB 154596), a block rule refuses when it names any port of ``ports``, an allow
    rule admits only when it names them all.

    Outbound traffic is allowed unless a matching outbound block rule refuses it, or the
    profile's default outbound action is Block (firewallpolicy ...,blockoutbound) and no
    outbound allow rule matches; a block rule wins (Learn "Windows Firewall with Advanced
    Security": default behaviour and rule precedence). A rule that names a program or a
    service matches only a connection known to come from it."""
    ps = local.profiles[profile]
    gp_state, gp_local = policy.settings(profile)
    enabled = ps.enabled if gp_state is None else gp_state
    if not enabled:
        return FirewallDecision(True, f"Windows Firewall is off in the {profile} profile", "off")
    local_ok = ps.local_rules if gp_local is None else gp_local
    allow: Rule | None = None
    for r in (*policy.rules, *local.rules):
        if r.direction != "out" or not r.enabled or profile not in r.profiles or (
                r.origin == "local" and not local_ok):
            continue
        if r.protocol not in ("TCP", "ANY") or not r.local_ports.any:
            continue  # a local (source) port of an outbound connection is ephemeral
        if r.program is not None and (program is None or r.program != program):
            continue
        if r.service is not None and not (
                service and (r.service == "*" or r.service == service)):
            continue
        if not r.remote.matches(dest, subnet):
            continue
        if r.action == "block":
            if not r.remote_ports.intersects(ports, ports):
                continue
            return FirewallDecision(False, f"outbound {r.describe()} refuses the connection "
                                    f"to {dest} (TCP {ports.describe()}): a block rule wins "
                                    "over every allow rule", r.origin)
        if r.remote_ports.covers(ports, ports):
            allow = allow or r
    if allow is not None:
        return FirewallDecision(True, f"allowed by outbound {allow.describe()}", allow.origin)
    if ps.outbound_block:
        who = "the calling program" if program is None else (
            f"{program} (service {service})" if service else program)
        return FirewallDecision(False, f"the default outbound action of the {profile} profile "
                                f"is Block (firewallpolicy ...,blockoutbound) and no enabled "
                                f"outbound rule allows {who} to reach {dest} (TCP "
                                f"{ports.describe()})", "local")
    return OUT_ALLOWED


def filters_outbound(local: LocalWfas, policy: WfasPolicy, profile: WfProfile) -> bool:
    """Could :func:`outbound` refuse anything in ``profile``? (The flow's fast path.)"""
    if local.profiles[profile].outbound_block:
        return True
    return any(r.direction == "out" and r.action == "block" and r.enabled
               and profile in r.profiles for r in (*policy.rules, *local.rules))


def parse_program(text: str) -> str:
    """A rule's ``program=``: ``System`` or a path, normalized like the XP firewall's."""
    return _SYSTEM if text.strip().lower() == "system" else normalize_program(text)

