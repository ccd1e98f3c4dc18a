"""Domains, hosts, accounts and groups; name resolution; network logon and access tokens.

One ``Directory`` holds every domain and host of a scenario. It turns principal names
into SIDs, builds the access token a host gives a network logon (NTLM), and decides the
identity under which B calls A's sink back (Connection 2 of the seed).
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace

from wmilab.errors import ConfigError, PathPart
from wmilab.model import localgroup, oses, sids

Proof = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Token:
    """An access token: the user SID, a display name and every group SID it holds."""

    user: str
    name: str
    sids: frozenset[str]
    anonymous: bool = False
    guest: bool = False
    filtered: bool = False  # remote UAC's filtered token (KB 951016)

    def has(self, sid: str) -> bool:
        return sid in self.sids


@dataclass(frozen=True, slots=True)
class Logon:
    """The outcome of a network logon on a target host.

    ``kind`` is one of ``ok``, ``guest`` (mapped to Guest; ``ok`` tells whether the Guest
    account let it in), ``anonymous``, ``wrong-password``, ``unknown-account``,
    ``untrusted-domain``, ``blank-password`` or ``no-password``.
    """

    ok: bool
    token: Token | None
    reason: str
    kind: str


@dataclass(frozen=True)
class DomainSpec:
    """A domain: its NetBIOS name, DNS name, the domains it trusts, accounts and groups."""

    name: str
    dns: str = ""
    trusts: tuple[str, ...] = ()
    accounts: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class HostSpec:
    """A computer: OS, membership, local accounts, local group overrides, sharing model.

    ``groups`` replaces the members of each listed local group (``None``: OS defaults).
    ``force_guest`` is the "Network access: Sharing and security model for local
    accounts" setting (True = Guest only); ``None`` means the OS default.
    ``guest_enabled``: ``None`` means enabled exactly when ``accounts`` lists ``Guest``.
    ``everyone_includes_anonymous`` is "Network access: Let Everyone permissions apply to
    anonymous users" (disabled by default).
    """

    name: str
    os: str
    domain: str | None = None
    workgroup: str | None = None
    accounts: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] | None = None
    force_guest: bool | None = None
    guest_enabled: bool | None = None
    everyone_includes_anonymous: bool = False
    # Remote UAC (Vista and later; KB 951016): LocalAccountTokenFilterPolicy = 1 gives remote
    # logons of local administrators their full token; FilterAdministratorToken = 1 ("User
    # Account Control: Admin Approval Mode for the Built-in Administrator account") filters
    # the built-in Administrator (RID 500) too.
    token_filter_off: bool = False
    filter_builtin_admin: bool = False
    # ``net localgroup`` commands, applied in order after ``groups`` (model/localgroup.py).
    group_edits: tuple[localgroup.GroupEdit, ...] = ()


@dataclass(frozen=True)
class _Domain:
    name: str
    sid: str
    spec: DomainSpec
    accounts: dict[str, str]  # lower name -> password
    display: dict[str, str]  # lower name -> display name (accounts, groups, machines)
    rids: dict[str, int]  # lower name -> RID (accounts, machine accounts "b$", custom groups)
    machines: dict[str, str]  # lower "host$" -> host name
    groups: dict[str, frozenset[str]]  # group SID -> member SIDs (transitive)
    by_rid: dict[int, str] = field(default_factory=dict)  # RID -> lower name (first one)


@dataclass(frozen=True)
class _Host:
    name: str
    sid: str
    spec: HostSpec
    accounts: dict[str, str | None]  # lower name -> password (None: no usable password)
    display: dict[str, str]
    rids: dict[str, int]
    groups: dict[str, frozenset[str]]  # local group SID -> member SIDs
    group_names: dict[str, str]  # local group SID -> display name


class Directory:
    """Every domain and host of a scenario, with name resolution and logon rules."""

    def __init__(self, domains: Mapping[str, DomainSpec], hosts: Mapping[str, HostSpec]) -> None:
        self._domains: dict[str, _Domain] = {}
        self._hosts: MutableMapping[str, _Host] = {}
        self._domain_key: dict[str, str] = {}
        for key in domains:
            if key.lower() in self._domain_key:
                raise ConfigError(f"domain {key!r} is defined twice", ("domains", key))
            self._domain_key[key.lower()] = key
        host_keys: dict[str, str] = {}
        for key, hspec in hosts.items():
            if key.lower() in host_keys:
                raise ConfigError(f"host {key!r} is defined twice", ("hosts", key))
            if key.lower() in self._domain_key:
                # Choice: a NetBIOS name names either a domain or a computer, never both.
                raise ConfigError(f"host {key!r} has the same name as a domain", ("hosts", key))
            host_keys[key.lower()] = key
            self._check_host_spec(key, hspec)
        self._host_key = host_keys
        for key, spec in domains.items():
            for i, t in enumerate(spec.trusts):
                if t.lower() not in self._domain_key:
                    raise ConfigError(
                        f"domain {key!r} trusts {t!r}, which is not a domain of this scenario",
                        ("domains", key, "trusts", i),
                    )
        # Domains first (accounts and groups), then hosts (local groups refer to domains).
        for key, spec in domains.items():
            self._domains[key.lower()] = self._build_domain(key, spec, hosts)
        for key, dspec in domains.items():
            self._fill_domain_groups(key, dspec)
        for key, hspec in hosts.items():
            self._hosts[key.lower()] = self._build_host(key, hspec)
        for key, hspec in hosts.items():
            self._fill_host_groups(key, hspec)
        # Machine SID -> host key, so naming a local account's SID does not scan every host.
        self._host_by_sid: dict[str, str] = {}
        for low, h in self._hosts.items():
            self._host_by_sid.setdefault(h.sid, low)

    # ------------------------------------------------------------------ building
    def _check_host_spec(self, key: str, spec: HostSpec) -> None:
        if spec.os not in oses.CATALOGUE:
            raise ConfigError(
                f"unknown os {spec.os!r}; expected one of {', '.join(oses.NAMES)}", ("hosts", key, "os")
            )
        if (spec.domain is None) == (spec.workgroup is None):
            raise ConfigError(
                "a host needs exactly one of domain and workgroup", ("hosts", key)
            )
        if spec.domain is not None and spec.domain.lower() not in self._domain_key:
            raise ConfigError(
                f"host {key!r} is in domain {spec.domain!r}, "
                "which is not a domain of this scenario",
                ("hosts", key, "domain"),
            )

    def _build_domain(self, key: str, spec: DomainSpec, hosts: Mapping[str, HostSpec]) -> _Domain:
        sid = sids.domain_sid(key)
        accounts = {n.lower(): pw for n, pw in spec.accounts.items()}
        display = {n.lower(): n for n in spec.accounts}
        # Every domain has Administrator (500) and Guest (501) (MS-DTYP 2.4.2.4).
        display.setdefault("administrator", "Administrator")
        display.setdefault("guest", "Guest")
        machines = {
            f"{h.lower()}$": h
            for h, hs in hosts.items()
            if hs.domain is not None and hs.domain.lower() == key.lower()
        }
        for m, h in machines.items():
            if m[:-1] in accounts:
                raise ConfigError(
                    f"domain account {m[:-1]!r} clashes with the machine account of host {h!r}",
                    ("domains", key, "accounts", m[:-1]),
                )
            display[m] = f"{h.upper()}$"
        custom_groups = [g for g in spec.groups if g.lower() not in sids.DOMAIN_GROUPS]
        for g in custom_groups:
            if g.lower() in display:
                raise ConfigError(
                    f"group {g!r} has the same name as an account", ("domains", key, "groups", g)
                )
            display[g.lower()] = g
        for g, (_, shown) in sids.DOMAIN_GROUPS.items():
            display[g] = shown
        rids = sids.assign_rids([*display.keys() - sids.DOMAIN_GROUPS.keys()])
        for g, (rid, _) in sids.DOMAIN_GROUPS.items():
            rids[g] = rid
        by_rid: dict[int, str] = {}
        for low, rid in rids.items():
            by_rid.setdefault(rid, low)
        return _Domain(key, sid, spec, accounts, display, rids, machines, {}, by_rid)

    def _fill_domain_groups(self, key: str, spec: DomainSpec) -> None:
        d = self._domains[key.lower()]
        direct: dict[str, set[str]] = {}
        # Defaults: Domain Admins holds Administrator, Domain Users every user account,
        # Domain Guests the Guest account, Domain Computers every member computer
        # (Windows Server 2003 help "Default groups"; RIDs MS-DTYP 2.4.2.4).
        users = [n for n in d.display if n in d.accounts or n == "administrator"]
        direct[self._dsid(d, "domain admins")] = {self._dsid(d, "administrator")}
        direct[self._dsid(d, "domain users")] = {self._dsid(d, n) for n in users}
        direct[self._dsid(d, "domain guests")] = {self._dsid(d, "guest")}
        direct[self._dsid(d, "domain computers")] = {self._dsid(d, m) for m in d.machines}
        direct[self._dsid(d, "domain controllers")] = set()
        for g in spec.groups:
            direct.setdefault(self._dsid(d, g.lower()), set())
        for g, members in spec.groups.items():
            out: set[str] = set()
            for i, m in enumerate(members):
                out.add(self._domain_member(d, m, ("domains", key, "groups", g, i)))
            direct[self._dsid(d, g.lower())] = out
        d.groups.update(_closure(direct))

    def _domain_member(self, d: _Domain, name: str, path: tuple[PathPart, ...]) -> str:
        n = name.strip()
        if "\\" in n:
            prefix, n = n.split("\\", 1)
            if prefix.lower() != d.name.lower():
                # Choice: global groups hold members of their own domain only (group scope
                # rules of Windows Server 2003 help "Group scope"; not re-checked).
                raise ConfigError(
                    f"{name!r}: a group of domain {d.name} can only hold members of {d.name}", path
                )
        if n.lower() in d.display:
            return self._dsid(d, n.lower())
        raise ConfigError(f"{name!r} is not an account or group of domain {d.name}", path)

    def _dsid(self, d: _Domain, lower: str) -> str:
        return sids.with_rid(d.sid, d.rids[lower])

    def _build_host(self, key: str, spec: HostSpec) -> _Host:
        sid = sids.machine_sid(key)
        # Every host has Administrator (500) and Guest (501); Administrator without a
        # scenario password has no usable password (scenario-format.md, hosts.accounts).
        accounts: dict[str, str | None] = {"administrator": None, "guest": None}
        display = {"administrator": "Administrator", "guest": "Guest"}
        for n, pw in spec.accounts.items():
            accounts[n.lower()] = pw
            display[n.lower()] = n
        group_names: dict[str, str] = {}
        custom = []
        for g in spec.groups or {}:
            if g.lower() in sids.BUILTIN_GROUPS:
                continue
            if g.lower() in accounts:
                raise ConfigError(
                    f"local group {g!r} has the same name as a local account",
                    ("hosts", key, "groups", g),
                )
            custom.append(g)
            display[g.lower()] = g
        rids = (_DEFAULT_RIDS.copy() if len(display) == 2 else sids.assign_rids(display))
        for g in custom:
            group_names[sids.with_rid(sid, rids[g.lower()])] = g
        group_names.update(_builtin_groups(spec.os))
        return _Host(key, sid, spec, accounts, display, rids, {}, group_names)

    @staticmethod
    def _builtin_exists(os: str, sid: str) -> bool:
        only = sids.BUILTIN_ONLY_ON.get(sid)
        return only is None or os in only

    def _fill_host_groups(self, key: str, spec: HostSpec) -> None:
        h = self._hosts[key.lower()]
        admin = sids.with_rid(h.sid, sids.RID_ADMINISTRATOR)
        guest = sids.with_rid(h.sid, sids.RID_GUEST)
        groups: dict[str, set[str] | frozenset[str]] = dict.fromkeys(h.group_names, _NOBODY)
        # Defaults: Administrators holds Administrator (+ Domain Admins on a member), Users
        # Authenticated Users and INTERACTIVE (+ Domain Users), Guests Guest (+ Domain
        # Guests). Windows Server 2003 help "Default local groups" (Choice where silent).
        admins, users, guests = {admin}, {sids.AUTHENTICATED_USERS, sids.INTERACTIVE}, {guest}
        if spec.domain is not None:
            d = self._domains[spec.domain.lower()]
            admins.add(self._dsid(d, "domain admins"))
            users.add(self._dsid(d, "domain users"))
            guests.add(self._dsid(d, "domain guests"))
        groups[sids.BUILTIN_ADMINISTRATORS] = admins
        groups[sids.BUILTIN_USERS] = users
        groups[sids.BUILTIN_GUESTS] = guests
        for g, members in (spec.groups or {}).items():
            path: tuple[PathPart, ...] = ("hosts", key, "groups", g)
            gsid = self._local_group_sid(h, g, path)
            out: set[str] = set()
            for i, m in enumerate(members):
                msid = self.resolve(m, key, _path=(*path, i))
                if msid in h.group_names:
                    # Choice: local groups do not contain local groups (group scope rules).
                    raise ConfigError(
                        f"{m!r} is a local group; local groups cannot be nested", (*path, i)
                    )
                out.add(msid)
            groups[gsid] = out
        for edit in spec.group_edits:
            self._edit_group(h, key, edit, groups)
        h.groups.update({g: m if m is _NOBODY else frozenset(m) for g, m in groups.items()})

    def _edit_group(self, h: _Host, key: str, edit: localgroup.GroupEdit,
                    groups: dict[str, set[str] | frozenset[str]]) -> None:
        """One ``net localgroup GROUP MEMBER... /add|/delete``, with net.exe's errors."""
        path: tuple[PathPart, ...] = ("hosts", key, "commands", edit.index)

        def fail(message: str) -> ConfigError:
            return ConfigError(f"{edit.command!r}: {message}", path)

        n = edit.group.lower().removeprefix("builtin\\")
        if n in sids.BUILTIN_GROUPS:
            gsid = sids.BUILTIN_GROUPS[n][0]
            if not self._builtin_exists(h.spec.os, gsid):
                raise fail(localgroup.no_such_group())
        elif n in h.rids and sids.with_rid(h.sid, h.rids[n]) in h.group_names:
            gsid = sids.with_rid(h.sid, h.rids[n])
        else:
            raise fail(localgroup.no_such_group())
        members = set(groups.get(gsid, ()))
        for m in edit.members:
            try:
                msid = self.resolve(m, key)
            except ConfigError:
                raise fail(localgroup.no_such_member(m)) from None
            if msid in h.group_names:
                # Local groups do not nest (NetLocalGroupAddMembers: ERROR_INVALID_MEMBER).
                raise fail(localgroup.wrong_type())
            if edit.add and msid in members:
                raise fail(localgroup.already_member())
            if not edit.add and msid not in members:
                raise fail(localgroup.not_member())
            if edit.add:
                members.add(msid)
            else:
                members.discard(msid)
        groups[gsid] = members

    def _local_group_sid(self, h: _Host, name: str, path: tuple[PathPart, ...]) -> str:
        n = name.lower()
        if n.startswith("builtin\\"):
            n = n[len("builtin\\") :]
        if n in sids.BUILTIN_GROUPS:
            sid = sids.BUILTIN_GROUPS[n][0]
            self._require_builtin(h, sid, name, path)
            return sid
        return sids.with_rid(h.sid, h.rids[n])

    def _require_builtin(self, h: _Host, sid: str, name: str, path: tuple[PathPart, ...]) -> None:
        if not self._builtin_exists(h.spec.os, sid):
            # Distributed COM Users is new in Windows Server 2003 SP1 (MSDocs
            # com/dcom-security-enhancements-in-windows-xp-service-pack-2-...).
            raise ConfigError(
                f"{name!r} does not exist on {h.name} ({h.spec.os}); "
                "it is a built-in group of Windows Server 2003 SP1 only",
                path,
            )

    # Fields of a HostSpec that change how the host logs accounts on but no SID, name or
    # group membership anywhere in the directory.
    _LOGON_ONLY = ("force_guest", "guest_enabled", "everyone_includes_anonymous")

    def with_host_specs(self, specs: Mapping[str, HostSpec]) -> Directory | None:
        """This directory with some hosts' logon settings replaced, sharing everything else.

        Only the fields in ``_LOGON_ONLY`` may differ from the current specs; otherwise
        (accounts, groups, OS or membership change SIDs and groups) None: build anew.
        """
        top: dict[str, _Host] = {}
        for name, spec in specs.items():
            h = self._host(name)
            if replace(spec, **{f: getattr(h.spec, f) for f in self._LOGON_ONLY}) != h.spec:
                return None
            top[name.lower()] = replace(h, spec=spec)
        new = copy.copy(self)
        new._hosts = ChainMap(top, self._hosts)
        return new

    # ------------------------------------------------------------------ queries
    def find_domain(self, name: str) -> str | None:
        """The domain a logon names, by its NetBIOS name (``CORP``) or its DNS name
        (``corp.example``), case-insensitively; None for neither.

        Choice (docs/choices.md): Windows accepts ``corp.example\\user`` as ``CORP\\user``
        (issue 9's observation; MS-NLMP 2.2.1.3 only says DomainName names the domain of the
        account, and MS-NRPC 2.2.1.4.15 passes the NetBIOS name on, so the DNS name is mapped
        to it). The one rule both the model and the wire (host/auth.py) use.
        """
        d = self._domain_named(name)
        return None if d is None else d.name

    def _domain_named(self, name: str) -> _Domain | None:
        low = name.strip().rstrip(".").lower()
        if not low:
            return None
        found = self._domains.get(low)
        if found is not None:
            return found
        return next((d for d in self._domains.values()
                     if d.spec.dns and d.spec.dns.rstrip(".").lower() == low), None)

    @property
    def domain_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self._domains.values())

    @property
    def host_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self._hosts.values())

    def host_spec(self, host: str) -> HostSpec:
        return self._host(host).spec

    def domain_spec(self, domain: str) -> DomainSpec:
        return self._domain(domain).spec

    def os_of(self, host: str) -> str:
        return self._host(host).spec.os

    def domain_of(self, host: str) -> str | None:
        d = self._host(host).spec.domain
        return None if d is None else self._domains[d.lower()].name

    def domain_sid(self, domain: str) -> str:
        return self._domain(domain).sid

    def machine_sid(self, host: str) -> str:
        return self._host(host).sid

    def machine_account(self, host: str) -> str:
        """The SID of ``host``'s computer account in its domain; ConfigError if none."""
        h = self._host(host)
        if h.spec.domain is None:
            raise ConfigError(f"host {h.name} is in a workgroup and has no machine account")
        d = self._domains[h.spec.domain.lower()]
        return self._dsid(d, f"{h.name.lower()}$")

    def local_group_members(self, host: str, group: str) -> frozenset[str]:
        """Member SIDs of a local group of ``host`` (by name or SID)."""
        h = self._host(host)
        gsid = group if group in h.groups else self._local_group_sid(h, group, ())
        return h.groups.get(gsid, frozenset())

    def force_guest(self, host: str) -> bool:
        """Whether network logons with local accounts become Guest on ``host``.

        XP Professional outside a domain uses "Guest only" (ForceGuest = 1, Simple File
        Sharing); domain members and Windows Server 2003 use "Classic" (TechNet
        "Network access: Sharing and security model for local accounts"; XP Resource Kit
        ch. 6 "Simple Sharing and ForceGuest").
        """
        spec = self._host(host).spec
        if spec.force_guest is not None:
            return spec.force_guest
        return oses.get(spec.os).force_guest_outside_domain and spec.domain is None

    def guest_enabled(self, host: str) -> bool:
        """Whether the local Guest account is enabled.

        The Guest account is disabled by default on XP and Server 2003 (KB 300489);
        Choice: listing ``Guest`` under the host's accounts enables it.
        """
        h = self._host(host)
        if h.spec.guest_enabled is not None:
            return h.spec.guest_enabled
        return any(n.lower() == "guest" for n in h.spec.accounts)

    def trusts(self, trusting: str, trusted: str) -> bool:
        """Whether domain ``trusting`` accepts accounts of domain ``trusted``.

        Choice: trusts listed in the scenario are two-way external trusts and are not
        transitive (external trusts are non-transitive: Windows Server 2003 help "Trust
        types"); a domain trusts itself.
        """
        a = self._domain(trusting)
        b = self._domain(trusted)
        if a is b:
            return True
        return any(t.lower() == b.name.lower() for t in a.spec.trusts) or any(
            t.lower() == a.name.lower() for t in b.spec.trusts
        )

    # ------------------------------------------------------------------ names
    def resolve(self, name: str, on_host: str, *, _path: tuple[PathPart, ...] = ()) -> str:
        """The SID of principal ``name`` as written in a scenario, seen from ``on_host``.

        Accepts SIDs, well-known names ("Everyone", "ANONYMOUS LOGON", "NT AUTHORITY\\...),
        built-in groups ("Administrators", "BUILTIN\\Users"), "DOMAIN\\name", "HOST\\name",
        machine accounts ("B$", "CORP\\B$"), domain groups ("Domain Admins") and bare
        account names (local account of ``on_host`` first, then its domain). Case-insensitive.
        """
        h = self._host(on_host)
        text = name.strip()
        if not text:
            raise ConfigError("empty principal name", _path)
        if sids.is_sid(text):
            try:
                return sids.parse_sid(text)
            except ConfigError as err:
                raise ConfigError(err.message, _path) from None
        low = text.lower()
        if "\\" in low:
            prefix, rest = low.split("\\", 1)
            if prefix == "nt authority" and rest in sids.NT_AUTHORITY_NAMES:
                return sids.WELL_KNOWN[rest][0]
            if prefix == "builtin" and rest in sids.BUILTIN_GROUPS:
                sid = sids.BUILTIN_GROUPS[rest][0]
                self._require_builtin(h, sid, name, _path)
                return sid
            named = self._domain_named(prefix)
            if named is not None:
                d = named
                if rest in d.display:
                    return self._dsid(d, rest)
                raise ConfigError(f"{name!r}: domain {d.name} has no account or group {rest!r}",
                                  _path)
            if prefix in self._hosts:
                other = self._hosts[prefix]
                if rest in sids.BUILTIN_GROUPS:
                    sid = sids.BUILTIN_GROUPS[rest][0]
                    self._require_builtin(other, sid, name, _path)
                    return sid
                if rest in other.display:
                    return sids.with_rid(other.sid, other.rids[rest])
                raise ConfigError(f"{name!r}: host {other.name} has no local account {rest!r}",
                                  _path)
            raise ConfigError(
                f"{name!r}: {text.split(chr(92))[0]!r} is neither a domain nor a host "
                "of this scenario", _path
            )
        if low in sids.WELL_KNOWN:
            return sids.WELL_KNOWN[low][0]
        if low in sids.BUILTIN_GROUPS:
            sid = sids.BUILTIN_GROUPS[low][0]
            self._require_builtin(h, sid, name, _path)
            return sid
        if low in h.display:
            return sids.with_rid(h.sid, h.rids[low])
        if low.endswith("$") and low[:-1] in self._hosts:
            try:
                return self.machine_account(low[:-1])
            except ConfigError as err:
                raise ConfigError(f"{name!r}: {err.message}", _path) from None
        if h.spec.domain is not None:
            d = self._domains[h.spec.domain.lower()]
            if low in d.display:
                return self._dsid(d, low)
        elif low in sids.DOMAIN_GROUPS:
            raise ConfigError(f"{name!r}: host {h.name} is not in a domain", _path)
        raise ConfigError(f"unknown principal {name!r} (seen from host {h.name})", _path)

    def name_of(self, sid: str) -> str:
        """A display name for ``sid`` ("CORP\\bob", "BUILTIN\\Administrators"), else the SID."""
        for _, (s, shown) in sids.WELL_KNOWN.items():
            if s == sid:
                return shown
        for s, shown in sids.BUILTIN_GROUPS.values():
            if s == sid:
                return f"BUILTIN\\{shown}"
        base, _, rid_text = sid.rpartition("-")
        rid = int(rid_text) if rid_text.isdigit() else -1
        for d in self._domains.values():
            if base == d.sid:
                low = d.by_rid.get(rid)
                if low is not None:
                    return f"{d.name}\\{d.display[low]}"
        key = self._host_by_sid.get(base)
        if key is not None:
            h = self._hosts[key]
            for low, r in h.rids.items():
                if r == rid:
                    return f"{h.name}\\{h.display[low]}"
        return sid

    def alias_resolver(self, host: str) -> Callable[[str], str]:
        """An SDDL alias resolver for ``host``: DA/DU/DG/DC/DD in its domain, LA/LG local."""
        h = self._host(host)

        def resolve(alias: str) -> str:
            a = alias.upper()
            if a in sids.SDDL_ALIASES:
                return sids.SDDL_ALIASES[a]
            if a in sids.SDDL_MACHINE_ALIASES:
                return sids.with_rid(h.sid, sids.SDDL_MACHINE_ALIASES[a])
            if a in sids.SDDL_DOMAIN_ALIASES:
                if h.spec.domain is None:
                    raise ConfigError(f"SID alias {a!r} needs a domain, but {h.name} is not in one")
                d = self._domains[h.spec.domain.lower()]
                return sids.with_rid(d.sid, sids.SDDL_DOMAIN_ALIASES[a])
            raise ConfigError(f"unknown SID alias {alias!r}")

        return resolve

    # ------------------------------------------------------------------ tokens
    def _token(
        self, h: _Host, user: str, name: str, base: Iterable[str], *,
        anonymous: bool = False, guest: bool = False,
    ) -> Token:
        have = {user, *base}
        # Domain group memberships (already transitive).
        for d in self._domains.values():
            for g, members in d.groups.items():
                if have & members:
                    have.add(g)
        # Local groups of the target host (one level: local groups do not nest).
        for g, members in h.groups.items():
            if have & members:
                have.add(g)
        return Token(user, name, frozenset(have), anonymous, guest)

    def anonymous_token(self, host: str) -> Token:
        """The token of an anonymous (null session) network logon on ``host``.

        It holds ANONYMOUS LOGON and NETWORK; Everyone only when "Network access: Let
        Everyone permissions apply to anonymous users" is enabled (disabled by default on
        XP and Server 2003: KB 278259).
        """
        h = self._host(host)
        base = {sids.NETWORK}
        if h.spec.everyone_includes_anonymous:
            base.add(sids.EVERYONE)
        return self._token(h, sids.ANONYMOUS, "NT AUTHORITY\\ANONYMOUS LOGON", base,
                           anonymous=True)

    def guest_token(self, host: str) -> Token:
        """The token of a network logon mapped to the local Guest account.

        Guest is in Everyone and Guests but not in Authenticated Users (MSDocs
        secauthz/well-known-sids: Authenticated Users excludes Guest).
        """
        h = self._host(host)
        gsid = sids.with_rid(h.sid, sids.RID_GUEST)
        return self._token(h, gsid, f"{h.name}\\Guest", {sids.EVERYONE, sids.NETWORK},
                           guest=True)

    def _user_token(self, h: _Host, user_sid: str, extra: Iterable[str] = ()) -> Token:
        base = {sids.EVERYONE, sids.AUTHENTICATED_USERS, sids.NETWORK, *extra}
        return self._token(h, user_sid, self.name_of(user_sid), base)

    def network_token(self, target: str, principal: str) -> Token:
        """The token ``target`` builds for a successful network logon of ``principal``.

        ``principal`` is a name or SID of an account (domain, local or machine account).
        """
        h = self._host(target)
        sid = self.resolve(principal, target)
        if sid == sids.ANONYMOUS:
            return self.anonymous_token(target)
        if sid == sids.with_rid(h.sid, sids.RID_GUEST):
            return self.guest_token(target)
        return self._user_token(h, sid)

    # ------------------------------------------------------------------ logon
    def network_logon(self, target: str, user: str, proof: Proof) -> Logon:
        """How ``target`` logs on ``user`` ("DOMAIN\\name" or "HOST\\name") over NTLM.

        ``proof(password)`` says whether the client's credential matches ``password``; it
        is called with each candidate password in the order Windows tries them.
        """
        h = self._host(target)
        dom, _, name = user.strip().rpartition("\\")
        if not name:
            # A null session: no user name and no password (MS-NLMP 3.3.1 anonymous).
            return Logon(True, self.anonymous_token(target), "anonymous logon", "anonymous")
        dl, nl = dom.lower(), name.lower()
        if dl == h.name.lower():
            return self._local_logon(h, nl, user, proof)
        named = self._domain_named(dl)
        if named is not None:
            d = named
            # The target's own or a trusted domain: pass-through authentication to its DC
            # (KB 103390 "the server will do pass-through authentication").
            if h.spec.domain is not None and self.trusts(h.spec.domain, d.name):
                return self._domain_logon(h, d, nl, user, proof)
            return self._fallback_logon(h, nl, user, proof, "untrusted-domain",
                                        f"domain {d.name} is not trusted by {h.name}")
        if not dl:
            # Choice: no domain given: the target's local account first, then its domain.
            if nl in h.accounts:
                return self._local_logon(h, nl, user, proof)
            if h.spec.domain is not None:
                d = self._domains[h.spec.domain.lower()]
                return self._domain_logon(h, d, nl, user, proof)
            return self._local_logon(h, nl, user, proof)
        # Another computer's local account, or an unknown domain: NTLM falls back to a
        # local account of the same name on the target ("mirrored" account; KB 103390).
        return self._fallback_logon(h, nl, user, proof, "unknown-account",
                                    f"{dom} is not a domain {h.name} knows")

    def _fallback_logon(
        self, h: _Host, nl: str, user: str, proof: Proof, kind: str, why: str
    ) -> Logon:
        if nl in h.accounts and nl != "guest":
            return self._local_logon(h, nl, user, proof, mirrored=True)
        if self.force_guest(h.name) or self.guest_enabled(h.name):
            return self._guest_logon(h, user)
        return Logon(False, None, f"{user}: {why}, and {h.name} has no local account "
                     f"{nl!r} to fall back to", kind)

    def _guest_logon(self, h: _Host, user: str) -> Logon:
        if self.guest_enabled(h.name):
            return Logon(True, self.guest_token(h.name),
                         f"{user} was logged on to {h.name} as Guest", "guest")
        # Choice: a logon mapped to a disabled Guest account fails (KB 300489: Guest is
        # disabled by default); the client sees the logon failure as access denied.
        if self.force_guest(h.name):
            why = (f"{h.name} maps the network logon of {user} to Guest ('Guest only' "
                   "sharing model), and the Guest account is disabled")
        else:
            why = f"{user} is unknown to {h.name}, and the Guest account is disabled"
        return Logon(False, None, why, "guest")

    def _local_logon(
        self, h: _Host, nl: str, user: str, proof: Proof, *, mirrored: bool = False
    ) -> Logon:
        if self.force_guest(h.name):
            # "Guest only": network logons that use local accounts are mapped to Guest
            # (TechNet: Network access: Sharing and security model for local accounts).
            return self._guest_logon(h, user)
        if nl == "guest":
            return self._guest_logon(h, user)
        if nl not in h.accounts:
            # No matching account: "Guest permissions are tested" (KB 103390).
            if self.guest_enabled(h.name):
                return self._guest_logon(h, user)
            return Logon(False, None, f"{h.name} has no local account {nl!r}", "unknown-account")
        pw = h.accounts[nl]
        if pw is None:
            return Logon(False, None, f"{h.name}\\{h.display[nl]} has no usable password",
                         "no-password")
        if pw == "":
            # "Accounts: Limit local account use of blank passwords to console logon only"
            # is enabled by default on XP and Server 2003 (TechNet, Security Options).
            return Logon(False, None, f"{h.name}\\{h.display[nl]} has a blank password, and "
                         "blank passwords are limited to console logon", "blank-password")
        if not proof(pw):
            what = "the mirrored local account" if mirrored else "the local account"
            return Logon(False, None, f"{user}: the password does not match {what} "
                         f"{h.name}\\{h.display[nl]}", "wrong-password")
        sid = sids.with_rid(h.sid, h.rids[nl])
        token = self._user_token(h, sid)
        note = " (mirrored local account)" if mirrored else ""
        if self._remote_uac_filters(h, nl, token):
            # Remote UAC: a local account's network logon gets the filtered token, in which
            # Administrators is deny-only (KB 951016; MSDocs WmiSdk/user-account-control-and-
            # wmi). Choice (docs/choices.md): deny-only is modelled by dropping the SID, as no
            # default descriptor wmilab models denies Administrators.
            token = replace(token, sids=token.sids - {sids.BUILTIN_ADMINISTRATORS},
                            filtered=True)
            note += (" with a filtered token: remote UAC makes Administrators deny-only for "
                     "local accounts (KB 951016)")
        return Logon(True, token, f"{user} logged on as {h.name}\\{h.display[nl]}" + note,
                     "ok")

    def _remote_uac_filters(self, h: _Host, nl: str, token: Token) -> bool:
        """Does remote UAC filter this local account's network logon on ``h``?"""
        if not oses.get(h.spec.os).remote_uac or h.spec.token_filter_off:
            return False
        if sids.BUILTIN_ADMINISTRATORS not in token.sids:
            return False
        # The built-in Administrator (RID 500) is not filtered unless FilterAdministratorToken
        # is 1 (KB 951016; Learn "User Account Control: Admin Approval Mode for the Built-in
        # Administrator account", default Disabled).
        return h.rids[nl] != sids.RID_ADMINISTRATOR or h.spec.filter_builtin_admin

    def _domain_logon(self, h: _Host, d: _Domain, nl: str, user: str, proof: Proof) -> Logon:
        if nl in d.machines:
            # A computer account logs on with its machine account password, passed through to
            # its domain like any domain account (KB 103390); the callback of an async call
            # uses it (MS-WMI 3.1.1.1.3: "by using the machine principal name").
            if not proof(self.machine_password(d.machines[nl])):
                return Logon(False, None, f"{user}: wrong password for the machine account "
                             f"{d.name}\\{d.display[nl]}", "wrong-password")
            sid = self._dsid(d, nl)
            return Logon(True, self._user_token(h, sid),
                         f"{user} logged on as the machine account {d.name}\\{d.display[nl]}",
                         "ok")
        if nl not in d.accounts:
            # A trusted domain is asked by pass-through authentication (KB 103390); Choice:
            # when its DC answers "no such user", no local or Guest fallback is modelled.
            return Logon(False, None, f"domain {d.name} has no account {nl!r}", "unknown-account")
        if not proof(d.accounts[nl]):
            return Logon(False, None, f"{user}: wrong password for {d.name}\\{d.display[nl]}",
                         "wrong-password")
        sid = self._dsid(d, nl)
        return Logon(True, self._user_token(h, sid),
                     f"{user} logged on as {d.name}\\{d.display[nl]}", "ok")

    def password_for(self, target: str, domain: str, name: str) -> str | None:
        """The password ``target`` checks first for ``domain\\name``, or None if none."""
        tried: list[str] = []

        def record(pw: str) -> bool:
            tried.append(pw)
            return False

        self.network_logon(target, f"{domain}\\{name}" if domain else name, record)
        return tried[0] if tried else None

    def account_password(self, principal: str) -> str | None:
        """The scenario password of "DOMAIN\\name" or "HOST\\name" (what the client sends);
        for a machine account "DOMAIN\\HOST$", its :meth:`machine_password`."""
        dom, _, name = principal.strip().rpartition("\\")
        dl, nl = dom.lower(), name.lower()
        if dl in self._domains:
            d = self._domains[dl]
            if nl in d.machines:
                return self.machine_password(d.machines[nl])
            return d.accounts.get(nl)
        if dl in self._hosts:
            return self._hosts[dl].accounts.get(nl)
        return None

    def machine_password(self, host: str) -> str:
        """The password of ``host``'s computer account ``DOMAIN\\HOST$``; ConfigError if the
        host is in a workgroup.

        Windows picks a random machine account password at join time and shares it with the
        domain controller (netlogon secure channel); a scenario file has none. Choice: it is
        derived from the domain and host names (SHA-256), so every run and both ends agree.
        """
        h = self._host(host)
        if h.spec.domain is None:
            raise ConfigError(f"host {h.name} is in a workgroup and has no machine account")
        d = self._domains[h.spec.domain.lower()]
        seed = f"wmilab:machine-password:{d.name.upper()}:{h.name.upper()}".encode()
        return hashlib.sha256(seed).hexdigest()[:32]

    def callback_tokens(self, server: str, client: str) -> tuple[Token, ...]:
        """Every identity ``server`` (B) tries when it calls the sink on ``client`` (A), in order.

        B first calls as :meth:`callback_token`. When that is not anonymous and the call
        fails, B lowers the authentication level down to none (MS-WMI 3.1.1.1.3 and its
        product-behavior note: XP and Server 2003 go down to RPC_C_AUTHN_LEVEL_NONE), and a
        call without authentication arrives on A as ANONYMOUS LOGON.
        """
        first = self.callback_token(server, client)
        if first.anonymous:
            return (first,)
        return (first, self.anonymous_token(client))

    def callback_logon(self, server: str, client: str) -> Logon | None:
        """How A (``client``) logs on B's machine account when B calls the sink back.

        B calls "by using the machine principal name" (MS-WMI 3.1.1.1.3): DOMAIN\\B$ with
        its machine password over NTLM, which A treats like any network logon
        (:meth:`network_logon`): its own or a trusted domain logs the machine account on;
        an untrusted or unknown domain falls back to a local account of that name or to
        Guest (KB 103390). None when B is in a workgroup: its LocalSystem has no network
        credentials and calls anonymously (seed, "To configure Connection 2", step 3).
        """
        b = self._host(server)
        if b.spec.domain is None:
            return None
        d = self._domains[b.spec.domain.lower()]
        secret = self.machine_password(b.name)
        return self.network_logon(client, f"{d.name}\\{b.name.upper()}$",
                                  lambda pw: pw == secret)

    def callback_token(self, server: str, client: str) -> Token:
        """The identity under which ``server`` (B) first reaches the sink on ``client`` (A).

        B's machine account when A logs it on; A's Guest when A maps the unknown machine
        account to an enabled Guest account (a workgroup A, or a domain that does not trust
        B's); otherwise ANONYMOUS LOGON (seed, "To configure Connection 2", step 3).
        """
        logon = self.callback_logon(server, client)
        if logon is not None and logon.ok and logon.token is not None:
            return logon.token
        return self.anonymous_token(client)

    # ------------------------------------------------------------------ helpers
    def _host(self, host: str) -> _Host:
        h = self._hosts.get(host.lower())
        if h is None:
            raise ConfigError(f"unknown host {host!r}")
        return h

    def _domain(self, domain: str) -> _Domain:
        d = self._domains.get(domain.lower())
        if d is None:
            raise ConfigError(f"unknown domain {domain!r}")
        return d


_NOBODY: frozenset[str] = frozenset()
# A host without accounts of its own has only Administrator and Guest.
_DEFAULT_RIDS = sids.assign_rids(["administrator", "guest"])


@functools.cache
def _builtin_groups(os: str) -> dict[str, str]:
    """SID -> display name of the built-in local groups that exist on ``os``."""
    return {sid: shown for sid, shown in sids.BUILTIN_GROUPS.values()
            if Directory._builtin_exists(os, sid)}


def _closure(direct: Mapping[str, set[str]]) -> dict[str, frozenset[str]]:
    """Transitive members of each group (groups may nest within a domain)."""
    out: dict[str, frozenset[str]] = {}
    for g in direct:
        seen: set[str] = set()
        stack = list(direct[g])
        while stack:
            m = stack.pop()
            if m in seen:
                continue
            seen.add(m)
            stack.extend(direct.get(m, ()))
        out[g] = frozenset(seen)
    return out
