"""``netsh advfirewall`` on Windows Vista and later, and ``netsh firewall`` as Vista maps it.

:func:`run` executes one command on a :class:`~wmilab.model.wfas.LocalWfas` and returns
what netsh prints. The parameters and messages follow Learn "Netsh AdvFirewall Firewall
Commands" (add/set/delete/show rule) and "Netsh AdvFirewall commands" (set/show profiles,
reset). ``netsh firewall`` still runs on Vista and later: it prints the deprecation notice
and acts on the new firewall as KB 947709 maps it (a port opening becomes an inbound allow
rule for that port, an allowed program one for that program).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from ipaddress import AddressValueError, IPv4Address, summarize_address_range

from wmilab.errors import ConfigError
from wmilab.model import netshwords, oses
from wmilab.model import wfas as wf
from wmilab.model.addresses import Scope
from wmilab.model.netsh import (
    NetshEnv,
    NetshError,
    _bind,
    _enum,
    _port,
    _protocols,
    _scope,
    _Spec,
    tokenize,
)

__all__ = ["DEPRECATION", "NO_MATCH", "check_context", "remote_text", "run"]

_OK = "Ok."
_SEP = "-" * 70
NO_MATCH = _NO_MATCH = "No rules match the specified criteria."

# Printed before the output of every ``netsh firewall`` command on Windows 7 and later
# (KB 947709; wording from captures of Windows 7 to 11, docs/netsh.md).
DEPRECATION = (
    "\nIMPORTANT: Command executed successfully.\n"
    "However, \"netsh firewall\" is deprecated;\n"
    "use \"netsh advfirewall firewall\" instead.\n"
    "For more information on using \"netsh advfirewall firewall\" commands\n"
    "instead of \"netsh firewall\", see KB article 947709\n"
    "at https://go.microsoft.com/fwlink/?linkid=121488 .\n")

_RULE_PARAMS = ("name", "dir", "action", "program", "service", "description", "enable",
                "profile", "localip", "remoteip", "localport", "remoteport", "protocol",
                "interfacetype", "edge")


def run(local: wf.LocalWfas, command: str, env: NetshEnv, current: wf.WfProfile) -> str:
    """Execute one ``netsh advfirewall ...`` or ``netsh firewall ...`` command on ``local``."""
    words = tokenize(netshwords.expand(command))
    if words and words[0].lower() in ("netsh", "netsh.exe"):
        words = words[1:]
    if not words:
        raise NetshError("empty netsh command")
    ctx = words[0].lower()
    if ctx == "advfirewall":
        return _advfirewall(local, words[1:], current)
    if ctx == "firewall":
        if len(words) > 1 and words[1].lower() == "show":
            # A show command prints its report, then the notice (captures of Windows 7 to
            # Server 2019 "netsh firewall show state").
            return _legacy_show(local, words[2:], current, env) + DEPRECATION
        return DEPRECATION + "\n" + _legacy(local, words[1:], current, env)
    raise NetshError(f"The following command was not found: {' '.join(words)}. "
                     "(wmilab models the advfirewall and firewall contexts)")


def check_context(os: str, command: str) -> None:
    """An ``advfirewall`` command on an OS without WFAS is a clear error (it has none)."""
    words = tokenize(netshwords.expand(command))
    if words and words[0].lower() in ("netsh", "netsh.exe"):
        words = words[1:]
    if words and words[0].lower() == "advfirewall" and not oses.get(os).modern:
        raise NetshError(f"The following command was not found: {' '.join(words)}. "
                         f"({oses.get(os).title} has no netsh advfirewall context: Windows "
                         "Firewall with Advanced Security arrived with Windows Vista)")


# ---- netsh advfirewall ---------------------------------------------------------------------


def _advfirewall(local: wf.LocalWfas, words: list[str], current: wf.WfProfile) -> str:
    if not words:
        raise NetshError("The following command was not found: advfirewall.")
    head = words[0].lower()
    if head == "reset":
        local.reset()
        return _OK
    if head == "firewall":
        rest = words[1:]
        if len(rest) < 2 or rest[1].lower() != "rule":
            raise NetshError(f"The following command was not found: advfirewall firewall "
                             f"{' '.join(rest)}. (wmilab models add|set|delete|show rule)")
        verb, args = rest[0].lower(), rest[2:]
        if verb == "add":
            return _add_rule(local, args)
        if verb == "delete":
            return _delete_rule(local, args)
        if verb == "set":
            return _set_rule(local, args)
        if verb == "show":
            return _show_rule(local, args)
        raise NetshError(f"The following command was not found: advfirewall firewall {verb} rule.")
    if head in ("set", "show") and len(words) >= 2:
        which = words[1].lower()
        profiles = {"allprofiles": list(wf.WfProfile), "currentprofile": [current],
                    "domainprofile": [wf.WfProfile.DOMAIN],
                    "privateprofile": [wf.WfProfile.PRIVATE],
                    "publicprofile": [wf.WfProfile.PUBLIC]}.get(which)
        if profiles is not None:
            if head == "show":
                return _show_profiles(local, profiles, words[2:], which)
            return _set_profiles(local, profiles, words[2:])
    raise NetshError(f"The following command was not found: advfirewall {' '.join(words)}.")


def _set_profiles(local: wf.LocalWfas, profiles: list[wf.WfProfile], args: list[str]) -> str:
    if len(args) != 2:
        raise NetshError("One or more essential parameters were not entered. (wmilab models "
                         "'state on|off' and 'firewallpolicy blockinbound|allowinbound,"
                         "allowoutbound|blockoutbound')")
    key, value = args[0].lower(), args[1].lower()
    for p in profiles:
        ps = local.profiles[p]
        if key == "state":
            ps.enabled = _choice(value, "state", ("ON", "OFF", "NOTCONFIGURED")) == "ON"
        elif key == "firewallpolicy":
            inbound, _, outbound = value.partition(",")
            if inbound not in ("blockinbound", "blockinboundalways", "allowinbound") or \
                    outbound not in ("allowoutbound", "blockoutbound"):
                raise _invalid(args[1], "firewallpolicy")
            ps.inbound_block = inbound != "allowinbound"
            ps.inbound_always = inbound == "blockinboundalways"
            ps.outbound_block = outbound == "blockoutbound"
        else:
            raise NetshError(f"'{args[0]}' is not a valid argument for this command. "
                             "(wmilab models state and firewallpolicy)")
    return _OK


def _onoff(flag: bool) -> str:
    return "ON" if flag else "OFF"


def _inbound_policy(ps: wf.ProfileState) -> str:
    if ps.inbound_always:
        return "BlockInboundAlways"
    return "BlockInbound" if ps.inbound_block else "AllowInbound"


def _show_profiles(local: wf.LocalWfas, profiles: list[wf.WfProfile],
                   args: Sequence[str] = (), which: str = "allprofiles") -> str:
    # "show allprofiles|...profile [state|firewallpolicy|settings|logging]" (Learn "Netsh
    # AdvFirewall Commands", show): one section only when a parameter is given; "show
    # allprofiles state" prints the State line alone per profile (captured output).
    if len(args) > 1:
        raise NetshError(f"'{args[1]}' is not a valid argument for this command.")
    part = args[0].lower() if args else "all"
    if part not in ("all", "state", "firewallpolicy", "settings", "logging"):
        raise NetshError(f"The following command was not found: advfirewall show {which} "
                         f"{args[0]}. (show ...profile takes state, firewallpolicy, settings "
                         "or logging)")
    lines: list[str] = []
    for p in profiles:
        ps = local.profiles[p]
        lines += ["", f"{p.label} Profile Settings: ", _SEP]
        if part in ("all", "state"):
            lines.append(f"{'State':<38}{_onoff(ps.enabled)}")
        if part in ("all", "firewallpolicy"):
            lines.append(f"{'Firewall Policy':<38}{_inbound_policy(ps)},"
                         f"{'BlockOutbound' if ps.outbound_block else 'AllowOutbound'}")
        if part in ("all", "settings"):
            lines += [f"{'LocalFirewallRules':<38}N/A (GPO-store only)",
                      f"{'LocalConSecRules':<38}N/A (GPO-store only)",
                      f"{'InboundUserNotification':<38}Disable",
                      f"{'RemoteManagement':<38}Disable",
                      f"{'UnicastResponseToMulticast':<38}Enable"]
        if part in ("all", "logging"):
            lines += ["", "Logging:"] if part == "all" else []
            lines += [f"{'LogAllowedConnections':<38}Disable",
                      f"{'LogDroppedConnections':<38}Disable",
                      f"{'FileName':<38}%systemroot%\\system32\\LogFiles\\Firewall\\pfirewall.log",
                      f"{'MaxFileSize':<38}4096"]
    return "\n".join([*lines, "", _OK] if part == "all" else [*lines, _OK])


# ---- rule parameters -------------------------------------------------------------------------


# netsh advfirewall's own words for a value it cannot use, by parameter (captures of
# Windows 7 to 11; docs/netsh.md): the port, protocol and address messages, else the
# general one. wmilab adds what was wrong in parentheses.
_INVALID = {"localport": "A specified port value is not valid.",
            "remoteport": "A specified port value is not valid.",
            "protocol": "A specified protocol value is not valid.",
            "remoteip": "A specified IP address or address keyword is not valid.",
            "localip": "A specified IP address or address keyword is not valid."}


def _invalid(value: str, param: str, detail: str = "") -> NetshError:
    why = f"{param}={value}" + (f": {detail}" if detail else "")
    return NetshError(f"{_INVALID.get(param, 'A specified value is not valid.')} ({why})")


def _choice(value: str, param: str, allowed: Sequence[str]) -> str:
    v = value.strip().upper()
    if v not in allowed:
        raise _invalid(value, param, f"use {'|'.join(a.lower() for a in allowed)}")
    return v


def _yesno(value: str, param: str) -> bool:
    return _choice(value, param, ("YES", "NO")) == "YES"


def _rule_profiles(value: str) -> frozenset[wf.WfProfile]:
    out: set[wf.WfProfile] = set()
    for part in value.split(","):
        v = part.strip().lower()
        if v == "any":
            return wf.ALL_PROFILES
        if v not in ("domain", "private", "public"):
            raise _invalid(value, "profile", "use public|private|domain|any")
        out.add(wf.WfProfile(v))
    return frozenset(out)


def _remoteip(value: str) -> Scope:
    v = value.strip()
    if v.lower() == "any":
        return Scope.all()
    if v.lower() == "localsubnet":
        return Scope.subnet()
    parts: list[str] = []
    for part in v.split(","):
        p = part.strip()
        if p.lower() in ("dns", "dhcp", "wins", "defaultgateway"):
            # Valid on Windows (Learn "Netsh AdvFirewall Firewall Commands", remoteip), but
            # they name servers a scenario does not describe.
            raise NetshError(f"wmilab does not model remoteip={p}: a scenario names no "
                             "DNS, DHCP or WINS servers nor a default gateway")
        lo, dash, hi = p.partition("-")
        if dash and "/" not in p:
            # remoteip takes ranges "a.b.c.d-e.f.g.h" (same page); wmilab holds a range as
            # the subnets that make it up (docs/choices.md).
            try:
                first, last = IPv4Address(lo.strip()), IPv4Address(hi.strip())
            except AddressValueError:
                raise _invalid(value, "remoteip", f"{p!r} is not an address range") from None
            if last < first:
                raise _invalid(value, "remoteip", f"{p!r} ends before it starts")
            parts += [str(n) for n in summarize_address_range(first, last)]
        else:
            parts.append(p)
    try:
        return Scope.custom(",".join(parts))
    except ConfigError as e:
        raise _invalid(value, "remoteip", e.message) from None


def _rule_from(args: dict[str, str], base: wf.Rule) -> wf.Rule:
    """``base`` with the rule parameters in ``args`` applied (add rule / set rule new)."""
    rule = base
    if "name" in args:
        rule = replace(rule, name=args["name"])
    if "description" in args:
        rule = replace(rule, description=args["description"])
    if "dir" in args:
        d = _choice(args["dir"], "dir", ("IN", "OUT"))
        rule = replace(rule, direction="in" if d == "IN" else "out")
    if "action" in args:
        act = _choice(args["action"], "action", ("ALLOW", "BLOCK", "BYPASS"))
        if act == "BYPASS":
            raise NetshError("action=bypass needs IPsec security settings, which wmilab does "
                             "not model")
        rule = replace(rule, action="allow" if act == "ALLOW" else "block")
    if "enable" in args:
        rule = replace(rule, enabled=_yesno(args["enable"], "enable"))
    if "profile" in args:
        rule = replace(rule, profiles=_rule_profiles(args["profile"]))
    if "program" in args:
        p = args["program"]
        rule = replace(rule, program=None if p.lower() == "any" else wf.parse_program(p),
                       program_text=None if p.lower() == "any" else p)
    if "service" in args:
        s = args["service"].strip().lower()
        rule = replace(rule, service=None if s == "any" else s)
    if "protocol" in args:
        # protocol = any | tcp | udp | an IP protocol number (Learn "Netsh AdvFirewall
        # Firewall Commands", add rule): 6 is TCP and 17 UDP (IANA protocol numbers).
        proto = args["protocol"].strip().upper()
        proto = {"6": "TCP", "17": "UDP"}.get(proto, proto)
        if proto not in ("TCP", "UDP", "ANY"):
            valid = proto.startswith(("ICMPV4", "ICMPV6")) or (
                proto.isdigit() and 0 <= int(proto) <= 255)
            if valid:  # Windows takes it; WMI's traffic is TCP, which such a rule never matches
                raise NetshError(f"wmilab does not model protocol={args['protocol']} rules "
                                 "(tcp, udp and any)")
            raise _invalid(args["protocol"], "protocol", "use tcp, udp, any or 0-255")
        rule = replace(rule, protocol=proto)  # type: ignore[arg-type]
    if "remoteip" in args:
        rule = replace(rule, remote=_remoteip(args["remoteip"]))
    if "localport" in args:
        try:
            rule = replace(rule, local_ports=wf.PortSpec.parse(args["localport"]))
        except ConfigError as e:
            raise _invalid(args["localport"], "localport", e.message) from None
    if "remoteport" in args and args["remoteport"].strip().lower() != "any":
        # The peer's port: meaningful for an outbound rule (B's 135 or its WMI port); an
        # inbound connection's remote port is the client's ephemeral one, not modelled.
        if rule.direction != "out":
            raise NetshError(f"'remoteport={args['remoteport']}' is modelled by wmilab for "
                             "outbound rules only (an inbound connection comes from an "
                             "ephemeral port)")
        try:
            ports = wf.PortSpec.parse(args["remoteport"])
        except ConfigError as e:
            raise _invalid(args["remoteport"], "remoteport", e.message) from None
        if ports.keywords:
            raise _invalid(args["remoteport"], "remoteport", "RPC and RPC-EPMap are local ports")
        rule = replace(rule, remote_ports=ports)
    elif "remoteport" in args:
        rule = replace(rule, remote_ports=wf.PortSpec())
    for unsupported in ("localip", "interfacetype", "edge"):
        v = args.get(unsupported)
        if v is not None and v.strip().lower() not in ("any", "no"):
            raise NetshError(f"'{unsupported}={v}' is not modelled by wmilab (only 'any')")
    if not (rule.local_ports.any and rule.remote_ports.any) and rule.protocol not in ("TCP", "UDP"):
        # netsh refuses ports without a port-based protocol (Learn add rule: "localport ...
        # only valid when protocol is tcp or udp").
        raise NetshError("The port keywords and numbers can only be specified when the "
                         "protocol is TCP or UDP.")
    if rule.local_ports.keywords and rule.protocol != "TCP":
        raise NetshError("The keywords RPC and RPC-EPMap need protocol=TCP.")
    return rule


def _add_rule(local: wf.LocalWfas, args: list[str]) -> str:
    a = _bind(_Spec(_RULE_PARAMS, ("name", "dir", "action")), args, "add rule")
    if not a["name"].strip():
        # Choice (docs/choices.md): a rule needs a name (INetFwRule::Name is required).
        raise _invalid(a["name"], "name", "the name is empty")
    if a["name"].strip().lower() == "all":
        raise _invalid(a["name"], "name", "'all' is reserved")
    local.rules.append(_rule_from(a, wf.Rule(name=a["name"])))
    return _OK


def _select(local: wf.LocalWfas, a: dict[str, str]) -> list[int]:
    """Indices of the rules a name=/group= selection with the optional filters picks."""
    for key in ("name", "group"):
        if key in a and not a[key].strip():
            raise _invalid(a[key], key, f"the {key} is empty")
    if "name" in a:
        name = a["name"].strip().lower()
        idx = [i for i, r in enumerate(local.rules) if name == "all" or r.name.lower() == name]
    elif "group" in a:
        grp = a["group"].strip().lower()
        idx = [i for i, r in enumerate(local.rules) if r.group.lower() == grp]
    else:
        raise NetshError("One or more essential parameters were not entered. (name= or group=)")
    if "dir" in a:
        d = "in" if _choice(a["dir"], "dir", ("IN", "OUT")) == "IN" else "out"
        idx = [i for i in idx if local.rules[i].direction == d]
    if "profile" in a:
        want = _rule_profiles(a["profile"])
        idx = [i for i in idx if local.rules[i].profiles & want]
    return idx


def _delete_rule(local: wf.LocalWfas, args: list[str]) -> str:
    a = _bind(_Spec(("name", "dir", "profile", "program", "service", "localport", "remoteip",
                     "protocol"), ("name",)), args, "delete rule")
    idx = set(_select(local, a))
    if "program" in a:
        prog = wf.parse_program(a["program"])
        idx = {i for i in idx if local.rules[i].program == prog}
    if not idx:
        return "\n" + _NO_MATCH
    local.rules = [r for i, r in enumerate(local.rules) if i not in idx]
    return f"\nDeleted {len(idx)} rule(s).\n{_OK}"


def _set_rule(local: wf.LocalWfas, args: list[str]) -> str:
    lowered = [x.lower() for x in args]
    if "new" not in lowered:
        raise NetshError("One or more essential parameters were not entered. (set rule needs "
                         "'new' followed by the values to change)")
    cut = lowered.index("new")
    sel = _bind(_Spec(("name", "group", "dir", "profile"), ()), args[:cut], "set rule")
    new = _bind(_Spec(_RULE_PARAMS, ()), args[cut + 1:], "set rule new")
    if not new:
        raise NetshError("One or more essential parameters were not entered. (nothing "
                         "follows 'new')")
    idx = _select(local, sel)
    if not idx:
        return "\n" + _NO_MATCH
    for i in idx:
        local.rules[i] = _rule_from(new, local.rules[i])
    return f"\nUpdated {len(idx)} rule(s).\n{_OK}"


def remote_text(scope: Scope, shown: bool = False) -> str:
    """A scope as netsh's ``remoteip=`` takes it, or (``shown``) as ``show rule`` prints it:
    single addresses with /32 there."""
    if scope.kind == "ALL":
        return "Any"
    if scope.kind == "SUBNET":
        return "LocalSubnet"
    return ",".join(str(t.network) if shown and t.network is not None else str(t)
                    for t in scope.addresses)


def _profiles_text(profiles: frozenset[wf.WfProfile]) -> str:
    if profiles == wf.ALL_PROFILES:
        return "Domain,Private,Public"
    return ",".join(p.label for p in wf.WfProfile if p in profiles)


_FOLDERS = {"%systemroot%": "C:\\Windows", "%windir%": "C:\\Windows",
            "%programfiles%": "C:\\Program Files",
            "%programfiles(x86)%": "C:\\Program Files (x86)"}


def _expanded(program: str) -> str:
    """A rule's program as show rule prints it: a leading folder variable expanded."""
    head, sep, rest = program.partition("\\")
    return _FOLDERS.get(head.lower(), head) + sep + rest


