"""A host's ``commands`` (scenario-format.md "Commands"): what an administrator typed.

:func:`apply` folds them into the host's configuration: ``netsh`` commands join the netsh
list (run in order, both contexts), ``reg add`` / ``reg delete`` set or remove the registry
values the model reads, ``net stop|start winmgmt`` set the service state, ``netsh int ipv4
set dynamicport`` the TCP dynamic port range (model/dynamicport.py), ``winmgmt
/standalonehost|/sharedhost`` where WMI runs (model/wmihost.py) and ``net localgroup`` the
group edits the directory applies (model/localgroup.py). A scenario
describes the computer after everything has taken effect, so a value read at a restart or a
reboot counts as applied. Commands wmilab does not model yet are refused with a clear
message, never ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from wmilab.errors import ConfigError
from wmilab.model import dynamicport, localgroup, netsecurity, netshwords, wmihost
from wmilab.model.netsh import tokenize

__all__ = ["REGISTRY_KEYS", "Applied", "apply"]

# Where each value lives and its type (KB 951016; KB 5004442; TechNet Security Options for
# ForceGuest; MSDocs WmiSdk/setting-security-on-an-asynchronous-call and
# connecting-to-wmi-remotely-starting-with-vista for CIMOM; KB 154596 for Rpc\Internet).
_POLICIES = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System"
_APPCOMPAT = r"HKLM\SOFTWARE\Microsoft\Ole\AppCompat"
_CIMOM = r"HKLM\SOFTWARE\Microsoft\WBEM\CIMOM"
_RPC = r"HKLM\SOFTWARE\Microsoft\Rpc\Internet"
# Learn "RPC Interface Restriction": the two values behind "Restrictions for Unauthenticated
# RPC Clients" and "Enable RPC Endpoint Mapper Client Authentication".
_RPC_POLICY = r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Rpc"
REGISTRY_KEYS: dict[str, tuple[str, str]] = {
    "ForceGuest": (r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa", "REG_DWORD"),
    "LocalAccountTokenFilterPolicy": (_POLICIES, "REG_DWORD"),
    "FilterAdministratorToken": (_POLICIES, "REG_DWORD"),
    "RequireIntegrityActivationAuthenticationLevel": (_APPCOMPAT, "REG_DWORD"),
    "RaiseActivationAuthenticationLevel": (_APPCOMPAT, "REG_DWORD"),
    "UnsecAppAccessControlDefault": (_CIMOM, "REG_DWORD"),
    "AllowAnonymousCallback": (_CIMOM, "REG_DWORD"),
    "Ports": (_RPC, "REG_MULTI_SZ"),
    "PortsInternetAvailable": (_RPC, "REG_SZ"),
    "UseInternetPorts": (_RPC, "REG_SZ"),
    "RestrictRemoteClients": (_RPC_POLICY, "REG_DWORD"),
    "EnableAuthEpResolution": (_RPC_POLICY, "REG_DWORD"),
}
_HIVES = {"hklm": "HKLM", "hkey_local_machine": "HKLM"}


@dataclass
class Applied:
    netsh: list[str]
    registry: dict[str, int | str | tuple[str, ...]]
    services: dict[str, str]
    netsh_index: list[int] = field(default_factory=list)  # each netsh entry's command index
    dynamic_ports: dict[str, dynamicport.DynamicPorts] = field(default_factory=dict)
    wmi_host: wmihost.WmiHost | None = None
    group_edits: list[localgroup.GroupEdit] = field(default_factory=list)
    os: str = "xp-sp2"


def apply(commands: Sequence[str], registry: Mapping[str, int | str | tuple[str, ...]],
          services: Mapping[str, str], known_registry: Sequence[str],
          os: str = "xp-sp2") -> Applied:
    """Fold ``commands`` into the netsh list, registry and services (and the other settings of
    :class:`Applied`) of a host running ``os``; ConfigError naming the command's index
    otherwise."""
    out = Applied([], dict(registry), dict(services), os=os)
    for i, command in enumerate(commands):
        try:
            before = len(out.netsh)
            _one(command, out, known_registry, i)
            out.netsh_index += [i] * (len(out.netsh) - before)
        except ConfigError as e:
            raise ConfigError(f"{command!r}: {e.message}", (i,)) from None
    return out


def _one(command: str, out: Applied, known: Sequence[str], index: int) -> None:
    if netsecurity.is_cmdlet(command.split(None, 1)[0] if command.strip() else ""):
        # PowerShell's *-NetFirewallRule: checked now, run with the netsh list on the WFAS
        # rule set (model/netsecurity.py; the OS is checked there).
        netsecurity.parse(command)
        out.netsh.append(command)
        return
    words = tokenize(netshwords.expand(command, bare=False))
    if not words:
        raise ConfigError("empty command")
    head = words[0].lower().removesuffix(".exe")
    if head == "netsh" and dynamicport.is_dynamicport(words):
        _dynamicport(words, out)
    elif head == "netsh":
        out.netsh.append(command)
    elif head == "winmgmt":
        out.wmi_host = wmihost.parse(words, out.os)
    elif head == "net" and len(words) > 1 and words[1].lower() == "localgroup":
        out.group_edits.append(localgroup.parse(words[1:], index, command))
    elif head == "reg":
        _reg(words[1:], out, known)
    elif head == "net" and len(words) == 3 and words[1].lower() in ("stop", "start"):
        if words[2].lower() != "winmgmt":
            raise ConfigError(f"wmilab models the winmgmt service only, not {words[2]!r}")
        # net stop leaves the service stopped (it starts on demand: KB 875605).
        out.services["winmgmt"] = "running" if words[1].lower() == "start" else "stopped"
    else:
        raise ConfigError("not a command wmilab models yet (netsh, reg add|delete, "
                          "net stop|start winmgmt, net localgroup, winmgmt, *-NetFirewallRule)")


def _dynamicport(words: list[str], out: Applied) -> None:
    cmd = dynamicport.parse(words, out.os)
    if cmd.verb == "show":
        return  # prints the range, changes nothing
    assert cmd.ports is not None
    out.dynamic_ports[cmd.protocol] = cmd.ports


def _reg(args: list[str], out: Applied, known: Sequence[str]) -> None:
    if not args or args[0].lower() not in ("add", "delete"):
        raise ConfigError("ERROR: Invalid syntax. (reg add|delete KEY /v NAME ...)")
    verb, rest = args[0].lower(), args[1:]
    if not rest:
        raise ConfigError("ERROR: Invalid syntax. (the key is missing)")
    key = _key(rest[0])
    opts: dict[str, str] = {}
    flags: set[str] = set()
    j = 1
    while j < len(rest):
        w = rest[j].lower()
        if w in ("/v", "/t", "/d"):
            if j + 1 >= len(rest):
                raise ConfigError(f"ERROR: Invalid syntax. ({rest[j]} needs a value)")
            opts[w] = rest[j + 1]
            j += 2
        elif w == "/f":
            flags.add(w)
            j += 1
        else:
            raise ConfigError(f"ERROR: Invalid syntax. ({rest[j]!r} is no option of reg "
                              f"{verb} that wmilab models: /v /t /d /f)")
    if "/v" not in opts:
        raise ConfigError("ERROR: Invalid syntax. (give /v NAME)")
    canon = {k.lower(): k for k in known}.get(opts["/v"].lower())
    if canon is None or canon not in REGISTRY_KEYS:
        raise ConfigError(f"{opts['/v']!r} is not a registry value wmilab models; expected "
                          f"one of: {', '.join(known)}")
    where, kind = REGISTRY_KEYS[canon]
    if key.lower() != where.lower():
        raise ConfigError(f"{canon} lives under {where}, not {key}")
    if verb == "delete":
        out.registry.pop(canon, None)
        return
    typ = opts.get("/t", "REG_SZ").upper()
    if typ != kind:
        raise ConfigError(f"{canon} is a {kind}, not {typ}")
    data = opts.get("/d")
    if data is None:
        raise ConfigError(f"give /d DATA for {canon}")
    if kind == "REG_DWORD":
        try:
            value = int(data, 16) if data.lower().startswith("0x") else int(data)
        except ValueError:
            raise ConfigError(f"ERROR: Invalid syntax. ({data!r} is not a number for a "
                              "REG_DWORD)") from None
        if not 0 <= value <= 0xFFFFFFFF:
            raise ConfigError(f"{data!r} does not fit a REG_DWORD")
        out.registry[canon] = value
    elif kind == "REG_SZ":
        text = data.strip().upper()
        if text not in ("Y", "N"):
            raise ConfigError(f"{canon} takes \"Y\" or \"N\", not {data!r}")
        out.registry[canon] = text
    else:
        # REG_MULTI_SZ: reg separates the strings with \0 (reg add /?).
        out.registry[canon] = tuple(p for p in data.split("\\0") if p)


def _key(text: str) -> str:
    hive, _, rest = text.replace("/", "\\").partition("\\")
    h = _HIVES.get(hive.lower())
    if h is None:
        raise ConfigError(f"ERROR: Invalid key name. ({text!r}: wmilab models HKLM only)")
    return f"{h}\\{rest.rstrip(chr(92))}"
