"""Deterministic per-host instances for an emulated XP SP2 or Server 2003 SP1 host.

Everything here is derived from a small ``MachineFacts``: the same spec always gives the same
instances (a RNG seeded from the host name picks process ids and serial numbers). The
emulated state changes only through methods (Win32_Process.Create/Terminate); nothing is
ever run on the real machine.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ..errors import ConfigError
from ..model import oses
from ..wire.wmio import Value
from .cim import dmtf_datetime

_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,14}$")


@dataclass(frozen=True)
class MachineFacts:
    """The small input a host's instances are generated from."""

    hostname: str
    os: str = "xp-sp2"
    domain: str | None = None
    workgroup: str | None = None
    ipv4: str = "192.168.0.10"
    prefix: int = 24
    features: tuple[str, ...] = ()  # optional features installed (model/features.py)

    def __post_init__(self) -> None:
        # NetBIOS computer names are at most 15 characters (MSDocs
        # troubleshoot/windows-server/identity/naming-conventions-for-computer-domain-site-ou).
        if not _HOST_RE.match(self.hostname):
            raise ConfigError(
                f"host name {self.hostname!r} must be 1-15 letters, digits or '-'", ("hostname",))
        if self.os not in oses.CATALOGUE:
            raise ConfigError(f"os {self.os!r} must be one of {', '.join(oses.NAMES)}", ("os",))
        if self.domain and self.workgroup:
            raise ConfigError("give a domain or a workgroup, not both", ("domain",))
        try:
            ipaddress.IPv4Address(self.ipv4)
        except ValueError:
            raise ConfigError(f"{self.ipv4!r} is not an IPv4 address", ("ipv4",)) from None
        if not 0 <= self.prefix <= 32:
            raise ConfigError(f"prefix {self.prefix} must be 0-32", ("prefix",))

    @property
    def profile(self) -> oses.OsSpec:
        return oses.CATALOGUE[self.os]

    @property
    def name(self) -> str:
        return self.hostname.upper()

    @property
    def domain_or_workgroup(self) -> str:
        # Win32_ComputerSystem.Domain holds the workgroup name on a workgroup member
        # (MSDocs CIMWin32Prov/win32-computersystem, "Domain").
        return self.domain if self.domain else (self.workgroup or "WORKGROUP").upper()


# Times are fixed so that the same spec gives the same bytes.
_BOOT = datetime(2006, 3, 14, 8, 30, 12, 125000, tzinfo=timezone(timedelta(minutes=60)))
_INSTALL = datetime(2005, 11, 2, 16, 4, 51, tzinfo=timezone(timedelta(minutes=60)))


@dataclass
class Process:
    pid: int
    name: str
    parent: int
    command_line: str | None
    path: str | None
    threads: int
    handles: int
    working_set: int
    session: int = 0
    created: datetime = _BOOT


@dataclass
class Service:
    name: str
    display: str
    state: str
    start_mode: str
    pid: int
    path: str
    start_name: str = "LocalSystem"
    service_type: str = "Share Process"
    accept_stop: bool = True


