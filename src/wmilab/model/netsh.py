"""The ``netsh firewall`` context of XP SP2 / Server 2003 SP1, executed on the model.

:func:`run` takes one command line, changes a :class:`LocalFirewall` for add/set/delete/
reset and returns what Windows prints ("Ok." or the ``show`` report). Syntax follows
TechNet bb490617 "Netsh Command Syntax for the Netsh Firewall Context" and cc737332.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wmilab.errors import ConfigError
from wmilab.model import netshwords
from wmilab.model.addresses import Scope
from wmilab.model.firewall import (
    ICMP_TYPES,
    SERVICE_NAMES,
    SERVICE_PORTS,
    AllowedProgram,
    EffectiveFirewall,
    LocalFirewall,
    PortOpening,
    Profile,
    ProfileSettings,
    Service,
    ServiceSetting,
    effective,
    normalize_program,
)
from wmilab.model.policy import FirewallPolicy

RULE = "-" * 67


class NetshError(ConfigError):
    """A netsh command that Windows would refuse."""


@dataclass(frozen=True)
class NetshEnv:
    os: str
    host: str
    windir: str = r"C:\WINDOWS"


# ---- tokenizing and parameter binding -------------------------------------------------


def tokenize(command: str) -> list[str]:
    """Split like cmd.exe/netsh: whitespace separates, double quotes group (no escapes)."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    have = False
    for ch in command:
        if ch == '"':
            quoted = not quoted
            have = True
        elif ch.isspace() and not quoted:
            if have:
                out.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(ch)
            have = True
    if quoted:
        raise NetshError("unbalanced double quote in the command")
    if have:
        out.append("".join(cur))
    return out


@dataclass(frozen=True)
class _Spec:
    params: tuple[str, ...]
    required: tuple[str, ...]


def _bind(spec: _Spec, args: Sequence[str], command: str) -> dict[str, str]:
    """Assign positional and ``tag=value`` arguments (netsh tags are case-insensitive)."""
    out: dict[str, str] = {}
    for arg in args:
        tag, eq, value = arg.partition("=")
        if eq and tag.lower() in spec.params:
            name = tag.lower()
        elif eq and tag and re.fullmatch(r"[A-Za-z]+", tag):
            raise NetshError(f"'{arg}' is not a valid argument for this command. "
                             f"(`{command}` takes: {', '.join(spec.params) or 'nothing'})")
        else:
            free = [p for p in spec.params if p not in out]
            if not free:
                raise NetshError(f"'{arg}' is not a valid argument for this command. "
                                 f"(too many parameters for `{command}`)")
            name, value = free[0], arg
        if name in out:
            raise NetshError(f"The parameter '{name}' was given twice.")
        out[name] = value
    missing = [p for p in spec.required if p not in out]
    if missing:
        raise NetshError(
            "One or more essential parameters were not entered. Verify the required "
            f"parameters, and reenter them. (missing: {', '.join(missing)})")
    return out


def _bad_value(value: str, param: str, detail: str = "") -> NetshError:
    # Windows: "'%1' is not an acceptable value for %2." (netsh ERROR_INVALID_OPTION_VALUE).
    extra = f" ({detail})" if detail else ""
    return NetshError(f"'{value}' is not an acceptable value for {param}.{extra}")


def _enum(value: str, param: str, allowed: Sequence[str]) -> str:
    v = value.strip().upper()
    if v not in allowed:
        raise _bad_value(value, param, f"use {'|'.join(allowed)}")
    return v


def _mode(args: dict[str, str], param: str = "mode", default: bool | None = True) -> bool | None:
    if param not in args:
        return default
    return _enum(args[param], param, ("ENABLE", "DISABLE")) == "ENABLE"


def _profiles(fw: LocalFirewall, args: dict[str, str], default: str = "CURRENT") -> list[Profile]:
    # profile = CURRENT (default) | DOMAIN | STANDARD | ALL (bb490617).
    v = _enum(args.get("profile", default), "profile", ("CURRENT", "DOMAIN", "STANDARD", "ALL"))
    if v == "CURRENT":
        return [fw.current]
    if v == "ALL":
        return [Profile.DOMAIN, Profile.STANDARD]
    return [Profile(v.lower())]


