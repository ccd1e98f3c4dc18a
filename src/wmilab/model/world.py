"""A whole network of modelled Windows computers: the one object every layer asks.

The flow, the remedies and the emulated hosts all take their answers from a
:class:`World`; none of them keeps its own copy of a Windows rule.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any, NamedTuple

from wmilab.errors import ConfigError
from wmilab.model import (
    advfirewall,
    dynamicport,
    hardening,
    netsecurity,
    netsh,
    netshwords,
    oses,
    rpcpolicy,
    unsecapp,
    wmihost,
)
from wmilab.model import callback as cb
from wmilab.model import firewall as fw
from wmilab.model import wfas as wf
from wmilab.model.dcom import DcomSecurity
from wmilab.model.decision import Check
from wmilab.model.identity import Directory, DomainSpec, HostSpec, Token
from wmilab.model.localgroup import GroupEdit
from wmilab.model.policy import Policies, parse_policies
from wmilab.model.ports import RPC_ENDPOINT_MAPPER, RPC_INTERNET_VALUES, PortRange, dynamic_range
from wmilab.model.wmi import NamespaceSecurity

OSES = oses.NAMES
MODERN = tuple(n for n in OSES if oses.get(n).modern)
# The service short names WFAS rules use for the two listeners of Connection 1 (Learn
# "Connecting to WMI Remotely Starting with Windows Vista": service=rpcss, service=winmgmt).
RPCSS = "rpcss"
WINMGMT = "winmgmt"

# Registry values a scenario may set (scenario-format.md "Registry"), with the OSes they act on.
REGISTRY_VALUES: dict[str, tuple[str, ...]] = {
    # HKLM\SYSTEM\CurrentControlSet\Control\Lsa\forceguest (MSDocs WmiSdk/securing-a-remote-wmi-connection).
    "ForceGuest": OSES,
    # Vista+ remote UAC (MSDocs WmiSdk/user-account-control-and-wmi; KB 951016): no effect on
    # XP/2003. HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System.
    "LocalAccountTokenFilterPolicy": MODERN,
    "FilterAdministratorToken": MODERN,
    # HKLM\SOFTWARE\Microsoft\Ole\AppCompat (KB 5004442): the DCOM hardening.
    "RequireIntegrityActivationAuthenticationLevel": MODERN,
    "RaiseActivationAuthenticationLevel": MODERN,
    # Vista+ HKLM\Software\Microsoft\WBEM\CIMOM, read by unsecapp on A (MSDocs
    # WmiSdk/setting-security-on-an-asynchronous-call; model/unsecapp.py).
    "UnsecAppAccessControlDefault": MODERN,
    # Read by the WMI service that calls back (Learn WmiSdk/connecting-to-wmi-remotely-starting-
    # with-vista, "CIMOM Settings"; model/callback.py).
    "AllowAnonymousCallback": MODERN,
    # HKLM\Software\Microsoft\Rpc\Internet: the dynamic RPC port range (KB 154596).
    "Ports": OSES,
    "PortsInternetAvailable": OSES,
    "UseInternetPorts": OSES,
    # HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Rpc, from XP SP2 / 2003 SP1 (Learn "RPC
    # Interface Restriction"; TechNet cc781010): what the RPC runtime does with anonymous
    # calls, and whether RPC clients authenticate to the endpoint mapper.
    "RestrictRemoteClients": OSES,
    "EnableAuthEpResolution": OSES,
}

# Service states a scenario may give (scenario-format.md "services"); only winmgmt matters.
SERVICES: dict[str, tuple[str, ...]] = {"winmgmt": ("running", "stopped", "disabled")}


@dataclass(frozen=True)
class HostConfig:
    """Everything a scenario says about one computer, already type-checked."""

    name: str
    os: str
    address: IPv4Interface
    domain: str | None = None
    workgroup: str | None = None
    profile: str | None = None  # a profile name of the OS (oses.OsSpec.profiles)
    accounts: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] | None = None
    netsh: tuple[str, ...] = ()
    # Where each entry of ``netsh`` was written: ("netsh", i), or ("commands", j) for the
    # netsh commands of ``commands``, which run after the list (scenario-format.md
    # "Commands"), so that an error names the line the administrator wrote. Empty: all from
    # the ``netsh`` field.
    netsh_origins: tuple[tuple[str, int], ...] = ()
    policy: Mapping[str, Any] = field(default_factory=dict)
    dcom: Mapping[str, Any] = field(default_factory=dict)
    wmi: Mapping[str, Any] = field(default_factory=dict)
    registry: Mapping[str, int | str | tuple[str, ...]] = field(default_factory=dict)
    services: Mapping[str, str] = field(default_factory=dict)
    updates: str | None = None  # Vista and later: newest monthly update, "YYYY-MM"
    # Optional features installed (model/features.py), as Install-WindowsFeature names them.
    features: tuple[str, ...] = ()
    # From ``commands`` (scenario-format.md "Commands"), Vista and later: the TCP/UDP dynamic
    # port ranges set with netsh int ipv4 set dynamicport, and where WMI runs (winmgmt
    # /standalonehost | /sharedhost; None: the shared svchost.exe, as installed).
    dynamic_ports: Mapping[str, dynamicport.DynamicPorts] = field(default_factory=dict)
    wmi_host: wmihost.WmiHost | None = None
    # ``net localgroup`` edits, applied by the directory after ``groups``.
    group_edits: tuple[GroupEdit, ...] = ()

    def netsh_origin(self, i: int) -> tuple[str, int]:
        """The scenario field and index of ``netsh[i]``: the ``netsh`` list, then the netsh
        commands of ``commands``."""
        return self.netsh_origins[i] if i < len(self.netsh_origins) else ("netsh", i)

    @property
    def os_spec(self) -> oses.OsSpec:
        return oses.get(self.os)

    @property
    def month(self) -> str:
        """The newest update installed: ``updates``, else the newest the OS received."""
        return self.updates or self.os_spec.last_update

    @property
    def profile_name(self) -> str:
        """The firewall profile in use, as the OS names it.

        XP SP2 / 2003: the domain profile on the network of the computer's domain, else
        standard (TechNet cc737332). Vista and later: domain when domain-joined, else public
        (scenario-format.md "Windows Vista and later"; Learn "Windows Firewall profiles").
        """
        if self.profile is not None:
            return self.profile
        if self.domain:
            return "domain"
        return "public" if self.os_spec.modern else "standard"

    @property
    def current_profile(self) -> fw.Profile:
        """The profile of the XP SP2 / 2003 firewall (domain or standard)."""
        return fw.Profile.DOMAIN if self.profile_name == "domain" else fw.Profile.STANDARD


    def warnings(self) -> list[str]:
        out = []
        for name in self.registry:
            if self.os not in REGISTRY_VALUES.get(name, OSES):
                out.append(f"{self.name}: registry value {name} has no effect on {self.os} "
                           "(it exists on Windows Vista and later)")
        return out

    def spec(self, builds: Builds | None = None) -> HostSpec:
        reg = self.registry.get("ForceGuest")
        force_guest = None if reg is None else bool(reg)
        if self.policy:
            try:
                parsed = (builds.parse_policies(self.policy) if builds is not None
                          else parse_policies(self.policy))
                model = parsed.sharing_model
            except ConfigError as e:
                raise e.within("hosts", self.name, "policy") from None
            # "Network access: Sharing and security model for local accounts" is the policy
            # behind the ForceGuest value; Group Policy wins over the local registry value.
            if model is not None:
                force_guest = model == "guest"
        return HostSpec(
            name=self.name, os=self.os, domain=self.domain, workgroup=self.workgroup,
            accounts=dict(self.accounts), groups=self.groups, force_guest=force_guest,
            token_filter_off=self.registry.get("LocalAccountTokenFilterPolicy") == 1,
            filter_builtin_admin=self.registry.get("FilterAdministratorToken") == 1,
            group_edits=self.group_edits,
        )


_SEQ, _MAP = object(), object()  # markers no scenario value can be equal to


def freeze(value: object) -> Hashable:
    """A hashable image of a scenario value (tables keep their order: it can matter)."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is tuple:
        return (_SEQ, *map(freeze, value))  # type: ignore[call-overload]
    if isinstance(value, list):
        return (_SEQ, *map(freeze, value))
    if isinstance(value, Mapping):
        return (_MAP, *zip(value, map(freeze, value.values()), strict=True))
    if isinstance(value, HostConfig):
        return tuple(freeze(getattr(value, f)) for f in _CONFIG_FIELDS)
    assert isinstance(value, Hashable), value
    return value


