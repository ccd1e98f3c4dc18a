"""DCOM security of a host: EnableDCOM, machine-wide limits and defaults, and the
launch/access permissions of the two COM servers the seed involves (the WMI service on
B and the sink, usually unsecapp.exe, on A)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

from wmilab.errors import ConfigError, PathPart
from wmilab.model import oses, sids
from wmilab.model.decision import Check
from wmilab.model.identity import Directory, Token
from wmilab.model.security import (
    COM_RIGHTS_ACTIVATE_LOCAL,
    COM_RIGHTS_ACTIVATE_REMOTE,
    COM_RIGHTS_ALL,
    COM_RIGHTS_EXECUTE,
    COM_RIGHTS_EXECUTE_LOCAL,
    COM_RIGHTS_EXECUTE_REMOTE,
    Ace,
    SecurityDescriptor,
    parse_sddl,
)

# The AppID of the WMI service (winmgmt); CLSID_WbemLevel1Login has the same GUID (MS-WMI 1.9).
WMI_APPID = "{8BC3F05E-D86B-11D0-A075-00C04FB68820}"

# Launch and Activation Permissions (MSDocs com/dcom-security-enhancements-...: LL, RL, LA,
# RA map to COM_RIGHTS_EXECUTE_LOCAL/_REMOTE and COM_RIGHTS_ACTIVATE_LOCAL/_REMOTE).
LAUNCH_RIGHTS: dict[str, int] = {
    "local launch": COM_RIGHTS_EXECUTE_LOCAL,
    "remote launch": COM_RIGHTS_EXECUTE_REMOTE,
    "local activation": COM_RIGHTS_ACTIVATE_LOCAL,
    "remote activation": COM_RIGHTS_ACTIVATE_REMOTE,
}
# Access Permissions: Local Access Calls (LC) and Remote Access Calls (RC) (same page).
ACCESS_RIGHTS: dict[str, int] = {
    "local access": COM_RIGHTS_EXECUTE_LOCAL,
    "remote access": COM_RIGHTS_EXECUTE_REMOTE,
}
LAUNCH_TABLES = ("launch_limits", "launch_defaults", "wmi_launch")
ACCESS_TABLES = ("access_limits", "access_defaults", "wmi_access", "sink_access")
TABLES = (*LAUNCH_TABLES, *ACCESS_TABLES)

# Remote activation of the WMI class needs Remote Activation; Remote Launch is checked only
# when RPCSS must start the server (Learn com/launchpermission: the launch ACL is checked
# "upon receiving a ... request to launch the server"; com/dcom-security-enhancements-...:
# launch and activation are separate rights). winmgmt normally runs, so Remote Activation
# suffices then; when it is stopped, the activation launches it and needs both.
REMOTE_ACTIVATION_MASK = COM_RIGHTS_ACTIVATE_REMOTE
REMOTE_LAUNCH_MASK = COM_RIGHTS_EXECUTE_REMOTE | COM_RIGHTS_ACTIVATE_REMOTE
REMOTE_ACCESS_MASK = COM_RIGHTS_EXECUTE_REMOTE


def activation_rights(winmgmt: str) -> tuple[str, ...]:
    """The launch-table rights a remote activation of WMI needs, by winmgmt's state."""
    return ("remote activation",) if winmgmt == "running" else ("remote launch",
                                                                 "remote activation")

_LOCAL_LAUNCH = COM_RIGHTS_EXECUTE | COM_RIGHTS_EXECUTE_LOCAL | COM_RIGHTS_ACTIVATE_LOCAL
_LOCAL_REMOTE_ACCESS = COM_RIGHTS_EXECUTE | COM_RIGHTS_EXECUTE_LOCAL | COM_RIGHTS_EXECUTE_REMOTE
_LOCAL_ACCESS = COM_RIGHTS_EXECUTE | COM_RIGHTS_EXECUTE_LOCAL


