"""The smallest least-privilege fix for a failing call, proven by re-evaluation.

For the step where a call fails, :func:`candidates` proposes changes in order of
privilege, narrowest first: widen the scope of an exception that already exists,
then a port opening or program exception for exactly the caller's address, then a
service exception, each as a local netsh command and, where Group Policy overrides
the local settings, as the Group Policy change. Every candidate is applied to a
copy of the model and the flow is run again; only a candidate that moves the call
past its failing step is kept. When the call works, every kept change is removed
in turn and dropped if the call still works without it, so the fix is minimal.

Least privilege (docs/remedy.md): no fix turns the firewall off, none grants
Everyone, and ANONYMOUS LOGON is granted Remote Access only for the anonymous
callback, after the semisynchronous alternative that needs no grant at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, summarize_address_range
from typing import Any

from wmilab import flow, steps
from wmilab.errors import ConfigError
from wmilab.model import advfirewall, gpo_wfas, hardening, wfas
from wmilab.model import callback as cb
from wmilab.model import dcom as dcom_model
from wmilab.model import firewall as fw
from wmilab.model import policy as gp
from wmilab.model import wmi as wmi_model
from wmilab.model.addresses import Scope
from wmilab.model.ports import PortRange
from wmilab.model.security import COM_RIGHTS_EXECUTE
from wmilab.model.world import HostConfig, World
from wmilab.scenario import Call

MAX_ROUNDS = 40


# ---- edits: what a change does to the scenario ------------------------------------------


@dataclass(frozen=True)
class NetshAdd:
    command: str
    more: tuple[str, ...] = ()  # further commands of the same change (a range of ports)

    @property
    def commands(self) -> tuple[str, ...]:
        return (self.command, *self.more)


@dataclass(frozen=True)
class PolicySet:
    key: str
    value: Mapping[str, Any]


@dataclass(frozen=True)
class GpoRuleAdd:
    """Append ``command`` (New-, Set- or Remove-NetFirewallRule) to a GPO's WFAS Inbound or
    Outbound Rules."""

    key: str  # the policy key of the Inbound or Outbound Rules node (model/gpo_wfas.py)
    command: str


@dataclass(frozen=True)
class DcomEnable:
    pass


@dataclass(frozen=True)
class DcomRights:
    table: str  # access_limits | launch_limits | access_defaults | launch_defaults
    principal: str
    rights: tuple[str, ...]


@dataclass(frozen=True)
class WmiRights:
    namespace: str
    principal: str
    rights: tuple[str, ...]


@dataclass(frozen=True)
class RegistrySet:
    name: str
    value: int


@dataclass(frozen=True)
class ServiceState:
    name: str  # winmgmt
    state: str  # running | stopped


@dataclass(frozen=True)
class CallMode:
    mode: str


@dataclass(frozen=True)
class CallAuthLevel:
    level: str  # a model/hardening.py LEVELS name


Edit = (NetshAdd | PolicySet | GpoRuleAdd | DcomEnable | DcomRights | WmiRights | RegistrySet | ServiceState
        | CallMode | CallAuthLevel)


@dataclass(frozen=True)
class Change:
    """One fix an administrator applies: where, what kind, why, and the exact steps."""

    host: str | None
    kind: str  # netsh | policy | dcom | wmi | registry | service | call
    summary: str
    commands: tuple[str, ...]
    edit: Edit

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "kind": self.kind, "summary": self.summary,
                "commands": list(self.commands)}


@dataclass
class Remedy:
    """How to make one call work."""

    changes: list[Change] = field(default_factory=list)  # the configuration fix, minimal
    proven: bool = False  # the flow reports ok with ``changes`` applied
    unfixable: str | None = None  # why no configuration change can make the call work
    semisync: list[Change] | None = None  # for async calls: the (smaller) fix as semisync

    def all_changes(self) -> list[Change]:
        out: list[Change] = []
        if self.semisync is not None:
            out.extend(self.semisync)
        out.extend(c for c in self.changes if c not in out)
        return out


# ---- applying edits ---------------------------------------------------------------------


def _canon_key(key: str) -> str:
    return key.replace("\\", "/").strip().lower()


def _policy_get(cfg: HostConfig, key: str) -> tuple[str, Mapping[str, Any]] | None:
    for k, v in cfg.policy.items():
        if _canon_key(k) == _canon_key(key) and isinstance(v, Mapping):
            return k, v
    return None


def apply_edit(world: World, call: Call, host: str | None, edit: Edit) -> tuple[World, Call]:
    if isinstance(edit, CallMode):
        return world, call.with_mode(edit.mode)
    if isinstance(edit, CallAuthLevel):
        return world, replace(call, auth_level=edit.level)
    assert host is not None
    cfg = world.configs[host]
    if isinstance(edit, NetshAdd):
        return world.with_host(replace(cfg, netsh=(*cfg.netsh, *edit.commands))), call
    if isinstance(edit, PolicySet):
        policy = dict(cfg.policy)
        existing = _policy_get(cfg, edit.key)
        if existing is not None:
            del policy[existing[0]]
        policy[edit.key] = dict(edit.value)
        return world.with_host(replace(cfg, policy=policy)), call
    if isinstance(edit, GpoRuleAdd):
        policy = dict(cfg.policy)
        canon = "/".join(p.strip() for p in edit.key.replace("\\", "/").split("/") if p.strip())
        key, node = gpo_rules_entry(cfg.policy, edit.key,
                                    gpo_wfas.split_key(canon.lower()) or "inbound rules")
        policy[key] = {**node, "rules": [*node.get("rules", []), edit.command]}
        return world.with_host(replace(cfg, policy=policy)), call
    if isinstance(edit, DcomEnable):
        return world.with_host(replace(cfg, dcom={**cfg.dcom, "enable_dcom": True})), call
    if isinstance(edit, DcomRights):
        dcom = dict(cfg.dcom)
        table = dcom.get(edit.table)
        if isinstance(table, str):
            # An SDDL table: append an allow ACE for the principal.
            host_model = world.host(host)
            sid = world.directory.resolve(edit.principal, host)
            mask = _dcom_mask(edit.rights, edit.table)
            sd = getattr(host_model.dcom, edit.table).with_entry(sid, mask)
            dcom[edit.table] = sd.to_sddl()
        else:
            new_table = dict(table or {})
            for k in list(new_table):
                if k.lower() == edit.principal.lower():
                    del new_table[k]
            new_table[edit.principal] = list(edit.rights)
            dcom[edit.table] = new_table
        return world.with_host(replace(cfg, dcom=dcom)), call
    if isinstance(edit, WmiRights):
        wmi = {k: dict(v) for k, v in cfg.wmi.items()}
        ns_key = next((k for k in wmi if k.lower() == edit.namespace.lower()), edit.namespace)
        table = wmi.setdefault(ns_key, {})
        for k in list(table):
            if k.lower() == edit.principal.lower():
                del table[k]
        table[edit.principal] = list(edit.rights)
        return world.with_host(replace(cfg, wmi=wmi)), call
    if isinstance(edit, RegistrySet):
        return world.with_host(replace(cfg, registry={**cfg.registry, edit.name: edit.value})), call
    if isinstance(edit, ServiceState):
        return world.with_host(replace(cfg, services={**cfg.services, edit.name: edit.state})), call
    raise TypeError(edit)


def apply(world: World, call: Call, changes: list[Change]) -> tuple[World, Call]:
    for ch in changes:
        world, call = apply_edit(world, call, ch.host, ch.edit)
    return world, call


# ---- rendering helpers ------------------------------------------------------------------

_GPEDIT = ("Run gpedit.msc (on {host}): Local Computer Policy > Computer Configuration > "
           "Administrative Templates > {folder}")
_SECOPT = ("Run gpedit.msc (on {host}): Local Computer Policy > Computer Configuration > "
           "Windows Settings > Security Settings > Local Policies > Security Options")


def _gp_steps(host: str, key: str, text: str) -> tuple[str, ...]:
    folder, _, setting = key.rpartition("/")
    if key.startswith("Windows Settings/"):
        return (_SECOPT.format(host=host), f'Open "{setting}"', text)
    return (_GPEDIT.format(host=host, folder=folder.replace("/", " > ")),
            f'Open "{setting}"', text)


def _netsh(host: str, command: str, summary: str) -> Change:
    return Change(host, "netsh", summary, (command,), NetshAdd(command))


def _netsh_many(host: str, commands: list[str], summary: str) -> Change:
    return Change(host, "netsh", summary, tuple(commands),
                  NetshAdd(commands[0], tuple(commands[1:])))


# Choice (docs/choices.md): opening a restricted RPC range port by port is offered only up to
# this many ports; a larger range is better served by the program exception.
MAX_RANGE_OPENINGS = 256


def _range_openings(world: World, host: str, source: IPv4Address, what: str) -> list[Change]:
    """Port openings for every port of ``host``'s dynamic RPC range, for ``source`` only.

    Only for a range restricted with Rpc\\Internet\\Ports (KB 154596 pairs the restriction
    with opening exactly those ports); the default 1025-5000 is never opened port by port,
    and never a single guessed port, since Windows picks the port at run time.
    """
    h = world.host(host)
    ports = h.rpc_ports
    if "Ports" not in h.config.registry or len(ports) > MAX_RANGE_OPENINGS:
        return []
    cmds = [f"netsh firewall add portopening protocol=TCP port={p} name=RPC_{p} "
            f"scope=CUSTOM addresses={source}" for p in ports]
    return [_netsh_many(host, cmds, f"Open every port of {host}'s restricted RPC range "
                        f"{ports.describe()} (where {what} listens) to {source} only")]


def _policy(host: str, key: str, value: Mapping[str, Any], summary: str, how: str) -> Change:
    return Change(host, "policy", summary, _gp_steps(host, key, how), PolicySet(key, value))


# ---- firewall candidates ----------------------------------------------------------------


def _widen_addresses(scope: Scope, source: IPv4Address) -> str:
    return scope.with_address(source).policy_text()


def _firewall_candidates(
    world: World, host: str, source: IPv4Address, port: int | None, program: str, purpose: str,
    program_as_typed: str | None = None,
) -> list[Change]:
    h = world.host(host)
    if h.local_wfas is not None:
        return _wfas_candidates(world, host, source, port, program, purpose, program_as_typed)
    prof = h.config.current_profile
    local = h.local_firewall.profiles[prof]
    pol = h.policies.firewall.profile(prof)
    src = str(source)
    out: list[Change] = []

    # Blockers first: nothing else can help while they hold.
    if pol.no_exceptions is True:
        key = gp.policy_key(prof, gp.NO_EXCEPTIONS)
        out.append(_policy(
            host, key, {"state": "Not Configured"},
            f'Group Policy "Do not allow exceptions" blocks every exception on {host}; '
            "set it to Not Configured so the exception below can apply",
            "Select Not Configured, then OK"))
    if not local.exceptions_allowed and pol.no_exceptions is None:
        out.append(_netsh(host, "netsh firewall set opmode mode=ENABLE exceptions=ENABLE",
                          f"{host}'s firewall is set not to allow exceptions; allow them"))

    def admitting(scope: Scope) -> Scope:
        return scope if scope.matches(source, h.subnet) else scope.with_address(source)

    def gp_list(setting: str, entries: list[str], what: str) -> None:
        key = gp.policy_key(prof, setting)
        option = "ports" if setting == gp.DEFINE_PORTS else "programs"
        out.append(_policy(host, key, {"state": "Enabled", option: entries},
                           f"Group Policy defines {host}'s {option[:-1]} exceptions and ignores "
                           f"local ones: add {what} for {src} there",
                           "Keep Enabled; Show... > Add: " + entries[-1]))

    # Widen an exception that exists but is disabled or does not include the caller.
    if purpose in ("rpcss", "resolver") and port is not None:
        po = local.ports.get(("TCP", port))
        if po is not None and not (po.enabled and po.scope.matches(source, h.subnet)):
            scope = admitting(po.scope)
            out.append(_netsh(
                host,
                f"netsh firewall set portopening protocol=TCP port={port} name={po.name} "
                f"mode=ENABLE {scope.netsh_args()}",
                f"Let {src} through the existing port opening TCP {port} on {host}"))
    if purpose != "rpcss" or program == fw.SVCHOST:
        ra = local.services.get(fw.Service.REMOTEADMIN)
        if ra is not None and ra.enabled and not ra.scope.matches(source, h.subnet) and purpose != "sink":
            out.append(_netsh(
                host,
                f"netsh firewall set service type=REMOTEADMIN mode=ENABLE "
                f"{ra.scope.with_address(source).netsh_args()}",
                f"Add {src} to the scope of the Remote Administration exception on {host}"))
    if purpose == "sink":
        ap = local.programs.get(program)
        if ap is not None and not (ap.enabled and ap.scope.matches(source, h.subnet)):
            scope = admitting(ap.scope)
            out.append(_netsh(
                host,
                f"netsh firewall set allowedprogram program={_quote(ap.path)} mode=ENABLE "
                f"{scope.netsh_args()}",
                f"Let {src} reach the allowed program {ap.name} on {host}"))

    def gp_service_scope() -> None:
        sp = pol.service(fw.Service.REMOTEADMIN)
        key = gp.policy_key(prof, gp.REMOTE_ADMIN)
        if sp.state is True and not sp.scope.matches(source, h.subnet):
            addrs = _widen_addresses(sp.scope, source)
            out.append(_policy(host, key, {"state": "Enabled", "addresses": addrs},
                               f"Add {src} to the Group Policy Remote Administration exception "
                               f"on {host}",
                               f'Keep Enabled; set "Allow unsolicited incoming messages from" to '
                               f"{addrs}"))
        elif sp.state is not True:
            out.append(_policy(host, key, {"state": "Enabled", "addresses": src},
                               f"Enable the Remote Administration exception by Group Policy on "
                               f"{host}, for {src} only",
                               f'Select Enabled; set "Allow unsolicited incoming messages from" '
                               f"to {src}"))

    if purpose == "resolver":
        # Connection 2 on A: the seed ("enable the Allow Remote Administration exception ...
        # and open the DCOM port TCP 135 on Computer A") and KB 875605 prescribe Remote
        # Administration, which opens TCP 135 itself (TechNet cc737332). No public source says
        # TCP 135 alone suffices, so the documented procedure comes first (docs/choices.md).
        out.append(_netsh(
            host, f"netsh firewall set service type=REMOTEADMIN mode=ENABLE "
                  f"scope=CUSTOM addresses={src}",
            f"Enable the Remote Administration exception on {host} for {src} only, as the "
            "seed and KB 875605 prescribe for Connection 2 (it opens TCP 135, the OXID "
            "resolver)"))
        gp_service_scope()
    if purpose in ("rpcss", "resolver"):
        # Seed: "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135".
        out.append(_netsh(
            host, f"netsh firewall add portopening protocol=TCP port={port} name=DCOM_TCP{port} "
                  f"scope=CUSTOM addresses={src}",
            f"Open TCP {port} (RPCSS, the OXID resolver) on {host} to {src} only"))
        if pol.define_ports is True and pol.allow_local_ports is not True:
            gp_list(gp.DEFINE_PORTS,
                    [p.text() for p in pol.ports] + [f"{port}:TCP:{src}:Enabled:DCOM_TCP{port}"],
                    f"TCP {port}")
    if purpose == "wmi":
        # A range restricted with Rpc\\Internet\\Ports is opened port by port (KB 154596
        # pairs the two): narrower than Remote Administration, which also opens TCP 445 and
        # every dynamic port of svchost.exe and lsass.exe.
        out.extend(_range_openings(world, host, source, "the WMI service"))
    if purpose in ("rpcss", "wmi"):
        # Seed: "netsh firewall set service RemoteAdmin enable" (Connection 1, step 2).
        out.append(_netsh(
            host, f"netsh firewall set service type=REMOTEADMIN mode=ENABLE "
                  f"scope=CUSTOM addresses={src}",
            f"Enable the Remote Administration exception on {host} for {src} only "
            "(TCP 135, 445 and the dynamic RPC ports of svchost.exe and lsass.exe)"))
        gp_service_scope()
    if purpose == "sink":
        typed = program_as_typed or r"%windir%\system32\wbem\unsecapp.exe"
        name = "UNSECAPP" if program == fw.UNSECAPP else _program_name(typed)
        # Seed: "netsh firewall add allowedprogram program=%windir%\system32\wbem\unsecapp.exe
        # name=UNSECAPP".
        out.append(_netsh(
            host, f"netsh firewall add allowedprogram program={_quote(typed)} name={name} "
                  f"scope=CUSTOM addresses={src}",
            f"Allow the sink program {typed} on {host} to receive the callback from {src} only"))
        if pol.define_programs is True and pol.allow_local_programs is not True:
            gp_list(gp.DEFINE_PROGRAMS,
                    [p.text() for p in pol.programs] + [f"{typed}:{src}:Enabled:{name}"],
                    "the sink program")
        out.extend(_range_openings(world, host, source, "the sink"))
    return out


_WFAS_SERVICE = {"rpcss": "rpcss", "resolver": "rpcss", "wmi": "winmgmt", "sink": ""}
_WFAS_LABEL = {"rpcss": "DCOM-In", "resolver": "DCOM-In", "wmi": "WMI-In", "sink": "ASync-In"}


def _wfas_candidates(
    world: World, host: str, source: IPv4Address, port: int | None, program: str, purpose: str,
    program_as_typed: str | None = None,
) -> list[Change]:
    """Vista and later: let exactly ``source`` reach the listener through WFAS.

    First the built-in rule of the "Windows Management Instrumentation (WMI)" group for this
    listener, enabled for the caller's address only (Learn "Connecting to WMI Remotely
    Starting with Windows Vista" enables the group; scoping it to the caller is narrower),
    then a dedicated rule for the caller. Each with its PowerShell equivalent where the OS has
    the NetSecurity cmdlets (Windows 8 / Server 2012 on). Never the firewall off.
    """
    h = world.host(host)
    assert h.local_wfas is not None
    prof = h.wfas_profile
    src = str(source)
    service = _WFAS_SERVICE[purpose]
    ps = h.spec.netsecurity_cmdlets
    out: list[Change] = _wfas_unblock(world, host, source, port, program, service)
    if h.local_wfas.profiles[prof].inbound_always:
        # "Block all connections" (blockinboundalways, or netsh firewall's exceptions=DISABLE)
        # ignores every allow rule (Learn INetFwPolicy2::BlockAllInboundTraffic): back to
        # the factory policy, where only the allow rules admit (never allowinbound).
        cmd = f"netsh advfirewall set {prof.value}profile firewallpolicy blockinbound,allowoutbound"
        out.append(Change(host, "netsh", f"Let the allow rules of {host}'s {prof.value} profile "
                          "apply again: it blocks all inbound connections, allowed ones too",
                          (cmd,), NetshAdd(cmd)))
    for r in h.local_wfas.rules:
        if not r.rule_id or r.direction != "in" or prof not in r.profiles:
            continue
        if not r.matches_identity("TCP", program, service):
            continue
        if port is not None and not r.local_ports.matches(port, h.rpc_ports):
            continue
        if r.enabled and r.remote.matches(source, h.subnet):
            continue
        remote = r.remote.with_address(source) if r.enabled else Scope.custom(src)
        text = advfirewall.remote_text(remote)
        cmd = (f'netsh advfirewall firewall set rule name="{r.name}" dir=in profile={prof} '
               f"new enable=yes remoteip={text}")
        shown = (cmd, f"PowerShell: Set-NetFirewallRule -Name {r.rule_id} -Enabled True "
                 f"-RemoteAddress {text}") if ps else (cmd,)
        what = "Enable" if not r.enabled else "Widen"
        out.append(Change(host, "netsh", f'{what} the built-in rule "{r.name}" on {host} for '
                          f"{src} only (profile {prof})", shown, NetshAdd(cmd)))
        break
    label = _WFAS_LABEL[purpose]
    name = f"WMI {label} from {src}"
    if purpose == "sink":
        typed = program_as_typed or r"%systemroot%\system32\wbem\unsecapp.exe"
        what = f"program={_quote(typed)}"
        pshell = f'-Program "{typed}"'
    else:
        # A standalone WMI service listens on its fixed port (``port``: 24158), which
        # localport=RPC does not cover (docs/choices.md).
        svc_port = ("localport=135" if purpose in ("rpcss", "resolver") else
                    f"localport={port}" if port is not None else "localport=RPC")
        what = (rf"protocol=TCP {svc_port} program=%SystemRoot%\system32\svchost.exe "
                f"service={service}")
        pshell = (f"-Protocol TCP -LocalPort {svc_port.split('=')[1]} "
                  rf'-Program "%SystemRoot%\system32\svchost.exe" -Service {service}')
    cmd = (f'netsh advfirewall firewall add rule name="{name}" dir=in action=allow {what} '
           f"remoteip={src} profile={prof}")
    shown = (cmd, f'PowerShell: New-NetFirewallRule -DisplayName "{name}" -Direction Inbound '
             f"-Action Allow {pshell} -RemoteAddress {src} -Profile {prof.label}") if ps else (cmd,)
    out.append(Change(host, "netsh", f"Add an inbound rule on {host} that lets {src} only reach "
                      f"{'the sink' if purpose == 'sink' else service}", shown, NetshAdd(cmd)))
    gp_rules = h.policies.wfas
    if gp_rules is not None and gp_rules.settings(prof)[1] is False:
        # Group Policy turns local rules off: only a rule in the GPO applies (Learn "Windows
        # Firewall with Advanced Security", rule merging). The same rule, in the GPO.
        new_rule = (f'New-NetFirewallRule -DisplayName "{name}" -Direction Inbound -Action Allow '
                    f"{pshell} -RemoteAddress {src} -Profile {prof.label}")
        out.append(_gpo_rule(world, host, new_rule, name, src))
    return out


def gpo_rules_entry(policy: Mapping[str, Any], default: str,
                    node: str = "Inbound Rules") -> tuple[str, dict[str, Any]]:
    """The policy key of the GPO's Inbound (or Outbound) Rules as the scenario writes it
    (``default`` when absent) and its table."""
    for k, v in policy.items():
        canon = "/".join(p.strip() for p in k.replace("\\", "/").split("/") if p.strip())
        if isinstance(v, Mapping) and gpo_wfas.split_key(canon.lower()) == node.lower():
            return k, dict(v)
    return default, {}


def _gpo_rule(world: World, host: str, command: str, name: str, src: str) -> Change:
    """Add ``command`` (a New-NetFirewallRule) to the Inbound Rules of the GPO for ``host``."""
    key, _ = gpo_rules_entry(world.configs[host].policy, f"{gpo_wfas.NODE}/Inbound Rules")
    steps_shown = (
        f"Group Policy Management Editor, the GPO that applies to {host}: Computer "
        f"Configuration > Policies > {gpo_wfas.NODE.replace('/', ' > ')} > Inbound Rules",
        f'New Rule: allow "{name}" from {src} only (Group Policy turns local rules off)',
        f'PowerShell: {command} -PolicyStore "<domain>\\<GPO name>"')
    return Change(host, "policy", f'Add the inbound rule "{name}" for {src} only to the Group '
                  f"Policy of {host}, which turns local firewall rules off", steps_shown,
                  GpoRuleAdd(key, command))


def _outbound_candidates(world: World, host: str, dest: IPv4Address, ports: PortRange,
                         wmi_service: bool) -> list[Change]:
    """Let ``host`` connect out to ``dest`` only: an outbound block rule that refuses it is
    narrowed or deleted (a block rule wins, Learn "Windows Firewall with Advanced Security");
    under a default outbound action of Block, the WMI service (Connection 2) gets the
    built-in WMI-Out rule for ``dest`` (Learn "Connecting to WMI Remotely Starting with
    Windows Vista": WMI_OUT), the calling program an outbound rule for ``dest``."""
    h = world.host(host)
    assert h.local_wfas is not None
    prof = h.wfas_profile
    ps = h.spec.netsecurity_cmdlets
    program, service = (fw.SVCHOST, "winmgmt") if wmi_service else (None, "")
    out: list[Change] = []
    gpo = h.policies.wfas.rules if h.policies.wfas is not None else ()
    for r in (*gpo, *h.local_wfas.rules):
        if r.direction != "out" or r.action != "block" or not r.enabled or (
                prof not in r.profiles) or not r.remote.matches(dest, h.subnet) or (
                not r.remote_ports.intersects(ports, ports)):
            continue
        if (r.program is not None and r.program != program) or (r.service is not None and not (
                service and r.service in ("*", service))):
            continue
        out.append(_narrow_block_rule(world, host, r, dest))
    src = str(dest)
    if wmi_service:
        for r in h.local_wfas.rules:
            if r.rule_id.startswith("WMI-WINMGMT-Out-TCP") and prof in r.profiles:
                remote = r.remote.with_address(dest) if r.enabled else Scope.custom(src)
                text = advfirewall.remote_text(remote)
                cmd = (f'netsh advfirewall firewall set rule name="{r.name}" dir=out '
                       f"profile={prof} new enable=yes remoteip={text}")
                shown = (cmd, f"PowerShell: Set-NetFirewallRule -Name {r.rule_id} -Enabled "
                         f"True -RemoteAddress {text}") if ps else (cmd,)
                out.append(Change(host, "netsh", f'Enable the built-in rule "{r.name}" on '
                                  f"{host} for {src} only (profile {prof}): the default "
                                  "outbound action is Block", shown, NetshAdd(cmd)))
                break
        return out
    name = f"WMI client to {src}"
    cmd = (f'netsh advfirewall firewall add rule name="{name}" dir=out action=allow '
           f"protocol=TCP remoteip={src} profile={prof}")
    shown = (cmd, f'PowerShell: New-NetFirewallRule -DisplayName "{name}" -Direction Outbound '
             f"-Action Allow -Protocol TCP -RemoteAddress {src} -Profile {prof.label}") \
        if ps else (cmd,)
    out.append(Change(host, "netsh", f"Add an outbound rule on {host} that lets the calling "
                      f"program reach {src} only: the default outbound action is Block",
                      shown, NetshAdd(cmd)))
    return out


def _wfas_unblock(world: World, host: str, source: IPv4Address, port: int | None,
                  program: str, service: str) -> list[Change]:
    """A block rule that refuses ``source`` wins over every allow rule (Learn "Windows
    Firewall with Advanced Security", rule precedence), so no allow rule can help: take
    ``source`` out of its remote addresses (the rule keeps blocking the others), or delete
    the rule when it names no other computer. A local
    rule is edited with netsh (and PowerShell); a Group Policy rule in the GPO's Inbound
    Rules, where it was made (a local command cannot edit it: Learn, rule merging)."""
    h = world.host(host)
    assert h.local_wfas is not None
    prof = h.wfas_profile
    gpo = h.policies.wfas.rules if h.policies.wfas is not None else ()
    out: list[Change] = []
    for r in (*gpo, *h.local_wfas.rules):
        if r.action != "block" or not r.enabled or r.direction != "in" or (
                prof not in r.profiles) or not r.matches_identity("TCP", program, service):
            continue
        hits = (r.local_ports.matches(port, h.rpc_ports) if port is not None
                else r.local_ports.intersects(h.rpc_ports, h.rpc_ports))
        if not hits or not r.remote.matches(source, h.subnet):
            continue
        out.append(_narrow_block_rule(world, host, r, source))
    return out


def _narrow_block_rule(world: World, host: str, rule: wfas.Rule,
                       peer: IPv4Address) -> Change:
    """Take ``peer`` out of a block rule of ``host`` that refuses it. Narrowest first: the
    rule keeps blocking every other address it blocked, written as addresses, subnets and
    ranges (a keyword, Any or LocalSubnet, as the ranges it covers on this network: Choice,
    docs/choices.md); deleted only when it named no one else. A local rule is edited with
    netsh (and PowerShell); a Group Policy rule in the GPO's Inbound or Outbound Rules,
    where it was made (a local command cannot edit it: Learn, rule merging)."""
    h = world.host(host)
    d = rule.direction
    kind = "block rule" if d == "in" else "outbound block rule"
    rest = ",".join(_addresses_without(rule.remote.networks(h.subnet), peer))
    if rest:
        cmd = f'netsh advfirewall firewall set rule name="{rule.name}" dir={d} new remoteip={rest}'
        summary = f'Take {peer} out of the {kind} "{rule.name}" on {host}'
        pshell = f'Set-NetFirewallRule -DisplayName "{rule.name}" -RemoteAddress {rest}'
    else:
        cmd = f'netsh advfirewall firewall delete rule name="{rule.name}" dir={d}'
        summary = (f'Delete the {kind} "{rule.name}" on {host}: it refuses {peer} '
                   f"({rule.remote.describe()}) and a block rule wins"
                   + (" over every allow rule" if d == "in" else ""))
        pshell = f'Remove-NetFirewallRule -DisplayName "{rule.name}"'
    if rule.origin == "policy":
        return _gpo_block_edit(world, host, rule.name, pshell, summary,
                               "Inbound Rules" if d == "in" else "Outbound Rules")
    shown = (cmd, f"PowerShell: {pshell}") if h.spec.netsecurity_cmdlets else (cmd,)
    return Change(host, "netsh", summary, shown, NetshAdd(cmd))


def _addresses_without(networks: Iterable[IPv4Network], source: IPv4Address) -> list[str]:
    """``networks`` without ``source``, as remoteip / -RemoteAddress write them: an address, a
    subnet, or a range ``a-b`` (Learn "Netsh AdvFirewall Firewall Commands", remoteip)."""
    spans: list[list[int]] = []
    me = int(source)
    for net in sorted(networks):
        lo, hi = int(net.network_address), int(net.broadcast_address)
        for a, b in ((lo, min(hi, me - 1)), (max(lo, me + 1), hi)) if lo <= me <= hi else ((lo, hi),):
            if a > b:
                continue
            if spans and a <= spans[-1][1] + 1:
                spans[-1][1] = max(spans[-1][1], b)
            else:
                spans.append([a, b])
    out: list[str] = []
    for a, b in spans:
        nets = list(summarize_address_range(IPv4Address(a), IPv4Address(b)))
        if len(nets) == 1:
            out.append(str(nets[0].network_address) if a == b else str(nets[0]))
        else:
            out.append(f"{IPv4Address(a)}-{IPv4Address(b)}")
    return out


def _gpo_block_edit(world: World, host: str, name: str, command: str,
                    summary: str, node: str = "Inbound Rules") -> Change:
    """Edit (``Set-NetFirewallRule``) or remove a block rule of the GPO's Inbound Rules: the
    command joins the GPO's rule list, run on the GPO's store after the command that made
    the rule, as ``Set-NetFirewallRule -PolicyStore <GPO>`` edits it in place."""
    key, _ = gpo_rules_entry(world.configs[host].policy, f"{gpo_wfas.NODE}/{node}", node)
    edit = "Remove it" if command.startswith("Remove-") else (
        "Properties > Scope > Remote IP address: " + command.split("-RemoteAddress ")[1])
    steps_shown = (
        f"Group Policy Management Editor, the GPO that applies to {host}: Computer "
        f"Configuration > Policies > {gpo_wfas.NODE.replace('/', ' > ')} > {node}",
        f'The block rule "{name}": {edit}',
        f'PowerShell: {command} -PolicyStore "<domain>\\<GPO name>"')
    return Change(host, "policy", f"{summary} (a Group Policy rule: edit it in the GPO)",
                  steps_shown, GpoRuleAdd(key, command))


def _quote(path: str) -> str:
    return f'"{path}"' if " " in path else path


def _program_name(path: str) -> str:
    base = path.replace("/", "\\").rsplit("\\", 1)[-1]
    return base.rsplit(".", 1)[0].upper() or "SINK"


# ---- security candidates ----------------------------------------------------------------

_ACCESS_NEEDED = ("remote access",)
_WMI_NEEDED = ("enable account", "remote enable")

_DCOM_DIALOG = {
    "launch_limits": "Launch and Activation Permissions > Edit Limits...",
    "access_limits": "Access Permissions > Edit Limits...",
}
# The WMI service's own AppID permissions (dcomcnfg: DCOM Config > Windows Management
# Instrumentation > Properties > Security; MSDocs WmiSdk/securing-a-remote-wmi-connection).
_DCOM_APP_STEPS = {
    "wmi_launch": ("Component Services > Computers > My Computer > DCOM Config > Windows "
                   "Management Instrumentation > Properties > Security",
                   "Launch and Activation Permissions: Customize > Edit..."),
}


def _dcom_table(table: str) -> Mapping[str, int]:
    return (dcom_model.LAUNCH_RIGHTS if table in dcom_model.LAUNCH_TABLES
            else dcom_model.ACCESS_RIGHTS)


def _dcom_names(mask: int, table: str) -> tuple[str, ...]:
    return tuple(n for n, bit in _dcom_table(table).items() if mask & bit)


def _dcom_mask(names: tuple[str, ...], table: str) -> int:
    rights = _dcom_table(table)
    mask = 0
    for n in names:
        mask |= rights[n]
    # COM_RIGHTS_EXECUTE is set in every ACE of a new-format COM ACL
    # (MSDocs com/access-control-lists-for-com).
    return mask | COM_RIGHTS_EXECUTE if mask else 0


def _merged(existing: tuple[str, ...], needed: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*existing, *needed)))