@dataclass
class HostState:
    """The mutable emulated state of one host."""

    spec: MachineFacts
    processes: list[Process] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    next_pid_seed: int = 0
    # Bumped by every change of the state after it is built (create_process, terminate):
    # what the repository's encoded-result cache is keyed on.
    version: int = 0

    @classmethod
    def build(cls, spec: MachineFacts) -> HostState:
        state = cls(spec)
        seed = int.from_bytes(hashlib.sha256(spec.hostname.upper().encode()).digest()[:8],
                              "little")
        rng = random.Random(seed)
        state._build_processes(rng)
        state._build_services()
        state.next_pid_seed = seed
        return state

    # -- processes ---------------------------------------------------------------------
    def _pid(self, rng: random.Random) -> int:
        # Windows process ids are multiples of 4 (MSDocs "Process ID" / Windows Internals).
        used = {p.pid for p in self.processes}
        while True:
            pid = rng.randrange(30, 1000) * 4
            if pid not in used:
                return pid

    def _build_processes(self, rng: random.Random) -> None:
        windir = "C:\\WINDOWS"
        sys32 = f"{windir}\\system32"
        procs = self.processes
        # System Idle Process is pid 0 and System is pid 4 on XP and Server 2003.
        procs.append(Process(0, "System Idle Process", 0, None, None, 1, 0, 16384))
        procs.append(Process(4, "System", 0, None, None, 58, 260, 245760))

        def add(name: str, parent: int, cmd: str | None, path: str | None,
                threads: int, session: int = 0) -> Process:
            p = Process(self._pid(rng), name, parent, cmd, path, threads,
                        rng.randrange(50, 900), rng.randrange(1000, 20000) * 1024,
                        session)
            procs.append(p)
            return p

        smss = add("smss.exe", 4, "\\SystemRoot\\System32\\smss.exe", f"{sys32}\\smss.exe", 3)
        add("csrss.exe", smss.pid,
            f"{sys32}\\csrss.exe ObjectDirectory=\\Windows SharedSection=1024,3072,512 "
            "Windows=On SubSystemType=Windows", f"{sys32}\\csrss.exe", 12)
        winlogon = add("winlogon.exe", smss.pid, "winlogon.exe", f"{sys32}\\winlogon.exe", 19)
        services = add("services.exe", winlogon.pid, f"{sys32}\\services.exe",
                       f"{sys32}\\services.exe", 16)
        add("lsass.exe", winlogon.pid, f"{sys32}\\lsass.exe", f"{sys32}\\lsass.exe", 21)
        for group in self.spec.profile.svchost_groups:
            add("svchost.exe", services.pid, f"{sys32}\\svchost.exe -k {group}",
                f"{sys32}\\svchost.exe", rng.randrange(5, 80))
        for extra in self.spec.profile.extra_processes:
            if extra == "explorer.exe":
                add(extra, winlogon.pid, f"{windir}\\Explorer.EXE", f"{windir}\\explorer.exe",
                    14)
            else:
                add(extra, services.pid, f"{sys32}\\{extra}", f"{sys32}\\{extra}", 10)
        # The WMI provider host runs the CIMWin32 provider (MSDocs WmiSdk/provider-hosting-
        # and-security): it is the parent of processes created through Win32_Process.Create.
        rpcss = self.svchost("rpcss")
        add("wmiprvse.exe", rpcss.pid if rpcss else services.pid,
            f"{sys32}\\wbem\\wmiprvse.exe", f"{sys32}\\wbem\\wmiprvse.exe", 7)

    def svchost(self, group: str) -> Process | None:
        return next((p for p in self.processes if p.command_line and
                     p.command_line.lower().endswith(f"-k {group.lower()}")), None)

    def process(self, pid: int) -> Process | None:
        return next((p for p in self.processes if p.pid == pid), None)

    def create_process(self, command_line: str, current_directory: str | None) -> Process:
        """Record a new process for Win32_Process.Create; nothing is executed."""
        rng = random.Random(self.next_pid_seed + len(self.processes))
        exe = _executable(command_line)
        wmiprvse = next((p for p in self.processes if p.name.lower() == "wmiprvse.exe"), None)
        proc = Process(self._pid(rng), exe.rsplit("\\", 1)[-1], wmiprvse.pid if wmiprvse else 4,
                       command_line, exe if "\\" in exe else None, 1, 20, 1024 * 1024)
        self.processes.append(proc)
        self.version += 1
        return proc

    def terminate(self, pid: int) -> bool:
        proc = self.process(pid)
        if proc is None or pid in (0, 4):
            return False
        self.processes.remove(proc)
        self.version += 1
        return True

    # -- services ----------------------------------------------------------------------
    def _build_services(self) -> None:
        prof = self.spec.profile
        sys32 = "C:\\WINDOWS\\system32"

        def host(group: str) -> int:
            p = self.svchost(group)
            return p.pid if p else 0

        def svc(name: str, display: str, group: str | None, running: bool = True,
                mode: str = "Auto", start_name: str = "LocalSystem") -> None:
            pid = (host(group) if group else 0) if running else 0
            path = f"{sys32}\\svchost.exe -k {group}" if group else f"{sys32}\\{name}.exe"
            self.services.append(Service(name, display, "Running" if running else "Stopped",
                                         mode, pid, path, start_name))

        # Service names and display names: MSDocs/TechNet "Services in Windows XP SP2 and
        # Windows Server 2003 SP1" (e.g. SharedAccess = "Windows Firewall/Internet Connection
        # Sharing (ICS)", winmgmt = "Windows Management Instrumentation").
        svc("DcomLaunch", "DCOM Server Process Launcher", "DcomLaunch")
        svc("RpcSs", "Remote Procedure Call (RPC)", "rpcss",
            start_name="NT AUTHORITY\\NetworkService")
        svc("winmgmt", "Windows Management Instrumentation", "netsvcs")
        svc("SharedAccess", "Windows Firewall/Internet Connection Sharing (ICS)", "netsvcs",
            running=prof.firewall_on, mode="Auto" if prof.firewall_on else "Manual")
        svc("LanmanServer", "Server", "netsvcs")
        svc("LanmanWorkstation", "Workstation", "netsvcs")
        svc("Dnscache", "DNS Client", "NetworkService",
            start_name="NT AUTHORITY\\NetworkService")
        svc("Dhcp", "DHCP Client", "netsvcs")
        svc("Eventlog", "Event Log", None)
        self.services[-1].path = f"{sys32}\\services.exe"
        self.services[-1].pid = next(p.pid for p in self.processes if p.name == "services.exe")
        svc("PlugPlay", "Plug and Play", None)
        self.services[-1].path = f"{sys32}\\services.exe"
        self.services[-1].pid = self.services[-2].pid
        svc("RemoteRegistry", "Remote Registry", "LocalService",
            start_name="NT AUTHORITY\\LocalService")
        svc("Spooler", "Print Spooler", None)
        spooler = next(p for p in self.processes if p.name == "spoolsv.exe")
        self.services[-1].path = f"{sys32}\\spoolsv.exe"
        self.services[-1].pid = spooler.pid
        svc("W32Time", "Windows Time", "netsvcs")
        svc("TermService", "Terminal Services", "DcomLaunch" if not prof.server else "termsvcs",
            mode="Manual" if not prof.server else "Auto")
        if prof.server and not self.svchost("termsvcs"):
            self.services[-1].pid = host("netsvcs")
        svc("TlntSvr", "Telnet", None, running=False, mode="Disabled")
        for s in self.services:
            if s.state == "Stopped":
                s.pid = 0
        self.services.sort(key=lambda s: s.name.lower())


