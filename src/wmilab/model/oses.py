"""The OS catalogue: every Windows version the model knows, with each of its per-OS defaults.

Every module that behaves differently by OS reads the difference from here (the firewall's
factory defaults, DCOM's machine-wide limits, the sharing model, which built-in groups exist,
the namespaces WMI has, the dynamic RPC port range, and what ``Win32_OperatingSystem`` and
the rest of the emulated repository say). To add an OS, add one :class:`OsSpec` to
:data:`CATALOGUE`; an OS-specific rule that the fields below cannot express gets a new field
here, never an ``if os == ...`` elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from wmilab.errors import ConfigError

__all__ = ["CATALOGUE", "NAMES", "OsSpec", "get"]


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
)}

NAMES: tuple[str, ...] = tuple(CATALOGUE)


def get(name: str) -> OsSpec:
    """The catalogue entry for ``name``; ConfigError naming the known OSes otherwise."""
    spec = CATALOGUE.get(name)
    if spec is None:
        raise ConfigError(f"unknown OS {name!r}; expected one of: {', '.join(NAMES)}")
    return spec