def _dcom_rights_change(world: World, host: str, table: str, principal: str,
                        needed: tuple[str, ...], why: str) -> list[Change]:
    h = world.host(host)
    sd = getattr(h.dcom, table)
    sid = world.directory.resolve(principal, host)
    existing = _dcom_names(sd.rights_of(sid), table)
    rights = _merged(existing, needed)
    label = " and ".join(r.title() for r in needed)
    where = _DCOM_APP_STEPS.get(table, (
        "Component Services > Computers > My Computer > Properties > COM Security",
        _DCOM_DIALOG.get(table, table)))
    how = (f"Run dcomcnfg.exe on {host}", *where, f"Add {principal} and allow {label}")
    out = [Change(host, "dcom", why, how, DcomRights(table, principal, rights))]
    sddl_key = {"launch_limits": gp.DCOM_LAUNCH, "access_limits": gp.DCOM_ACCESS}.get(table)
    sddl = {"launch_limits": h.policies.dcom_launch_sddl,
            "access_limits": h.policies.dcom_access_sddl}.get(table)
    if sddl is not None and sddl_key is not None:
        new_sd = sd.with_entry(sid, _dcom_mask(rights, table))
        text = new_sd.to_sddl()
        out.insert(0, _policy(host, sddl_key, {"state": "Enabled", "sddl": text},
                              why + " (Group Policy sets this limit)",
                              f"Keep Enabled; Edit Security... add {principal} with {label} "
                              f"(SDDL {text})"))
    return out


