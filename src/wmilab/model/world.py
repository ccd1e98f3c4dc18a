"""A whole network of modelled Windows computers: the one object every layer asks.

The flow, the remedies and the emulated hosts all take their answers from a
:class:`World`; none of them keeps its own copy of a Windows rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from wmilab.errors import ConfigError
from wmilab.model import firewall as fw
from wmilab.model import netsh, oses
from wmilab.model.dcom import DcomSecurity
from wmilab.model.decision import Check
from wmilab.model.identity import Directory, DomainSpec, HostSpec, Token
from wmilab.model.policy import Policies, parse_policies
from wmilab.model.ports import RPC_ENDPOINT_MAPPER, RPC_INTERNET_VALUES, PortRange, dynamic_range
from wmilab.model.wmi import NamespaceSecurity

OSES = oses.NAMES

# Registry values a scenario may set (scenario-format.md "Registry"), with the OSes they act on.
REGISTRY_VALUES: dict[str, tuple[str, ...]] = {
    # HKLM\SYSTEM\CurrentControlSet\Control\Lsa\forceguest (MSDocs WmiSdk/securing-a-remote-wmi-connection).
    "ForceGuest": OSES,
    # Vista+ remote UAC (MSDocs WmiSdk/user-account-control-and-wmi): no effect on XP/2003.
    "LocalAccountTokenFilterPolicy": (),
    # Vista+ HKLM\Software\Microsoft\WBEM\CIMOM (MSDocs WmiSdk/setting-security-on-an-asynchronous-call).
    "UnsecAppAccessControlDefault": (),
    "AllowAnonymousCallback": (),
    # HKLM\Software\Microsoft\Rpc\Internet: the dynamic RPC port range (KB 154596).
    "Ports": OSES,
    "PortsInternetAvailable": OSES,
    "UseInternetPorts": OSES,
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
    profile: fw.Profile | None = None
    accounts: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] | None = None
    netsh: tuple[str, ...] = ()
    policy: Mapping[str, Any] = field(default_factory=dict)
    dcom: Mapping[str, Any] = field(default_factory=dict)
    wmi: Mapping[str, Any] = field(default_factory=dict)
    registry: Mapping[str, int | str | tuple[str, ...]] = field(default_factory=dict)
    services: Mapping[str, str] = field(default_factory=dict)

    @property
    def current_profile(self) -> fw.Profile:
        # The domain profile applies on the network where the computer's domain account
        # resides, the standard profile elsewhere (TechNet cc737332).
        if self.profile is not None:
            return self.profile
        return fw.Profile.DOMAIN if self.domain else fw.Profile.STANDARD

    def spec(self) -> HostSpec:
        reg = self.registry.get("ForceGuest")
        force_guest = None if reg is None else bool(reg)
        if self.policy:
            try:
                model = parse_policies(self.policy).sharing_model
            except ConfigError as e:
                raise e.within("hosts", self.name, "policy") from None
            # "Network access: Sharing and security model for local accounts" is the policy
            # behind the ForceGuest value; Group Policy wins over the local registry value.
            if model is not None:
                force_guest = model == "guest"
        return HostSpec(
            name=self.name, os=self.os, domain=self.domain, workgroup=self.workgroup,
            accounts=dict(self.accounts), groups=self.groups, force_guest=force_guest,
        )


class HostModel:
    """One computer's modelled state: firewall, policy, DCOM and WMI security."""

    def __init__(self, config: HostConfig, directory: Directory) -> None:
        self.config = config
        self.name = config.name
        self.os = config.os
        self.address = config.address
        self.ip: IPv4Address = config.address.ip
        self.subnet: IPv4Network = config.address.network
        self.directory = directory
        try:
            self.policies: Policies = parse_policies(config.policy)
        except ConfigError as e:
            raise e.within("policy") from None
        self.local_firewall = fw.LocalFirewall.defaults(config.os, config.current_profile)
        env = netsh.NetshEnv(os=config.os, host=config.name)
        for i, command in enumerate(config.netsh):
            try:
                netsh.run(self.local_firewall, command, env)
            except ConfigError as e:
                raise ConfigError(f"{command!r}: {e.message}", ("netsh", i)) from None
        self.firewall = fw.effective(
            self.local_firewall, self.policies.firewall, config.current_profile)
        try:
            self.dcom = DcomSecurity.defaults(config.os, directory, config.name).with_overrides(
                config.dcom, directory, config.name,
                launch_sddl=self.policies.dcom_launch_sddl,
                access_sddl=self.policies.dcom_access_sddl,
            )
        except ConfigError as e:
            raise e.within("dcom") from None
        try:
            self.wmi = NamespaceSecurity.defaults(config.os, directory, config.name)
            self.wmi = self.wmi.with_overrides(config.wmi, directory, config.name)
        except ConfigError as e:
            raise e.within("wmi") from None
        self.outgoing = self.dcom.check_outgoing()
        try:
            self.rpc_ports: PortRange = dynamic_range(config.os, {
                k: v for k, v in config.registry.items() if k in RPC_INTERNET_VALUES})
        except ConfigError as e:
            raise e.within("registry") from None
        # Service Control Manager state of the WMI service (scenario "services"); running
        # unless the scenario says otherwise (winmgmt starts automatically: KB 875605).
        self.winmgmt: str = config.services.get("winmgmt", "running")

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

    def wmi_inbound(self, source: IPv4Address) -> fw.Verdict:
        """Would the firewall let ``source`` reach the WMI service on its dynamic port?

        winmgmt runs in a shared svchost.exe on XP SP2 and Server 2003 (TechNet cc737332,
        Remote Administration exception), on a port of :attr:`rpc_ports`.
        """
        return self.firewall.decide_dynamic(source, self.rpc_ports, fw.SVCHOST, self.subnet)

    def sink_inbound(self, source: IPv4Address, program: str) -> fw.Verdict:
        """Would the firewall let ``source`` reach the sink ``program`` on its dynamic port?"""
        return self.firewall.decide_dynamic(source, self.rpc_ports, program, self.subnet)

    def admission(self, port: int, program: str, protocol: str = "TCP") -> fw.Admission:
        """Who this computer's firewall lets open a connection to ``port`` (``program``
        listening): the scopes the nftables compiler turns into rules (lab/nft.py)."""
        return self.firewall.admission(port, program, protocol)

    def inbound(self, source: IPv4Address, port: int, program: str) -> fw.Verdict:
        """Would this computer's firewall let an unsolicited TCP connection in?"""
        return self.firewall.admission(port, program).decide(source, self.subnet)

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

    def rpcss_inbound(self, source: IPv4Address) -> fw.Verdict:
        # RPCSS (endpoint mapper, activator, OXID resolver) is hosted by svchost.exe on
        # XP SP2 and Server 2003 (TechNet cc737332 Remote Administration exception).
        return self.inbound(source, RPC_ENDPOINT_MAPPER, fw.SVCHOST)

    def netsh_show(self, command: str) -> str:
        """Run a netsh command on a copy of this host's firewall and return its output."""
        copy = self.local_firewall.copy()
        env = netsh.NetshEnv(os=self.os, host=self.name)
        return netsh.run(copy, command, env, self.policies.firewall)

    def warnings(self) -> list[str]:
        out = []
        for name in self.config.registry:
            if self.os not in REGISTRY_VALUES.get(name, OSES):
                out.append(f"{self.name}: registry value {name} has no effect on {self.os} "
                           "(it exists on Windows Vista and later)")
        return out