def _no_interface(args: dict[str, str]) -> None:
    if "interface" in args:
        # Choice: per-interface settings exist on XP SP2 but wmilab models one interface.
        raise NetshError(
            f"'interface={args['interface']}' is not supported by wmilab: per-connection "
            "firewall settings are not modelled; leave out interface= to use the profile")


def _scope(args: dict[str, str], current: Scope | None) -> Scope:
    """scope/addresses with netsh rules; omitted scope keeps ``current`` (or ALL)."""
    if "scope" not in args and "addresses" not in args:
        return current if current is not None else Scope.all()
    scope = args.get("scope")
    if scope is None:
        # addresses without scope: 'scope' must be 'CUSTOM' to specify 'addresses' (bb490617).
        raise NetshError("'scope' must be 'CUSTOM' to specify 'addresses'.")
    try:
        return Scope.parse(scope, args.get("addresses"))
    except ConfigError as e:
        if scope.strip().upper() not in ("ALL", "SUBNET", "CUSTOM"):
            raise _bad_value(scope, "scope", "use ALL|SUBNET|CUSTOM") from None
        if "addresses" in args and scope.strip().upper() == "CUSTOM":
            raise _bad_value(args["addresses"], "addresses", e.message) from None
        raise NetshError(e.message.rstrip(".") + ".") from None


def _port(value: str) -> int:
    if not value.strip().isdigit() or not 1 <= int(value) <= 65535:
        raise _bad_value(value, "port", "the port must be 1-65535")
    return int(value)


def _protocols(value: str) -> list[str]:
    v = _enum(value, "protocol", ("TCP", "UDP", "ALL"))
    return ["TCP", "UDP"] if v == "ALL" else [v]


# ---- commands ------------------------------------------------------------------------

_OK = "Ok."


def _allowedprogram(fw: LocalFirewall, verb: str, args: list[str], env: NetshEnv) -> str:
    if verb == "delete":
        a = _bind(_Spec(("program", "profile"), ("program",)), args, "delete allowedprogram")
        prog = normalize_program(a["program"], env.windir)
        profiles = _profiles(fw, a)
        if not any(prog in fw.profiles[p].programs for p in profiles):
            # Windows reports ERROR_FILE_NOT_FOUND for an absent entry.
            raise NetshError(f"The system cannot find the file specified. (no allowed program "
                             f"{a['program']} in the {_plist(profiles)} profile)")
        for p in profiles:
            fw.profiles[p].programs.pop(prog, None)
        return _OK
    spec = _Spec(("program", "name", "mode", "scope", "addresses", "profile"),
                 ("program", "name") if verb == "add" else ("program",))
    a = _bind(spec, args, f"{verb} allowedprogram")
    path = a["program"].strip()
    if not path:
        raise _bad_value(a["program"], "program", "give the program's path and file name")
    prog = normalize_program(path, env.windir)
    profiles = _profiles(fw, a)
    if verb == "set" and not all(prog in fw.profiles[p].programs for p in profiles):
        raise NetshError(f"The system cannot find the file specified. (no allowed program "
                         f"{path} in the {_plist(profiles)} profile; use add)")
    for p in profiles:
        old = fw.profiles[p].programs.get(prog) if verb == "set" else None
        # Choice: `add` replaces an existing entry; `set` keeps values that are not given.
        enabled = _mode(a, default=old.enabled if old else True)
        assert enabled is not None
        fw.profiles[p].programs[prog] = AllowedProgram(
            path=path,
            name=a.get("name", old.name if old else ""),
            enabled=enabled,
            scope=_scope(a, old.scope if old else None),
        )
    return _OK