# ---- one generator per step of the step table ---------------------------------------------

Candidates = tuple[list[Change], str | None]
Generator = Callable[[World, Call, flow.Step], Candidates]
GENERATORS: dict[str, Generator] = {}


def _generates(*step_ids: str) -> Callable[[Generator], Generator]:
    def register(fn: Generator) -> Generator:
        for sid in step_ids:
            assert sid in steps.TABLE and sid not in GENERATORS, sid
            GENERATORS[sid] = fn
        return fn
    return register


@_generates(steps.C1_CLIENT_DCOM)
def _client_dcom(world: World, call: Call, step: flow.Step) -> Candidates:
    return [_enable_dcom(call.source)], None


@_generates(steps.C1_RPCSS, steps.C1_WMI_PORT, steps.C2_RESOLVER_PORT, steps.C2_SINK_PORT)
def _firewall_hop(world: World, call: Call, step: flow.Step) -> Candidates:
    spec = steps.TABLE[step.id]
    assert spec.hop is not None
    # The deciding host listens; the other one is the source of the connection.
    listener, source = ((call.target, call.source) if spec.decider == "B"
                        else (call.source, call.target))
    if step.host == source and source != listener:
        # The sender's own firewall refused the connection out (model/wfas.py outbound), to
        # the endpoint mapper or to the WMI service's or the sink's dynamic port.
        peer = world.host(listener)
        ports = (steps.EPM_PORTS if step.id in (steps.C1_RPCSS, steps.C2_RESOLVER_PORT)
                 else peer.wmi_ports if step.id == steps.C1_WMI_PORT else peer.rpc_ports)
        return _outbound_candidates(world, source, peer.ip, ports,
                                    step.id in (steps.C2_RESOLVER_PORT, steps.C2_SINK_PORT)), None
    port = spec.hop.port(world.host(listener))
    src = world.host(source).ip
    if spec.hop.purpose == "sink":
        typed = None if call.sink.lower() == "unsecapp" else call.sink
        return _firewall_candidates(world, listener, src, port, flow.sink_program(call),
                                    "sink", typed), None
    # TCP 135 on A (Connection 2) follows the documented procedure (see "resolver").
    purpose = "resolver" if step.id == steps.C2_RESOLVER_PORT else spec.hop.purpose
    return _firewall_candidates(world, listener, src, port, fw.SVCHOST, purpose), None