def _executable(command_line: str) -> str:
    text = command_line.strip()
    if text.startswith('"'):
        end = text.find('"', 1)
        return text[1:end] if end > 0 else text[1:]
    return text.split(" ", 1)[0] if text else ""


# ---------------------------------------------------------------------------------------
# Instance values per class
# ---------------------------------------------------------------------------------------

def _mac(spec: MachineFacts) -> str:
    digest = hashlib.sha256(b"mac:" + spec.hostname.upper().encode()).digest()
    # 00:0C:29 is a VMware OUI: a virtual NIC, which emulated hosts are. Choice.
    return "00:0C:29:" + ":".join(f"{b:02X}" for b in digest[:3])


def values_for(state: HostState, class_name: str) -> list[dict[str, Value]]:
    """Property values of every instance of exactly ``class_name`` (not subclasses)."""
    spec = state.spec
    prof = spec.profile
    name = spec.name
    low = class_name.lower()
    cs_path = f'\\\\{name}\\root\\cimv2:Win32_ComputerSystem.Name="{name}"'
    if low == "win32_computersystem":
        # DomainRole 0 standalone workstation, 1 member workstation, 2 standalone server,
        # 3 member server (MSDocs CIMWin32Prov/win32-computersystem).
        role = (2 if prof.server else 0) + (1 if spec.domain else 0)
        return [{
            "Name": name, "Caption": name, "CreationClassName": "Win32_ComputerSystem",
            "Description": "AT/AT COMPATIBLE", "Domain": spec.domain_or_workgroup,
            "DomainRole": role, "Manufacturer": "VMware, Inc.",
            "Model": "VMware Virtual Platform", "NumberOfProcessors": 1,
            "PartOfDomain": spec.domain is not None, "PrimaryOwnerName": "Administrator",
            "Status": "OK", "SystemType": "X86-based PC",
            "TotalPhysicalMemory": 536330240, "UserName": f"{name}\\Administrator"}]
    if low == "win32_operatingsystem":
        # Vista and later install to C:\Windows (XP and 2003: C:\WINDOWS).
        windir = "C:\\Windows" if prof.modern else "C:\\WINDOWS"
        return [{
            "Caption": prof.caption, "Name": f"{prof.caption}|{windir}|\\Device\\Harddisk0"
            "\\Partition1", "BootDevice": "\\Device\\HarddiskVolume1",
            "BuildNumber": prof.build, "BuildType": "Uniprocessor Free", "CodeSet": "1252",
            "CountryCode": "1", "CreationClassName": "Win32_OperatingSystem",
            "CSCreationClassName": "Win32_ComputerSystem", "CSDVersion": prof.csd_version,
            "CSName": name, "CurrentTimeZone": 60, "FreePhysicalMemory": 301234,
            "FreeVirtualMemory": 1654321, "InstallDate": dmtf_datetime(_INSTALL),
            "LastBootUpTime": dmtf_datetime(_BOOT), "LocalDateTime": dmtf_datetime(
                _BOOT + timedelta(hours=3, minutes=12)),
            "Locale": "0409", "Manufacturer": "Microsoft Corporation",
            "NumberOfProcesses": len(state.processes), "NumberOfUsers": 1,
            "Organization": "", "OSLanguage": 1033, "OSProductSuite": 0 if not prof.server
            else 272, "OSType": 18, "Primary": True, "ProductType": prof.product_type,
            "RegisteredUser": "Administrator", "SerialNumber": "76487-OEM-0011903-00101",
            "ServicePackMajorVersion": prof.sp_major, "ServicePackMinorVersion": 0,
            "Status": "OK", "SystemDevice": "\\Device\\HarddiskVolume1",
            "SystemDirectory": f"{windir}\\system32", "SystemDrive": "C:",
            "TotalVirtualMemorySize": 2097024, "TotalVisibleMemorySize": 523760,
            "Version": prof.version, "WindowsDirectory": windir}]
    if low == "win32_process":
        out: list[dict[str, Value]] = []
        for p in state.processes:
            out.append({
                "Handle": str(p.pid), "ProcessId": p.pid, "Name": p.name, "Caption": p.name,
                "Description": p.name, "CommandLine": p.command_line,
                "ExecutablePath": p.path, "ParentProcessId": p.parent,
                "ThreadCount": p.threads, "HandleCount": p.handles,
                "WorkingSetSize": p.working_set, "VirtualSize": p.working_set * 4,
                "SessionId": p.session, "Priority": 8, "CreationClassName": "Win32_Process",
                "CSCreationClassName": "Win32_ComputerSystem", "CSName": name,
                "OSCreationClassName": "Win32_OperatingSystem",
                "OSName": f"{prof.caption}|C:\\WINDOWS|\\Device\\Harddisk0\\Partition1",
                "CreationDate": None if p.pid in (0, 4) else dmtf_datetime(p.created)})
        return out
    if low == "win32_service":
        return [{
            "Name": s.name, "DisplayName": s.display, "Caption": s.display,
            "Description": s.display, "State": s.state, "Started": s.state == "Running",
            "StartMode": s.start_mode, "ProcessId": s.pid, "PathName": s.path,
            "StartName": s.start_name, "ServiceType": s.service_type,
            "AcceptStop": s.accept_stop and s.state == "Running", "AcceptPause": False,
            "DesktopInteract": False, "ErrorControl": "Normal",
            "Status": "OK", "CreationClassName": "Win32_Service",
            "SystemCreationClassName": "Win32_ComputerSystem", "SystemName": name}
            for s in state.services]
    if low == "win32_logicaldisk":
        serial = hashlib.sha256(b"vol:" + name.encode()).hexdigest()[:8].upper()
        # DriveType 3 = local disk, 5 = compact disc (MSDocs CIMWin32Prov/win32-logicaldisk).
        return [
            {"DeviceID": "C:", "Caption": "C:", "Name": "C:", "Description": "Local Fixed Disk",
             "DriveType": 3, "FileSystem": "NTFS", "FreeSpace": 6123456512,
             "Size": 10725732352, "MediaType": 12, "VolumeName": "",
             "VolumeSerialNumber": serial, "Compressed": False,
             "CreationClassName": "Win32_LogicalDisk",
             "SystemCreationClassName": "Win32_ComputerSystem", "SystemName": name},
            {"DeviceID": "D:", "Caption": "D:", "Name": "D:", "Description": "CD-ROM Disc",
             "DriveType": 5, "MediaType": 11, "CreationClassName": "Win32_LogicalDisk",
             "SystemCreationClassName": "Win32_ComputerSystem", "SystemName": name}]
    if low == "win32_processor":
        return [{
            "DeviceID": "CPU0", "Name": "Intel(R) Pentium(R) 4 CPU 2.80GHz",
            "Caption": "x86 Family 15 Model 2 Stepping 9", "Description":
            "x86 Family 15 Model 2 Stepping 9", "Manufacturer": "GenuineIntel",
            "AddressWidth": 32, "DataWidth": 32, "Architecture": 0, "Family": 2,
            "CurrentClockSpeed": 2793, "MaxClockSpeed": 2793, "LoadPercentage": 3,
            "ProcessorId": "BFEBFBFF00000F29", "ProcessorType": 3,
            "SocketDesignation": "CPU socket #0", "Status": "OK",
            "CreationClassName": "Win32_Processor",
            "SystemCreationClassName": "Win32_ComputerSystem", "SystemName": name}]
    if low == "win32_networkadapterconfiguration":
        net = ipaddress.IPv4Network(f"{spec.ipv4}/{spec.prefix}", strict=False)
        hosts = list(net.hosts())[:1] if net.num_addresses > 2 else []
        # Choice: the default gateway is the first host address of the subnet.
        gateway: list[Value] = [str(hosts[0])] if hosts and str(hosts[0]) != spec.ipv4 else []
        return [
            {"Index": 1, "Caption": "[00000001] VMware Accelerated AMD PCNet Adapter",
             "Description": "VMware Accelerated AMD PCNet Adapter", "IPEnabled": True,
             "IPAddress": [spec.ipv4], "IPSubnet": [str(net.netmask)],
             "DefaultIPGateway": gateway or None, "DHCPEnabled": False,
             "DNSHostName": spec.hostname.lower(), "DNSDomain": spec.domain,
             "MACAddress": _mac(spec), "ServiceName": "vmxnet",
             "SettingID": "{3F4C5A1E-8D2B-4C77-9E10-6A1B2C3D4E5F}"},
            {"Index": 2, "Caption": "[00000002] RAS Async Adapter",
             "Description": "RAS Async Adapter", "IPEnabled": False, "DHCPEnabled": False,
             "ServiceName": "AsyncMac", "SettingID": "{78032B7E-4968-42D3-9F37-287EA86C0AAA}"}]
    if low == "win32_quickfixengineering":
        return [{"HotFixID": kb, "ServicePackInEffect": prof.hotfix_sp, "CSName": name,
                 "Description": "Windows XP Hotfix - " + kb if not prof.server else
                 "Windows Server 2003 Hotfix - " + kb, "InstalledBy": "Administrator",
                 "InstalledOn": "20060210", "FixComments": "Update",
                 "Caption": f"http://support.microsoft.com/?kbid={kb[2:]}"}
                for kb in prof.hotfixes]
    if low == "win32_bios":
        version = "PhoenixBIOS 4.0 Release 6.0"
        return [{
            "Name": version, "Caption": version, "Description": version,
            "SoftwareElementID": version, "SoftwareElementState": 3,
            "TargetOperatingSystem": 0, "Version": "INTEL  - 6040000",
            "Manufacturer": "Phoenix Technologies LTD", "PrimaryBIOS": True,
            "ReleaseDate": "20050420000000.000000+000", "SMBIOSBIOSVersion": "6.00",
            "SMBIOSMajorVersion": 2, "SMBIOSMinorVersion": 31, "Status": "OK",
            "BIOSVersion": ["INTEL  - 6040000", version],
            "SerialNumber": "VMware-56 4d " + hashlib.sha256(name.encode()).hexdigest()[:8]}]
    if low == "__namespace":
        return []  # filled in by the repository, per namespace
    if low == "win32_systemoperatingsystem":
        return [{"GroupComponent": cs_path,
                 "PartComponent": f"\\\\{name}\\root\\cimv2:Win32_OperatingSystem=@",
                 "PrimaryOS": True}]
    if low == "win32_systemservices":
        return [{"GroupComponent": cs_path,
                 "PartComponent": f'\\\\{name}\\root\\cimv2:Win32_Service.Name="{s.name}"'}
                for s in state.services]
    if low == "win32_systemprocesses":
        return [{"GroupComponent": cs_path,
                 "PartComponent": f'\\\\{name}\\root\\cimv2:Win32_Process.Handle="{p.pid}"'}
                for p in state.processes]
    if low == "win32_systembios":
        bios = values_for(state, "Win32_BIOS")[0]
        path = (f'\\\\{name}\\root\\cimv2:Win32_BIOS.Name="{bios["Name"]}",'
                f'SoftwareElementID="{bios["SoftwareElementID"]}",SoftwareElementState=3,'
                f'TargetOperatingSystem=0,Version="{bios["Version"]}"')
        return [{"GroupComponent": cs_path, "PartComponent": path}]
    return []