def _sd(*aces: tuple[str, int]) -> SecurityDescriptor:
    # Owner and group as in the SDDL Windows shows for these values: O:BAG:BA.
    return SecurityDescriptor(
        sids.BUILTIN_ADMINISTRATORS, sids.BUILTIN_ADMINISTRATORS,
        tuple(Ace(True, s, m) for s, m in aces),
    )


def normalize_com(sd: SecurityDescriptor) -> SecurityDescriptor:
    """Read a pre-SP2 ACE that grants only COM_RIGHTS_EXECUTE as granting every right.

    "existing COM security descriptors are interpreted to allow or deny both local and
    remote access simultaneously" (MSDocs com/dcom-security-enhancements-...).
    """
    if all(a.mask & ~COM_RIGHTS_EXECUTE == 0 for a in sd.dacl):
        return replace(sd, dacl=tuple(
            replace(a, mask=COM_RIGHTS_ALL) if a.mask & COM_RIGHTS_EXECUTE else a
            for a in sd.dacl))
    return sd


def _names(mask: int, table: Mapping[str, int]) -> str:
    out = [n for n, bit in table.items() if mask & bit]
    return ", ".join(out) if out else "nothing"


@dataclass(frozen=True)
class DcomSecurity:
    """A host's DCOM security (dcomcnfg: My Computer > Properties, and the WMI AppID)."""

    enable_dcom: bool
    launch_limits: SecurityDescriptor
    launch_defaults: SecurityDescriptor
    access_limits: SecurityDescriptor
    access_defaults: SecurityDescriptor
    wmi_launch: SecurityDescriptor
    wmi_access: SecurityDescriptor
    sink_access: SecurityDescriptor
    host: str = ""

    @classmethod
    def defaults(cls, os: str, directory: Directory, host: str) -> DcomSecurity:
        """The documented defaults of ``os``: XP SP2 / 2003 SP1, and Vista and later with the
        groups the OS catalogue adds to the machine-wide limits."""
        spec = oses.get(os)
        full = COM_RIGHTS_ALL
        # XP SP2 MachineLaunchRestriction: Administrators LL LA RL RA, Everyone LL LA;
        # MachineAccessRestriction: Everyone LC RC, ANONYMOUS LOGON LC (and so from Vista on:
        # Learn com/machinelaunchrestriction, com/machineaccessrestriction). Server 2003 SP1 adds
        # Distributed COM Users (LL LA RL RA; LC RC) and gives Anonymous LC RC
        # (MSDocs com/dcom-security-enhancements-in-windows-xp-service-pack-2-...).
        launch: list[tuple[str, int]] = [(sids.EVERYONE, _LOCAL_LAUNCH),
                                         (sids.BUILTIN_ADMINISTRATORS, full)]
        access: list[tuple[str, int]] = [
            (sids.EVERYONE, _LOCAL_REMOTE_ACCESS),
            (sids.ANONYMOUS, _LOCAL_REMOTE_ACCESS if spec.anonymous_remote_access_limit
             else _LOCAL_ACCESS)]
        if spec.distributed_com_users:
            launch.append((sids.DISTRIBUTED_COM_USERS, full))
            access.append((sids.DISTRIBUTED_COM_USERS, _LOCAL_REMOTE_ACCESS))
        if spec.dcom_perf_log_users:
            # Vista and later: Performance Log Users as Distributed COM Users (the OS
            # catalogue's dcom_perf_log_users; default SDDL ...(A;;CCDCLCSWRP;;;LU) and
            # (A;;CCDCLC;;;LU), docs/dcom.md; Choice, docs/choices.md).
            launch.append((sids.PERFORMANCE_LOG_USERS, full))
            access.append((sids.PERFORMANCE_LOG_USERS, _LOCAL_REMOTE_ACCESS))
        if spec.dcom_app_packages:
            # Windows 8 and later: RPCSS appends ALL APPLICATION PACKAGES to the COM
            # restrictions (Learn com/donotaddallapplicationpackagestorestrictions), with local
            # rights only: (A;;CCDCSW;;;AC) and (A;;CCDC;;;AC) (Choice, docs/choices.md).
            launch.append((sids.ALL_APP_PACKAGES, _LOCAL_LAUNCH))
            access.append((sids.ALL_APP_PACKAGES, _LOCAL_ACCESS))
        launch_limits = _sd(*launch)
        access_limits = _sd(*access)
        # DefaultLaunchPermission: Administrators, SYSTEM, INTERACTIVE (MSDocs
        # com/defaultlaunchpermission).
        launch_defaults = _sd((sids.BUILTIN_ADMINISTRATORS, full), (sids.SYSTEM, full),
                              (sids.INTERACTIVE, full))
        # DefaultAccessPermission empty: only the server principal (SELF) and SYSTEM may call
        # (MSDocs com/defaultaccesspermission).
        access_defaults = _sd((sids.PRINCIPAL_SELF, _LOCAL_REMOTE_ACCESS),
                              (sids.SYSTEM, _LOCAL_REMOTE_ACCESS))
        # Choice (docs/dcom.md): the WMI AppID admits Administrators, SYSTEM and
        # Authenticated Users for every launch/activation right and remote access; the seed
        # has non-administrators edit only the machine-wide limits, so the AppID must
        # already let them in.
        wmi_launch = _sd((sids.BUILTIN_ADMINISTRATORS, full), (sids.SYSTEM, full),
                         (sids.AUTHENTICATED_USERS, full))
        wmi_access = _sd((sids.BUILTIN_ADMINISTRATORS, _LOCAL_REMOTE_ACCESS),
                         (sids.SYSTEM, _LOCAL_REMOTE_ACCESS),
                         (sids.AUTHENTICATED_USERS, _LOCAL_REMOTE_ACCESS))
        # unsecapp does no access check of its own by default (UnsecAppAccessControlDefault
        # = 0: MSDocs WmiSdk/setting-security-on-an-asynchronous-call), so only A's machine
        # limits decide; modelled as Everyone and ANONYMOUS LOGON allowed. With the value 1
        # unsecapp's check is model/unsecapp.py (steps.sink_caller).
        sink_access = _sd((sids.EVERYONE, _LOCAL_REMOTE_ACCESS),
                          (sids.ANONYMOUS, _LOCAL_REMOTE_ACCESS))
        return cls(True, launch_limits, launch_defaults, access_limits, access_defaults,
                   wmi_launch, wmi_access, sink_access, host)

    # ------------------------------------------------------------------ overrides
    def with_overrides(
        self,
        table: Mapping[str, object],
        directory: Directory,
        host: str,
        *,
        launch_sddl: str | None = None,
        access_sddl: str | None = None,
    ) -> DcomSecurity:
        """Apply a scenario's ``[hosts.X.dcom]`` table, then the Group Policy SDDL settings.

        Each table maps principal -> list of right names (replacing that principal's entry;
        ``[]`` removes it), or is one SDDL string. The GP settings "DCOM: Machine Launch/
        Access Restrictions in SDDL syntax" override the limits: "Existence of this policy
        overrides values in MachineLaunchRestriction" (MSDocs com/dcom-security-enhancements-...).
        """
        out = replace(self, host=host)
        changes: dict[str, object] = {}
        for key, value in table.items():
            if key == "enable_dcom":
                if not isinstance(value, bool):
                    raise ConfigError("enable_dcom must be true or false", (key,))
                # HKLM\Software\Microsoft\Ole\EnableDCOM (MSDocs com/enabledcom).
                changes["enable_dcom"] = value
            elif key in TABLES:
                current: SecurityDescriptor = getattr(out, key)
                changes[key] = _apply_table(current, value, key, directory, host)
            else:
                raise ConfigError(
                    f"unknown DCOM setting {key!r}; expected enable_dcom or one of "
                    + ", ".join(TABLES), (key,))
        out = replace(out, **changes)  # type: ignore[arg-type]
        resolve = directory.alias_resolver(host)
        if launch_sddl is not None:
            try:
                out = replace(out, launch_limits=_check_com_sd(parse_sddl(launch_sddl, resolve)))
            except ConfigError as err:
                raise ConfigError("DCOM: Machine Launch Restrictions in SDDL syntax: "
                                  + err.message) from None
        if access_sddl is not None:
            try:
                out = replace(out, access_limits=_check_com_sd(parse_sddl(access_sddl, resolve)))
            except ConfigError as err:
                raise ConfigError("DCOM: Machine Access Restrictions in SDDL syntax: "
                                  + err.message) from None
        return out

    def grant(self, table: str, sid: str, rights: list[str]) -> DcomSecurity:
        """Set ``sid``'s entry in ``table`` to the named rights (remedies use this)."""
        if table not in TABLES:
            raise ConfigError(f"unknown DCOM table {table!r}")
        names = LAUNCH_RIGHTS if table in LAUNCH_TABLES else ACCESS_RIGHTS
        mask = _mask_of(rights, names, table, (table,))
        sd: SecurityDescriptor = getattr(self, table)
        return replace(self, **{table: sd.with_entry(sid, mask)})  # type: ignore[arg-type]

    # ------------------------------------------------------------------ checks
    def _who(self, token: Token) -> str:
        return token.name

    def check_outgoing(self) -> Check:
        """Whether this computer may make DCOM calls to other computers at all.

        EnableDCOM = N: "Local clients cannot access remote DCOM servers; all DCOM traffic
        is blocked" (MSDocs com/enabledcom).
        """
        if not self.enable_dcom:
            return Check(False, f"DCOM is disabled on {self.host or 'this computer'} "
                         "(EnableDCOM = N), so it cannot call other computers", "enable_dcom")
        return Check(True, "DCOM is enabled", "enable_dcom")

    def check_remote_activation(self, token: Token, winmgmt: str = "running") -> Check:
        """What RPCSS checks for a remote RemoteCreateInstance of the WMI class.

        EnableDCOM, then the machine launch limits, then the WMI AppID's launch permission,
        each for Remote Activation, and for Remote Launch too when winmgmt is not running
        (``winmgmt``: running, stopped or disabled). A disabled winmgmt cannot be started:
        the check passes and :meth:`check_service_start` refuses.
        """
        if not self.enable_dcom:
            # EnableDCOM = N: "no remote clients may launch servers or connect to objects"
            # (MSDocs com/enabledcom).
            return Check(False, f"DCOM is disabled on {self.host or 'this computer'} "
                         "(EnableDCOM = N)", "enable_dcom")
        launch = winmgmt != "running"
        mask = REMOTE_LAUNCH_MASK if launch else REMOTE_ACTIVATION_MASK
        need = "Remote Launch and Remote Activation" if launch else "Remote Activation"
        why = (f" (the WMI service is {winmgmt}, so the activation must launch it)" if launch
               else " (the WMI service is running, so no launch is needed)")
        limits = self._normalized["launch_limits"]
        # Computer-wide restriction: an extra AccessCheck on every activation/launch
        # (MSDocs com/dcom-security-enhancements-...; com/machinelaunchrestriction).
        if not limits.granted(token.sids, mask):
            got = limits.effective_rights(token.sids)
            return Check(False, f"{self._who(token)} lacks {need} in the machine launch limits "
                         f"of {self.host or 'the server'}{why} "
                         f"(has: {_names(got, LAUNCH_RIGHTS)})", "launch_limits")
        app = self._normalized["wmi_launch"]
        # LaunchPermission of the server's AppID is checked while impersonating the client
        # (MSDocs com/launchpermission).
        if not app.granted(token.sids, mask):
            got = app.effective_rights(token.sids)
            return Check(False, f"{self._who(token)} lacks {need} in the WMI service's launch "
                         f"permissions (AppID {WMI_APPID}){why} "
                         f"(has: {_names(got, LAUNCH_RIGHTS)})", "app_launch")
        verb = "launch and activate" if launch else "activate"
        return Check(True, f"{self._who(token)} may remotely {verb} WMI "
                     f"on {self.host or 'the server'}", "app_launch")

    @cached_property
    def _normalized(self) -> dict[str, SecurityDescriptor]:
        # The descriptors never change (frozen): normalize each once, not on every call.
        return {t: normalize_com(getattr(self, t)) for t in TABLES}

    @cached_property
    def _access_memo(self) -> dict[tuple[Token, str], Check]:
        return {}

    def check_remote_access(self, token: Token, app: Literal["wmi", "sink"]) -> Check:
        """A remote call into an object exported by ``app`` (memoized: the emulator asks it
        on every ORPC call)."""
        key = (token, app)
        found = self._access_memo.get(key)
        if found is None:
            found = self._check_remote_access(token, app)
            if len(self._access_memo) < 1024:
                self._access_memo[key] = found
        return found

    def _check_remote_access(self, token: Token, app: Literal["wmi", "sink"]) -> Check:
        """A remote call into an object exported by ``app``: machine access limits, then the
        app's own access permission, each for Remote Access."""
        place = self.host or "this computer"
        if not self.enable_dcom:
            return Check(False, f"DCOM is disabled on {place} (EnableDCOM = N)", "enable_dcom")
        limits = self._normalized["access_limits"]
        # MachineAccessRestriction: an extra AccessCheck on every call (MSDocs
        # com/machineaccessrestriction).
        if not limits.granted(token.sids, REMOTE_ACCESS_MASK):
            got = limits.effective_rights(token.sids)
            return Check(False, f"{self._who(token)} lacks Remote Access in the machine access "
                         f"limits of {place} (has: {_names(got, ACCESS_RIGHTS)})",
                         "access_limits")
        sd = self._normalized["wmi_access" if app == "wmi" else "sink_access"]
        label = "the WMI service" if app == "wmi" else "the sink (unsecapp)"
        if not sd.granted(token.sids, REMOTE_ACCESS_MASK):
            got = sd.effective_rights(token.sids)
            return Check(False, f"{self._who(token)} lacks Remote Access in the access "
                         f"permissions of {label} on {place} (has: {_names(got, ACCESS_RIGHTS)})",
                         "app_access")
        return Check(True, f"{self._who(token)} may call {label} on {place} remotely",
                     "app_access")