_LOGON_REASONS = {
    "wrong-password": "the password for {user} is wrong; no setting fixes that",
    "unknown-account": "{b} cannot find the account {user}; use an account of {b}'s domain, a "
                       "domain it trusts, or a local account of {b}",
    "untrusted-domain": "{b} does not trust the domain of {user}; use an account of a domain "
                        "{b} trusts or a local account of {b}",
}


@_generates(steps.C1_LOGON)
def _logon(world: World, call: Call, step: flow.Step) -> Candidates:
    b = call.target
    if step.where == "guest":
        return [
            Change(b, "registry",
                   f"{b} maps every network logon to Guest (Simple File Sharing, "
                   "ForceGuest = 1); use the Classic sharing model",
                   (f"On {b}: reg add HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa "
                    "/v forceguest /t REG_DWORD /d 0 /f",),
                   RegistrySet("ForceGuest", 0)),
            _policy(b, gp.SHARING_MODEL, {"state": "Enabled", "model": "Classic"},
                    f"Group Policy forces the Guest-only sharing model on {b}; set it "
                    "to Classic",
                    'Select "Classic - local users authenticate as themselves"'),
        ], None
    reason = _LOGON_REASONS.get(step.where)
    return [], reason.format(user=call.user, b=b) if reason else step.detail