def _show_rule(local: wf.LocalWfas, args: list[str]) -> str:
    a = _bind(_Spec(("name", "group", "dir", "profile", "type", "verbose"), ()),
              [x for x in args if x.lower() != "verbose"], "show rule")
    verbose = any(x.lower() == "verbose" for x in args)
    # Choice (docs/choices.md): show rule lists the rules in force, those of Group Policy
    # first, then the local ones; netsh prints no line that tells them apart.
    shown = wf.LocalWfas(local.os, local.profiles, [*local.policy_rules, *local.rules])
    idx = _select(shown, a)
    if not idx:
        return "\n" + _NO_MATCH
    lines: list[str] = []
    for i in idx:
        r = shown.rules[i]
        lines += ["", f"{'Rule Name:':<38}{r.name}", _SEP]
        if verbose and r.description:
            lines.append(f"{'Description:':<38}{r.description}")
        lines += [f"{'Enabled:':<38}{'Yes' if r.enabled else 'No'}",
                  f"{'Direction:':<38}{'In' if r.direction == 'in' else 'Out'}",
                  f"{'Profiles:':<38}{_profiles_text(r.profiles)}",
                  f"{'Grouping:':<38}{r.group}",
                  f"{'LocalIP:':<38}Any",
                  f"{'RemoteIP:':<38}{remote_text(r.remote, shown=True)}",
                  f"{'Protocol:':<38}{'Any' if r.protocol == 'ANY' else r.protocol}"]
        if r.protocol in ("TCP", "UDP"):
            lines += [f"{'LocalPort:':<38}{r.local_ports.text()}",
                      f"{'RemotePort:':<38}{r.remote_ports.text()}"]
        lines.append(f"{'Edge traversal:':<38}No")
        if verbose:
            # Verbose adds Program and Service only when the rule names them, then the
            # interface types, security and rule source (captures of Windows 10/11 show rule
            # ... verbose; the program with its environment variables expanded).
            if r.program_text is not None:
                lines.append(f"{'Program:':<38}{_expanded(r.program_text)}")
            if r.service is not None:
                lines.append(f"{'Service:':<38}{'Any' if r.service == '*' else r.service}")
            lines += [f"{'InterfaceTypes:':<38}Any", f"{'Security:':<38}NotRequired",
                      f"{'Rule source:':<38}"
                      f"{'Local Setting' if r.origin == 'local' else 'Group Policy'}"]
        lines.append(f"{'Action:':<38}{r.action.capitalize()}")
    return "\n".join([*lines, _OK])


