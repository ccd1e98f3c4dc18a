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

from wmilab.errors import ConfigError
from wmilab.model import oses
from wmilab.model import wfas as wf
from wmilab.model.addresses import Scope
from wmilab.model.netsh import (
    NetshEnv,
    NetshError,
    _bad_value,
    _bind,
    _enum,
    _port,
    _protocols,
    _scope,
    _Spec,
    tokenize,
)

__all__ = ["DEPRECATION", "check_context", "remote_text", "run"]

_OK = "Ok."
_SEP = "-" * 70
_NO_MATCH = "No rules match the specified criteria."

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
    words = tokenize(command)
    if words and words[0].lower() in ("netsh", "netsh.exe"):
        words = words[1:]
    if not words:
        raise NetshError("empty netsh command")
    ctx = words[0].lower()
    if ctx == "advfirewall":
        return _advfirewall(local, words[1:], current)
    if ctx == "firewall":
        return DEPRECATION + "\n" + _legacy(local, words[1:], current, env)
    raise NetshError(f"The following command was not found: {' '.join(words)}. "
                     "(wmilab models the advfirewall and firewall contexts)")


def check_context(os: str, command: str) -> None:
    """An ``advfirewall`` command on an OS without WFAS is a clear error (it has none)."""
    words = tokenize(command)
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
                return _show_profiles(local, profiles)
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
            ps.enabled = _enum(value, "state", ("ON", "OFF", "NOTCONFIGURED")) == "ON"
        elif key == "firewallpolicy":
            inbound, _, outbound = value.partition(",")
            if inbound not in ("blockinbound", "blockinboundalways", "allowinbound") or \
                    outbound not in ("allowoutbound", "blockoutbound"):
                raise _bad_value(args[1], "firewallpolicy")
            ps.inbound_block = inbound != "allowinbound"
            ps.outbound_block = outbound == "blockoutbound"
        else:
            raise NetshError(f"'{args[0]}' is not a valid argument for this command. "
                             "(wmilab models state and firewallpolicy)")
    return _OK


def _onoff(flag: bool) -> str:
    return "ON" if flag else "OFF"


def _show_profiles(local: wf.LocalWfas, profiles: list[wf.WfProfile]) -> str:
    lines: list[str] = []
    for p in profiles:
        ps = local.profiles[p]
        lines += ["", f"{p.label} Profile Settings: ", _SEP,
                  f"{'State':<38}{_onoff(ps.enabled)}",
                  f"{'Firewall Policy':<38}"
                  f"{'BlockInbound' if ps.inbound_block else 'AllowInbound'},"
                  f"{'BlockOutbound' if ps.outbound_block else 'AllowOutbound'}",
                  f"{'LocalFirewallRules':<38}N/A (GPO-store only)",
                  f"{'LocalConSecRules':<38}N/A (GPO-store only)",
                  f"{'InboundUserNotification':<38}Disable",
                  f"{'RemoteManagement':<38}Disable",
                  f"{'UnicastResponseToMulticast':<38}Enable",
                  "", "Logging:",
                  f"{'LogAllowedConnections':<38}Disable",
                  f"{'LogDroppedConnections':<38}Disable",
                  f"{'FileName':<38}%systemroot%\\system32\\LogFiles\\Firewall\\pfirewall.log",
                  f"{'MaxFileSize':<38}4096"]
    return "\n".join([*lines, "", _OK])


# ---- rule parameters -------------------------------------------------------------------------


def _yesno(value: str, param: str) -> bool:
    return _enum(value, param, ("YES", "NO")) == "YES"


def _rule_profiles(value: str) -> frozenset[wf.WfProfile]:
    out: set[wf.WfProfile] = set()
    for part in value.split(","):
        v = part.strip().lower()
        if v == "any":
            return wf.ALL_PROFILES
        if v not in ("domain", "private", "public"):
            raise _bad_value(value, "profile", "use public|private|domain|any")
        out.add(wf.WfProfile(v))
    return frozenset(out)


def _remoteip(value: str) -> Scope:
    v = value.strip()
    if v.lower() == "any":
        return Scope.all()
    if v.lower() == "localsubnet":
        return Scope.subnet()
    try:
        return Scope.custom(v)
    except ConfigError as e:
        raise _bad_value(value, "remoteip", e.message) from None


