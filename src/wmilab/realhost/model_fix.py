"""From a probed failure to the model's least-privilege fix.

The doctor cannot read B's configuration; it only sees where the call stopped and with what
HRESULT. So it reconstructs the *simplest* scenario that fails at that step with that HRESULT
(the seed's computers A and B, with the probed addresses, user, namespace, mode and Windows
version), checks with ``flow`` that the reconstruction really fails there, and asks
``remedy`` for the fix. The assumptions each reconstruction makes are listed in
``ASSUMPTIONS`` and printed with the fix, because they are what the doctor does *not* know
(for example: at c1.activation, that the user is not an administrator of B, since an
administrator passes activation by default). When the reconstruction does not reproduce the
probe, no fix is offered rather than a wrong one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from wmilab import hresult as hr
from wmilab import remedy, steps
from wmilab.errors import ConfigError
from wmilab.flow import evaluate
from wmilab.model import oses
from wmilab.scenario import build

__all__ = ["ASSUMPTIONS", "ModelFix", "os_of_version", "reconstruct_fix"]

UNSECAPP = "%windir%\\system32\\wbem\\unsecapp.exe"
INVALID_NAMESPACE = hr.WBEM_E_INVALID_NAMESPACE.code
DEFAULT_OS = "xp-sp2"  # Choice: the seed's computers when the version is unknown
A_FALLBACK, B_FALLBACK = "192.0.2.1/24", "192.0.2.2/24"  # when an address is not IPv4

ASSUMPTIONS = {
    steps.C1_RPCSS: "B's Windows Firewall has no exception for TCP 135 from A",
    steps.C1_LOGON: "B cannot log the user on with this password (wrong password or account)",
    steps.C1_ACTIVATION: "the user is not an administrator of B and has no DCOM launch and "
                         "activation rights there",
    steps.C1_WMI_PORT: "B's firewall opens TCP 135 but not the WMI service's port",
    steps.C1_ACCESS: "the user may launch WMI on B but B's DCOM access limits leave Everyone "
                     "local access only",
    steps.C1_NAMESPACE: "the user is not an administrator of B and lacks Enable Account + "
                        "Remote Enable on the namespace",
    steps.C2_RESOLVER_PORT: "A's Windows Firewall has no exception for TCP 135 from B",
    steps.C2_SINK_PORT: "A's firewall opens TCP 135 but not the sink's program",
    steps.C2_ACCESS: "B called back as ANONYMOUS LOGON (B's domain is not trusted by A) and A's "
                     "DCOM refuses it",
}


@dataclass(frozen=True)
class ModelFix:
    fixes: list[dict[str, Any]]
    assumption: str
    proven: bool
    note: str = ""


def os_of_version(version: str | None) -> str | None:
    """The model's OS (model/oses.py) whose major.minor version matches, e.g. 5.1.2600."""
    if not version:
        return None
    # The build tells the OS apart from 10.0 on (Windows 10, 11, Server 2016-2025 share
    # 10.0); a client and a server of one build (Vista / 2008, 7 / 2008 R2, 8.1 / 2012 R2,
    # 11 / 2025) cannot be told apart by the version alone: the first of the catalogue wins.
    for spec in oses.CATALOGUE.values():
        if spec.version == version:
            return spec.name
    want = version.split(".")[:2]
    if want == ["10", "0"]:
        return None  # an unknown build of Windows 10 / 11 / Server 2016 and later
    for spec in oses.CATALOGUE.values():
        if spec.version.split(".")[:2] == want:
            return spec.name
    return None


def _address(text: str, fallback: str) -> str:
    try:
        ip = ipaddress.IPv4Address(text)
    except ValueError:
        return fallback
    return f"{ip}/24"