# The parts of a HostConfig that the firewall is built from are everything but these: a
# field added later counts for the firewall until it is listed here, so two hosts never
# share a firewall they should not.
_NOT_FIREWALL = frozenset({"name", "address", "domain", "workgroup", "profile", "accounts",
                           "groups", "dcom", "wmi", "registry", "services", "updates",
                           "features", "dynamic_ports", "wmi_host", "group_edits"})


_CONFIG_FIELDS = tuple(f.name for f in fields(HostConfig))
_FIREWALL_FIELDS = tuple(f for f in _CONFIG_FIELDS if f not in _NOT_FIREWALL)
# Fields whose errors only building the host's model finds (any field not known to be safe).
_MAY_FAIL_FIELDS = tuple(f for f in _CONFIG_FIELDS if f not in {
    "name", "os", "address", "domain", "workgroup", "profile", "accounts", "groups", "netsh",
    "dynamic_ports", "wmi_host", "group_edits"})


class _Firewall(NamedTuple):
    local: fw.LocalFirewall  # shared between hosts: read-only (netsh_show copies it)
    policies: Policies
    effective: fw.EffectiveFirewall | wf.EffectiveWfas
    wfas: wf.LocalWfas | None  # Vista and later (read-only likewise)
    # Commands that changed nothing because no rule matched (netsh prints "No rules match
    # the specified criteria."): a mistyped rule or group name, shown as a warning.
    unmatched: tuple[str, ...] = ()


