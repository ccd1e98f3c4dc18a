"""The OS catalogue: every Windows version the model knows, with each of its per-OS defaults.

Every module that behaves differently by OS reads the difference from here (the firewall's
factory defaults, DCOM's machine-wide limits, the sharing model, which built-in groups exist,
the namespaces WMI has, the dynamic RPC port range, and what ``Win32_OperatingSystem`` and
the rest of the emulated repository say). To add an OS, add one :class:`OsSpec` to
:data:`CATALOGUE`; an OS-specific rule that the fields below cannot express gets a new field
here, never an ``if os == ...`` elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from wmilab.errors import ConfigError

__all__ = ["CATALOGUE", "CURRENT_MONTH", "NAMES", "OsSpec", "check_updates", "get", "parse_month"]

# The SIDs the namespace defaults grant (MS-DTYP 2.4.2.4); kept here so the catalogue needs
# no import from the model it configures.
_EVERYONE = "S-1-1-0"
_AUTHENTICATED_USERS = "S-1-5-11"

FirewallKind = Literal["windows-firewall", "wfas"]


@dataclass(frozen=True)
class OsSpec:
    name: str  # the scenario's ``os`` value
    title: str  # how docs and messages name it
    # -- identity (Win32_OperatingSystem; MSDocs CIMWin32Prov/win32-operatingsystem) ----------
    caption: str
    version: str
    build: str
    csd_version: str
    sp_major: int
    product_type: int  # 1 workstation, 2 domain controller, 3 server
    server: bool
    # -- Windows Firewall ----------------------------------------------------------------
    firewall_on: bool  # the firewall's factory state
    remote_assistance_exception: bool  # the Remote Assistance program exception ships enabled
    # -- accounts and logon --------------------------------------------------------------
    force_guest_outside_domain: bool  # "Guest only" sharing model when not in a domain
    distributed_com_users: bool  # the built-in group exists (and is in DCOM's limits)
    perf_groups: bool  # Performance Monitor Users / Performance Log Users exist
    # -- DCOM ----------------------------------------------------------------------------
    anonymous_remote_access_limit: bool  # MachineAccessRestriction grants ANONYMOUS Remote Access
    # -- RPC -----------------------------------------------------------------------------
    dynamic_ports: range  # where the RPC runtime picks a server's dynamic port
    # -- the emulated repository -----------------------------------------------------------
    svchost_groups: tuple[str, ...]
    extra_processes: tuple[str, ...]
    hotfixes: tuple[str, ...]
    hotfix_sp: str
    # -- which firewall and which profiles ---------------------------------------------------
    # "windows-firewall": XP SP2 / 2003 SP1 (netsh firewall; domain and standard profiles);
    # "wfas": Windows Firewall with Advanced Security, Vista and later (netsh advfirewall;
    # domain, private and public profiles: Learn "Windows Firewall with Advanced Security").
    firewall: FirewallKind = "windows-firewall"
    # The built-in WFAS group "Remote Administration" still ships (Vista to 2008 R2; removed
    # from Windows 8 / Server 2012 on: MicrosoftDocs/windowsserverdocs issues 821 and 5040).
    remote_admin_group: bool = False
    # -- WMI namespace security --------------------------------------------------------------
    # Who gets Enable Account / Execute Methods / Provider Write on root: Everyone before
    # Vista, Authenticated Users from Vista on (MSDocs WmiSdk/access-to-wmi-namespaces).
    namespace_users: str = _EVERYONE
    # -- servicing -----------------------------------------------------------------------------
    # "YYYY-MM" of the first release, and of the newest monthly update it received (the
    # scenario's ``updates`` default); "" on XP SP2 / 2003 SP1, which have no ``updates``.
    released: str = ""
    last_update: str = ""
    # Remote UAC filters remote logons of local administrators (Vista and later: KB 951016).
    remote_uac: bool = False
    # The RPC_C_AUTHN_LEVEL the OS's WMI client activates with when the program sets none:
    # CONNECT (2) for NT to Server 2003 clients (MS-DCOM errata 2022/12/13, 3.2.4.1.1.2
    # product behavior note 81); PKT (4) from Vista on (MSDocs WmiSdk/securing-a-remote-wmi-
    # connection: remote connections default to RPC_C_AUTHN_LEVEL_PKT).
    activation_auth_level: int = 2
    # -- Vista and later: WMI's own security settings --------------------------------------
    # WMI honours the RequiresEncryption qualifier of a namespace (Learn WmiSdk/pragma-namespace
    # and requiring-an-encrypted-connection-to-a-namespace: Windows Vista / Server 2008 on).
    namespace_encryption: bool = False
    # WMI makes an anonymous callback only when HKLM\SOFTWARE\Microsoft\WBEM\CIMOM
    # AllowAnonymousCallback = 1 (Learn WmiSdk/connecting-to-wmi-remotely-starting-with-vista,
    # "CIMOM Settings"); before Vista the callback falls back to anonymous unasked (MS-WMI
    # 3.1.1.1.3 product behavior note: down to RPC_C_AUTHN_LEVEL_NONE).
    anonymous_callback_opt_in: bool = False
    # -- DCOM's machine-wide limits beyond XP SP2 / 2003 SP1's --------------------------------
    # Performance Log Users gets launch/activation and access in both limits (Vista on), and
    # ALL APPLICATION PACKAGES local rights (Windows 8 / Server 2012 on: RPCSS appends it to the
    # COM restrictions, Learn com/donotaddallapplicationpackagestorestrictions). Rights: the
    # default SDDL in docs/dcom.md (Choice, docs/choices.md).
    dcom_perf_log_users: bool = False
    dcom_app_packages: bool = False

    @property
    def modern(self) -> bool:
        """Vista and later: the OS takes ``updates`` and the Vista-and-later profiles."""
        return self.firewall == "wfas"

    @property
    def netsecurity_cmdlets(self) -> bool:
        """The PowerShell NetSecurity module (*-NetFirewallRule) exists: Windows 8 / Server
        2012 (build 9200) and later (Learn powershell/module/netsecurity, Requirements)."""
        return int(self.build) >= 9200

    @property
    def profiles(self) -> tuple[str, ...]:
        """The firewall profiles this OS has (scenario ``profile`` values)."""
        if self.firewall == "wfas":
            return ("domain", "private", "public")
        return ("domain", "standard")


# The newest monthly update the catalogue knows of, for OSes still serviced. Choice
# (docs/choices.md): a fixed month, so that results do not change with the calendar.
CURRENT_MONTH = "2026-11"


def _modern(name: str, title: str, caption: str, version: str, csd: str, sp: int, *,
            server: bool, released: str, last_update: str,
            remote_admin_group: bool = False) -> OsSpec:
    """An OS of Vista and later: what all of them share, from their common sources."""
    return OsSpec(
        name=name, title=title, caption=caption, version=version,
        build=version.rsplit(".", 1)[1], csd_version=csd, sp_major=sp,
        product_type=3 if server else 1, server=server,
        # Windows Firewall is on in every profile from Windows Vista and Server 2008 on
        # (Learn "Windows Firewall with Advanced Security", default inbound block).
        firewall_on=True, remote_assistance_exception=False,
        # Vista and later: the Classic sharing model by default; remote UAC takes the place of
        # Guest-only for local accounts (KB 951016; Learn "Network access: Sharing and security
        # model for local accounts", default Classic).
        force_guest_outside_domain=False,
        distributed_com_users=True, perf_groups=True,
        # MachineAccessRestriction default: anonymous users get local access only (Learn
        # com/machineaccessrestriction).
        anonymous_remote_access_limit=False,
        # Vista / Server 2008 and later: dynamic ports 49152-65535 (KB 929851).
        dynamic_ports=range(49152, 65536),
        svchost_groups=("DcomLaunch", "RPCSS", "LocalServiceNetworkRestricted", "netsvcs",
                        "LocalService", "NetworkService", "LocalSystemNetworkRestricted"),
        extra_processes=("wininit.exe", "spoolsv.exe", "explorer.exe"),
        # Choice (docs/choices.md): no hotfix list; updates are the ``updates`` month.
        hotfixes=(), hotfix_sp="",
        firewall="wfas", remote_admin_group=remote_admin_group,
        namespace_users=_AUTHENTICATED_USERS,
        released=released, last_update=last_update, remote_uac=True,
        activation_auth_level=4,
        namespace_encryption=True, anonymous_callback_opt_in=True, dcom_perf_log_users=True,
        # Windows 8 is build 9200 (MSDocs sysinfo/operating-system-version: 6.2).
        dcom_app_packages=int(version.rsplit(".", 1)[1]) >= 9200,
    )


CATALOGUE: dict[str, OsSpec] = {s.name: s for s in (
    OsSpec(
        name="xp-sp2", title="Windows XP Professional SP2",
        # Version numbers: KB 304721 / MSDocs sysinfo/operating-system-version (5.1 = XP).
        caption="Microsoft Windows XP Professional", version="5.1.2600", build="2600",
        csd_version="Service Pack 2", sp_major=2, product_type=1, server=False,
        # XP SP2: firewall on (seed, "Connecting Through Windows Firewall").
        firewall_on=True,
        # Choice (docs/choices.md): XP SP2 ships the Remote Assistance exception enabled.
        remote_assistance_exception=True,
        # XP Professional outside a domain uses "Guest only" (TechNet "Network access: Sharing
        # and security model for local accounts"; XP Resource Kit ch. 6, ForceGuest).
        force_guest_outside_domain=True,
        # "Distributed COM Users is a new built-in group included with Windows Server 2003 SP1"
        # (MSDocs com/dcom-security-enhancements-in-windows-xp-service-pack-2-...).
        distributed_com_users=False, perf_groups=False,
        # XP SP2 MachineAccessRestriction: ANONYMOUS LOGON gets Local Access only (same page).
        anonymous_remote_access_limit=False,
        # Windows Server 2003 and earlier: dynamic ports 1025-5000 (KB 154596).
        dynamic_ports=range(1025, 5001),
        # XP SP2 split the DCOM launcher out of RpcSs (MSDocs com/dcom-security-enhancements-...).
        svchost_groups=("DcomLaunch", "rpcss", "netsvcs", "NetworkService", "LocalService"),
        extra_processes=("spoolsv.exe", "explorer.exe", "alg.exe"),
        hotfixes=("KB873339", "KB885835", "KB885836", "KB886185", "KB887472", "KB890859"),
        hotfix_sp="SP3"),
    OsSpec(
        name="2003-sp1", title="Windows Server 2003 SP1",
        # 5.2 = Server 2003 (MSDocs sysinfo/operating-system-version).
        caption="Microsoft(R) Windows(R) Server 2003, Standard Edition", version="5.2.3790",
        build="3790", csd_version="Service Pack 1", sp_major=1, product_type=3, server=True,
        # Server 2003 SP1 ships with the firewall off (seed).
        firewall_on=False, remote_assistance_exception=False,
        # Windows Server 2003 uses the Classic sharing model (TechNet, as above).
        force_guest_outside_domain=False,
        distributed_com_users=True, perf_groups=True,
        # Server 2003 SP1 MachineAccessRestriction: Anonymous LC RC (MSDocs as above).
        anonymous_remote_access_limit=True,
        dynamic_ports=range(1025, 5001),
        svchost_groups=("DcomLaunch", "rpcss", "netsvcs", "NetworkService", "LocalService",
                        "imgsvc"),
        extra_processes=("spoolsv.exe", "msdtc.exe", "explorer.exe"),
        hotfixes=("KB890046", "KB893756", "KB896358", "KB896422", "KB899587"),
        hotfix_sp="SP2"),
    # ---- Windows Vista and later ---------------------------------------------------------
    # Versions and builds: MSDocs sysinfo/operating-system-version (6.0 Vista/2008, 6.1 7/2008
    # R2, 6.3 8.1/2012 R2, 10.0 from Windows 10 / Server 2016) and the release-information
    # pages (Learn windows/release-health, windows-server/get-started/windows-server-release-
    # info): 6002 = SP2 of 6.0, 7601 = SP1 of 6.1, 9600 = 8.1/2012 R2, 19045 = Windows 10
    # 22H2, 14393 = 2016, 17763 = 2019, 20348 = 2022, 26100 = Windows 11 24H2 and 2025.
    # Servicing ends (``last_update``, without paid extended updates): Learn lifecycle pages.
    _modern("vista-sp2", "Windows Vista Business SP2", "Microsoft Windows Vista Business",
            "6.0.6002", "Service Pack 2", 2, server=False, released="2009-05",
            last_update="2017-04", remote_admin_group=True),
    _modern("2008-sp2", "Windows Server 2008 Standard SP2",
            "Microsoft® Windows Server® 2008 Standard", "6.0.6002", "Service Pack 2", 2,
            server=True, released="2009-05", last_update="2020-01", remote_admin_group=True),
    _modern("7-sp1", "Windows 7 Professional SP1", "Microsoft Windows 7 Professional",
            "6.1.7601", "Service Pack 1", 1, server=False, released="2011-02",
            last_update="2020-01", remote_admin_group=True),
    _modern("2008r2-sp1", "Windows Server 2008 R2 Standard SP1",
            "Microsoft Windows Server 2008 R2 Standard", "6.1.7601", "Service Pack 1", 1,
            server=True, released="2011-02", last_update="2020-01", remote_admin_group=True),
    _modern("8.1", "Windows 8.1 Pro", "Microsoft Windows 8.1 Pro", "6.3.9600", "", 0,
            server=False, released="2013-10", last_update="2023-01"),
    _modern("2012r2", "Windows Server 2012 R2 Standard",
            "Microsoft Windows Server 2012 R2 Standard", "6.3.9600", "", 0, server=True,
            released="2013-10", last_update="2023-10"),
    _modern("10", "Windows 10 Pro 22H2", "Microsoft Windows 10 Pro", "10.0.19045", "", 0,
            server=False, released="2015-07", last_update="2025-10"),
    _modern("2016", "Windows Server 2016 Standard", "Microsoft Windows Server 2016 Standard",
            "10.0.14393", "", 0, server=True, released="2016-10", last_update=CURRENT_MONTH),
    _modern("2019", "Windows Server 2019 Standard", "Microsoft Windows Server 2019 Standard",
            "10.0.17763", "", 0, server=True, released="2018-11", last_update=CURRENT_MONTH),
    _modern("11", "Windows 11 Pro 24H2", "Microsoft Windows 11 Pro", "10.0.26100", "", 0,
            server=False, released="2021-10", last_update=CURRENT_MONTH),
    _modern("2022", "Windows Server 2022 Standard", "Microsoft Windows Server 2022 Standard",
            "10.0.20348", "", 0, server=True, released="2021-08", last_update=CURRENT_MONTH),
    _modern("2025", "Windows Server 2025 Standard", "Microsoft Windows Server 2025 Standard",
            "10.0.26100", "", 0, server=True, released="2024-11", last_update=CURRENT_MONTH),
)}

NAMES: tuple[str, ...] = tuple(CATALOGUE)


def get(name: str) -> OsSpec:
    """The catalogue entry for ``name``; ConfigError naming the known OSes otherwise."""
    spec = CATALOGUE.get(name)
    if spec is None:
        raise ConfigError(f"unknown OS {name!r}; expected one of: {', '.join(NAMES)}")
    return spec


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(text: str) -> tuple[int, int]:
    """``"2023-03"`` -> (2023, 3); ConfigError for anything that is not a month."""
    m = _MONTH.match(text.strip())
    if m is None or not 1 <= int(m.group(2)) <= 12:
        raise ConfigError(f"{text!r} is not a month written YYYY-MM (such as \"2023-03\")")
    return int(m.group(1)), int(m.group(2))


def check_updates(spec: OsSpec, text: str) -> str:
    """Validate a scenario's ``updates`` month for ``spec``; the normalized "YYYY-MM".

    Monthly cumulative updates exist from Windows Vista on only in this model; a month before
    the OS's release or after the newest update it received is no update it can have.
    """
    if not spec.modern:
        raise ConfigError(f"'updates' applies to Windows Vista and later, not to {spec.title}")
    year, month = parse_month(text)
    norm = f"{year:04d}-{month:02d}"
    if norm < spec.released:
        raise ConfigError(f"{spec.title} was released in {spec.released}; no update of "
                          f"{norm} exists for it")
    if norm > spec.last_update:
        raise ConfigError(f"the newest update {spec.title} received is {spec.last_update}, "
                          f"not {norm}")
    return norm