@_generates(steps.C1_ACTIVATION)
def _activation(world: World, call: Call, step: flow.Step) -> Candidates:
    b = call.target
    if step.where == "enable_dcom":
        return [_enable_dcom(b)], None
    if step.where == "service-disabled":
        return [_start_winmgmt(b)], None
    if step.where == "hardening":
        return _raise_level(world, call), None
    # The narrower right: Remote Activation alone while winmgmt runs, Remote Launch too when
    # the activation has to start it (model/dcom.py activation_rights).
    winmgmt = world.host(b).winmgmt
    needed = dcom_model.activation_rights(winmgmt)
    label = " and ".join(r.title() for r in needed)
    if step.where in ("launch_limits", "app_launch"):
        table = "launch_limits" if step.where == "launch_limits" else "wmi_launch"
        place = "" if table == "launch_limits" else " in the WMI service's own permissions"
        return _dcom_rights_change(
            world, b, table, _principal(world, call), needed,
            f"Give {call.user} DCOM {label} on {b}{place} (seed: Connection 1, step 1; the "
            f"WMI service is {winmgmt})"), None
    return [], step.detail


def _raise_level(world: World, call: Call) -> list[Change]:
    """KB 5004442: raise the client's activation level rather than weaken B's hardening.

    The program asks for packet integrity (KB 5004442: "raise the activation authentication
    level at least to RPC_C_AUTHN_LEVEL_PKT_INTEGRITY in client application"); on a Windows A
    with the update, RaiseActivationAuthenticationLevel = 2 raises it for every program.
    RequireIntegrityActivationAuthenticationLevel = 0 on B is never offered.
    """
    out = [Change(None, "call", f"Have the program on {call.source} ask for packet integrity "
                  "(or privacy) when it activates WMI (KB 5004442)",
                  ('auth_level = "integrity"  (CoInitializeSecurity / CoSetProxyBlanket: '
                   "RPC_C_AUTHN_LEVEL_PKT_INTEGRITY; impacket: -rpc-auth-level integrity)",),
                  CallAuthLevel("integrity"))]
    a = world.host(call.source)
    if a.spec.modern and a.config.month >= hardening.PHASE1:
        out.append(Change(call.source, "registry",
                          f"Let {call.source} raise every non-anonymous activation to packet "
                          "integrity (KB 5004442, RaiseActivationAuthenticationLevel = 2)",
                          (r'reg add HKLM\SOFTWARE\Microsoft\Ole\AppCompat /v '
                           "RaiseActivationAuthenticationLevel /t REG_DWORD /d 2 /f",
                           "then restart the computer"),
                          RegistrySet(hardening.RAISE, 2)))
    return out