def _portopening(fw: LocalFirewall, verb: str, args: list[str], env: NetshEnv) -> str:
    if verb == "delete":
        a = _bind(_Spec(("protocol", "port", "profile", "interface"), ("protocol", "port")),
                  args, "delete portopening")
        _no_interface(a)
        protos, port, profiles = _protocols(a["protocol"]), _port(a["port"]), _profiles(fw, a)
        keys = [(pr, port) for pr in protos]
        if not any(k in fw.profiles[p].ports for p in profiles for k in keys):
            raise NetshError(f"The system cannot find the file specified. (no port opening "
                             f"{a['protocol'].upper()} {port} in the {_plist(profiles)} profile)")
        for p in profiles:
            for k in keys:
                fw.profiles[p].ports.pop(k, None)
        return _OK
    spec = _Spec(("protocol", "port", "name", "mode", "scope", "addresses", "profile",
                  "interface"),
                 ("protocol", "port", "name") if verb == "add" else ("protocol", "port"))
    a = _bind(spec, args, f"{verb} portopening")
    _no_interface(a)
    protos, port, profiles = _protocols(a["protocol"]), _port(a["port"]), _profiles(fw, a)
    if verb == "set" and not all((pr, port) in fw.profiles[p].ports
                                 for p in profiles for pr in protos):
        raise NetshError(f"The system cannot find the file specified. (no port opening "
                         f"{a['protocol'].upper()} {port} in the {_plist(profiles)} profile; "
                         "use add)")
    for p in profiles:
        for pr in protos:
            old = fw.profiles[p].ports.get((pr, port)) if verb == "set" else None
            enabled = _mode(a, default=old.enabled if old else True)
            assert enabled is not None
            fw.profiles[p].ports[(pr, port)] = PortOpening(
                name=a.get("name", old.name if old else ""),
                enabled=enabled,
                scope=_scope(a, old.scope if old else None),
            )
    return _OK


def _set_opmode(fw: LocalFirewall, args: list[str]) -> str:
    a = _bind(_Spec(("mode", "exceptions", "profile", "interface"), ("mode",)), args,
              "set opmode")
    _no_interface(a)
    mode = _mode(a)
    # exceptions = ENABLE (default) | DISABLE (bb490617 `set opmode`).
    exceptions = _mode(a, "exceptions")
    for p in _profiles(fw, a):
        ps = fw.profiles[p]
        ps.opmode_enabled = bool(mode)
        ps.exceptions_allowed = bool(exceptions)
    return _OK


def _set_service(fw: LocalFirewall, args: list[str]) -> str:
    a = _bind(_Spec(("type", "mode", "scope", "addresses", "profile"), ("type",)), args,
              "set service")
    kind = _enum(a["type"], "type", ("FILEANDPRINT", "REMOTEADMIN", "REMOTEDESKTOP", "UPNP",
                                     "ALL"))
    services = list(Service) if kind == "ALL" else [Service(kind)]
    mode = _mode(a)  # mode = ENABLE (default) | DISABLE
    for p in _profiles(fw, a):
        for s in services:
            old = fw.profiles[p].services[s]
            # Choice: an omitted scope keeps the service's current scope.
            fw.profiles[p].services[s] = ServiceSetting(bool(mode), _scope(a, old.scope))
    return _OK


def _set_icmpsetting(fw: LocalFirewall, args: list[str]) -> str:
    a = _bind(_Spec(("type", "mode", "profile", "interface"), ("type",)), args,
              "set icmpsetting")
    _no_interface(a)
    t = a["type"].strip().upper()
    if t == "ALL":
        types = list(ICMP_TYPES)
    elif t.isdigit() and int(t) in ICMP_TYPES:
        types = [int(t)]
    else:
        raise _bad_value(a["type"], "type",
                         f"use {', '.join(str(k) for k in ICMP_TYPES)} or ALL")
    mode = bool(_mode(a))
    for p in _profiles(fw, a):
        for k in types:
            fw.profiles[p].icmp[k] = mode
    return _OK


def _set_flag(attr: str, command: str) -> Callable[[LocalFirewall, list[str]], str]:
    def run_(fw: LocalFirewall, args: list[str]) -> str:
        a = _bind(_Spec(("mode", "profile"), ("mode",)), args, command)
        mode = bool(_mode(a))
        for p in _profiles(fw, a):
            setattr(fw.profiles[p], attr, mode)
        return _OK
    return run_


def _set_logging(fw: LocalFirewall, args: list[str]) -> str:
    a = _bind(_Spec(("filelocation", "maxfilesize", "droppedpackets", "connections"), ()),
              args, "set logging")
    if not a:
        raise NetshError("One or more essential parameters were not entered. Verify the "
                         "required parameters, and reenter them. (give at least one of "
                         "filelocation, maxfilesize, droppedpackets, connections)")
    lg = fw.logging
    if "maxfilesize" in a:
        v = a["maxfilesize"].strip()
        if not v.isdigit() or not 1 <= int(v) <= 32767:
            # Log size limit: 1-32767 KB (netsh help; TechNet ff428145).
            raise _bad_value(a["maxfilesize"], "maxfilesize", "use 1-32767 (KB)")
        lg.max_kb = int(v)
    if "filelocation" in a:
        if not a["filelocation"].strip():
            raise _bad_value(a["filelocation"], "filelocation")
        lg.file = a["filelocation"].strip()
    if "droppedpackets" in a:
        lg.dropped = bool(_mode(a, "droppedpackets"))
    if "connections" in a:
        lg.connections = bool(_mode(a, "connections"))
    return _OK


