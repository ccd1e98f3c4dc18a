"""Security identifiers: well-known SIDs, SDDL aliases, and deterministic domain/machine SIDs.

SIDs are plain upper-case strings (``"S-1-5-32-544"``). Domain and machine SIDs are
derived from names with a hash, so a scenario always yields the same SIDs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from wmilab.errors import ConfigError
from wmilab.model import oses

# Well-known SIDs (MSDocs secauthz/well-known-sids; MS-DTYP 2.4.2.4).
EVERYONE = "S-1-1-0"
CREATOR_OWNER = "S-1-3-0"
CREATOR_GROUP = "S-1-3-1"
NETWORK = "S-1-5-2"
BATCH = "S-1-5-3"
INTERACTIVE = "S-1-5-4"
SERVICE = "S-1-5-6"
ANONYMOUS = "S-1-5-7"
ENTERPRISE_DOMAIN_CONTROLLERS = "S-1-5-9"
PRINCIPAL_SELF = "S-1-5-10"
AUTHENTICATED_USERS = "S-1-5-11"
RESTRICTED = "S-1-5-12"
TERMINAL_SERVER_USERS = "S-1-5-13"
SYSTEM = "S-1-5-18"
LOCAL_SERVICE = "S-1-5-19"
NETWORK_SERVICE = "S-1-5-20"
# BUILTIN aliases (MS-DTYP 2.4.2.4).
BUILTIN_ADMINISTRATORS = "S-1-5-32-544"
BUILTIN_USERS = "S-1-5-32-545"
BUILTIN_GUESTS = "S-1-5-32-546"
POWER_USERS = "S-1-5-32-547"
ACCOUNT_OPERATORS = "S-1-5-32-548"
SERVER_OPERATORS = "S-1-5-32-549"
PRINT_OPERATORS = "S-1-5-32-550"
BACKUP_OPERATORS = "S-1-5-32-551"
REPLICATOR = "S-1-5-32-552"
REMOTE_DESKTOP_USERS = "S-1-5-32-555"
NETWORK_CONFIGURATION_OPERATORS = "S-1-5-32-556"
PERFORMANCE_MONITOR_USERS = "S-1-5-32-558"
PERFORMANCE_LOG_USERS = "S-1-5-32-559"
# New built-in group in Windows Server 2003 SP1 (MSDocs com/dcom-security-enhancements-...).
DISTRIBUTED_COM_USERS = "S-1-5-32-562"
# ALL APPLICATION PACKAGES (every AppContainer), Windows 8 on (MSDocs secauthz/well-known-sids:
# SECURITY_BUILTIN_PACKAGE_ANY_PACKAGE, S-1-15-2-1; SDDL "AC", MSDocs secauthz/sid-strings).
ALL_APP_PACKAGES = "S-1-15-2-1"

# Relative identifiers (MS-DTYP 2.4.2.4: DOMAIN_USER_RID_ADMIN etc.).
RID_ADMINISTRATOR = 500
RID_GUEST = 501
RID_DOMAIN_ADMINS = 512
RID_DOMAIN_USERS = 513
RID_DOMAIN_GUESTS = 514
RID_DOMAIN_COMPUTERS = 515
RID_DOMAIN_CONTROLLERS = 516
# Choice: accounts, machine accounts and custom groups get RIDs from 1000 in sorted-name
# order (Windows hands them out in creation order, which a scenario file does not have).
FIRST_ACCOUNT_RID = 1000

# SDDL SID strings that need no context (MSDocs secauthz/sid-strings).
SDDL_ALIASES: dict[str, str] = {
    "WD": EVERYONE,
    "CO": CREATOR_OWNER,
    "CG": CREATOR_GROUP,
    "NU": NETWORK,
    "IU": INTERACTIVE,
    "SU": SERVICE,
    "AN": ANONYMOUS,
    "ED": ENTERPRISE_DOMAIN_CONTROLLERS,
    "PS": PRINCIPAL_SELF,
    "AU": AUTHENTICATED_USERS,
    "RC": RESTRICTED,
    "SY": SYSTEM,
    "LS": LOCAL_SERVICE,
    "NS": NETWORK_SERVICE,
    "BA": BUILTIN_ADMINISTRATORS,
    "BU": BUILTIN_USERS,
    "BG": BUILTIN_GUESTS,
    "PU": POWER_USERS,
    "AO": ACCOUNT_OPERATORS,
    "SO": SERVER_OPERATORS,
    "PO": PRINT_OPERATORS,
    "BO": BACKUP_OPERATORS,
    "RE": REPLICATOR,
    "RD": REMOTE_DESKTOP_USERS,
    "NO": NETWORK_CONFIGURATION_OPERATORS,
    "MU": PERFORMANCE_MONITOR_USERS,
    "LU": PERFORMANCE_LOG_USERS,
    "AC": ALL_APP_PACKAGES,
}
# SDDL SID strings relative to the domain SID (MSDocs secauthz/sid-strings).
SDDL_DOMAIN_ALIASES: dict[str, int] = {
    "DA": RID_DOMAIN_ADMINS,
    "DU": RID_DOMAIN_USERS,
    "DG": RID_DOMAIN_GUESTS,
    "DC": RID_DOMAIN_COMPUTERS,
    "DD": RID_DOMAIN_CONTROLLERS,
}
# SDDL SID strings relative to the machine SID: LA local Administrator, LG local Guest.
SDDL_MACHINE_ALIASES: dict[str, int] = {"LA": RID_ADMINISTRATOR, "LG": RID_GUEST}
ALIAS_OF_SID: dict[str, str] = {sid: alias for alias, sid in SDDL_ALIASES.items()}

# Names of well-known principals as Windows displays them, with their authority prefix.
WELL_KNOWN: dict[str, tuple[str, str]] = {
    # key (lower case) -> (SID, display name)
    "everyone": (EVERYONE, "Everyone"),
    "creator owner": (CREATOR_OWNER, "CREATOR OWNER"),
    "creator group": (CREATOR_GROUP, "CREATOR GROUP"),
    "network": (NETWORK, "NT AUTHORITY\\NETWORK"),
    "batch": (BATCH, "NT AUTHORITY\\BATCH"),
    "interactive": (INTERACTIVE, "NT AUTHORITY\\INTERACTIVE"),
    "service": (SERVICE, "NT AUTHORITY\\SERVICE"),
    "anonymous logon": (ANONYMOUS, "NT AUTHORITY\\ANONYMOUS LOGON"),
    "anonymous": (ANONYMOUS, "NT AUTHORITY\\ANONYMOUS LOGON"),
    "self": (PRINCIPAL_SELF, "NT AUTHORITY\\SELF"),
    "authenticated users": (AUTHENTICATED_USERS, "NT AUTHORITY\\Authenticated Users"),
    "restricted": (RESTRICTED, "NT AUTHORITY\\RESTRICTED"),
    "system": (SYSTEM, "NT AUTHORITY\\SYSTEM"),
    "local system": (SYSTEM, "NT AUTHORITY\\SYSTEM"),
    "local service": (LOCAL_SERVICE, "NT AUTHORITY\\LOCAL SERVICE"),
    "network service": (NETWORK_SERVICE, "NT AUTHORITY\\NETWORK SERVICE"),
    "all application packages": (ALL_APP_PACKAGES,
                                 "APPLICATION PACKAGE AUTHORITY\\ALL APPLICATION PACKAGES"),
}
NT_AUTHORITY_NAMES = frozenset(k for k, (s, _) in WELL_KNOWN.items() if s.startswith("S-1-5-"))

# BUILTIN local groups (lower-case name -> (SID, display name)).
BUILTIN_GROUPS: dict[str, tuple[str, str]] = {
    "administrators": (BUILTIN_ADMINISTRATORS, "Administrators"),
    "users": (BUILTIN_USERS, "Users"),
    "guests": (BUILTIN_GUESTS, "Guests"),
    "power users": (POWER_USERS, "Power Users"),
    "account operators": (ACCOUNT_OPERATORS, "Account Operators"),
    "server operators": (SERVER_OPERATORS, "Server Operators"),
    "print operators": (PRINT_OPERATORS, "Print Operators"),
    "backup operators": (BACKUP_OPERATORS, "Backup Operators"),
    "replicator": (REPLICATOR, "Replicator"),
    "remote desktop users": (REMOTE_DESKTOP_USERS, "Remote Desktop Users"),
    "network configuration operators": (
        NETWORK_CONFIGURATION_OPERATORS, "Network Configuration Operators"),
    "performance monitor users": (PERFORMANCE_MONITOR_USERS, "Performance Monitor Users"),
    "performance log users": (PERFORMANCE_LOG_USERS, "Performance Log Users"),
    "distributed com users": (DISTRIBUTED_COM_USERS, "Distributed COM Users"),
}
# Groups that exist only from a given OS on (MSDocs com/dcom-security-enhancements-...:
# "Distributed COM Users is a new built-in group included with Windows Server 2003 SP1";
# Performance Monitor/Log Users also arrived with Windows Server 2003).
BUILTIN_ONLY_ON: dict[str, frozenset[str]] = {
    DISTRIBUTED_COM_USERS: frozenset(n for n, s in oses.CATALOGUE.items() if s.distributed_com_users),
    PERFORMANCE_MONITOR_USERS: frozenset(n for n, s in oses.CATALOGUE.items() if s.perf_groups),
    PERFORMANCE_LOG_USERS: frozenset(n for n, s in oses.CATALOGUE.items() if s.perf_groups),
}

# Global groups every domain has (lower-case name -> (RID, display name)).
DOMAIN_GROUPS: dict[str, tuple[int, str]] = {
    "domain admins": (RID_DOMAIN_ADMINS, "Domain Admins"),
    "domain users": (RID_DOMAIN_USERS, "Domain Users"),
    "domain guests": (RID_DOMAIN_GUESTS, "Domain Guests"),
    "domain computers": (RID_DOMAIN_COMPUTERS, "Domain Computers"),
    "domain controllers": (RID_DOMAIN_CONTROLLERS, "Domain Controllers"),
}

_SID_RE = re.compile(r"^S-1-(\d+)(-\d+)+$", re.IGNORECASE)


def is_sid(text: str) -> bool:
    """True if ``text`` is a SID string such as ``S-1-5-32-544``."""
    return bool(_SID_RE.match(text.strip()))


def parse_sid(text: str) -> str:
    """Normalise a SID string (upper-case ``S``); ConfigError if it is not one."""
    t = text.strip()
    if not _SID_RE.match(t):
        raise ConfigError(f"{text!r} is not a SID (expected a form like S-1-5-32-544)")
    parts = t.split("-")
    if int(parts[2]) >= 1 << 48:
        raise ConfigError(f"{text!r}: identifier authority {parts[2]} is larger than 48 bits")
    for p in parts[3:]:
        if int(p) > 0xFFFFFFFF:
            raise ConfigError(f"{text!r}: sub-authority {p} is larger than 32 bits")
    return "S-" + "-".join(str(int(p)) for p in parts[1:])


def _derive(kind: str, name: str) -> str:
    digest = hashlib.sha256(f"wmilab:{kind}:{name.upper()}".encode()).digest()
    x, y, z = (int.from_bytes(digest[i : i + 4], "big") for i in (0, 4, 8))
    # Account-domain SIDs are S-1-5-21-x-y-z (MS-DTYP 2.4.2.4: SECURITY_NT_NON_UNIQUE).
    return f"S-1-5-21-{x}-{y}-{z}"


def domain_sid(name: str) -> str:
    """The deterministic SID of domain ``name`` (case-insensitive)."""
    return _derive("domain", name)


def machine_sid(name: str) -> str:
    """The deterministic SID of the local account database of host ``name``."""
    return _derive("machine", name)


def with_rid(base: str, rid: int) -> str:
    """``base`` SID followed by relative identifier ``rid``."""
    return f"{base}-{rid}"


def rid_of(sid: str) -> int:
    """The last sub-authority of ``sid``."""
    return int(sid.rsplit("-", 1)[1])


def assign_rids(names: Iterable[str]) -> dict[str, int]:
    """RIDs for account names (keys lower-cased).

    Administrator gets 500 and Guest 501 (MS-DTYP 2.4.2.4); every other name gets a RID
    from 1000 in case-insensitive sorted order (Choice: deterministic, see docs/identity.md).
    """
    out: dict[str, int] = {}
    rid = FIRST_ACCOUNT_RID
    for name in sorted({n.lower() for n in names}):
        if name == "administrator":
            out[name] = RID_ADMINISTRATOR
        elif name == "guest":
            out[name] = RID_GUEST
        else:
            out[name] = rid
            rid += 1
    return out
