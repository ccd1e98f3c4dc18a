"""Group Policy settings that matter to remote WMI (XP SP2 / Server 2003 SP1).

The Windows Firewall settings live under Computer Configuration > Administrative
Templates > Network > Network Connections > Windows Firewall > Domain Profile |
Standard Profile. A scenario names each by its path below Administrative Templates and
gives ``{ state = "Enabled" | "Disabled" | "Not Configured", <options> }``.

Every setting is kept as a tri-state: True (Enabled), False (Disabled), None (Not
Configured). How the states combine with the local (netsh) settings is decided in
:func:`wmilab.model.firewall.effective`; this module only parses and validates.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from wmilab.errors import ConfigError
from wmilab.model.addresses import Scope
from wmilab.model.firewall import Profile, Service, normalize_program
from wmilab.model.wfas import WfasPolicy

Tri = bool | None

# ---- setting names (XP SP2 system.adm wording; admx.help lists the later "inbound" names) ----
PROTECT_ALL = "Windows Firewall: Protect all network connections"
NO_EXCEPTIONS = "Windows Firewall: Do not allow exceptions"
DEFINE_PROGRAMS = "Windows Firewall: Define program exceptions"
LOCAL_PROGRAMS = "Windows Firewall: Allow local program exceptions"
REMOTE_ADMIN = "Windows Firewall: Allow remote administration exception"
FILE_AND_PRINT = "Windows Firewall: Allow file and printer sharing exception"
ICMP = "Windows Firewall: Allow ICMP exceptions"
REMOTE_DESKTOP = "Windows Firewall: Allow Remote Desktop exception"
UPNP = "Windows Firewall: Allow UPnP framework exception"
PROHIBIT_NOTIFICATIONS = "Windows Firewall: Prohibit notifications"
LOGGING = "Windows Firewall: Allow logging"
PROHIBIT_UNICAST = "Windows Firewall: Prohibit unicast response to multicast or broadcast requests"
DEFINE_PORTS = "Windows Firewall: Define port exceptions"
LOCAL_PORTS = "Windows Firewall: Allow local port exceptions"

FIREWALL_SETTINGS: tuple[str, ...] = (
    PROTECT_ALL, NO_EXCEPTIONS, DEFINE_PROGRAMS, LOCAL_PROGRAMS, REMOTE_ADMIN, FILE_AND_PRINT,
    ICMP, REMOTE_DESKTOP, UPNP, PROHIBIT_NOTIFICATIONS, LOGGING, PROHIBIT_UNICAST, DEFINE_PORTS,
    LOCAL_PORTS,
)

SERVICE_SETTINGS: dict[str, Service] = {
    REMOTE_ADMIN: Service.REMOTEADMIN,
    FILE_AND_PRINT: Service.FILEANDPRINT,
    REMOTE_DESKTOP: Service.REMOTEDESKTOP,
    UPNP: Service.UPNP,
}
SETTING_OF_SERVICE: dict[Service, str] = {v: k for k, v in SERVICE_SETTINGS.items()}

FIREWALL_PREFIX = "Network/Network Connections/Windows Firewall"
PROFILE_FOLDER: dict[Profile, str] = {
    Profile.DOMAIN: "Domain Profile",
    Profile.STANDARD: "Standard Profile",
}

SECURITY_OPTIONS = "Windows Settings/Security Settings/Local Policies/Security Options"
DCOM_ACCESS = (
    f"{SECURITY_OPTIONS}/DCOM: Machine Access Restrictions in Security Descriptor Definition "
    "Language (SDDL) syntax"
)
DCOM_LAUNCH = (
    f"{SECURITY_OPTIONS}/DCOM: Machine Launch Restrictions in Security Descriptor Definition "
    "Language (SDDL) syntax"
)
SHARING_MODEL = f"{SECURITY_OPTIONS}/Network access: Sharing and security model for local accounts"

# ICMP option names -> ICMP type (TechNet cc773099 [WindowsFirewall.icmpsetting_name] table).
ICMP_OPTIONS: dict[str, int] = {
    "outbound_packet_too_big": 2,
    "outbound_destination_unreachable": 3,
    "outbound_source_quench": 4,
    "redirect": 5,
    "inbound_echo_request": 8,
    "inbound_router_request": 9,
    "outbound_time_exceeded": 11,
    "outbound_parameter_problem": 12,
    "inbound_timestamp_request": 13,
    "inbound_mask_request": 17,
}

# Choice: an Enabled service setting without `addresses` is open to "localsubnet",
# the value the scope box is assumed to hold; the explain text says you must specify it.
DEFAULT_SERVICE_SCOPE = "localsubnet"


def policy_key(profile: Profile, setting: str) -> str:
    """The canonical scenario key of a Windows Firewall setting in ``profile``."""
    return f"{FIREWALL_PREFIX}/{PROFILE_FOLDER[profile]}/{setting}"


# ---- value types --------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyProgram:
    """One "Define program exceptions" entry: ``path:scope:Enabled|Disabled:name``."""

    path: str  # as typed
    program: str  # normalized
    scope: Scope
    enabled: bool
    name: str

    def text(self) -> str:
        status = "Enabled" if self.enabled else "Disabled"
        return f"{self.path}:{self.scope.policy_text()}:{status}:{self.name}"


@dataclass(frozen=True)
class PolicyPort:
    """One "Define port exceptions" entry: ``port:TCP|UDP:scope:Enabled|Disabled:name``."""

    port: int
    protocol: str
    scope: Scope
    enabled: bool
    name: str

    def text(self) -> str:
        status = "Enabled" if self.enabled else "Disabled"
        return f"{self.port}:{self.protocol}:{self.scope.policy_text()}:{status}:{self.name}"


@dataclass(frozen=True)
class ServicePolicy:
    state: Tri = None
    scope: Scope = field(default_factory=Scope.all)


@dataclass(frozen=True)
class LoggingPolicy:
    dropped: bool = False
    connections: bool = False
    file: str = r"%windir%\pfirewall.log"
    max_kb: int = 4096


@dataclass(frozen=True)
class ProfilePolicy:
    """The Windows Firewall settings of one profile's GP folder."""

    protect_all: Tri = None
    no_exceptions: Tri = None
    define_programs: Tri = None
    programs: tuple[PolicyProgram, ...] = ()
    allow_local_programs: Tri = None
    services: Mapping[Service, ServicePolicy] = field(default_factory=dict)
    icmp: Tri = None
    icmp_types: frozenset[int] = frozenset()
    prohibit_notifications: Tri = None
    logging: Tri = None
    logging_options: LoggingPolicy = field(default_factory=LoggingPolicy)
    prohibit_unicast: Tri = None
    define_ports: Tri = None
    ports: tuple[PolicyPort, ...] = ()
    allow_local_ports: Tri = None

    def service(self, service: Service) -> ServicePolicy:
        return self.services.get(service, _NC_SERVICE)

    @property
    def configured(self) -> bool:
        return self != _EMPTY_PROFILE