class World:
    """Domains and hosts of a scenario, with the directory that logs accounts on."""

    def __init__(self, domains: Mapping[str, DomainSpec], hosts: Mapping[str, HostConfig]) -> None:
        self.domain_specs = dict(domains)
        self.configs = dict(hosts)
        self.directory = Directory(
            self.domain_specs, {name: cfg.spec() for name, cfg in self.configs.items()})
        self._models: dict[str, HostModel] = {}
        self.memo: dict[object, object] = {}

    def host(self, name: str) -> HostModel:
        model = self._models.get(name)
        if model is None:
            try:
                model = HostModel(self.configs[name], self.directory)
            except ConfigError as e:
                raise e.within("hosts", name) from None
            self._models[name] = model
        return model

    def build_all(self) -> None:
        for name in self.configs:
            self.host(name)

    @cached_property
    def by_address(self) -> dict[IPv4Address, str]:
        return {cfg.address.ip: name for name, cfg in self.configs.items()}

    def password_of(self, user: str) -> str | None:
        """The password the scenario file gives for ``DOMAIN\\name`` or ``HOST\\name``."""
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
        """A world where one host's configuration is replaced (models of others reused)."""
        new = World.__new__(World)
        new.memo = {}
        new.domain_specs = self.domain_specs
        new.configs = {**self.configs, config.name: config}
        old = self.configs[config.name]
        if old.spec() != config.spec():
            new.directory = Directory(
                new.domain_specs, {n: c.spec() for n, c in new.configs.items()})
            new._models = {}
        else:
            new.directory = self.directory
            new._models = {n: m for n, m in self._models.items() if n != config.name}
        return new

    def edit_host(self, name: str, **changes: Any) -> World:
        return self.with_host(replace(self.configs[name], **changes))


def _lookup_ci(table: Mapping[str, str], name: str) -> str | None:
    # Windows account names are case-insensitive (MS-DTYP 2.4.2 / SAM semantics).
    for key, value in table.items():
        if key.lower() == name.lower():
            return value
    return None