class Builds:
    """What hosts with the same settings share, remembered once per scenario.

    The firewall (local settings, Group Policy, the effective rules) of a host depends only
    on its OS, its current profile, its netsh commands and its policy table, so a fleet of
    10,000 hosts configured alike builds it once. DCOM and WMI security name the host, so
    only their OS defaults are shared. Models of edited hosts (the candidates of the fix
    search) are remembered by their whole configuration, so a candidate that comes back
    (the search, then the minimization, then the proof) is built once; only the most
    recently used ones are kept, so memory stays that of the scenario however many calls
    are fixed. Firewalls are remembered for the scenario's own hosts only: an edited host's
    firewall lives in its remembered model.
    """

    MAX_EDITED = 256

    def __init__(self) -> None:
        self.firewalls: dict[Hashable, _Firewall] = {}
        self.policies: dict[Hashable, Policies] = {}
        self.dcom: dict[str, DcomSecurity] = {}
        self.wmi: dict[str, NamespaceSecurity] = {}
        self.ports: dict[str, PortRange] = {}  # the OS's dynamic range, by OS
        self.edited: dict[Hashable, HostModel] = {}

    def parse_policies(self, table: Mapping[str, Any]) -> Policies:
        if not table:
            return _NO_POLICIES
        key = freeze(table)
        found = self.policies.get(key)
        if found is None:
            found = self.policies[key] = parse_policies(table)
        return found

    def firewall(self, config: HostConfig, rpc: PortRange, subnet: IPv4Network,
                 remember: bool = True) -> _Firewall:
        # The profile by its OS name (private and public differ on Vista and later), and the
        # RPC range, which WFAS rules with localport=RPC match (model/wfas.py). The subnet is
        # only a default of EffectiveWfas: HostModel always passes its own.
        key = (config.profile_name, rpc, *[freeze(getattr(config, f)) for f in _FIREWALL_FIELDS])
        found = self.firewalls.get(key)
        if found is None:
            try:
                policies = self.parse_policies(config.policy)
            except ConfigError as e:
                raise e.within("policy") from None
            spec = oses.get(config.os)
            local = fw.LocalFirewall.defaults(config.os, config.current_profile)
            # Vista and later: Windows Firewall with Advanced Security (model/wfas.py), which
            # both netsh contexts edit (KB 947709); None on XP SP2 / 2003 SP1.
            local_wfas = wf.LocalWfas.defaults(config.os) if spec.firewall == "wfas" else None
            env = netsh.NetshEnv(os=config.os, host=config.name)
            unmatched: list[str] = []
            for i, command in enumerate(config.netsh):
                try:
                    head = command.split(None, 1)[0] if command.strip() else ""
                    if netsecurity.is_cmdlet(head):
                        # PowerShell's *-NetFirewallRule edit the same WFAS rule set.
                        if local_wfas is None:
                            raise netsecurity.not_recognized(head)
                        netsecurity.run(local_wfas, command, config.os)
                        continue
                    advfirewall.check_context(config.os, command)
                    if local_wfas is not None:
                        printed = advfirewall.run(local_wfas, command, env,
                                                  wf.WfProfile(config.profile_name))
                        if advfirewall.NO_MATCH in printed:
                            where, j = config.netsh_origin(i)
                            unmatched.append(f"{where}[{j}] {command!r}: {advfirewall.NO_MATCH}")
                    else:
                        netsh.run(local, command, env)
                except ConfigError as e:
                    raise ConfigError(f"{command!r}: {e.message}", config.netsh_origin(i)) \
                        from None
            if policies.wfas is not None and local_wfas is None:
                raise ConfigError(f"{spec.title} has no Windows Firewall with Advanced "
                                  "Security; its firewall policy is under Administrative "
                                  "Templates/Network/Network Connections/Windows Firewall",
                                  ("policy",))
            effective: fw.EffectiveFirewall | wf.EffectiveWfas
            if local_wfas is not None:
                effective = wf.effective(local_wfas, policies.wfas or wf.WfasPolicy(),
                                         wf.WfProfile(config.profile_name), rpc, subnet)
            else:
                effective = fw.effective(local, policies.firewall, config.current_profile)
            found = _Firewall(local, policies, effective, local_wfas, tuple(unmatched))
            if remember:
                self.firewalls[key] = found
        return found

    def rpc_ports(self, config: HostConfig) -> PortRange:
        values = {k: v for k, v in config.registry.items() if k in RPC_INTERNET_VALUES}
        tcp = config.dynamic_ports.get("tcp")
        if values or tcp is not None:
            return dynamic_range(config.os, values,
                                 None if tcp is None else (tcp.start, tcp.num))
        found = self.ports.get(config.os)
        if found is None:
            found = self.ports[config.os] = dynamic_range(config.os, values)
        return found

    def dcom_defaults(self, os: str, directory: Directory) -> DcomSecurity:
        found = self.dcom.get(os)
        if found is None:
            found = self.dcom[os] = DcomSecurity.defaults(os, directory, "")
        return found

    def wmi_defaults(self, os: str, directory: Directory,
                     features: tuple[str, ...] = ()) -> NamespaceSecurity:
        key = os if not features else f"{os}+{'+'.join(sorted(features))}"
        found = self.wmi.get(key)
        if found is None:
            found = self.wmi[key] = NamespaceSecurity.defaults(os, directory, "",
                                                               features=features)
        return found


