"""netsh's command words, and the abbreviations netsh accepts for them.

"NetShell commands can be abbreviated to the shortest unambiguous string" (Learn, "Netshell
and Command Abbreviation": ``sh ip int`` for ``show ip interface``), so an administrator
types ``netsh advf fire sh rule name=all`` or ``netsh int ipv4 set dyn tcp ...``.
:func:`expand` rewrites the command words of a line to their full names before any context
parses it; parameters (``name=...``, ``state on``) are left as typed.

The words of each context are those ``netsh ?`` lists on Windows 10 (and XP SP2 for the
``firewall`` context), so that a prefix is judged unambiguous among the same words as on
Windows, not only among those wmilab models. An exact word wins over longer ones (``ip``
against ``ipv4``); an ambiguous prefix is left alone, and the context then reports the
command as not found (Choice, docs/choices.md).
"""

from __future__ import annotations

import re

# A context maps each of its words to what follows it: another context, or None where the
# parameters begin. Words wmilab does not model lead to None too (they only have to exist
# so that a prefix is judged against them).
_Tree = dict[str, "_Tree | None"]

_PROFILE_WORDS: _Tree = {w: None for w in ("state", "firewallpolicy", "settings", "logging")}
_PROFILES: _Tree = {
    **{p: _PROFILE_WORDS for p in ("allprofiles", "currentprofile", "domainprofile",
                                   "privateprofile", "publicprofile")},
    "global": None, "store": None}
_RULE: _Tree = {"rule": None}
_ADVFIREWALL: _Tree = {
    "consec": None, "dump": None, "export": None, "help": None, "import": None,
    "mainmode": None, "monitor": None, "reset": None,
    "firewall": {"add": _RULE, "delete": _RULE, "dump": None, "help": None, "set": _RULE,
                 "show": _RULE},
    "set": _PROFILES, "show": _PROFILES}
_LEGACY_SHOW = ("allowedprogram", "config", "currentprofile", "icmpsetting", "logging",
                "multicastbroadcastresponse", "notifications", "opmode", "portopening",
                "service", "state")
_LEGACY_SET = ("allowedprogram", "icmpsetting", "logging", "multicastbroadcastresponse",
               "notifications", "opmode", "portopening", "service")
_FIREWALL: _Tree = {
    "add": {"allowedprogram": None, "portopening": None},
    "delete": {"allowedprogram": None, "portopening": None},
    "dump": None, "help": None, "reset": None,
    "set": {w: None for w in _LEGACY_SET},
    "show": {w: None for w in _LEGACY_SHOW}}
_IP_SET = ("address", "compartment", "dnsservers", "dynamicport", "global", "interface",
           "neighbors", "route", "subinterface", "winsservers")
_IP_SHOW = ("addresses", "compartments", "config", "destinationcache", "dnsservers",
            "dynamicport", "excludedportrange", "global", "icmpstats", "interfaces",
            "ipaddresses", "ipnettomedia", "ipstats", "joins", "neighbors", "offload", "route",
            "subinterfaces", "tcpconnections", "tcpstats", "udpconnections", "udpstats",
            "winsservers")
_IPV: _Tree = {"add": None, "delete": None, "dump": None, "help": None, "install": None,
               "reset": None, "uninstall": None,
               "set": {w: None for w in _IP_SET}, "show": {w: None for w in _IP_SHOW}}
_INTERFACE: _Tree = {
    "6to4": None, "dump": None, "help": None, "httpstunnel": None, "ip": None, "ipv4": _IPV,
    "ipv6": _IPV, "isatap": None, "portproxy": None, "set": None, "show": None, "tcp": None,
    "teredo": None, "udp": None}
TOP: _Tree = {
    **{w: None for w in (
        "abort", "add", "alias", "branchcache", "bridge", "bye", "commit", "delete",
        "dhcpclient", "dnsclient", "dump", "exec", "exit", "help", "http", "ipsec", "lan",
        "mbn", "namespace", "netio", "offline", "online", "p2p", "popd", "pushd", "quit", "ras",
        "rpc", "set", "show", "trace", "unalias", "wcn", "wfp", "winhttp", "winsock", "wlan")},
    "advfirewall": _ADVFIREWALL, "firewall": _FIREWALL, "interface": _INTERFACE}

_WORD = re.compile(r"\s*([^\s\"=]+)(?=\s|$)")


def match(token: str, context: _Tree) -> str | None:
    """The word of ``context`` that ``token`` names: itself, or the one word it abbreviates."""
    t = token.lower()
    if t in context:
        return t
    found = [w for w in context if w.startswith(t)]
    return found[0] if len(found) == 1 else None


def expand(command: str, bare: bool = True) -> str:
    """``command`` with its leading netsh command words written out in full. A line that
    does not start with ``netsh`` is taken as netsh's own words only when ``bare`` (what
    ``wmilab netsh`` is given); otherwise it is another program's and left alone."""
    out: list[str] = []
    pos = 0
    m = _WORD.match(command, pos)
    if m is not None and m.group(1).lower() in ("netsh", "netsh.exe"):
        out.append(command[:m.end()])
        pos = m.end()
    elif not bare:
        return command
    context: _Tree | None = TOP
    while context is not None:
        m = _WORD.match(command, pos)
        if m is None:
            break
        word = match(m.group(1), context)
        if word is None:
            break
        out.append(command[pos:m.start(1)] + word)
        pos = m.end()
        context = context[word]
    return "".join(out) + command[pos:]