# ---- netsh firewall on Vista and later (KB 947709) -------------------------------------------


def _legacy_profiles(a: dict[str, str], current: wf.WfProfile) -> frozenset[wf.WfProfile]:
    # Choice (docs/choices.md): CURRENT is the profile in use, STANDARD both private and
    # public (the pre-Vista non-domain profile), ALL the three.
    v = _enum(a.get("profile", "CURRENT"), "profile", ("CURRENT", "DOMAIN", "STANDARD", "ALL"))
    return {"CURRENT": frozenset({current}), "DOMAIN": frozenset({wf.WfProfile.DOMAIN}),
            "STANDARD": frozenset({wf.WfProfile.PRIVATE, wf.WfProfile.PUBLIC}),
            "ALL": wf.ALL_PROFILES}[v]


def _legacy_enabled(a: dict[str, str]) -> bool:
    return _enum(a.get("mode", "ENABLE"), "mode", ("ENABLE", "DISABLE")) == "ENABLE"


def _legacy(local: wf.LocalWfas, words: Sequence[str], current: wf.WfProfile,
            env: NetshEnv) -> str:
    if len(words) == 1 and words[0].lower() == "reset":
        # KB 947709, "Restore policy defaults": netsh firewall reset is netsh advfirewall
        # reset on Vista and later (INetFwMgr::RestoreDefaults).
        local.reset()
        return _OK
    if len(words) < 2:
        raise NetshError("The following command was not found: firewall "
                         f"{' '.join(words)}.")
    verb, obj, args = words[0].lower(), words[1].lower(), list(words[2:])
    if verb == "set" and obj == "opmode":
        a = _bind(_Spec(("mode", "exceptions", "profile"), ("mode",)), args, "set opmode")
        # exceptions=DISABLE is INetFwProfile::ExceptionsNotAllowed, which on Vista and later
        # ignores every exception as INetFwPolicy2::BlockAllInboundTraffic does (Learn, both
        # pages): netsh advfirewall's blockinboundalways. ENABLE (the default) clears it.
        block_all = _enum(a.get("exceptions", "ENABLE"), "exceptions",
                          ("ENABLE", "DISABLE")) == "DISABLE"
        for p in _legacy_profiles(a, current):
            local.profiles[p].enabled = _legacy_enabled(a)
            local.profiles[p].inbound_always = block_all
        return _OK
    if verb == "add" and obj == "portopening":
        a = _bind(_Spec(("protocol", "port", "name", "mode", "scope", "addresses", "profile"),
                        ("protocol", "port", "name")), args, "add portopening")
        port = _port(a["port"])
        for proto in _protocols(a["protocol"]):
            local.rules.append(wf.Rule(
                a["name"], "in", "allow", _legacy_enabled(a), _legacy_profiles(a, current),
                protocol=proto, local_ports=wf.PortSpec(((port, port),)),  # type: ignore[arg-type]
                remote=_scope(a, None)))
        return _OK
    if verb == "add" and obj == "allowedprogram":
        a = _bind(_Spec(("program", "name", "mode", "scope", "addresses", "profile"),
                        ("program", "name")), args, "add allowedprogram")
        local.rules.append(wf.Rule(
            a["name"], "in", "allow", _legacy_enabled(a), _legacy_profiles(a, current),
            program=wf.parse_program(a["program"]), program_text=a["program"],
            remote=_scope(a, None)))
        return _OK
    if verb == "set" and obj in ("portopening", "allowedprogram"):
        # KB 947709 maps set as it maps add: the rules that add made, changed in place
        # (mode, scope and name given; the rest kept). Absent: netsh's "cannot find" error.
        if obj == "portopening":
            a = _bind(_Spec(("protocol", "port", "name", "mode", "scope", "addresses",
                             "profile"), ("protocol", "port")), args, "set portopening")
            port = _port(a["port"])
            protos = _protocols(a["protocol"])
            idx = [i for i, r in enumerate(local.rules) if not r.group and r.protocol in protos
                   and r.local_ports.spans == ((port, port),)]
        else:
            a = _bind(_Spec(("program", "name", "mode", "scope", "addresses", "profile"),
                            ("program",)), args, "set allowedprogram")
            prog = wf.parse_program(a["program"])
            idx = [i for i, r in enumerate(local.rules) if not r.group and r.program == prog]
        if not idx:
            raise NetshError("The system cannot find the file specified.")
        for i in idx:
            r = local.rules[i]
            local.rules[i] = replace(
                r, name=a.get("name", r.name),
                enabled=_legacy_enabled(a) if "mode" in a else r.enabled,
                remote=_scope(a, r.remote))
        return _OK
    if verb == "delete" and obj in ("portopening", "allowedprogram"):
        key = "port" if obj == "portopening" else "program"
        a = _bind(_Spec(("protocol", "port", "profile") if key == "port"
                        else ("program", "profile"), (key,) if key == "program"
                        else ("protocol", "port")), args, f"delete {obj}")
        before = len(local.rules)
        if key == "port":
            port = _port(a["port"])
            local.rules = [r for r in local.rules if r.group or r.local_ports.spans !=
                           ((port, port),)]
        else:
            prog = wf.parse_program(a["program"])
            local.rules = [r for r in local.rules if r.group or r.program != prog]
        if len(local.rules) == before:
            raise NetshError("The system cannot find the file specified.")
        return _OK
    if verb == "set" and obj == "service":
        a = _bind(_Spec(("type", "mode", "scope", "addresses", "profile"), ("type",)), args,
                  "set service")
        kind = _enum(a["type"], "type", ("FILEANDPRINT", "REMOTEADMIN", "REMOTEDESKTOP",
                                         "UPNP", "ALL"))
        if kind != "REMOTEADMIN":
            raise NetshError(f"wmilab maps only type=REMOTEADMIN onto Windows Firewall with "
                             f"Advanced Security, not {kind}")
        return _legacy_remote_admin(local, a, current, env)
    raise NetshError(f"wmilab does not map 'netsh firewall {verb} {obj}' onto Windows "
                     "Firewall with Advanced Security (set opmode, set service "
                     "type=REMOTEADMIN, add/set/delete portopening and allowedprogram are "
                     "mapped)")