@_generates(steps.C1_ACCESS, steps.C2_ACCESS)
def _access(world: World, call: Call, step: flow.Step) -> Candidates:
    host = call.target if step.id == steps.C1_ACCESS else call.source
    if step.where == "enable_dcom":
        return [_enable_dcom(host)], None
    if step.where == "standalone-level":
        return [_standalone_level(world, call)], None
    if step.where == "restrict-remote-clients":
        return [_restrict_remote_clients(call.source)], None
    if step.where == "unsecapp":
        # UnsecAppAccessControlDefault = 1 on A: unsecapp takes only B's machine account,
        # which A recognizes only when a trust joins them, and no setting makes one. Setting
        # the value back to 0 removes the protection an administrator chose (Learn WmiSdk/
        # setting-security-on-an-asynchronous-call: "To secure asynchronous calls in
        # scripting, set the registry key to 1"): never proposed. remedy() offers the
        # semisynchronous call, which needs no callback (Choice, docs/choices.md).
        return [], (f"{step.detail}. No setting makes {call.target}'s callback arrive as a "
                    f"machine account {call.source} recognizes (that needs {call.target} in "
                    f"{call.source}'s domain or one it trusts); wmilab does not set "
                    "UnsecAppAccessControlDefault back to 0")
    if step.where != "access_limits":
        return [], step.detail
    if step.id == steps.C1_ACCESS:
        principal = _principal(world, call)
        why = f"Give {principal} DCOM Remote Access on {call.target}"
    else:
        token = steps.callback_ladder(world, call.target, call.source)[0].token
        principal = token.name.removeprefix("NT AUTHORITY\\")
        why = (f"Give {principal} DCOM Remote Access on {call.source} so that {call.target}'s "
               "callback reaches the sink (seed: Connection 2, step 3)")
    return _dcom_rights_change(world, host, "access_limits", principal, _ACCESS_NEEDED,
                               why), None