# ---- show ----------------------------------------------------------------------------


def _plist(profiles: Sequence[Profile]) -> str:
    return " and ".join(p.label for p in profiles)


def _ed(flag: bool) -> str:
    return "Enable" if flag else "Disable"


def expand_path(path: str, windir: str) -> str:
    """Expand %windir% & co. for display, keeping the case as typed."""
    win = windir.rstrip("\\")
    drive = win[:2] if len(win) >= 2 and win[1] == ":" else "C:"
    table = {"windir": win, "systemroot": win, "systemdrive": drive,
             "programfiles": drive + r"\Program Files"}
    return re.sub(r"%(windir|systemroot|programfiles|systemdrive)%",
                  lambda m: table[m.group(1).lower()], path, flags=re.IGNORECASE)


# The services `show service` lists: the firewall's service types are File and Printer
# Sharing, UPnP Framework and Remote Desktop (icftypes.h NET_FW_SERVICE_TYPE 0-2, in that
# order); remote administration has its own settings (INetFwRemoteAdminSettings) and is
# shown as "Remote admin mode" in `show state` instead.
SHOWN_SERVICES = (Service.FILEANDPRINT, Service.UPNP, Service.REMOTEDESKTOP)

# The one network connection wmilab models, as XP names the first wired adapter; the
# per-connection block of `show opmode` follows an XP capture (Metasploit Unleashed,
# "Persistent Netcat Backdoor": "Local Area Connection firewall configuration:").
INTERFACE = "Local Area Connection"