_NC_SERVICE = ServicePolicy()
_EMPTY_PROFILE = ProfilePolicy()


@dataclass(frozen=True)
class FirewallPolicy:
    domain: ProfilePolicy = field(default_factory=ProfilePolicy)
    standard: ProfilePolicy = field(default_factory=ProfilePolicy)

    @classmethod
    def empty(cls) -> FirewallPolicy:
        return cls()

    def profile(self, profile: Profile) -> ProfilePolicy:
        return self.domain if profile is Profile.DOMAIN else self.standard

    def with_profile(self, profile: Profile, settings: ProfilePolicy) -> FirewallPolicy:
        if profile is Profile.DOMAIN:
            return replace(self, domain=settings)
        return replace(self, standard=settings)


@dataclass(frozen=True)
class Policies:
    firewall: FirewallPolicy = field(default_factory=FirewallPolicy)
    dcom_access_sddl: str | None = None
    dcom_launch_sddl: str | None = None
    sharing_model: Literal["classic", "guest"] | None = None
    # Vista and later: Windows Defender Firewall with Advanced Security (model/gpo_wfas.py).
    wfas: WfasPolicy | None = None


# ---- parsing ------------------------------------------------------------------------


def _canon(key: str) -> str:
    parts = [p.strip() for p in key.replace("\\", "/").split("/")]
    return "/".join(p for p in parts if p).lower()