def cluster_values_for(state: HostState, class_name: str) -> list[dict[str, Value]]:
    """root\\MSCluster (Failover Clustering installed): the host as the one node of a
    one-node cluster (Choice, docs/choices.md: the cluster is named after the host, its
    first 12 characters and "-CL", a NetBIOS name of at most 15)."""
    spec = state.spec
    prof = spec.profile
    name = spec.name
    low = class_name.lower()
    cluster = f"{name[:12]}-CL"
    if low == "mscluster_cluster":
        return [{
            "Name": cluster, "Caption": cluster, "Description": "",
            "CreationClassName": "MSCluster_Cluster", "Status": "OK",
            "Domain": spec.domain_or_workgroup,
            "Id": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"cluster.{cluster}")),
            # Learn failover-clustering: 16 nodes in Server 2008 / 2008 R2, 64 from 2012;
            # dynamic quorum from Server 2012 (on by default).
            "MaxNumberOfNodes": 64 if int(prof.build) >= 9200 else 16,
            "DynamicQuorumEnabled": 1 if int(prof.build) >= 9200 else 0,
            "QuorumType": "Node Majority",
            "SharedVolumesRoot": "C:\\ClusterStorage"}]
    if low == "mscluster_node":
        major, minor, _ = (int(p) for p in prof.version.split("."))
        return [{
            "Name": name, "Caption": name, "Description": "",
            "CreationClassName": "MSCluster_Node", "Status": "OK", "Id": "1",
            "NodeInstanceID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"node.{cluster}.{name}")),
            # CLUSTER_NODE_STATE: ClusterNodeUp = 0 (Learn mscs/clusnode-state).
            "State": 0, "NodeWeight": 1, "DynamicWeight": 1,
            "MajorVersion": major, "MinorVersion": minor, "BuildNumber": int(prof.build),
            "CSDVersion": prof.sp_major, "NodeDrainStatus": 0, "Characteristics": 0,
            "Flags": 0}]
    return []