def _legacy_remote_admin(local: wf.LocalWfas, a: dict[str, str], current: wf.WfProfile,
                         env: NetshEnv) -> str:
    """``set service type=REMOTEADMIN``: the "Remote Administration" group's rules in the
    chosen profiles, with the given scope. Choice (docs/choices.md): on an OS whose WFAS no
    longer ships that group (Windows 8 / 2012 on), the same three rules are created."""
    profiles = _legacy_profiles(a, current)
    enabled = _legacy_enabled(a)
    scope = _scope(a, None) if ("scope" in a or "addresses" in a) else None
    template = [r for r in wf.builtin_rules_remote_admin(env.os)]
    changed = False
    for i, r in enumerate(local.rules):
        if r.group == wf.RA_GROUP and r.profiles & profiles:
            local.rules[i] = replace(r, enabled=enabled,
                                     remote=scope if scope is not None else r.remote)
            changed = True
    if not changed:
        for r in template:
            local.rules.append(replace(r, enabled=enabled, profiles=profiles,
                                       remote=scope if scope is not None else Scope.all()))
    return _OK


# ---- netsh firewall show on Vista and later ----------------------------------------------

_LEGACY_RULE = "-" * 67


def _legacy_profile(current: wf.WfProfile) -> tuple[str, wf.WfProfile]:
    # Choice (docs/choices.md): the old API's Standard profile is the non-domain profile in
    # use (private unless the host is on public); a domain host's Standard is private.
    if current is wf.WfProfile.DOMAIN:
        return "Domain", current
    return "Standard", current