class _Show:
    def __init__(self, fw: LocalFirewall, env: NetshEnv, policy: FirewallPolicy) -> None:
        self.fw, self.env = fw, env
        self.policy = policy
        self.eff: dict[Profile, EffectiveFirewall] = {
            p: effective(fw, policy, p, env.windir) for p in Profile}

    def header(self, p: Profile) -> str:
        cur = " (current)" if p is self.fw.current else ""
        return f"{p.label} profile configuration{cur}:"

    def opmode(self, p: Profile, full: bool) -> list[str]:
        e = self.eff[p]
        lines = ["", self.header(p), RULE,
                 f"Operational mode                  = {_ed(e.enabled)}",
                 f"Exception mode                    = {_ed(e.exceptions_allowed)}"]
        if full:
            lines += [f"Multicast/broadcast response mode = {_ed(e.multicast_response)}",
                      f"Notification mode                 = {_ed(e.notifications)}"]
        return lines

    def interface(self) -> list[str]:
        # Per-connection opmode: wmilab models no per-connection setting, so the connection
        # is firewalled exactly when the firewall is on (Choice, docs/netsh.md).
        return ["", f"{INTERFACE} firewall configuration:", RULE,
                f"Operational mode                  = {_ed(True)}"]

    def single(self, p: Profile, label: str, flag: bool) -> list[str]:
        return ["", self.header(p), RULE, f"{label:<33} = {_ed(flag)}"]

    def service(self, p: Profile, verbose: bool) -> list[str]:
        e = self.eff[p]
        lines = ["", f"Service configuration for {p.label} profile:",
                 "Mode     Customized  Name", RULE]
        defaults = ProfileSettings.defaults(self.fw.os).services
        for s in SHOWN_SERVICES:
            es = e.services[s]
            # Choice: "Customized" = the scope differs from the shipped default.
            custom = "Yes" if es.scope != defaults[s].scope else "No"
            lines.append(f"{_ed(es.enabled):<9}{custom:<12}{SERVICE_NAMES[s]}")
            if verbose:
                lines.append(f"   Scope: {es.scope.describe()}")
        return lines

    def programs(self, p: Profile, verbose: bool) -> list[str]:
        lines = ["", f"Allowed programs configuration for {p.label} profile:",
                 "Mode     Name / Program", RULE]
        for ep in self.eff[p].programs:
            lines.append(f"{_ed(ep.enabled):<9}{ep.name} / {expand_path(ep.path, self.env.windir)}")
            if verbose:
                lines.append(f"   Scope: {ep.scope.describe()}")
        return lines

    def ports(self, p: Profile, verbose: bool) -> list[str]:
        e = self.eff[p]
        lines = ["", f"Port configuration for {p.label} profile:",
                 "Port   Protocol  Mode     Name", RULE]
        rows = [(po.port, po.protocol, po.enabled, po.name, po.scope) for po in e.ports]
        # XP lists the ports of enabled predefined exceptions as well (show portopening).
        for s in (Service.FILEANDPRINT, Service.REMOTEDESKTOP, Service.UPNP):
            es = e.services[s]
            if es.enabled:
                rows += [(port, proto, True, name, es.scope)
                         for proto, port, name in SERVICE_PORTS[s]]
        for port, proto, enabled, name, scope in rows:
            lines.append(f"{port:<7}{proto:<10}{_ed(enabled):<9}{name}")
            if verbose:
                lines.append(f"   Scope: {scope.describe()}")
        return lines

    def icmp(self, p: Profile) -> list[str]:
        lines = ["", f"ICMP configuration for {p.label} profile:",
                 "Mode     Type  Description", RULE]
        for t, on in self.eff[p].icmp.items():
            if on:  # Choice: like `show config` output, only enabled types are listed.
                lines.append(f"{'Enable':<9}{t:<6}{ICMP_TYPES[t]}")
        return lines

    def logging(self) -> list[str]:
        lg = self.eff[self.fw.current].logging
        return ["", "Log configuration:", RULE,
                f"File location   = {expand_path(lg.file, self.env.windir)}",
                f"Max file size   = {lg.max_kb} KB",
                f"Dropped packets = {_ed(lg.dropped)}",
                f"Connections     = {_ed(lg.connections)}"]

    def config(self, verbose: bool) -> list[str]:
        lines: list[str] = []
        for p in Profile:
            lines += self.opmode(p, True)
            lines += self.service(p, verbose)
            lines += self.programs(p, verbose)
            lines += self.ports(p, verbose)
            lines += self.icmp(p)
        # Choice (docs/netsh.md): the per-connection block before the log block, as in
        # `show opmode`; no XP capture of a whole `show config` was found.
        return lines + self.interface() + self.logging()

    def policy_applies(self) -> bool:
        return self.policy.domain.configured or self.policy.standard.configured

    def state(self) -> list[str]:
        p = self.fw.current
        e = self.eff[p]
        lines = ["", "Firewall status:", RULE,
                 f"Profile                           = {p.label}",
                 f"Operational mode                  = {_ed(e.enabled)}",
                 f"Exception mode                    = {_ed(e.exceptions_allowed)}",
                 f"Multicast/broadcast response mode = {_ed(e.multicast_response)}",
                 f"Notification mode                 = {_ed(e.notifications)}"]
        if self.policy_applies():
            # Choice (docs/netsh.md): the line names the Group Policy settings in force, so
            # it appears only when Windows Firewall settings come from Group Policy.
            lines.append("Group policy version              = Windows Firewall")
        lines += [f"Remote admin mode                 = "
                  f"{_ed(e.services[Service.REMOTEADMIN].enabled)}",
                  "", "Ports currently open on all network interfaces:",
                  "Port   Protocol  Version  Program", RULE]
        open_ports = e.open_ports() if e.enabled and e.exceptions_allowed else []
        if not open_ports:
            lines.append("No ports are currently open on all network interfaces.")
        seen: set[tuple[int, str]] = set()
        for po in open_ports:
            if (po.port, po.protocol) in seen:
                continue
            seen.add((po.port, po.protocol))
            lines.append(f"{po.port:<7}{po.protocol:<10}{'IPv4':<9}(null)")
        return lines