def _check_com_sd(sd: SecurityDescriptor) -> SecurityDescriptor:
    for ace in sd.dacl:
        if ace.mask & ~COM_RIGHTS_ALL:
            raise ConfigError(
                f"ACE for {ace.sid} grants {hex(ace.mask)}, which is not a COM right "
                "(use CC, DC, LC, SW and RP)")
    return sd


def _mask_of(
    rights: object, names: Mapping[str, int], table: str, path: tuple[PathPart, ...]
) -> int:
    if not isinstance(rights, list | tuple):
        raise ConfigError(f"expected a list of rights ({', '.join(names)})", path)
    mask = 0
    for i, r in enumerate(rights):
        if not isinstance(r, str) or r.strip().lower() not in names:
            raise ConfigError(
                f"{r!r} is not a right of {table}; expected one of: {', '.join(names)}",
                (*path, i))
        mask |= names[r.strip().lower()]
    # COM_RIGHTS_EXECUTE must be present in every ACE of a new-format COM ACL
    # (MSDocs com/access-control-lists-for-com).
    return mask | COM_RIGHTS_EXECUTE if mask else 0


def _apply_table(
    sd: SecurityDescriptor, value: object, key: str, directory: Directory, host: str
) -> SecurityDescriptor:
    if isinstance(value, str):
        try:
            return _check_com_sd(parse_sddl(value, directory.alias_resolver(host)))
        except ConfigError as err:
            raise ConfigError(err.message, (key,)) from None
    if not isinstance(value, Mapping):
        raise ConfigError("expected a table of principal = [rights] or an SDDL string", (key,))
    names = LAUNCH_RIGHTS if key in LAUNCH_TABLES else ACCESS_RIGHTS
    for principal, rights in value.items():
        path: tuple[PathPart, ...] = (key, principal)
        sid = directory.resolve(str(principal), host, _path=path)
        sd = sd.with_entry(sid, _mask_of(rights, names, key, path))
    return sd