def _standalone_level(world: World, call: Call) -> Change:
    """A standalone WMI host (winmgmt /standalonehost level) fails calls below its level:
    the program asks for that level; lowering B's level is never offered."""
    floor = world.host(call.target).wmi_host.level
    name = next(n for n, v in hardening.LEVELS.items() if v == floor)
    return Change(None, "call", f"Have the program on {call.source} ask for "
                  f"{hardening.level_name(floor)} or more, the level of {call.target}'s "
                  "standalone WMI host (winmgmt /standalonehost)",
                  (f'auth_level = "{name}"  (CoSetProxyBlanket: {hardening.level_name(floor)})',),
                  CallAuthLevel(name))


def _restrict_remote_clients(host: str) -> Change:
    """RestrictRemoteClients = 2 rejects the anonymous callback; 1 ("Authenticated", the
    client editions' default) still rejects anonymous calls to every interface that does not
    check access itself, while DCOM's do (Learn "RPC Interface Restriction"). Offered after
    the semisynchronous call, which needs no callback at all."""
    return Change(host, "registry",
                  f"{host} rejects every anonymous RPC call (RestrictRemoteClients = 2), so "
                  "the anonymous callback cannot reach the sink; set it to 1 "
                  "(\"Authenticated\"), under which DCOM checks the callback itself",
                  (r'reg add "HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Rpc" /v '
                   "RestrictRemoteClients /t REG_DWORD /d 1 /f", "then restart the computer"),
                  RegistrySet("RestrictRemoteClients", 1))


