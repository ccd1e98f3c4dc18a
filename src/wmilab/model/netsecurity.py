"""The PowerShell ``*-NetFirewallRule`` cmdlets (NetSecurity module, Windows 8 / Server 2012 on).

:func:`run` executes one of ``New-``, ``Set-``, ``Enable-``, ``Disable-`` and
``Remove-NetFirewallRule`` on the same :class:`~wmilab.model.wfas.LocalWfas` that ``netsh
advfirewall`` edits; it builds :class:`~wmilab.model.wfas.Rule` values and never decides
anything itself (model/wfas.py does). Parameters, accepted values and parameter sets follow
the Learn pages powershell/module/netsecurity/{new,set,enable,disable,remove}-netfirewallrule.

How a command line is read (PowerShell's own rules, about_Parsing and about_Parameters):
- arguments are separated by whitespace; ``'...'`` is literal (``''`` is a quote), ``"..."``
  allows the escape character `````; a comma outside quotes joins elements into one array
  argument (``-RemoteAddress 10.0.0.5,LocalSubnet`` or ``10.0.0.5, LocalSubnet``);
- ``-Name:value`` binds like ``-Name value``;
- parameter names are case-insensitive and may be shortened to any unambiguous prefix (an
  exact name wins); an ambiguous or unknown one is refused with PowerShell's message.

Rule identity: a rule's ``Name`` is its unique id (the built-in ``WMI-WINMGMT-In-TCP``),
``DisplayName`` the localized title netsh calls ``name=``, ``DisplayGroup`` the group netsh
calls ``group=``. Wildcards (``*``, ``?``, ``[...]``) select several rules; a value without
wildcards that selects nothing is PowerShell's "No MSFT_NetFirewallRule objects found"
error, a wildcard that selects nothing is silent (docs/choices.md).
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from ipaddress import AddressValueError, IPv4Address, summarize_address_range

from wmilab.errors import ConfigError
from wmilab.model import oses
from wmilab.model import wfas as wf
from wmilab.model.addresses import Scope

__all__ = ["CMDLETS", "NetSecurityError", "is_cmdlet", "parse", "run"]


class NetSecurityError(ConfigError):
    """A cmdlet PowerShell would refuse (the message is PowerShell's where it has one)."""


NEW, SET, ENABLE, DISABLE, REMOVE = ("New-NetFirewallRule", "Set-NetFirewallRule",
                                     "Enable-NetFirewallRule", "Disable-NetFirewallRule",
                                     "Remove-NetFirewallRule")
CMDLETS = (NEW, SET, ENABLE, DISABLE, REMOVE)
_BY_LOWER = {c.lower(): c for c in CMDLETS}

# Parameters each cmdlet takes (Learn syntax blocks); "switch" ones take no value. Common
# parameters (about_CommonParameters) are accepted by every cmdlet.
_COMMON = ("ErrorAction", "WarningAction", "Verbose", "Debug", "ErrorVariable",
           "WarningVariable", "OutVariable", "OutBuffer", "InformationAction",
           "InformationVariable", "PipelineVariable")
_SWITCHES = frozenset({"whatif", "confirm", "passthru", "asjob", "all", "verbose", "debug",
                       "tracepolicystore"})
_RULE_PROPS = ("Description", "Enabled", "Profile", "Direction", "Action", "RemoteAddress",
               "Protocol", "LocalPort", "Program", "Service", "LocalAddress", "RemotePort",
               "EdgeTraversalPolicy", "InterfaceType", "Platform", "Owner", "Package",
               "IcmpType", "Authentication", "Encryption", "OverrideBlockRules",
               "LocalUser", "RemoteUser", "RemoteMachine", "InterfaceAlias",
               "LooseSourceMapping", "LocalOnlyMapping", "DynamicTarget")
_QUERY = ("Description", "DisplayGroup", "Group", "Enabled", "Direction", "Action",
          "EdgeTraversalPolicy", "Owner", "PolicyStoreSource", "PolicyStoreSourceType",
          "PrimaryStatus", "Status", "LooseSourceMapping", "LocalOnlyMapping")
_SELECT_SET = ("All", "Name", "DisplayName", *_QUERY, "PolicyStore", "GPOSession",
               "TracePolicyStore", "CimSession", "ThrottleLimit", "AsJob", "PassThru",
               "WhatIf", "Confirm")
_PARAMS: dict[str, tuple[str, ...]] = {
    NEW: ("PolicyStore", "GPOSession", "Name", "DisplayName", "Group", *_RULE_PROPS,
          "CimSession", "ThrottleLimit", "AsJob", "WhatIf", "Confirm", *_COMMON),
    SET: ("Name", "DisplayName", "DisplayGroup", "Group", "PolicyStore", "GPOSession",
          "NewDisplayName", *_RULE_PROPS, "CimSession", "ThrottleLimit", "AsJob", "PassThru",
          "WhatIf", "Confirm", *_COMMON),
    ENABLE: (*_SELECT_SET, *_COMMON),
    DISABLE: (*_SELECT_SET, *_COMMON),
    REMOVE: tuple(p for p in (*_SELECT_SET, *_COMMON) if p != "PassThru"),
}
# Parameters wmilab does not model are accepted only with the value that changes nothing
# for a TCP listener reached over the LAN (below), else refused as not modelled; the
# descriptive and session ones (-Description, -Platform, -Owner, -CimSession, -AsJob, ...)
# change nothing wmilab decides and are accepted.
_IGNORED_ANY = {"localaddress": "Any", "interfacetype": "Any",
                "edgetraversalpolicy": "Block", "authentication": "NotRequired",
                "encryption": "NotRequired"}

# The enumerations of the NetSecurity cdxml types (Learn: "Accepted values").
_ENUMS: dict[str, tuple[str, ...]] = {
    "direction": ("Inbound", "Outbound"),
    "action": ("NotConfigured", "Allow", "Block"),
    "enabled": ("True", "False"),
    "profile": ("Any", "Domain", "Private", "Public", "NotApplicable"),
    "erroraction": ("SilentlyContinue", "Stop", "Continue", "Inquire", "Ignore", "Suspend",
                    "Break"),
}
_ENUM_TYPE = {"direction": "Direction", "action": "Action", "enabled": "Enabled",
              "profile": "Profile"}

# Learn new-netfirewallrule, -LocalPort: the keywords a rule may name; wmilab models the two
# of RPC (netsh spells the second RPC-EPMap, PowerShell RPCEPMap).
_PORT_KEYWORDS = {"rpc": wf.RPC, "rpcepmap": wf.RPC_EPMAP}
_OTHER_PORT_KEYWORDS = ("teredo", "iphttpsin", "iphttpsout", "playtodiscovery",
                        "dhcp", "mdns")
# Learn new-netfirewallrule, -RemoteAddress keywords (LocalSubnet modelled).
_OTHER_ADDRESS_KEYWORDS = ("dns", "dhcp", "wins", "defaultgateway", "internet", "intranet",
                           "intranetremoteaccess", "playtodevice", "captiveportal")

# Verified wordings (captures in public issue threads, docs/modern.md):
# dotnet-architecture/eShopOnContainers#43 (address), dsccommunity/NetworkingDsc#34 (port
# keyword), fabianosrc/RDPControl#10 (no objects found).
_BAD_ADDRESS = ("The address is invalid.  Addresses may be specified as IP addresses, ranges, "
                "or subnets.  Also, the following address keywords are allowed in certain "
                "places: LocalSubnet, DNS, DHCP, WINS, DefaultGateway, Internet, Intranet, "
                "IntranetRemoteAccess, PlayToDevice.  Keywords can be restricted to IPv4 or "
                "IPv6 by appending a 4 or 6.")
_BAD_PORT_KEYWORD = "One of the port keywords is invalid."


def is_cmdlet(word: str) -> bool:
    """Is ``word`` the name of one of the cmdlets this module runs (any case)?"""
    return word.lower() in _BY_LOWER


def not_recognized(name: str) -> NetSecurityError:
    # PowerShell's CommandNotFoundException text (about_Command_Precedence).
    return NetSecurityError(
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, "
        "or operable program. Check the spelling of the name, or if a path was included, "
        "verify that the path is correct and try again.")


# ---- reading the command line ----------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    name: str  # as typed, without the dash
    value: tuple[str, ...] | None  # None: no value followed (a switch, or missing)


@dataclass(frozen=True)
class Command:
    """One parsed cmdlet: its canonical name, bound parameters (canonical names, lower-case
    keys) and positional arguments."""

    cmdlet: str
    params: dict[str, tuple[str, ...]]
    switches: frozenset[str]
    positional: tuple[tuple[str, ...], ...]

    def one(self, key: str) -> str | None:
        v = self.params.get(key)
        if v is None:
            return None
        if len(v) != 1:
            raise NetSecurityError(
                f"Cannot convert 'System.Object[]' to the type 'System.String' required by "
                f"parameter '{_canon_name(self.cmdlet, key)}'. Specified method is not "
                "supported.")
        return v[0]



def _quoted(command: str, i: int, buf: list[str]) -> int:
    """Read the string quoted at ``command[i]`` into ``buf``; return the index after it.

    In both quotes a doubled quote stands for itself; only double quotes expand the backtick
    escape (about_Quoting_Rules)."""
    quote, n, j = command[i], len(command), i + 1
    while True:
        if j >= n:
            raise NetSecurityError(f"The string is missing the terminator: {quote}.")
        if quote == '"' and command[j] == "`" and j + 1 < n:
            buf.append(command[j + 1])
            j += 2
            continue
        if command[j] == quote:
            if j + 1 < n and command[j + 1] == quote:
                buf.append(quote)
                j += 2
                continue
            return j + 1
        buf.append(command[j])
        j += 1

def _words(command: str) -> list[tuple[str, bool]]:
    """PowerShell argument tokens: (text, was it a bare word that may be a parameter?).

    Commas outside quotes become their own ``,`` token so arrays can be joined."""
    out: list[tuple[str, bool]] = []
    i, n = 0, len(command)
    while i < n:
        ch = command[i]
        if ch.isspace():
            i += 1
            continue
        if ch == ",":
            out.append((",", False))
            i += 1
            continue
        buf: list[str] = []
        bare = True
        quoted_any = False
        while i < n and not command[i].isspace() and command[i] != ",":
            c = command[i]
            if c in "'\"":
                quoted_any = True
                i = _quoted(command, i, buf)
            elif c == "`" and i + 1 < n:
                buf.append(command[i + 1])
                i += 2
            else:
                buf.append(c)
                i += 1
        if quoted_any:
            bare = False
        out.append(("".join(buf), bare))
    return out


def _canon_name(cmdlet: str, key: str) -> str:
    return next((p for p in _PARAMS[cmdlet] if p.lower() == key), key)


def _resolve(cmdlet: str, typed: str) -> str:
    """A typed parameter name (or unambiguous prefix) to its lower-case canonical name."""
    names = _PARAMS[cmdlet]
    low = typed.lower()
    exact = [p for p in names if p.lower() == low]
    if exact:
        return low
    matches = [p for p in names if p.lower().startswith(low)] if low else []
    if len(matches) == 1:
        return matches[0].lower()
    if not matches:
        raise NetSecurityError(f"A parameter cannot be found that matches parameter name "
                               f"'{typed}'.")
    raise NetSecurityError(f"Parameter cannot be processed because the parameter name "
                           f"'{typed}' is ambiguous. Possible matches include: "
                           f"{' '.join('-' + m for m in matches)}.")


def parse(command: str) -> Command:
    """Read one cmdlet line; NetSecurityError (PowerShell's wording) for a malformed one."""
    tokens = _words(command)
    if not tokens or not is_cmdlet(tokens[0][0]):
        raise NetSecurityError("not a *-NetFirewallRule cmdlet")
    cmdlet = _BY_LOWER[tokens[0][0].lower()]
    items: list[_Param | tuple[str, ...]] = []
    i = 1
    while i < len(tokens):
        text, bare = tokens[i]
        if text == ",":
            raise NetSecurityError("Missing argument in parameter list.")
        if bare and text.startswith("-") and len(text) > 1 and not text[1].isdigit():
            name, colon, rest = text[1:].partition(":")
            if colon:
                # -Name:value (and -Name:value,value2): the value is bound to this parameter.
                elems = [rest] if rest else []
                i += 1
                elems, i = _array(tokens, i, elems)
                if not elems:
                    raise NetSecurityError(f"Missing an argument for parameter '{name}'.")
                items.append(_Param(name, tuple(elems)))
                continue
            items.append(_Param(name, None))
            i += 1
            continue
        elems, i = _array(tokens, i + 1, [text])
        items.append(tuple(elems))
    params: dict[str, tuple[str, ...]] = {}
    switches: set[str] = set()
    positional: list[tuple[str, ...]] = []
    j = 0
    while j < len(items):
        it = items[j]
        if isinstance(it, tuple):
            positional.append(it)
            j += 1
            continue
        key = _resolve(cmdlet, it.name)
        if key in params or key in switches:
            raise NetSecurityError(f"Cannot bind parameter because parameter "
                                   f"'{_canon_name(cmdlet, key)}' is specified more than once.")
        if key in _SWITCHES:
            if it.value is not None:
                flag = it.value[0].lower().lstrip("$")
                if flag not in ("true", "false"):
                    raise NetSecurityError(f"Cannot convert '{it.value[0]}' to the switch "
                                           f"parameter '{_canon_name(cmdlet, key)}'.")
                if flag == "true":
                    switches.add(key)
            else:
                switches.add(key)
            j += 1
            continue
        if it.value is not None:
            params[key] = it.value
            j += 1
            continue
        nxt = items[j + 1] if j + 1 < len(items) else None
        if not isinstance(nxt, tuple):
            raise NetSecurityError(
                f"Missing an argument for parameter '{_canon_name(cmdlet, key)}'. Specify a "
                "parameter of the type required and try again.")
        params[key] = nxt
        j += 2
    cmd = Command(cmdlet, params, frozenset(switches), tuple(positional))
    _check_values(cmd)
    return cmd


def _array(tokens: list[tuple[str, bool]], i: int,
           elems: list[str]) -> tuple[list[str], int]:
    """Extend ``elems`` with ``, x`` continuations starting at ``tokens[i]``."""
    while i < len(tokens) and tokens[i][0] == "," and not tokens[i][1]:
        if i + 1 >= len(tokens) or tokens[i + 1][0] == ",":
            raise NetSecurityError("Missing expression after ','.")
        elems.append(tokens[i + 1][0])
        i += 2
    return elems, i


def _enum(cmd: Command, key: str, values: Sequence[str]) -> list[str]:
    allowed = _ENUMS[key]
    out: list[str] = []
    for v in values:
        for part in v.split(",") if key == "profile" else [v]:
            p = part.strip()
            match = next((a for a in allowed if a.lower() == p.lower()), None)
            if match is None:
                # PowerShell's parameter binding error for a cdxml enum (LanguagePrimitives);
                # type names: Microsoft.PowerShell.Cmdletization.GeneratedTypes.NetSecurity.*.
                typ = (f"Microsoft.PowerShell.Cmdletization.GeneratedTypes.NetSecurity."
                       f"{_ENUM_TYPE[key]}" if key in _ENUM_TYPE
                       else "System.Management.Automation.ActionPreference")
                raise NetSecurityError(
                    f"Cannot bind parameter '{_canon_name(cmd.cmdlet, key)}'. Cannot convert "
                    f"value \"{v}\" to type \"{typ}\". Error: \"Unable to match the identifier "
                    f"name {p} to a valid enumerator name. Specify one of the following "
                    f"enumerator names and try again: {', '.join(allowed)}\"")
            out.append(match)
    return out


def _check_values(cmd: Command) -> None:
    """Parameter binding: enum values, the parameter set, positional arguments."""
    for key in ("direction", "action", "enabled", "profile", "erroraction"):
        if key in cmd.params:
            vals = _enum(cmd, key, cmd.params[key])
            multi = cmd.cmdlet in (ENABLE, DISABLE, REMOVE) or key == "profile"
            if len(vals) > 1 and not multi:
                cmd.one(key)
    if cmd.positional:
        if cmd.cmdlet == NEW or "name" in cmd.params or len(cmd.positional) > 1:
            raise NetSecurityError(f"A positional parameter cannot be found that accepts "
                                   f"argument '{cmd.positional[-1][0]}'.")
        cmd.params["name"] = cmd.positional[0]
    chosen = [k for k in ("name", "displayname", "displaygroup", "group") if k in cmd.params]
    if cmd.cmdlet == NEW:
        if "displayname" not in cmd.params:
            # New-NetFirewallRule's -DisplayName is mandatory (Learn: Required: True); in a
            # scenario nobody can answer PowerShell's prompt for it.
            raise NetSecurityError("Cannot process command because of one or more missing "
                                   "mandatory parameters: DisplayName.")
        return
    query = [k for k in _QUERY if k.lower() in cmd.params]
    ambiguous = False
    if cmd.cmdlet == SET:
        ambiguous = len(chosen) != 1
    else:
        by_id = [k for k in ("name", "displayname") if k in cmd.params]
        ambiguous = len(by_id) > 1 or (bool(by_id) and (bool(query) or "all" in cmd.switches))
    if ambiguous:
        raise NetSecurityError(
            "Parameter set cannot be resolved using the specified named parameters. One or "
            "more parameters issued cannot be used together or an insufficient number of "
            "parameters were provided.")


# ---- values ----------------------------------------------------------------------------------


def _remote(values: Sequence[str]) -> Scope:
    parts: list[str] = []
    for v in values:
        for raw in v.split(","):
            p = raw.strip()
            low = p.lower()
            if low in ("any", "*"):
                if len(values) > 1:
                    raise NetSecurityError(_BAD_ADDRESS)
                return Scope.all()
            if low in ("localsubnet", "localsubnet4"):
                parts.append("LocalSubnet")
                continue
            if low.rstrip("46") in _OTHER_ADDRESS_KEYWORDS:
                raise NetSecurityError(f"-RemoteAddress {p} is not modelled by wmilab (it "
                                       "models Any, LocalSubnet, addresses, subnets and ranges)")
            lo, dash, hi = p.partition("-")
            if dash:
                # A range a-b (Learn: "IPv4 Range: 1.2.3.4-1.2.3.7") is the subnets covering it.
                try:
                    a, b = IPv4Address(lo.strip()), IPv4Address(hi.strip())
                except AddressValueError:
                    raise NetSecurityError(_BAD_ADDRESS) from None
                if a > b:
                    raise NetSecurityError(_BAD_ADDRESS)
                parts += [str(n) for n in summarize_address_range(a, b)]
                continue
            parts.append(p)
    if parts == ["LocalSubnet"]:
        return Scope.subnet()  # as netsh's remoteip=LocalSubnet
    try:
        return Scope.custom(",".join(parts))
    except ConfigError:
        raise NetSecurityError(_BAD_ADDRESS) from None


def _ports(values: Sequence[str], protocol: str) -> wf.PortSpec:
    spans: list[tuple[int, int]] = []
    keywords: set[str] = set()
    for v in values:
        for raw in v.split(","):
            p = raw.strip()
            low = p.lower()
            if low == "any":
                if len(values) > 1:
                    raise NetSecurityError(_BAD_PORT_KEYWORD)
                return wf.PortSpec()
            if low in _PORT_KEYWORDS:
                if protocol != "TCP":
                    # RPC and RPCEPMap name TCP endpoints (MS-RPCE 2.1.1.1): with another
                    # protocol Windows refuses the keyword (NetworkingDsc#34 wording).
                    raise NetSecurityError(_BAD_PORT_KEYWORD)
                keywords.add(_PORT_KEYWORDS[low])
                continue
            if low in _OTHER_PORT_KEYWORDS:
                raise NetSecurityError(f"-LocalPort {p} is not modelled by wmilab (it models "
                                       "port numbers, ranges, RPC and RPCEPMap)")
            lo_t, _, hi_t = p.partition("-")
            if not lo_t.strip().isdigit() or (hi_t and not hi_t.strip().isdigit()):
                raise NetSecurityError(_BAD_PORT_KEYWORD if any(c.isalpha() for c in p)
                                       else f"The port is invalid: '{p}'.")
            lo = int(lo_t)
            hi = int(hi_t) if hi_t else lo
            if not 0 < lo <= hi <= 65535:
                raise NetSecurityError(f"The port is invalid: '{p}'.")
            if protocol not in ("TCP", "UDP"):
                # Choice (docs/choices.md): wmilab's words; Learn says ports need TCP or UDP.
                raise NetSecurityError("The port is invalid: port numbers need -Protocol TCP "
                                       "or UDP.")
            spans.append((lo, hi))
    return wf.PortSpec(tuple(sorted(spans)), frozenset(keywords))


def _protocol(text: str) -> str:
    low = text.strip().lower()
    # Learn -Protocol: names TCP, UDP, ICMPv4, ICMPv6, or numbers 0-255 (6 TCP, 17 UDP).
    found = {"tcp": "TCP", "6": "TCP", "udp": "UDP", "17": "UDP", "any": "ANY"}.get(low)
    if found is None:
        raise NetSecurityError(f"-Protocol {text} is not modelled by wmilab (TCP, UDP or Any)")
    return found


def _profiles(cmd: Command) -> frozenset[wf.WfProfile]:
    vals = _enum(cmd, "profile", cmd.params["profile"])
    if "Any" in vals:
        return wf.ALL_PROFILES
    if "NotApplicable" in vals:
        raise NetSecurityError("-Profile NotApplicable is not modelled by wmilab")
    return frozenset(wf.WfProfile(v.lower()) for v in vals)


def _apply_props(cmd: Command, rule: wf.Rule) -> wf.Rule:
    """``rule`` with the property parameters of ``cmd`` applied (New- and Set-)."""
    p = cmd.params
    for key, neutral in _IGNORED_ANY.items():
        if key in p and [x.lower() for x in p[key]] != [neutral.lower()]:
            raise NetSecurityError(f"-{_canon_name(cmd.cmdlet, key)} {','.join(p[key])} is not "
                                   f"modelled by wmilab (only {neutral})")
    for key in p:
        if key in ("icmptype", "package", "localuser", "remoteuser", "remotemachine",
                   "interfacealias", "overrideblockrules", "dynamictarget",
                   "loosesourcemapping", "localonlymapping"):
            raise NetSecurityError(f"-{_canon_name(cmd.cmdlet, key)} is not modelled by wmilab")
    if "newdisplayname" in p:
        rule = replace(rule, name=cmd.one("newdisplayname") or rule.name)
    if "enabled" in p:
        rule = replace(rule, enabled=_enum(cmd, "enabled", p["enabled"])[0] == "True")
    if "direction" in p:
        rule = replace(rule, direction="in" if _enum(cmd, "direction", p["direction"])[0]
                       == "Inbound" else "out")
    if "action" in p:
        act = _enum(cmd, "action", p["action"])[0]
        if act == "NotConfigured":
            raise NetSecurityError("-Action NotConfigured is not modelled by wmilab")
        rule = replace(rule, action="allow" if act == "Allow" else "block")
    if "profile" in p:
        rule = replace(rule, profiles=_profiles(cmd))
    if "program" in p:
        prog = cmd.one("program") or ""
        rule = replace(rule, program=None if prog.lower() == "any" else wf.parse_program(prog),
                       program_text=None if prog.lower() == "any" else prog)
    if "service" in p:
        svc = (cmd.one("service") or "").strip().lower()
        rule = replace(rule, service=None if svc == "any" else svc)
    if "protocol" in p:
        rule = replace(rule, protocol=_protocol(cmd.one("protocol") or ""))  # type: ignore[arg-type]
    if "localport" in p:
        rule = replace(rule, local_ports=_ports(p["localport"], rule.protocol))
    elif "protocol" in p and not rule.local_ports.any:
        # The rule keeps its ports: they must still suit the new protocol.
        _ports([rule.local_ports.text().replace(wf.RPC_EPMAP, "RPCEPMap")], rule.protocol)
    if "remoteaddress" in p:
        rule = replace(rule, remote=_remote(p["remoteaddress"]))
    if "remoteport" in p:
        # The peer's port, modelled for outbound rules (model/advfirewall.py, remoteport=).
        ports = _ports(p["remoteport"], rule.protocol)
        if ports.keywords or (not ports.any and rule.direction != "out"):
            raise NetSecurityError(f"-RemotePort {','.join(p['remoteport'])} is modelled by "
                                   "wmilab for outbound rules only, as port numbers and ranges")
        rule = replace(rule, remote_ports=ports)
    if "group" in p and cmd.cmdlet == NEW:
        rule = replace(rule, group=cmd.one("group") or "")
    return rule


# ---- running -------------------------------------------------------------------------------


def _pattern(value: str) -> tuple[bool, str]:
    wild = any(c in value for c in "*?[")
    return wild, value.lower()


def _match(value: str, field: str) -> bool:
    wild, pat = _pattern(value)
    return fnmatch.fnmatchcase(field.lower(), pat) if wild else field.lower() == pat


def _not_found(prop: str, value: str) -> NetSecurityError:
    # fabianosrc/RDPControl#10 (a capture of Windows' CimJob error).
    return NetSecurityError(f"No MSFT_NetFirewallRule objects found with property '{prop}' "
                            f"equal to '{value}'.  Verify the value of the property and retry.")


def _select(local: wf.LocalWfas, cmd: Command, quiet: bool) -> list[int]:
    """Indices of the rules a cmdlet's selection parameters pick (Name, DisplayName, or the
    query DisplayGroup / Group / Direction / Action / Enabled; none at all is every rule)."""
    rules = local.rules
    for key in ("description", "edgetraversalpolicy", "owner", "policystoresource",
                "policystoresourcetype", "primarystatus", "status", "loosesourcemapping",
                "localonlymapping"):
        if key in cmd.params and cmd.cmdlet != SET:
            # A filter wmilab cannot apply would select every rule: refuse it instead.
            raise NetSecurityError(f"-{_canon_name(cmd.cmdlet, key)} as a filter is not "
                                   "modelled by wmilab (use -Name, -DisplayName, "
                                   "-DisplayGroup, -Direction, -Action, -Enabled)")
    idx = list(range(len(rules)))
    # Choice: -Group (the indirect @FirewallAPI string on Windows) matches the group's
    # name, which is all wmilab keeps.
    for key, prop, attr in (("name", "Name", "rule_id"), ("displayname", "DisplayName", "name"),
                            ("displaygroup", "DisplayGroup", "group"),
                            ("group", "Group", "group")):
        if key not in cmd.params:
            continue
        picked: set[int] = set()
        for value in cmd.params[key]:
            found = {i for i in idx if getattr(rules[i], attr)
                     and _match(value, getattr(rules[i], attr))}
            if not found and not _pattern(value)[0] and not quiet:
                raise _not_found(prop, value)
            picked |= found
        idx = [i for i in idx if i in picked]
    if cmd.cmdlet != SET:
        if "direction" in cmd.params:
            want = {"in" if d == "Inbound" else "out"
                    for d in _enum(cmd, "direction", cmd.params["direction"])}
            idx = [i for i in idx if rules[i].direction in want]
        if "action" in cmd.params:
            acts = {a.lower() for a in _enum(cmd, "action", cmd.params["action"])}
            idx = [i for i in idx if rules[i].action in acts]
        if "enabled" in cmd.params:
            states = {e == "True" for e in _enum(cmd, "enabled", cmd.params["enabled"])}
            idx = [i for i in idx if rules[i].enabled in states]
    return idx


def _store(cmd: Command) -> None:
    store = cmd.one("policystore")
    # Learn -PolicyStore: PersistentStore is the local store; a host name (localhost) is the
    # computer's local GPO, domain\name a domain GPO: both are Group Policy.
    if store is not None and store.lower() != "persistentstore":
        raise NetSecurityError(
            f"-PolicyStore {store}: wmilab applies host commands to the local store "
            "(PersistentStore); give Group Policy rules under the host's policy table "
            "(docs/scenario.md)")


def run(local: wf.LocalWfas, command: str, os: str | None = None, gpo: bool = False) -> str:
    """Run one cmdlet on ``local``; what PowerShell prints ("" for these cmdlets without
    -PassThru or -WhatIf). ``os``: the host's OS (None skips the NetSecurity check); ``gpo``:
    ``local`` is a Group Policy object's store, which ``-PolicyStore`` names."""
    words = command.split(None, 1)
    name = words[0] if words else ""
    if os is not None and not oses.get(os).netsecurity_cmdlets:
        # Learn powershell/module/netsecurity: Windows 8 / Server 2012 and later.
        raise not_recognized(_BY_LOWER.get(name.lower(), name))
    cmd = parse(command)
    if not gpo:
        _store(cmd)
    ea = cmd.params.get("erroraction")
    quiet = ea is not None and _enum(cmd, "erroraction", ea)[0] in ("SilentlyContinue",
                                                                    "Ignore")
    whatif = "whatif" in cmd.switches
    if cmd.cmdlet == NEW:
        return _new(local, cmd, whatif)
    idx = _select(local, cmd, quiet)
    if whatif:
        return "\n".join(f'What if: {cmd.cmdlet.split("-")[0]} '
                         f'"{local.rules[i].rule_id or local.rules[i].name}"' for i in idx)
    if cmd.cmdlet == REMOVE:
        drop = set(idx)
        local.rules = [r for i, r in enumerate(local.rules) if i not in drop]
    elif cmd.cmdlet in (ENABLE, DISABLE):
        for i in idx:
            local.rules[i] = replace(local.rules[i], enabled=cmd.cmdlet == ENABLE)
    else:
        for i in idx:
            local.rules[i] = _apply_props(cmd, local.rules[i])
    return ""


def _new(local: wf.LocalWfas, cmd: Command, whatif: bool) -> str:
    display = cmd.one("displayname") or ""
    if not display.strip() or display.strip().lower() == "all":
        # Learn -DisplayName: "This parameter cannot be set to All."
        raise NetSecurityError(f"The DisplayName '{display}' is not allowed.")
    rid = cmd.one("name")
    if rid is None:
        # Windows gives a random GUID; wmilab a stable one, so reruns give the same store.
        rid = "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{display}#{len(local.rules)}")) + "}"
    elif any(r.rule_id.lower() == rid.lower() for r in local.rules):
        # ERROR_ALREADY_EXISTS (0x800700B7): one rule per Name in a store (Learn -Name).
        raise NetSecurityError("Cannot create a file when that file already exists.")
    rule = _apply_props(cmd, wf.Rule(name=display, rule_id=rid))
    if whatif:
        return f'What if: New "{rid}"'
    local.rules.append(rule)
    return ""