def _known_keys() -> dict[str, tuple[str, Profile | None, str]]:
    """canonical lower-case key -> (display key, profile, setting)."""
    out: dict[str, tuple[str, Profile | None, str]] = {}
    for profile in Profile:
        for setting in FIREWALL_SETTINGS:
            k = policy_key(profile, setting)
            out[_canon(k)] = (k, profile, setting)
    for k in (DCOM_ACCESS, DCOM_LAUNCH, SHARING_MODEL):
        out[_canon(k)] = (k, None, k)
    return out


_KNOWN = _known_keys()


def _state(value: object, key: str) -> Tri:
    if not isinstance(value, Mapping):
        raise ConfigError(
            "must be a table such as { state = \"Enabled\" }", (key,))
    raw = value.get("state")
    if raw is None:
        raise ConfigError("missing 'state' (Enabled, Disabled or Not Configured)", (key, "state"))
    if not isinstance(raw, str):
        raise ConfigError("state must be a string", (key, "state"))
    s = " ".join(raw.replace("_", " ").split()).lower()
    if s == "enabled":
        return True
    if s == "disabled":
        return False
    if s in ("not configured", "notconfigured"):
        return None
    raise ConfigError(
        f"state must be Enabled, Disabled or Not Configured, not {raw!r}", (key, "state"))


