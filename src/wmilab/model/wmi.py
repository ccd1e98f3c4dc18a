"""WMI namespace security: the per-namespace security descriptors of the WMI Control."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

from wmilab.errors import ConfigError, PathPart
from wmilab.model import namespaces, oses, sids
from wmilab.model.decision import Check
from wmilab.model.identity import Directory, Token
from wmilab.model.security import Ace, SecurityDescriptor, parse_sddl

# Namespace access rights (MSDocs WmiSdk/namespace-access-rights-constants, WBEM_SECURITY_FLAGS;
# Read/Edit Security are READ_CONTROL/WRITE_DAC: MSDocs WmiSdk/access-to-wmi-namespaces).
WBEM_ENABLE = 0x1
WBEM_METHOD_EXECUTE = 0x2
WBEM_FULL_WRITE_REP = 0x4
WBEM_PARTIAL_WRITE_REP = 0x8
WBEM_WRITE_PROVIDER = 0x10
WBEM_REMOTE_ACCESS = 0x20
READ_CONTROL = 0x20000
WRITE_DAC = 0x40000
ALL_RIGHTS = 0x6003F

# What a write needs (any one right of the mask); see NamespaceSecurity.check_write.
WriteTarget = Literal["class", "static-instance", "dynamic-instance"]
WRITE_RIGHTS: dict[str, int] = {
    "class": WBEM_FULL_WRITE_REP,
    "static-instance": WBEM_FULL_WRITE_REP | WBEM_PARTIAL_WRITE_REP,
    "dynamic-instance": WBEM_FULL_WRITE_REP | WBEM_WRITE_PROVIDER,
}

RIGHTS: dict[str, int] = {
    "enable account": WBEM_ENABLE,
    "execute methods": WBEM_METHOD_EXECUTE,
    "full write": WBEM_FULL_WRITE_REP,
    "partial write": WBEM_PARTIAL_WRITE_REP,
    "provider write": WBEM_WRITE_PROVIDER,
    "remote enable": WBEM_REMOTE_ACCESS,
    "read security": READ_CONTROL,
    "edit security": WRITE_DAC,
}

# MS-WMI 2.2.30.3: a RequiresEncryption namespace rejects "authentication levels that are not
# equal to RPC_C_AUTHN_LEVEL_PKT_PRIVACY" (MS-RPCE 2.2.1.1.8: 6).
PKT_PRIVACY = 6
# The scenario key of a namespace table that sets or clears the qualifier (docs/scenario.md).
REQUIRES_ENCRYPTION = "requires_encryption"


def encryption_denied_event(namespace: str) -> str:
    """The WMI event B logs when it refuses a request below privacy (Learn WmiSdk WMI Event
    Messages: WBEM_MC_WBEM_REQUIRES_ENCRYPTION_DENIED, 0xC00015E5)."""
    return (f"WMI event 0xC00015E5 (WBEM_MC_WBEM_REQUIRES_ENCRYPTION_DENIED): Access to the "
            f"{namespace} namespace was denied because the namespace is marked with "
            "RequiresEncryption but the script or application attempted to connect to this "
            "namespace with an authentication level below Pkt_Privacy. Change the "
            "authentication level to Pkt_Privacy and run the script or application again.")


def encryption_async_denied_event(namespace: str) -> str:
    """The WMI event B logs when it cannot call an encrypted namespace's sink back at privacy
    (Learn WmiSdk WMI Event Messages: WBEM_MC_WBEM_REQUIRES_ENCRYPTION_ASYNC_DENIED)."""
    return (f"WMI event 0xC00015E6 (WBEM_MC_WBEM_REQUIRES_ENCRYPTION_ASYNC_DENIED): Windows "
            f"Management Instrumentation Service could not deliver results asynchronously for "
            f"{namespace} namespace. The namespace is marked with RequiresEncryption but "
            "WinMgmt could not establish a secure connection back to the client computer. "
            "Ensure there is a trust relationship between the client and server computers so "
            "that the client recognizes the server computer account.")


_NOT_REQUIRED = Check(True, "the namespace does not require encryption", "encryption")

# Namespace ACEs are container-inherit so children receive them (WMI Control "This
# namespace and subnamespaces"; MSDocs WmiSdk/access-to-wmi-namespaces).
_CI = "CI"


def normalize_namespace(name: str) -> str:
    """The comparison key of a namespace (model/namespaces.py); a string that is no namespace
    name keeps a key of its own, so it is simply unknown."""
    return namespaces.try_normalize(name) or name.strip().lower()


def rights_names(mask: int) -> str:
    out = [n for n, bit in RIGHTS.items() if mask & bit]
    return ", ".join(out) if out else "nothing"


@dataclass(frozen=True)
class NamespaceSecurity:
    """Security descriptors by namespace; a namespace not listed inherits from its parent."""

    entries: tuple[tuple[str, SecurityDescriptor], ...]
    known: frozenset[str]
    host: str = ""
    # Namespaces marked RequiresEncryption (keys), and whether this OS's WMI honours the
    # qualifier at all (OsSpec.namespace_encryption: Vista and later).
    encrypted: frozenset[str] = frozenset()
    honours_encryption: bool = False

    @classmethod
    def defaults(
        cls, os: str, directory: Directory, host: str,
        extra: Iterable[str] = (), *, features: tuple[str, ...] = (),
    ) -> NamespaceSecurity:
        """The default root security, inherited by every namespace.

        Administrators: every right; Everyone, LOCAL SERVICE and NETWORK SERVICE: Enable
        Account, Execute Methods, Provider Write; only Administrators have Remote Enable
        (TechNet ee156556 "WMI Namespace-Level Security" (Everyone before Vista); MSDocs
        WmiSdk/namespace-access-rights-constants; WmiSdk/securing-a-remote-wmi-connection).
        Windows Vista replaced Everyone with Authenticated Users (MSDocs
        WmiSdk/access-to-wmi-namespaces); XP SP2 and Server 2003 SP1 share these defaults.
        """
        spec = oses.get(os)  # ConfigError for an OS the catalogue does not know
        user = WBEM_ENABLE | WBEM_METHOD_EXECUTE | WBEM_WRITE_PROVIDER
        root = SecurityDescriptor(
            sids.BUILTIN_ADMINISTRATORS, sids.BUILTIN_ADMINISTRATORS,
            (
                Ace(True, sids.BUILTIN_ADMINISTRATORS, ALL_RIGHTS, _CI),
                # Everyone before Vista, Authenticated Users from Vista (the catalogue).
                Ace(True, spec.namespace_users, user, _CI),
                Ace(True, sids.LOCAL_SERVICE, user, _CI),
                Ace(True, sids.NETWORK_SERVICE, user, _CI),
            ),
        )
        # The namespaces this OS has: the one catalogue the emulated repository serves too.
        known = frozenset(ns.key for ns in namespaces.for_os(os, features))
        known |= {normalize_namespace(n) for n in extra}
        # The namespaces the OS ships with RequiresEncryption (the namespace catalogue).
        encrypted = frozenset(ns.key for ns in namespaces.for_os(os, features)
                              if ns.requires_encryption)
        return cls((("root", root),), known, host, encrypted, spec.namespace_encryption)

    # ------------------------------------------------------------------ lookup
    def is_known(self, namespace: str) -> bool:
        return normalize_namespace(namespace) in self.known

    @property
    def known_namespaces(self) -> frozenset[str]:
        return self.known

    def descriptor(self, namespace: str) -> SecurityDescriptor:
        """The effective descriptor: the nearest listed namespace at or above this one."""
        ns = normalize_namespace(namespace)
        table = dict(self.entries)
        while True:
            if ns in table:
                return table[ns]
            if "\\" not in ns:
                return table["root"]
            ns = ns.rsplit("\\", 1)[0]

    def explicit(self) -> dict[str, SecurityDescriptor]:
        return dict(self.entries)

    # ------------------------------------------------------------------ editing
    def with_entry(self, namespace: str, sid: str, mask: int) -> NamespaceSecurity:
        """Set ``sid``'s entry on ``namespace`` (and, by inheritance, its unlisted children)."""
        ns = normalize_namespace(namespace)
        if ns not in self.known:
            raise ConfigError(self._unknown(namespace))
        sd = self.descriptor(ns).with_entry(sid, mask, _CI)
        return self._set(ns, sd)

    def _set(self, ns: str, sd: SecurityDescriptor) -> NamespaceSecurity:
        table = dict(self.entries)
        table[ns] = sd
        return replace(self, entries=tuple(sorted(table.items())))

    def requires_encryption(self, namespace: str) -> bool:
        """Is ``namespace`` marked RequiresEncryption (and does this OS's WMI honour it)?

        Choice (docs/choices.md): the qualifier marks one namespace, not its children
        (MS-WMI 2.2.30.3: "the RequiresEncryption flag for the containing CIM namespace").
        """
        if not self.honours_encryption or not self.encrypted:
            return False
        memo = self._encryption_memo
        found = memo.get(namespace)
        if found is None:
            found = normalize_namespace(namespace) in self.encrypted
            if len(memo) < 1024:
                memo[namespace] = found
        return found

    @cached_property
    def _encryption_memo(self) -> dict[str, bool]:
        # Asked on every call the flow evaluates and every request the emulator serves.
        return {}

    def with_encryption(self, namespace: str, required: bool) -> NamespaceSecurity:
        """Set or clear RequiresEncryption on ``namespace``."""
        ns = normalize_namespace(namespace)
        return replace(self, encrypted=self.encrypted | {ns} if required
                       else self.encrypted - {ns})

    def _unknown(self, namespace: str) -> str:
        return (f"unknown WMI namespace {namespace!r}; known: "
                + ", ".join(sorted(self.known)))

    def with_overrides(
        self, table: Mapping[str, object], directory: Directory, host: str
    ) -> NamespaceSecurity:
        """Apply ``[hosts.X.wmi."root\\cimv2"]`` tables: principal -> list of right names.

        A listed principal's rights replace its entry (``[]`` removes it); a whole table may
        also be an SDDL string. Parents are applied before children, so a change on
        ``root`` reaches every namespace that does not have its own entry.
        """
        out = replace(self, host=host)
        items = sorted(table.items(), key=lambda kv: normalize_namespace(kv[0]).count("\\"))
        for namespace, value in items:
            ns = normalize_namespace(namespace)
            if ns not in out.known:
                raise ConfigError(self._unknown(namespace), (namespace,))
            if isinstance(value, str):
                try:
                    sd = parse_sddl(value, directory.alias_resolver(host))
                except ConfigError as err:
                    raise ConfigError(err.message, (namespace,)) from None
                out = out._set(ns, sd)
                continue
            if not isinstance(value, Mapping):
                raise ConfigError("expected a table of principal = [rights]", (namespace,))
            sd = out.descriptor(ns)
            for principal, rights in value.items():
                path: tuple[PathPart, ...] = (namespace, principal)
                if principal == REQUIRES_ENCRYPTION:
                    out = out._encryption_override(ns, rights, path)
                    continue
                sid = directory.resolve(str(principal), host, _path=path)
                sd = sd.with_entry(sid, mask_of(rights, path), _CI)
            out = out._set(ns, sd)
        return out

    def _encryption_override(self, ns: str, value: object,
                             path: tuple[PathPart, ...]) -> NamespaceSecurity:
        if not isinstance(value, bool):
            raise ConfigError(f"{REQUIRES_ENCRYPTION} must be true or false", path)
        if value and not self.honours_encryption:
            # RequiresEncryption arrived with Windows Vista (Learn WmiSdk/pragma-namespace,
            # Requirements); WMI before it does not know the qualifier.
            raise ConfigError(f"{REQUIRES_ENCRYPTION} applies to Windows Vista and later; "
                              "WMI before Vista ignores the RequiresEncryption qualifier", path)
        return self.with_encryption(ns, value)

    # ------------------------------------------------------------------ checks
    def check_encryption(self, namespace: str, level: int | None) -> Check:
        """A request to a RequiresEncryption namespace below RPC_C_AUTHN_LEVEL_PKT_PRIVACY is
        rejected (MS-WMI 2.2.30.3) with WBEM_E_ACCESS_DENIED (Learn WmiSdk/wmi-troubleshooting:
        0x80041003 for an encrypted namespace); B logs event 0xC00015E5. ``level`` None: not
        known, nothing to check.

        Choice (docs/choices.md): NTLMLogin itself passes below privacy and the requests that
        follow are refused ("reject any incoming data requests", Learn WmiSdk/requiring-an-
        encrypted-connection-to-a-namespace; aiowmi issue 38 fails at ExecQuery after the
        login, at RPC_C_AUTHN_LEVEL_PKT_INTEGRITY)."""
        if level is None or not self.requires_encryption(namespace):
            return _NOT_REQUIRED
        ns = normalize_namespace(namespace)
        if level >= PKT_PRIVACY:
            return Check(True, f"{ns} requires encryption and the call is encrypted "
                         "(RPC_C_AUTHN_LEVEL_PKT_PRIVACY)", "encryption")
        where = self.host or "the server"
        return Check(False, f"{ns} on {where} is marked RequiresEncryption: WMI accepts the "
                     f"login but refuses every request in it (ExecQuery and the rest) at "
                     f"authentication level {level}, below RPC_C_AUTHN_LEVEL_PKT_PRIVACY (6). "
                     f"{encryption_denied_event(ns)}", "encryption")

    def check_login(self, token: Token, namespace: str, level: int | None = None) -> Check:
        """IWbemLevel1Login::NTLMLogin needs Enable Account and Remote Enable (MS-WMI 3.1.4.1.4),
        and, on a RequiresEncryption namespace, packet privacy (:meth:`check_encryption`;
        Choice, docs/choices.md: checked after the rights)."""
        ns = normalize_namespace(namespace)
        where = self.host or "the server"
        if ns not in self.known:
            # An unknown namespace fails with WBEM_E_INVALID_NAMESPACE (MS-WMI 2.2.11).
            return Check(False, f"namespace {namespace!r} does not exist on {where}", "namespace")
        sd = self.descriptor(ns)
        if not sd.granted(token.sids, WBEM_ENABLE):
            return Check(False, f"{token.name} has no Enable Account on {ns} on {where}",
                         "enable_account")
        if not sd.granted(token.sids, WBEM_REMOTE_ACCESS):
            got = sd.effective_rights(token.sids)
            return Check(False, f"{token.name} has no Remote Enable on {ns} on {where} "
                         f"(has: {rights_names(got)})", "remote_enable")
        encryption = self.check_encryption(ns, level)
        if not encryption.ok:
            return encryption
        return Check(True, f"{token.name} may log on to {ns} remotely", "remote_enable")

    def check_method(self, token: Token, namespace: str) -> Check:
        """Executing a method needs Execute Methods (WBEM_METHOD_EXECUTE; MSDocs
        WmiSdk/namespace-access-rights-constants)."""
        ns = normalize_namespace(namespace)
        if ns not in self.known:
            return Check(False, f"namespace {namespace!r} does not exist", "namespace")
        if not self.descriptor(ns).granted(token.sids, WBEM_METHOD_EXECUTE):
            return Check(False, f"{token.name} has no Execute Methods on {ns}", "execute_methods")
        return Check(True, f"{token.name} may execute methods in {ns}", "execute_methods")

    def check_write(self, token: Token, namespace: str, target: WriteTarget) -> Check:
        """Whether ``token`` may write ``target`` in ``namespace`` (IWbemServices::PutClass,
        DeleteClass, PutInstance, DeleteInstance).

        MSDocs WmiSdk/namespace-access-rights-constants: Full Write (WBEM_FULL_WRITE_REP)
        writes classes and instances; Partial Write (WBEM_PARTIAL_WRITE_REP) writes instances
        only, not classes (static instances, kept in the repository); Provider Write
        (WBEM_WRITE_PROVIDER) writes classes and instances to providers (dynamic instances).
        Missing -> WBEM_E_ACCESS_DENIED (MS-WMI 2.2.11).
        """
        ns = normalize_namespace(namespace)
        if ns not in self.known:
            return Check(False, f"namespace {namespace!r} does not exist", "namespace")
        wanted = WRITE_RIGHTS[target]
        got = self.descriptor(ns).effective_rights(token.sids)
        if not got & wanted:
            what = {"class": "write classes", "static-instance": "write static instances",
                    "dynamic-instance": "write provider instances"}[target]
            return Check(False, f"{token.name} may not {what} in {ns}: needs "
                         f"{' or '.join(n for n, b in RIGHTS.items() if b & wanted)} "
                         f"(has: {rights_names(got)})", "write")
        return Check(True, f"{token.name} may write in {ns}", "write")

    def check_rights(self, token: Token, namespace: str, mask: int) -> Check:
        """A general check of ``mask`` on ``namespace``."""
        ns = normalize_namespace(namespace)
        if ns not in self.known:
            return Check(False, f"namespace {namespace!r} does not exist", "namespace")
        if not self.descriptor(ns).granted(token.sids, mask):
            return Check(False, f"{token.name} lacks {rights_names(mask)} on {ns}", "rights")
        return Check(True, f"{token.name} has {rights_names(mask)} on {ns}", "rights")


def mask_of(rights: object, path: tuple[PathPart, ...] = ()) -> int:
    """Parse a list of right names into a mask; ConfigError naming the bad entry."""
    if not isinstance(rights, list | tuple):
        raise ConfigError(f"expected a list of rights ({', '.join(RIGHTS)})", path)
    mask = 0
    for i, r in enumerate(rights):
        if not isinstance(r, str) or r.strip().lower() not in RIGHTS:
            raise ConfigError(
                f"{r!r} is not a WMI namespace right; expected one of: {', '.join(RIGHTS)}",
                (*path, i))
        mask |= RIGHTS[r.strip().lower()]
    return mask