_NO_POLICIES = Policies()


class HostModel:
    """One computer's modelled state: firewall, policy, DCOM and WMI security."""

    def __init__(self, config: HostConfig, directory: Directory,
                 builds: Builds | None = None, *, edited: bool = False) -> None:
        builds = builds or Builds()
        self.config = config
        self.name = config.name
        self.os = config.os
        self.address = config.address
        self.ip: IPv4Address = config.address.ip
        self.subnet: IPv4Network = config.address.network
        self.directory = directory
        self.spec = oses.get(config.os)
        try:
            self.rpc_ports: PortRange = builds.rpc_ports(config)
        except ConfigError as e:
            raise e.within("registry") from None
        built = builds.firewall(config, self.rpc_ports, self.subnet, remember=not edited)
        self.policies: Policies = built.policies
        self.local_firewall = built.local
        self.local_wfas: wf.LocalWfas | None = built.wfas
        self.firewall: fw.EffectiveFirewall | wf.EffectiveWfas = built.effective
        self.unmatched = built.unmatched
        policies = self.policies
        try:
            self.dcom = builds.dcom_defaults(config.os, directory)
            if config.dcom or policies.dcom_launch_sddl is not None \
                    or policies.dcom_access_sddl is not None:
                self.dcom = self.dcom.with_overrides(
                    config.dcom, directory, config.name,
                    launch_sddl=policies.dcom_launch_sddl,
                    access_sddl=policies.dcom_access_sddl,
                )
            else:
                self.dcom = replace(self.dcom, host=config.name)
        except ConfigError as e:
            raise e.within("dcom") from None
        try:
            self.wmi = builds.wmi_defaults(config.os, directory, config.features)
            if config.wmi:
                self.wmi = self.wmi.with_overrides(config.wmi, directory, config.name)
            else:
                self.wmi = replace(self.wmi, host=config.name)
        except ConfigError as e:
            raise e.within("wmi") from None
        self.outgoing = self.dcom.check_outgoing()
        self._levels: dict[int | None, tuple[int, str]] = {}
        # KB 5004442: does this host refuse activations below packet integrity?
        self.hardening = hardening.server_hardening(config.os, config.month,
                                                    dict(config.registry))
        # Service Control Manager state of the WMI service (scenario "services"); running
        # unless the scenario says otherwise (winmgmt starts automatically: KB 875605).
        self.winmgmt: str = config.services.get("winmgmt", "running")
        # Where WMI runs and listens: the shared svchost.exe on a dynamic port of rpc_ports,
        # or its own svchost.exe on TCP 24158 (Learn "winmgmt" /standalonehost).
        self.wmi_host: wmihost.WmiHost = config.wmi_host or wmihost.SHARED
        self.wmi_ports: PortRange = (
            PortRange.of([(wmihost.FIXED_PORT, wmihost.FIXED_PORT)],
                         f"the fixed port {wmihost.FIXED_PORT} of winmgmt /standalonehost "
                         "(Learn \"winmgmt\")")
            if self.wmi_host.standalone else self.rpc_ports)
        try:
            self.restrict_remote_clients = rpcpolicy.restrict_remote_clients(
                config.os, config.registry)
            rpcpolicy.check_enable_auth_ep_resolution(config.registry)
            # As A: does unsecapp check who calls its sinks (UnsecAppAccessControlDefault)?
            self.unsecapp_checks: bool = unsecapp.checks_callers(config.os, config.registry)
        except ConfigError as e:
            raise e.within("registry") from None
        # As the server of an asynchronous call: may WMI call a sink back anonymously?
        self.anonymous_callback: Check = cb.anonymous_fallback(
            config.os, config.registry, config.name)
        # The flow's compiled call plan of this computer (flow.HostPlan), made on first use by
        # flow.evaluate: it lives exactly as long as this model, so every world that shares
        # the model shares it. The model itself never reads it.
        self.plan: Any = None

    def check_unsecapp_caller(self, token: Token, owner: str | None) -> Check:
        """unsecapp's own check on this host (A) of a call on a sink handed to ``owner`` (B)
        (model/unsecapp.py)."""
        sid = None
        if owner is not None and self.directory.domain_of(owner) is not None:
            sid = self.directory.machine_account(owner)
        return unsecapp.check_caller(self.name, self.unsecapp_checks, token, owner, sid)

    def wmi_call_level(self, client: HostModel, requested: int | None) -> tuple[int, str]:
        """The level of ``client``'s calls into this host's WMI (the requests after NTLMLogin):
        the program's, else COM's negotiation, the higher of the client's default and the WMI
        process's level (Learn "Security Blanket Negotiation"; "WMI rejects a client that uses
        the default authentication level because DCOM negotiates security to the level
        required by the SVCHOST process", Learn WmiSdk/requiring-an-encrypted-connection-to-a-
        namespace). That process's level is winmgmt /standalonehost's, else the shared
        svchost.exe's, PKT (Choice, docs/choices.md: the standalone default, Learn "winmgmt")."""
        level, how = hardening.call_level(client.os, requested)
        if requested is not None or level >= self.wmi_host.level:
            return level, how
        return self.wmi_host.level, (f"{how}, negotiated up to the level of the WMI process on "
                                     f"{self.name}, {hardening.level_name(self.wmi_host.level)}")

    def activation_level(self, requested: int | None) -> tuple[int, str]:
        """As a client: the level this host's activation requests reach the server with."""
        found = self._levels.get(requested)
        if found is None:
            found = hardening.client_level(self.os, self.config.month,
                                           dict(self.config.registry), requested)
            self._levels[requested] = found
        return found

    def check_activation_level(self, token: Token, level: int, source: str) -> Check:
        """KB 5004442 on this host as the server: an activation below packet integrity is
        refused when the hardening is on, and System event 10036 is logged."""
        if not self.hardening.enforced or level >= hardening.PKT_INTEGRITY:
            return Check(True, f"activation at {hardening.level_name(level)}; "
                         f"{self.hardening.why}")
        domain, _, user = token.name.rpartition("\\")
        return Check(False, f"{self.name} refuses the activation at "
                     f"{hardening.level_name(level)}: {self.hardening.why}. "
                     + hardening.event_10036(domain, user, token.user, source), "hardening")

    def check_wmi_activation(self, token: Token) -> Check:
        """A remote activation of the WMI class: DCOM's launch/activation checks for
        winmgmt's state, then whether the Service Control Manager can start a stopped one.

        A disabled service cannot be started (MS-ERREF 2.2 ERROR_SERVICE_DISABLED: "The
        service cannot be started, either because it is disabled ..."), so the activation
        fails after the permission checks (Choice, docs/choices.md: that error is returned).
        """
        check = self.dcom.check_remote_activation(token, self.winmgmt)
        if not check.ok or self.winmgmt != "disabled":
            return check
        return Check(False, f"the WMI service (winmgmt) on {self.name} is disabled, so DCOM "
                     "cannot start it for the activation", "service-disabled")

    @property
    def wfas_profile(self) -> wf.WfProfile:
        """The WFAS profile in use (Vista and later)."""
        return wf.WfProfile(self.config.profile_name)

    def wmi_inbound(self, source: IPv4Address) -> fw.FirewallDecision:
        """Would the firewall let ``source`` reach the WMI service on its port?

        winmgmt runs in a shared svchost.exe (TechNet cc737332, Remote Administration
        exception), on a port of :attr:`rpc_ports`; WFAS rules may name the service
        (service=winmgmt: Learn "Connecting to WMI Remotely Starting with Windows Vista").
        After ``winmgmt /standalonehost`` it runs in an svchost.exe of its own, still the
        service winmgmt, on the fixed TCP 24158 (Learn "winmgmt"): the WMI-In rule still
        admits it (Learn "Connecting to WMI Remotely Starting with Windows Vista": the WMI
        exception also works with the fixed port), and so does a rule for that one port;
        localport=RPC does not, unless 24158 lies in the dynamic range (docs/choices.md).
        """
        if self.wmi_host.standalone:
            return self.inbound(source, wmihost.FIXED_PORT, fw.SVCHOST, WINMGMT)
        return self.firewall.decide_dynamic(source, self.rpc_ports, fw.SVCHOST, self.subnet,
                                            WINMGMT)

    def port_edges(self) -> frozenset[int]:
        """The ports where an inbound rule's (or port opening's) explicit local ports begin
        or end, and the ports just beside them: only there can the firewall's answer for one
        port of the dynamic range change. The emulated host reads it to take a WMI port
        where the firewall answers as for the whole range (host/server.py)."""
        edges: set[int] = set()
        fwl = self.firewall
        if isinstance(fwl, wf.EffectiveWfas):
            spans = [s for r in (*fwl.rules, *fwl.ignored) for s in r.local_ports.spans]
        else:
            spans = [(p.port, p.port) for p in fwl.ports if p.protocol == "TCP"]
        for lo, hi in spans:
            edges.update((lo - 1, lo, hi, hi + 1))
        return frozenset(edges)

    def wmi_admission(self) -> fw.Admission | None:
        """:meth:`wmi_inbound` for every source at once (None: when the XP firewall's port
        openings in the range decide, which only :meth:`wmi_inbound` answers)."""
        if self.wmi_host.standalone:
            return self.admission(wmihost.FIXED_PORT, fw.SVCHOST, "TCP", WINMGMT)
        return self.firewall.dynamic_admission(self.rpc_ports, fw.SVCHOST, WINMGMT)

    @property
    def wmi_authn_hint(self) -> int:
        """The authnHint the activation and OXID resolution replies give for WMI's object
        exporter (MS-DCOM 2.2.22.2.8 ScmReplyInfoData, 3.1.2.5.1.1 ResolveOxid): packet
        integrity (wire-notes), or the standalone host's level when higher, so that clients
        that follow the hint (impacket, aiowmi, COM's negotiation) call at its level."""
        level = self.wmi_host.level if self.wmi_host.standalone else 0
        return max(hardening.PKT_INTEGRITY, level)

    def check_wmi_call_level(self, level: int) -> Check:
        """Does the process WMI runs in accept an ORPC call at ``level``?

        Only the standalone host has a level of its own: ``winmgmt /standalonehost [level]``
        sets the authentication level of its svchost.exe, 4 by default (Learn "winmgmt"), and
        COM fails calls that arrive below a server's level (Learn "CoInitializeSecurity",
        dwAuthnLevel). The shared svchost.exe: Choice (docs/choices.md), no floor.
        """
        floor = self.wmi_host.level
        if not self.wmi_host.standalone or level >= floor:
            return Check(True, f"the call arrives at {hardening.level_name(level)}")
        return Check(False, f"WMI on {self.name} runs in its own svchost.exe (winmgmt "
                     f"/standalonehost {floor}), which fails calls below "
                     f"{hardening.level_name(floor)}; the call arrives at "
                     f"{hardening.level_name(level)}", "standalone-level")

    def check_anonymous_rpc(self, token: Token) -> Check | None:
        """RestrictRemoteClients = 2 ("Authenticated without exceptions"): the RPC runtime of
        this computer rejects every remote anonymous call, DCOM's included (Learn "RPC
        Interface Restriction"). None when the call is not refused for it."""
        if not token.anonymous or self.restrict_remote_clients != rpcpolicy.HIGH:
            return None
        return Check(False, f"{self.name} has RestrictRemoteClients = 2 (Restrictions for "
                     "Unauthenticated RPC Clients: \"Authenticated without exceptions\"), so "
                     "its RPC runtime rejects the anonymous call before DCOM sees it",
                     "restrict-remote-clients")

    def sink_inbound(self, source: IPv4Address, program: str) -> fw.FirewallDecision:
        """Would the firewall let ``source`` reach the sink ``program`` on its dynamic port?"""
        return self.firewall.decide_dynamic(source, self.rpc_ports, program, self.subnet)

    def sink_admission(self, program: str) -> fw.Admission | None:
        """:meth:`sink_inbound` for every source at once (None as for :meth:`wmi_admission`)."""
        return self.firewall.dynamic_admission(self.rpc_ports, program)

    def admission(self, port: int, program: str, protocol: str = "TCP",
                  service: str | None = None) -> fw.Admission:
        """Who this computer's firewall lets open a connection to ``port`` (``program``
        listening): the scopes the nftables compiler turns into rules (lab/nft.py), and what
        :meth:`inbound` decides from.

        ``service`` (WFAS rules may name one): when not given, the svchost.exe listeners of
        this model are RPCSS on TCP 135 and the WMI service on a port of :attr:`rpc_ports`.
        """
        if service is None:
            service = ""
            if program == fw.SVCHOST:
                service = RPCSS if port == RPC_ENDPOINT_MAPPER else (
                    WINMGMT if port in self.wmi_ports else "")
        return self.firewall.admission(port, program, protocol, service)

    def inbound(self, source: IPv4Address, port: int, program: str,
                service: str | None = None) -> fw.FirewallDecision:
        """Would this computer's firewall let an unsolicited TCP connection in?

        ``service``: the Windows service that listens (rpcss, winmgmt), which WFAS rules may
        name (inferred as in :meth:`admission` when None); the XP SP2 / 2003 firewall knows
        programs only. The answer is :meth:`admission`'s, so the gate, the flow and the
        nftables compiler cannot disagree.
        """
        return self.admission(port, program, "TCP", service).decide(source, self.subnet)

    def listeners(self, wmi_port: int | None,
                  sink: tuple[int, str] | None = None) -> tuple[tuple[int, str], ...]:
        """(port, program) of the emulated listeners of this computer, given the dynamic
        ports its RPC runtime drew from :attr:`rpc_ports`: RPCSS on 135 and the WMI service
        on ``wmi_port`` (both in svchost.exe, TechNet cc737332), and a sink ``(port,
        program)`` while one is exported. The nftables compiler (lab/nft.py) asks
        :meth:`admission` for each."""
        out = [(RPC_ENDPOINT_MAPPER, fw.SVCHOST)]
        if wmi_port is not None:
            out.append((wmi_port, fw.SVCHOST))
        if sink is not None:
            out.append(sink)
        return tuple(out)

    @cached_property
    def filters_outbound(self) -> bool:
        """Could :meth:`outbound` refuse any connection? When not, it allows every one."""
        return self.local_wfas is not None and wf.filters_outbound(
            self.local_wfas, self.policies.wfas or wf.WfasPolicy(), self.wfas_profile)

    def outbound(self, dest: IPv4Address, ports: PortRange, program: str | None = None,
                 service: str = "") -> fw.FirewallDecision:
        """May this computer connect out to ``dest`` on a port of ``ports`` (``program``,
        None for the unknown calling program)? Windows Firewall with Advanced Security filters outbound traffic
        too (model/wfas.py); the XP SP2 / 2003 firewall filters inbound traffic only (TechNet
        cc737332: "Windows Firewall does not block outbound traffic")."""
        if not self.filters_outbound:
            return wf.OUT_ALLOWED
        assert self.local_wfas is not None
        return wf.outbound(self.local_wfas, self.policies.wfas or wf.WfasPolicy(),
                           self.wfas_profile, self.subnet, dest, ports, program, service)

    def rpcss_inbound(self, source: IPv4Address) -> fw.FirewallDecision:
        return self.rpcss_admission().decide(source, self.subnet)

    def rpcss_admission(self) -> fw.Admission:
        """Who may reach TCP 135: RPCSS (endpoint mapper, activator, OXID resolver) is hosted
        by svchost.exe (TechNet cc737332 Remote Administration exception; service=rpcss in
        WFAS rules)."""
        return self.admission(RPC_ENDPOINT_MAPPER, fw.SVCHOST, "TCP", RPCSS)

    def netsh_show(self, command: str) -> str:
        """Run a netsh command on a copy of this host's firewall and return its output.

        ``int ipv4 show|set dynamicport`` reads (or, on nothing that persists, sets) the TCP/UDP
        dynamic port range instead (model/dynamicport.py)."""
        words = netsh.tokenize(netshwords.expand(command))
        if dynamicport.is_dynamicport(words):
            cmd = dynamicport.parse(words, self.os)
            if cmd.verb == "set":
                return "Ok.\n"
            shown = self.config.dynamic_ports.get(cmd.protocol, dynamicport.default(self.os))
            return dynamicport.show(cmd.protocol, shown)
        env = netsh.NetshEnv(os=self.os, host=self.name)
        advfirewall.check_context(self.os, command)
        if self.local_wfas is not None:
            store = self.local_wfas.copy()
            if self.policies.wfas is not None:
                store.policy_rules = self.policies.wfas.rules
            return advfirewall.run(store, command, env, self.wfas_profile)
        copy = self.local_firewall.copy()
        return netsh.run(copy, command, env, self.policies.firewall)

    def warnings(self) -> list[str]:
        return [*self.config.warnings(), *(f"{self.name}: {u} (it changed nothing)"
                                           for u in self.unmatched)]