def _check_options(value: Mapping[str, object], allowed: set[str], key: str) -> None:
    for opt in value:
        if opt == "state":
            continue
        if opt not in allowed:
            hint = difflib.get_close_matches(opt, sorted(allowed), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else (
                f" (allowed: {', '.join(sorted(allowed))})" if allowed else
                " (this setting has no options)")
            raise ConfigError(f"unknown option {opt!r}{extra}", (key, opt))


def _str_opt(value: Mapping[str, object], opt: str, key: str) -> str | None:
    v = value.get(opt)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ConfigError(f"{opt} must be a string", (key, opt))
    return v


def _bool_opt(value: Mapping[str, object], opt: str, key: str, default: bool) -> bool:
    v = value.get(opt, default)
    if not isinstance(v, bool):
        raise ConfigError(f"{opt} must be true or false", (key, opt))
    return v


def _status(text: str, key: str, opt: str, idx: int) -> bool:
    t = text.strip().lower()
    if t == "enabled":
        return True
    if t == "disabled":
        return False
    raise ConfigError(f"status must be Enabled or Disabled, not {text!r}", (key, opt, idx))


def _scope(text: str, key: str, path: tuple[str | int, ...]) -> Scope:
    try:
        return Scope.from_policy(text)
    except ConfigError as e:
        raise ConfigError(e.message, (key, *path)) from None


def _list_opt(value: Mapping[str, object], opt: str, key: str) -> list[str]:
    v = value.get(opt, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{opt} must be a list of strings", (key, opt))
    return list(v)


def parse_program_entry(text: str, key: str = "", idx: int = 0) -> PolicyProgram:
    """``path:scope:Enabled|Disabled:name`` (Define program exceptions explain text)."""
    # The path itself may hold a drive colon, so split from the right.
    parts = text.rsplit(":", 3)
    if len(parts) != 4 or not parts[0].strip():
        raise ConfigError(
            f"program entry {text!r} must be path:scope:Enabled|Disabled:name",
            (key, "programs", idx))
    path, scope_text, status, name = parts
    return PolicyProgram(
        path=path.strip(),
        program=normalize_program(path),
        scope=_scope(scope_text, key, ("programs", idx)),
        enabled=_status(status, key, "programs", idx),
        name=name.strip(),
    )


def parse_port_entry(text: str, key: str = "", idx: int = 0) -> PolicyPort:
    """``port:TCP|UDP:scope:Enabled|Disabled:name`` (Define port exceptions explain text)."""
    parts = text.split(":", 4)
    if len(parts) != 5:
        raise ConfigError(
            f"port entry {text!r} must be port:TCP|UDP:scope:Enabled|Disabled:name",
            (key, "ports", idx))
    port_text, proto, scope_text, status, name = parts
    if not port_text.strip().isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"port must be 1-65535, not {port_text!r}", (key, "ports", idx))
    p = proto.strip().upper()
    if p not in ("TCP", "UDP"):
        raise ConfigError(f"protocol must be TCP or UDP, not {proto!r}", (key, "ports", idx))
    return PolicyPort(
        port=int(port_text),
        protocol=p,
        scope=_scope(scope_text, key, ("ports", idx)),
        enabled=_status(status, key, "ports", idx),
        name=name.strip(),
    )


def _unknown_key(key: str) -> ConfigError:
    canon = _canon(key)
    # Compare against the setting name too, so a key with a wrong folder still finds its twin.
    candidates = difflib.get_close_matches(canon, list(_KNOWN), n=1, cutoff=0.0)
    closest = _KNOWN[candidates[0]][0] if candidates else ""
    return ConfigError(f"unknown Group Policy setting; the closest known key is {closest!r}",
                       (key,))


def _firewall_setting(
    pp: ProfilePolicy, setting: str, value: Mapping[str, object], key: str
) -> ProfilePolicy:
    state = _state(value, key)
    if setting in SERVICE_SETTINGS:
        _check_options(value, {"addresses"}, key)
        text = _str_opt(value, "addresses", key)
        scope = _scope(text if text is not None else DEFAULT_SERVICE_SCOPE, key, ("addresses",))
        services = dict(pp.services)
        services[SERVICE_SETTINGS[setting]] = ServicePolicy(state, scope)
        return replace(pp, services=services)
    if setting == DEFINE_PROGRAMS:
        _check_options(value, {"programs"}, key)
        entries = tuple(parse_program_entry(t, key, i)
                        for i, t in enumerate(_list_opt(value, "programs", key)))
        # Disabled deletes the GP-defined list (explain text); keep it only when Enabled.
        return replace(pp, define_programs=state, programs=entries if state else ())
    if setting == DEFINE_PORTS:
        _check_options(value, {"ports"}, key)
        ports = tuple(parse_port_entry(t, key, i)
                      for i, t in enumerate(_list_opt(value, "ports", key)))
        return replace(pp, define_ports=state, ports=ports if state else ())
    if setting == ICMP:
        _check_options(value, set(ICMP_OPTIONS), key)
        types = frozenset(t for opt, t in ICMP_OPTIONS.items()
                          if _bool_opt(value, opt, key, False))
        return replace(pp, icmp=state, icmp_types=types if state else frozenset())
    if setting == LOGGING:
        _check_options(value, {"log_dropped_packets", "log_successful_connections", "file",
                               "max_size_kb"}, key)
        size = value.get("max_size_kb", 4096)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 32767:
            # Log size limit 1-32767 KB (TechNet ff428145 / netsh set logging).
            raise ConfigError("max_size_kb must be an integer 1-32767", (key, "max_size_kb"))
        opts = LoggingPolicy(
            dropped=_bool_opt(value, "log_dropped_packets", key, False),
            connections=_bool_opt(value, "log_successful_connections", key, False),
            file=_str_opt(value, "file", key) or r"%windir%\pfirewall.log",
            max_kb=size,
        )
        return replace(pp, logging=state, logging_options=opts)
    _check_options(value, set(), key)
    if setting == PROTECT_ALL:
        return replace(pp, protect_all=state)
    if setting == NO_EXCEPTIONS:
        return replace(pp, no_exceptions=state)
    if setting == LOCAL_PROGRAMS:
        return replace(pp, allow_local_programs=state)
    if setting == LOCAL_PORTS:
        return replace(pp, allow_local_ports=state)
    if setting == PROHIBIT_NOTIFICATIONS:
        return replace(pp, prohibit_notifications=state)
    assert setting == PROHIBIT_UNICAST
    return replace(pp, prohibit_unicast=state)


def _security_option_state(value: object, key: str) -> bool:
    """Security options are Defined or Not Defined; there is no Disabled state."""
    if not isinstance(value, Mapping):
        raise ConfigError("must be a table such as { state = \"Enabled\", ... }", (key,))
    raw = value.get("state")
    if not isinstance(raw, str):
        raise ConfigError("missing 'state' (Enabled or Not Configured)", (key, "state"))
    s = " ".join(raw.split()).lower()
    if s in ("enabled", "defined"):
        return True
    if s in ("not configured", "not defined"):
        return False
    raise ConfigError(
        f"a security option is either Enabled (defined) or Not Configured, not {raw!r}",
        (key, "state"))


def parse_policies(table: Mapping[str, object]) -> Policies:
    """Parse a host's ``policy`` table. Errors carry the path (key, option)."""
    fw = FirewallPolicy()
    access: str | None = None
    launch: str | None = None
    sharing: Literal["classic", "guest"] | None = None
    seen: dict[str, str] = {}
    # Imported here: gpo_wfas runs the firewall commands (advfirewall, netsh), which import
    # this module.
    from wmilab.model import gpo_wfas
    wfas_parts: dict[str, tuple[str, Mapping[str, object]]] = {}
    for key, value in table.items():
        canon = _canon(key)
        part = gpo_wfas.split_key(canon)
        if part is not None:
            if canon in seen:
                raise ConfigError(f"the same setting is also given as {seen[canon]!r}", (key,))
            seen[canon] = key
            if not isinstance(value, Mapping):
                raise ConfigError("must be a table", (key,))
            if part in wfas_parts:
                raise ConfigError(f"the same setting is also given as "
                                  f"{wfas_parts[part][0]!r}", (key,))
            wfas_parts[part] = (key, value)
            continue
        known = _KNOWN.get(canon)
        if known is None:
            raise _unknown_key(key)
        if canon in seen:
            raise ConfigError(f"the same setting is also given as {seen[canon]!r}", (key,))
        seen[canon] = key
        display, profile, setting = known
        if not isinstance(value, Mapping):
            raise ConfigError("must be a table such as { state = \"Enabled\" }", (key,))
        if profile is not None:
            fw = fw.with_profile(
                profile, _firewall_setting(fw.profile(profile), setting, value, key))
            continue
        defined = _security_option_state(value, key)
        if display in (DCOM_ACCESS, DCOM_LAUNCH):
            _check_options(value, {"sddl"}, key)
            sddl = _str_opt(value, "sddl", key)
            if defined and not (sddl and sddl.strip()):
                raise ConfigError("an Enabled SDDL setting needs sddl = \"O:BAG:BAD:(...)\"",
                                  (key, "sddl"))
            text = sddl.strip() if defined and sddl else None
            if display == DCOM_ACCESS:
                access = text
            else:
                launch = text
        else:
            _check_options(value, {"model"}, key)
            model = _str_opt(value, "model", key)
            if not defined:
                sharing = None
                continue
            if model is None:
                raise ConfigError("missing model = \"Classic\" or \"Guest only\"", (key, "model"))
            # Dialog texts: "Classic - local users authenticate as themselves",
            # "Guest only - local users authenticate as Guest" (facts.md; Security Options).
            m = model.strip().lower()
            if m.startswith("classic"):
                sharing = "classic"
            elif m.startswith("guest only") or m == "guest":
                sharing = "guest"
            else:
                raise ConfigError(f"model must be \"Classic\" or \"Guest only\", not {model!r}",
                                  (key, "model"))
    wfas = gpo_wfas.parse(wfas_parts) if wfas_parts else None
    return Policies(fw, access, launch, sharing, wfas)