def _show(fw: LocalFirewall, args: list[str], env: NetshEnv, policy: FirewallPolicy) -> str:
    if not args:
        raise NetshError("The following command was not found: firewall show. (show what? "
                         f"{'|'.join(sorted(_SHOW_SPECS))})")
    what = args[0].lower()
    if what not in _SHOW_SPECS:
        raise NetshError(f"The following command was not found: firewall show {args[0]}.")
    a = _bind(_SHOW_SPECS[what], args[1:], f"show {what}")
    _no_interface(a)
    verbose = bool(_mode(a, "verbose", default=False))
    sh = _Show(fw, env, policy)
    profiles = _profiles(fw, a, default="ALL") if "profile" in _SHOW_SPECS[what].params else []
    lines: list[str] = []
    if what == "config":
        lines = sh.config(verbose)
    elif what == "state":
        lines = sh.state()
    elif what == "logging":
        lines = sh.logging()
    elif what == "currentprofile":
        # Choice: wording of `show currentprofile` not verified against XP output.
        lines = ["", f"{fw.current.label} profile is current profile."]
    else:
        for p in profiles:
            if what == "opmode":
                lines += sh.opmode(p, False)
                if p is profiles[-1]:
                    # XP prints the per-connection block after the profiles (capture above).
                    lines += sh.interface()
            elif what == "service":
                lines += sh.service(p, verbose)
            elif what == "allowedprogram":
                lines += sh.programs(p, verbose)
            elif what == "portopening":
                lines += sh.ports(p, verbose)
            elif what == "icmpsetting":
                lines += sh.icmp(p)
            elif what == "notifications":
                lines += sh.single(p, "Notification mode", sh.eff[p].notifications)
            else:  # multicastbroadcastresponse
                lines += sh.single(p, "Multicast/broadcast response mode",
                                   sh.eff[p].multicast_response)
    return "\n".join(lines) + "\n"


_SHOW_SPECS: dict[str, _Spec] = {
    "allowedprogram": _Spec(("profile", "verbose"), ()),
    "config": _Spec(("verbose",), ()),
    "currentprofile": _Spec((), ()),
    "icmpsetting": _Spec(("profile", "interface"), ()),
    "logging": _Spec((), ()),
    "multicastbroadcastresponse": _Spec(("profile",), ()),
    "notifications": _Spec(("profile",), ()),
    "opmode": _Spec(("profile", "interface"), ()),
    "portopening": _Spec(("profile", "verbose"), ()),
    "service": _Spec(("profile", "verbose"), ()),
    "state": _Spec(("verbose",), ()),
}

_SETTERS: dict[str, Callable[[LocalFirewall, list[str]], str]] = {
    "opmode": _set_opmode,
    "service": _set_service,
    "icmpsetting": _set_icmpsetting,
    "multicastbroadcastresponse": _set_flag("multicast_response", "set multicastbroadcastresponse"),
    "notifications": _set_flag("notifications", "set notifications"),
    "logging": _set_logging,
}


def run(fw: LocalFirewall, command: str, env: NetshEnv,
        policy: FirewallPolicy | None = None) -> str:
    """Execute one ``netsh firewall ...`` (or ``firewall ...``) command on ``fw``."""
    words = tokenize(netshwords.expand(command))
    if words and words[0].lower() in ("netsh", "netsh.exe"):
        words = words[1:]
    if not words or words[0].lower() != "firewall":
        raise NetshError(f"only the netsh firewall context is modelled: {command.strip()!r} "
                         "does not start with 'netsh firewall' or 'firewall'")
    words = words[1:]
    if not words:
        raise NetshError("The following command was not found: firewall. (give a command: "
                         "add, set, delete, show, reset)")
    verb = words[0].lower()
    rest = words[1:]
    pol = policy if policy is not None else FirewallPolicy.empty()
    if verb == "show":
        return _show(fw, rest, env, pol)
    if verb == "reset":
        if rest:
            raise NetshError(f"'{rest[0]}' is not a valid argument for this command. "
                             "(reset takes no parameters)")
        fw.reset()
        return _OK
    obj = rest[0].lower() if rest else ""
    args = rest[1:]
    if verb in ("add", "delete") and obj in ("allowedprogram", "portopening"):
        handler = _allowedprogram if obj == "allowedprogram" else _portopening
        return handler(fw, verb, args, env)
    if verb == "set":
        if obj in ("allowedprogram", "portopening"):
            handler = _allowedprogram if obj == "allowedprogram" else _portopening
            return handler(fw, verb, args, env)
        if obj in _SETTERS:
            return _SETTERS[obj](fw, args)
    shown = " ".join(["firewall", *words[:2]])
    # Windows: "The following command was not found: firewall foo." (netsh).
    raise NetshError(f"The following command was not found: {shown}.")