def _doc(step: str, hresult: int, *, user: str, namespace: str, mode: str, os_b: str,
         a_ip: str, b_ip: str) -> dict[str, Any] | None:
    dom, _, name = user.rpartition("\\")
    dom = (dom or "CORP").upper()
    name = name or "user"
    admin = step not in (steps.C1_ACTIVATION, steps.C1_ACCESS, steps.C1_NAMESPACE) or \
        hresult == INVALID_NAMESPACE
    doc: dict[str, Any] = {
        "domains": {dom: {"dns": f"{dom.lower()}.example", "accounts": {name: "secret"},
                          "groups": {"Domain Admins": [name] if admin else []}}},
        "hosts": {
            "A": {"os": DEFAULT_OS, "domain": dom,
                  "address": _address(a_ip, A_FALLBACK)},
            "B": {"os": os_b, "domain": dom, "address": _address(b_ip, B_FALLBACK),
                  "netsh": ["netsh firewall set service RemoteAdmin enable"]},
        },
        # The doctor's client activates at packet privacy (ConnectOptions), which the DCOM
        # hardening of KB 5004442 accepts.
        "calls": [{"from": "A", "to": "B", "user": f"{dom}\\{name}", "mode": mode,
                   "namespace": namespace, "auth_level": "privacy"}],
    }
    b, a, call = doc["hosts"]["B"], doc["hosts"]["A"], doc["calls"][0]
    launch = {f"{dom}\\{name}": ["local launch", "remote launch", "local activation",
                                 "remote activation"]}
    if step == steps.C1_RPCSS:
        b["netsh"] = []
    elif step == steps.C1_LOGON:
        call["password"] = "not-the-password"
    elif step == steps.C1_ACTIVATION:
        pass  # a user who is not an administrator: the OS's launch limits refuse him
    elif step == steps.C1_WMI_PORT:
        b["netsh"] = ["netsh firewall add portopening TCP 135 RPC ENABLE"]
    elif step == steps.C1_ACCESS:
        b["dcom"] = {"launch_limits": launch,
                     "access_limits": {"Everyone": ["local access"]}}
    elif step == steps.C1_NAMESPACE and hresult != INVALID_NAMESPACE:
        b["dcom"] = {"launch_limits": launch}
    elif step == steps.C2_RESOLVER_PORT:
        pass  # A's firewall as the OS ships it
    elif step == steps.C2_SINK_PORT:
        a["netsh"] = ["netsh firewall add portopening TCP 135 DCOM ENABLE"]
    elif step == steps.C2_ACCESS:
        a["netsh"] = ["netsh firewall add portopening TCP 135 DCOM ENABLE",
                      f"netsh firewall add allowedprogram {UNSECAPP} UNSECAPP ENABLE"]
        # A in another domain that does not trust B's: B's callback arrives as ANONYMOUS LOGON.
        doc["domains"]["OTHER"] = {"dns": "other.example", "accounts": {}, "groups": {}}
        a["domain"] = "OTHER"
    elif step != steps.C1_NAMESPACE:
        return None
    if not oses.get(os_b).firewall_on:
        # B's firewall is taken as on, as on the seed's computers (a firewall step can only
        # fail that way); Server 2003 SP1 ships with it off, so the reconstruction turns it on.
        b["netsh"] = ["netsh firewall set opmode mode=ENABLE", *b["netsh"]]
    return doc


# Fixes already reconstructed, shared by the hosts of a fleet (see reconstruct_fix).
_SHARED: dict[tuple[object, ...], ModelFix] = {}
_SHARED_MAX = 512


def reconstruct_fix(step: str, hresult: int, *, user: str, namespace: str, mode: str,
                    os_b: str | None, a_ip: str, b_ip: str) -> ModelFix:
    """The model's fix for a probe that failed at ``step`` with ``hresult``.

    The hosts of a fleet that fail alike differ only in B's address. The model sees that
    address only through where it lies against A's (the same address, the same /24 that
    the reconstruction gives both, or elsewhere: LocalSubnet scopes) and through the text of
    a fix that names it. So a fix that does not name B's address is shared by every target
    with the same other arguments and the same relation of the two addresses; one that
    names it is made for each target. The returned :class:`ModelFix` must not be mutated.
    """
    a_if = ipaddress.IPv4Interface(_address(a_ip, A_FALLBACK))
    b_if = ipaddress.IPv4Interface(_address(b_ip, B_FALLBACK))
    where = "same" if a_if.ip == b_if.ip else "subnet" if a_if.ip in b_if.network else "other"
    key = (step, hresult, user, namespace, mode, os_b, str(a_if), where)
    found = _SHARED.get(key)
    if found is not None:
        return found
    fix = _reconstruct(step, hresult, user=user, namespace=namespace, mode=mode, os_b=os_b,
                       a_ip=a_ip, b_ip=b_ip)
    text = repr((fix.fixes, fix.note, fix.assumption))
    if str(b_if.ip) not in text and str(b_if.network.network_address) not in text:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        _SHARED[key] = fix
    return fix


def _reconstruct(step: str, hresult: int, *, user: str, namespace: str, mode: str,
                 os_b: str | None, a_ip: str, b_ip: str) -> ModelFix:
    doc = _doc(step, hresult, user=user, namespace=namespace, mode=mode,
               os_b=os_b or DEFAULT_OS, a_ip=a_ip, b_ip=b_ip)
    assumption = ASSUMPTIONS.get(step, "")
    if step == steps.C1_NAMESPACE and hresult == INVALID_NAMESPACE:
        assumption = f"the namespace {namespace} does not exist on B"
    if doc is None:
        return ModelFix([], assumption, False, f"the model has no fix for step {step}")
    try:
        # The document as a parsed scenario (no TOML text in between: nothing reads it).
        _title, world, calls = build(doc)
    except ConfigError as e:
        return ModelFix([], assumption, False,
                        f"could not model this target: {e}")
    call = calls[0]
    verdict = evaluate(world, call)
    failed = verdict.failed
    if failed is None or failed.id != step or verdict.hresult.code != hresult:
        return ModelFix([], assumption, False,
                        f"the model does not reproduce {step} 0x{hresult:08X} "
                        f"(it gives {verdict.result} at {failed.id if failed else '-'})")
    r = remedy.remedy(world, call)
    fixes = [c.as_json() for c in r.all_changes()]
    return ModelFix(fixes, assumption, r.proven, r.unfixable or "")