def _rule_from(args: dict[str, str], base: wf.Rule) -> wf.Rule:
    """``base`` with the rule parameters in ``args`` applied (add rule / set rule new)."""
    rule = base
    if "name" in args:
        rule = replace(rule, name=args["name"])
    if "dir" in args:
        rule = replace(rule, direction="in" if _enum(args["dir"], "dir", ("IN", "OUT")) == "IN"
                       else "out")
    if "action" in args:
        act = _enum(args["action"], "action", ("ALLOW", "BLOCK", "BYPASS"))
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
        proto = args["protocol"].strip().upper()
        if proto not in ("TCP", "UDP", "ANY"):
            raise _bad_value(args["protocol"], "protocol", "wmilab models tcp|udp|any")
        rule = replace(rule, protocol=proto)  # type: ignore[arg-type]
    if "remoteip" in args:
        rule = replace(rule, remote=_remoteip(args["remoteip"]))
    if "localport" in args:
        try:
            rule = replace(rule, local_ports=wf.PortSpec.parse(args["localport"]))
        except ConfigError as e:
            raise _bad_value(args["localport"], "localport", e.message) from None
    for unsupported in ("localip", "remoteport", "interfacetype", "edge"):
        v = args.get(unsupported)
        if v is not None and v.strip().lower() not in ("any", "no"):
            raise NetshError(f"'{unsupported}={v}' is not modelled by wmilab (only 'any')")
    if not rule.local_ports.any and rule.protocol not in ("TCP", "UDP"):
        # netsh refuses ports without a port-based protocol (Learn add rule: "localport ...
        # only valid when protocol is tcp or udp").
        raise NetshError("The port keywords and numbers can only be specified when the "
                         "protocol is TCP or UDP.")
    if rule.local_ports.keywords and rule.protocol != "TCP":
        raise NetshError("The keywords RPC and RPC-EPMap need protocol=TCP.")
    return rule


def _add_rule(local: wf.LocalWfas, args: list[str]) -> str:
    a = _bind(_Spec(_RULE_PARAMS, ("name", "dir", "action")), args, "add rule")
    if a["name"].strip().lower() == "all":
        raise _bad_value(a["name"], "name", "'all' is reserved")
    local.rules.append(_rule_from(a, wf.Rule(name=a["name"])))
    return _OK


def _select(local: wf.LocalWfas, a: dict[str, str]) -> list[int]:
    """Indices of the rules a name=/group= selection with the optional filters picks."""
    if "name" in a:
        name = a["name"].strip().lower()
        idx = [i for i, r in enumerate(local.rules) if name == "all" or r.name.lower() == name]
    elif "group" in a:
        grp = a["group"].strip().lower()
        idx = [i for i, r in enumerate(local.rules) if r.group.lower() == grp]
    else:
        raise NetshError("One or more essential parameters were not entered. (name= or group=)")
    if "dir" in a:
        d = "in" if _enum(a["dir"], "dir", ("IN", "OUT")) == "IN" else "out"
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
        lines += ["", f"{'Rule Name:':<38}{r.name}", _SEP,
                  f"{'Enabled:':<38}{'Yes' if r.enabled else 'No'}",
                  f"{'Direction:':<38}{'In' if r.direction == 'in' else 'Out'}",
                  f"{'Profiles:':<38}{_profiles_text(r.profiles)}",
                  f"{'Grouping:':<38}{r.group}",
                  f"{'LocalIP:':<38}Any",
                  f"{'RemoteIP:':<38}{remote_text(r.remote, shown=True)}",
                  f"{'Protocol:':<38}{'Any' if r.protocol == 'ANY' else r.protocol}"]
        if r.protocol in ("TCP", "UDP"):
            lines += [f"{'LocalPort:':<38}{r.local_ports.text()}",
                      f"{'RemotePort:':<38}Any"]
        lines.append(f"{'Edge traversal:':<38}No")
        if verbose:
            lines += [f"{'Program:':<38}{r.program_text or 'Any'}",
                      f"{'Service:':<38}{'Any' if r.service is None else r.service}"]
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
    if len(words) < 2:
        raise NetshError("The following command was not found: firewall "
                         f"{' '.join(words)}.")
    verb, obj, args = words[0].lower(), words[1].lower(), list(words[2:])
    if verb == "set" and obj == "opmode":
        a = _bind(_Spec(("mode", "exceptions", "profile"), ("mode",)), args, "set opmode")
        for p in _legacy_profiles(a, current):
            local.profiles[p].enabled = _legacy_enabled(a)
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
                     "type=REMOTEADMIN, add/delete portopening and allowedprogram are mapped)")


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
