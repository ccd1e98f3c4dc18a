"""The namespace catalogue: which WMI namespaces each OS has, and how namespace names compare.

Both the model (WMI namespace security: which namespaces exist, so NTLMLogin to any other
fails with WBEM_E_INVALID_NAMESPACE) and the emulated repository (which namespaces it serves,
each with the system classes and the MOF it holds) read this one table, so a namespace is
known to both or to neither. To add a namespace, add one :class:`NamespaceSpec`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from wmilab.model import features, oses

__all__ = ["CATALOGUE", "NamespaceNameError", "NamespaceSpec", "for_os", "normalize", "parent",
           "try_normalize"]

_ALL = frozenset(oses.NAMES)
# Windows 8 / Server 2012 and later (in the catalogue: 8.1, 2012 R2 and every newer OS).
# Windows 8 is build 9200 (MSDocs sysinfo/operating-system-version: 6.2).
_FROM_8 = frozenset(n for n, s in oses.CATALOGUE.items() if int(s.build) >= 9200)
# Windows Vista / Server 2008 and later (Windows Firewall with Advanced Security in the catalogue).
_FROM_VISTA = frozenset(n for n, s in oses.CATALOGUE.items() if s.modern)


@dataclass(frozen=True)
class NamespaceSpec:
    path: str  # as Windows names it (case kept): root\CIMV2
    oses: frozenset[str]  # the OSes that have it on a fresh installation
    mof: tuple[str, ...]  # package MOF files loaded into it besides the system classes
    source: str  # the public source of its existence
    # Shipped with RequiresEncryption on its __SystemSecurity instance: WMI refuses every
    # request below RPC_C_AUTHN_LEVEL_PKT_PRIVACY (MS-WMI 2.2.30.3; model/wmi.py).
    requires_encryption: bool = False
    # The optional feature that brings it (model/features.py); None: every installation.
    feature: str | None = None

    @property
    def key(self) -> str:
        return self.path.lower()


# Every namespace holds the system classes (__SystemClass, __NAMESPACE, ...): MSDocs
# WmiSdk/wmi-system-classes ("WMI system classes ... appear in every namespace").
CATALOGUE: tuple[NamespaceSpec, ...] = (
    NamespaceSpec("root", _ALL, (), "MSDocs WmiSdk/wmi-namespaces"),
    NamespaceSpec("root\\CIMV2", _ALL, ("cimv2.mof",),
                  "MSDocs WmiSdk/wmi-namespaces (the default namespace since Windows 2000)"),
    NamespaceSpec("root\\DEFAULT", _ALL, (),
                  "MSDocs WmiSdk/wmi-namespaces; StdRegProv lives there"),
    NamespaceSpec("root\\subscription", _ALL, ("subscription.mof",),
                  "MSDocs WmiSdk/standard-consumer-classes (registered in root\\subscription)"),
    NamespaceSpec("root\\SECURITY", _ALL, (),
                  "MSDocs WmiSdk/--systemsecurity (instances in root\\security)"),
    NamespaceSpec("root\\WMI", _ALL, (),
                  "MSDocs WmiSdk/wdm-provider (WDM classes in root\\wmi)"),
    NamespaceSpec("root\\Cli", _ALL, (),
                  "MSDocs WmiSdk/wmic (WMIC aliases are stored in root\\cli)"),
    NamespaceSpec("root\\directory", _ALL, (),
                  "MSDocs WmiSdk/ds-provider (Active Directory classes: root\\directory\\ldap)"),
    NamespaceSpec("root\\directory\\LDAP", _ALL, (), "MSDocs WmiSdk/ds-provider"),
    NamespaceSpec("root\\RSOP", _ALL, (), "MSDocs policy/rsop-wmi-classes (root\\rsop)"),
    NamespaceSpec("root\\Policy", _ALL, (),
                  "MSDocs WmiSdk/wmi-namespaces; WMI filters of Group Policy (root\\policy)"),
    # Windows Security Center arrived with XP SP2 and is a client feature: Server 2003 has no
    # root\SecurityCenter (MSDocs WmiSdk/wmi-namespaces; XP SP2 "Security Center" overview).
    NamespaceSpec("root\\SecurityCenter", frozenset({"xp-sp2"}), (),
                  "XP SP2 Security Center (client only)"),
    # The firewall, network and storage CIM providers of Windows 8 / Server 2012: "Minimum
    # supported client Windows 8, server Windows Server 2012, Namespace Root\StandardCimv2"
    # (Learn wfascimprov/msft-netfirewallrule).
    NamespaceSpec("root\\StandardCimv2", _FROM_8, (),
                  "Learn wfascimprov/msft-netfirewallrule (Windows 8 / Server 2012)"),
    # Storage Management API: MSFT_Disk and the rest live in root\Microsoft\Windows\Storage
    # from Windows 8 / Server 2012 (Learn stormgmt/msft-disk, Requirements).
    NamespaceSpec("root\\Microsoft", _FROM_8, (), "parent of root\\Microsoft\\Windows"),
    NamespaceSpec("root\\Microsoft\\Windows", _FROM_8, (),
                  "parent of root\\Microsoft\\Windows\\Storage"),
    NamespaceSpec("root\\Microsoft\\Windows\\Storage", _FROM_8, (),
                  "Learn stormgmt/msft-disk (Windows 8 / Server 2012)"),
    # The Remote Desktop configuration provider (Win32_TerminalServiceSetting): Windows Vista /
    # Server 2008 on, and "the authentication level must include packet privacy" (Learn
    # termserv/win32-terminalservicesetting); marked RequiresEncryption (KB 2590230).
    NamespaceSpec("root\\CIMV2\\TerminalServices", _FROM_VISTA, (),
                  "Learn termserv/win32-terminalservicesetting; KB 2590230",
                  requires_encryption=True),
    # The Failover Cluster WMI provider's namespace, present only where the feature is
    # installed ("root\\MSCluster", Learn cluswmi/mscluster-node, Requirements) and marked
    # RequiresEncryption: KB 2590230 (event 5605 for a query below packet privacy);
    # aiowmi issue 38 (WBEM_E_ACCESS_DENIED on ExecQuery at integrity).
    NamespaceSpec("root\\MSCluster", _FROM_VISTA, ("mscluster.mof",),
                  "Learn cluswmi/mscluster-node; KB 2590230", requires_encryption=True,
                  feature=features.FAILOVER_CLUSTERING),
)
BY_KEY: dict[str, NamespaceSpec] = {ns.key: ns for ns in CATALOGUE}


def for_os(os: str, features: Collection[str] = ()) -> tuple[NamespaceSpec, ...]:
    """The namespaces a fresh installation of ``os`` has, with the namespaces of the
    optional ``features`` installed on it."""
    return tuple(ns for ns in CATALOGUE
                 if os in ns.oses and (ns.feature is None or ns.feature in features))


class NamespaceNameError(ValueError):
    """A namespace name that is not syntactically one (WBEM_E_INVALID_NAMESPACE)."""


# A namespace is a backslash-separated path of CIM names (MS-WMI 2.2.1 / DMTF DSP0004
# identifiers: letters, digits and underscore, not starting with a digit).
_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SERVER = re.compile(r"^\\\\[^\\]+\\(.*)$")


def normalize(text: str) -> str:
    r"""The comparison key of a namespace name: ``//./ROOT/CIMV2`` -> ``root\cimv2``.

    Forward slashes count as backslashes and a ``\\server\`` prefix is dropped (MS-WMI 2.2.1
    namespace paths); namespace names compare case-insensitively (MSDocs
    WmiSdk/describing-a-wmi-namespace-object-path). Raises :class:`NamespaceNameError` for a
    string that is no namespace name.
    """
    t = text.strip().replace("/", "\\")
    m = _SERVER.match(t)
    if m:
        t = m.group(1)
    t = t.strip("\\")
    if not t or not all(_PART.match(part) for part in t.split("\\")):
        raise NamespaceNameError(f"bad namespace name {text!r}")
    return t.lower()


def try_normalize(text: str) -> str | None:
    """:func:`normalize`, or None for a string that is no namespace name."""
    try:
        return normalize(text)
    except NamespaceNameError:
        return None


def parent(key: str) -> str | None:
    """``root\\cimv2`` -> ``root``; None for ``root``."""
    return key.rsplit("\\", 1)[0] if "\\" in key else None
