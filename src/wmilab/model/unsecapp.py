"""unsecapp.exe's own check of who calls a sink back (UnsecAppAccessControlDefault, on A).

Scripts, MMC snap-ins and programs that ask WMI for an unsecured apartment receive the
results of an asynchronous call in unsecapp.exe. From Vista / Server 2008 on, unsecapp can
check its callers: "An access check means that Unsecapp.exe only allows the account of the
computer that originally obtained the sink to invoke callbacks" (Learn
api/wbemcli/nf-wbemcli-iwbemunsecuredapartment-createsinkstub). Whether it does is the value
``UnsecAppAccessControlDefault`` under ``HKLM\\Software\\Microsoft\\WBEM\\CIMOM`` on the
computer that runs unsecapp (A): 0, the default, no check; 1, the check (Learn WmiSdk/setting-
security-on-an-asynchronous-call: "If the registry key is zero, then WMI does not verify
authentication levels. To secure asynchronous calls in scripting, set the registry key to 1").
An application's own sink is not unsecapp and does not read the value.
"""

from __future__ import annotations

from collections.abc import Mapping

from wmilab.errors import ConfigError
from wmilab.model import oses
from wmilab.model.decision import Check
from wmilab.model.identity import Token

__all__ = ["CIMOM_KEY", "UNSECAPP_ACCESS_CONTROL", "check_caller", "checks_callers"]

UNSECAPP_ACCESS_CONTROL = "UnsecAppAccessControlDefault"
CIMOM_KEY = "HKLM\\Software\\Microsoft\\WBEM\\CIMOM"


def checks_callers(os: str, registry: Mapping[str, object]) -> bool:
    """Does unsecapp on a host running ``os`` check its callers? Only with the value 1, and
    only from Vista / Server 2008 on (IWbemUnsecuredApartment and WBEM_UNSECAPP_FLAG_TYPE,
    Learn: "Minimum supported server Windows Server 2008")."""
    value = registry.get(UNSECAPP_ACCESS_CONTROL)
    # Learn WmiSdk/setting-security-on-an-asynchronous-call: 0 (the default) or 1.
    if value is not None and value not in (0, 1):
        raise ConfigError(f"{value!r} is not a value of {UNSECAPP_ACCESS_CONTROL}: 0 (no access "
                          "check, the default) or 1 (unsecapp checks its callers)",
                          (UNSECAPP_ACCESS_CONTROL,))
    return oses.get(os).modern and value == 1


def check_caller(host: str, checks: bool, token: Token, owner: str | None,
                 owner_sid: str | None) -> Check:
    """unsecapp on ``host`` (A) takes a call on a sink from ``token``? ``owner`` is the
    computer the sink was handed to (B), ``owner_sid`` the SID of its machine account (None
    when it has none: a workgroup computer, or unknown)."""
    if not checks:
        return Check(True, f"unsecapp on {host} does no access check of its own "
                     f"({UNSECAPP_ACCESS_CONTROL} is not 1)", "unsecapp")
    who = owner or "the computer that obtained the sink"
    whose = (f"{who}'s machine account" if owner_sid is not None else
             f"which {who} does not have (no domain machine account)")
    rule = (f"{CIMOM_KEY}\\{UNSECAPP_ACCESS_CONTROL} = 1 on {host}: unsecapp accepts callbacks "
            f"only from the account of the computer that obtained the sink, {whose} (Learn "
            "IWbemUnsecuredApartment::CreateSinkStub)")
    if token.anonymous:
        return Check(False, f"{rule}, and an anonymous callback (ANONYMOUS LOGON) is not it",
                     "unsecapp")
    if owner_sid is None or token.guest or token.user != owner_sid:
        return Check(False, f"{rule}, and {token.name} is not it", "unsecapp")
    return Check(True, f"{rule}: {token.name} is", "unsecapp")