@_generates(steps.C1_NAMESPACE)
def _namespace(world: World, call: Call, step: flow.Step) -> Candidates:
    if step.where == "namespace":
        return [], step.detail
    if step.where == "encryption":
        # Raise the client to packet privacy; removing RequiresEncryption is never offered
        # (Learn WmiSdk/wmi-troubleshooting, 0x80041003: "Connect using a client that
        # supports encryption").
        return [Change(None, "call", f"Have the program on {call.source} ask for packet "
                       f"privacy: {call.namespace} on {call.target} requires encryption "
                       "(RequiresEncryption)",
                       ('auth_level = "privacy"  (CoInitializeSecurity / CoSetProxyBlanket: '
                        "RPC_C_AUTHN_LEVEL_PKT_PRIVACY; VBScript: {authenticationLevel="
                        "pktPrivacy}; impacket: -rpc-auth-level privacy)",),
                       CallAuthLevel("privacy"))], None
    b = world.host(call.target)
    principal = _principal(world, call)
    ns = call.namespace
    sid_p = world.directory.resolve(principal, b.name)
    mask = b.wmi.descriptor(ns).rights_of(sid_p)
    existing = tuple(n for n, bit in wmi_model.RIGHTS.items() if mask & bit)
    rights = _merged(existing, _WMI_NEEDED)
    return [Change(
        b.name, "wmi",
        f"Give {principal} Enable Account and Remote Enable on {ns} on {b.name}",
        (f"Run wmimgmt.msc on {b.name}", "Right-click WMI Control (Local) > Properties > "
         "Security", f"Select {ns.title()} > Security", f"Add {principal} and allow Enable "
         "Account and Remote Enable"),
        WmiRights(ns, principal, rights))], None


@_generates(steps.C2_IDENTITY)
def _identity(world: World, call: Call, step: flow.Step) -> Candidates:
    # Who B is on A is settled by the domains. B refuses to call back only when every identity
    # it has for A is anonymous: then AllowAnonymousCallback = 1 on B, which the page allows
    # only "between computers that do not have a trust relationship" (Learn WmiSdk/connecting-
    # to-wmi-remotely-starting-with-vista, CIMOM Settings); remedy() offers the
    # semisynchronous call first when it needs less. An encrypted namespace's callback needs
    # a trust that no setting of A or B creates.
    if step.where != "anonymous-callback":
        return [], step.detail
    b = call.target
    return [Change(b, "registry",
                   f"Let WMI on {b} call {call.source}'s sink back anonymously "
                   f"(AllowAnonymousCallback = 1): {call.source} cannot recognize {b}'s "
                   "identity, as no trust joins them",
                   (f"On {b}: reg add HKLM\\SOFTWARE\\Microsoft\\WBEM\\CIMOM /v "
                    "AllowAnonymousCallback /t REG_DWORD /d 1 /f",),
                   RegistrySet(cb.ALLOW_ANONYMOUS_CALLBACK, 1))], None


assert set(GENERATORS) == set(steps.TABLE), "every step has a remedy generator"


def _candidates(world: World, call: Call, step: flow.Step) -> Candidates:
    """Changes to try for the failing step, best first; or the reason none can help."""
    return GENERATORS[step.id](world, call, step)


def _start_winmgmt(host: str) -> Change:
    # A disabled service starts again once its startup type is Automatic (sc config; the WMI
    # service starts automatically by default, KB 875605's troubleshooting assumes it runs).
    return Change(host, "service",
                  f"The WMI service is disabled on {host}; set it to start automatically and "
                  "start it",
                  (f"On {host}: sc config winmgmt start= auto", f"On {host}: net start winmgmt"),
                  ServiceState("winmgmt", "running"))


def _enable_dcom(host: str) -> Change:
    return Change(host, "dcom", f"Enable DCOM on {host} (EnableDCOM = Y)",
                  (f"Run dcomcnfg.exe on {host}",
                   "Component Services > Computers > My Computer > Properties > Default "
                   "Properties", 'Check "Enable Distributed COM on this computer"'),
                  DcomEnable())


def _principal(world: World, call: Call) -> str:
    return call.user


# ---- the search -------------------------------------------------------------------------


def _progress(before: flow.Verdict, after: flow.Verdict) -> bool:
    if after.ok:
        return True
    fb, fa = before.failed, after.failed
    assert fb is not None and fa is not None
    ia, ib = steps.INDEX[fa.id], steps.INDEX[fb.id]
    # Later step, or the same step failing for another reason (EnableDCOM fixed, now the
    # launch limits; exceptions allowed again, now the scope): the change removed one
    # obstacle. Changes that turn out unnecessary are dropped by _minimize.
    return ia > ib or (ia == ib and (fa.where, fa.detail) != (fb.where, fb.detail))


def _search(world: World, call: Call) -> tuple[list[Change], str | None]:
    changes: list[Change] = []
    verdict = flow.evaluate(world, call)
    for _ in range(MAX_ROUNDS):
        if verdict.ok:
            return changes, None
        step = verdict.failed
        assert step is not None
        cands, reason = _candidates(world, call, step)
        for cand in cands:
            try:
                w2, c2 = apply_edit(world, call, cand.host, cand.edit)
                v2 = flow.evaluate(w2, c2)
            except ConfigError:
                # A candidate the host's own commands refuse (Windows would print an error
                # and change nothing) is no fix; the next one is tried, never a traceback.
                continue
            if _progress(verdict, v2):
                changes.append(cand)
                world, call, verdict = w2, c2, v2
                break
        else:
            return changes, reason or (
                f"no least-privilege change found for step {step.id}: {step.detail}")
    return changes, "the fix needs more changes than wmilab tries"


def _minimize(world: World, call: Call, changes: list[Change]) -> list[Change]:
    kept = list(changes)
    for ch in list(reversed(changes)):
        trial = [c for c in kept if c is not ch]
        w, c = apply(world, call, trial)
        if flow.evaluate(w, c).ok:
            kept = trial
    return kept


def remedy(world: World, call: Call) -> Remedy:
    """The minimal proven fix for ``call`` in ``world`` (empty when it already works)."""
    verdict = flow.evaluate(world, call)
    if verdict.ok:
        return Remedy(proven=True)
    out = Remedy()
    changes, reason = _search(world, call)
    if reason is None:
        out.changes = _minimize(world, call, changes)
        w, c = apply(world, call, out.changes)
        out.proven = flow.evaluate(w, c).ok
    else:
        out.unfixable = reason
    if call.mode == "async":
        # Seed: "When possible, semisynchronous calls should be made instead of asynchronous
        # calls" - they need no Connection 2 at all. Offered when it needs less.
        mode = Change(None, "call",
                      "Preferred: make the call semisynchronous. It needs only Connection 1, "
                      "so A's firewall and DCOM stay closed (the seed recommends it)",
                      ('mode = "semisync"  (WBEM_FLAG_RETURN_IMMEDIATELY | '
                       "WBEM_FLAG_FORWARD_ONLY, then poll the enumerator)",),
                      CallMode("semisync"))
        w, c = apply_edit(world, call, None, mode.edit)
        sub, sub_reason = _search(w, c)
        if sub_reason is None:
            sub = _minimize(w, c, sub)
            if out.unfixable is not None or len(sub) < len(out.changes):
                out.semisync = [mode, *sub]
    return out