def _legacy_modes(local: wf.LocalWfas, p: wf.WfProfile) -> list[str]:
    ps = local.profiles[p]
    return [f"Operational mode                  = {'Enable' if ps.enabled else 'Disable'}",
            f"Exception mode                    = "
            f"{'Disable' if ps.inbound_always else 'Enable'}",
            "Multicast/broadcast response mode = Enable",
            "Notification mode                 = Enable"]


def _legacy_show(local: wf.LocalWfas, args: Sequence[str], current: wf.WfProfile,
                 env: NetshEnv) -> str:
    """``netsh firewall show state|opmode|currentprofile`` on Vista and later, read from
    WFAS (the layout of captured Windows 7 to Server 2019 output, docs/netsh.md)."""
    what = args[0].lower() if args else ""
    label, prof = _legacy_profile(current)
    if what == "state":
        if len(args) > 1:
            raise NetshError(f"'{args[1]}' is not a valid argument for this command.")
        ra = [r for r in local.rules if r.group == wf.RA_GROUP and prof in r.profiles]
        ra_on = bool(ra) and all(r.enabled for r in ra)
        # Windows 10 1709 renamed the product "Windows Defender Firewall"; Server 2016 is
        # 1607 (Learn "Windows Defender Firewall with Advanced Security", the captures).
        product = ("Windows Defender Firewall" if env.os in ("2019", "11", "2022", "2025", "10")
                   else "Windows Firewall")
        lines = ["", "Firewall status:", _LEGACY_RULE,
                 f"Profile                           = {label}", *_legacy_modes(local, prof),
                 f"Group policy version              = {product}",
                 f"Remote admin mode                 = {'Enable' if ra_on else 'Disable'}",
                 "", "Ports currently open on all network interfaces:",
                 "Port   Protocol  Version  Program", _LEGACY_RULE]
        ps = local.profiles[prof]
        ports = sorted({(lo, r.protocol) for r in local.rules
                        if r.enabled and r.direction == "in" and r.action == "allow"
                        and prof in r.profiles and r.program is None and r.protocol != "ANY"
                        for lo, hi in r.local_ports.spans if lo == hi}) \
            if ps.enabled and not ps.inbound_always else []
        if not ports:
            lines.append("No ports are currently open on all network interfaces.")
        lines += [f"{port:<7}{proto:<10}{'Any':<9}(null)" for port, proto in ports]
        return "\n".join(lines) + "\n"
    if what == "opmode":
        a = _bind(_Spec(("profile",), ()), list(args[1:]), "show opmode")
        which = a.get("profile", "ALL").upper()
        _enum(which, "profile", ("CURRENT", "DOMAIN", "STANDARD", "ALL"))
        blocks: list[tuple[str, wf.WfProfile]] = []
        std = prof if label == "Standard" else wf.WfProfile.PRIVATE
        if which in ("ALL", "DOMAIN") or (which == "CURRENT" and label == "Domain"):
            blocks.append(("Domain", wf.WfProfile.DOMAIN))
        if which in ("ALL", "STANDARD") or (which == "CURRENT" and label == "Standard"):
            blocks.append(("Standard", std))
        lines = []
        for name, p in blocks:
            tag = " (current)" if name == label else ""
            lines += ["", f"{name} profile configuration{tag}:", _LEGACY_RULE,
                      *_legacy_modes(local, p)]
        return "\n".join(lines) + "\n"
    if what == "currentprofile" and len(args) == 1:
        return f"\n{label} profile is current profile.\n"
    raise NetshError(f"wmilab does not print 'netsh firewall show {' '.join(args)}' on "
                     "Windows Vista and later (it prints show state, show opmode and show "
                     "currentprofile; netsh advfirewall firewall show rule name=all lists "
                     "the rules)")