class _Layered(Mapping[str, HostConfig]):
    """The host table of an edited world: the few edited hosts over the shared table."""

    __slots__ = ("base", "top")

    def __init__(self, top: Mapping[str, HostConfig], base: Mapping[str, HostConfig]) -> None:
        self.top = top
        self.base = base

    def __getitem__(self, name: str) -> HostConfig:
        found = self.top.get(name)
        return self.base[name] if found is None else found

    def __contains__(self, name: object) -> bool:
        return name in self.base

    def __iter__(self) -> Iterator[str]:
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)


class World:
    """Domains and hosts of a scenario, with the directory that logs accounts on.

    A world made by :meth:`with_host` is an overlay: it holds only the hosts it edits and
    asks the world it was made from (its base) for every other host, model and setting, so
    trying a candidate fix costs the same on a fleet of 10,000 hosts as on two.
    """

    def __init__(self, domains: Mapping[str, DomainSpec], hosts: Mapping[str, HostConfig]) -> None:
        self.domain_specs = dict(domains)
        self.configs: Mapping[str, HostConfig] = dict(hosts)
        self.builds = Builds()
        self.directory = Directory(
            self.domain_specs,
            {name: cfg.spec(self.builds) for name, cfg in self.configs.items()})
        self._models: dict[str, HostModel] = {}
        self.memo: dict[object, object] = {}
        self._base = self
        self._edits: dict[str, HostConfig] = {}

    def host(self, name: str) -> HostModel:
        model = self._models.get(name)
        if model is None:
            if self._base is not self and name not in self._edits:
                return self._base.host(name)
            model = self._build(name)
            self._models[name] = model
        return model

    def _build(self, name: str) -> HostModel:
        config = self.configs[name]
        key: Hashable = None
        if self._base is not self and self.directory is self._base.directory:
            # Same directory as the base: the model depends on the configuration alone.
            key = freeze(config)
            found = self.builds.edited.pop(key, None)
            if found is not None:
                self.builds.edited[key] = found  # now the most recently used
                return found
        try:
            model = HostModel(config, self.directory, self.builds,
                              edited=self._base is not self)
        except ConfigError as e:
            raise e.within("hosts", name) from None
        if key is not None:
            edited = self.builds.edited
            if len(edited) >= Builds.MAX_EDITED:
                del edited[next(iter(edited))]  # the least recently used
            edited[key] = model
        return model

    def build_all(self) -> None:
        for name in self.configs:
            self.host(name)

    def validate(self) -> None:
        """Raise the error that building some host's model would raise, in host order.

        A host whose only settings are its OS, membership, address, accounts, groups and netsh
        commands cannot fail once its firewall is built (the firewall is shared by every host
        set up alike; accounts and groups were checked by the directory), so its model is
        left to be built on first use. Every other host is built now.
        """
        for name, cfg in self.configs.items():
            if any(getattr(cfg, f) for f in _MAY_FAIL_FIELDS):
                self.host(name)
                continue
            try:
                self.builds.firewall(cfg, self.builds.rpc_ports(cfg), cfg.address.network)
            except ConfigError as e:
                raise e.within("hosts", name) from None

    @cached_property
    def by_address(self) -> dict[IPv4Address, str]:
        return {cfg.address.ip: name for name, cfg in self.configs.items()}

    def password_of(self, user: str) -> str | None:
        """The password the scenario file gives for ``DOMAIN\\name`` or ``HOST\\name``."""
        if self._base is not self:
            # An overlay has its base's accounts (with_host builds a new world otherwise).
            return self._base.password_of(user)
        key = ("password", user.upper())
        if key in self.memo:
            return self.memo[key]  # type: ignore[return-value]
        found = self._password_of(user)
        self.memo[key] = found
        return found

    def _password_of(self, user: str) -> str | None:
        authority, _, name = user.partition("\\")
        for dname, spec in self.domain_specs.items():
            if dname.upper() == authority.upper():
                return _lookup_ci(spec.accounts, name)
        cfg = self.configs.get(authority) or next(
            (c for h, c in self.configs.items() if h.upper() == authority.upper()), None)
        if cfg is not None:
            return _lookup_ci(cfg.accounts, name)
        return None

    def with_host(self, config: HostConfig) -> World:
        """A world where one host's configuration is replaced.

        Every other host's model is the base world's (built once, shared by every
        candidate); the directory is shared too unless the change alters how the host logs
        accounts on (the sharing model), and then only that host's entry is replaced.
        """
        base = self._base
        if config.name not in base.configs:
            raise KeyError(config.name)
        edits = {**self._edits, config.name: config}
        new = World.__new__(World)
        new.domain_specs = base.domain_specs
        new.builds = base.builds
        new.memo = {}
        # An overlay's own models are those of its edited hosts: a handful, never the fleet.
        new._models = ({} if self is base else
                       {n: m for n, m in self._models.items() if n != config.name})
        new._edits = edits
        new.configs = _Layered(edits, base.configs)
        new._base = base
        specs = {n: c.spec(base.builds) for n, c in edits.items()}
        changed = {n: s for n, s in specs.items() if s != base.directory.host_spec(n)}
        if not changed:
            new.directory = base.directory
            if self.directory is not base.directory:
                new._models = {}  # built with another directory
        else:
            directory = base.directory.with_host_specs(changed)
            if directory is None:
                # Accounts, groups or membership changed: SIDs may move, so nothing built
                # against the base directory can be reused (no remedy does this).
                return World(base.domain_specs, dict(new.configs))
            new.directory = directory
            new._models = {}
        return new

    def edit_host(self, name: str, **changes: Any) -> World:
        return self.with_host(replace(self.configs[name], **changes))


def _lookup_ci(table: Mapping[str, str], name: str) -> str | None:
    # Windows account names are case-insensitive (MS-DTYP 2.4.2 / SAM semantics).
    for key, value in table.items():
        if key.lower() == name.lower():
            return value
    return None
