"""Property tests: on generated networks every fix is proven, minimal and least-privilege."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make
from wmilab import flow
from wmilab.remedy import DcomRights, NetshAdd, PolicySet, WmiRights, apply, remedy

NETSH = [
    "netsh firewall set service RemoteAdmin enable",
    "netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM addresses=10.9.9.9",
    "netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=SUBNET",
    "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135",
    "netsh firewall add allowedprogram program=%windir%\\system32\\wbem\\unsecapp.exe name=UNSECAPP",
    "netsh firewall set opmode mode=ENABLE exceptions=DISABLE",
    "netsh firewall set opmode mode=ENABLE",
    "netsh firewall set service RemoteAdmin enable profile=STANDARD",
]
GP = "Network/Network Connections/Windows Firewall/{p} Profile/Windows Firewall: {s}"
POLICIES = [
    (GP.format(p="Domain", s="Do not allow exceptions"), {"state": "Enabled"}),
    (GP.format(p="Domain", s="Allow remote administration exception"), {"state": "Disabled"}),
    (GP.format(p="Domain", s="Allow remote administration exception"),
     {"state": "Enabled", "addresses": "10.9.9.9"}),
    (GP.format(p="Domain", s="Define program exceptions"),
     {"state": "Enabled", "programs": ["%windir%\\system32\\notepad.exe:*:Enabled:np"]}),
    (GP.format(p="Domain", s="Define port exceptions"),
     {"state": "Enabled", "ports": ["8080:TCP:*:Enabled:web"]}),
]

host = st.fixed_dictionaries({
    "os": st.sampled_from(["xp-sp2", "2003-sp1"]),
    "netsh": st.lists(st.sampled_from(NETSH), max_size=3),
    "policy": st.lists(st.sampled_from(POLICIES), max_size=2),
    "enable_dcom": st.booleans(),
})
network = st.fixed_dictionaries({
    "A": host, "B": host,
    "b_domain": st.sampled_from(["CORP", "OTHER", "TRUSTED", None]),
    "user": st.sampled_from(["CORP\\admin", "CORP\\bob", "B\\local"]),
    "mode": st.sampled_from(["sync", "semisync", "async"]),
    "sink": st.sampled_from(["unsecapp", "C:\\Program Files\\Mon\\mon.exe"]),
    "same_subnet": st.booleans(),
})


def _doc(n: dict[str, Any]) -> dict[str, Any]:
    def h(spec: dict[str, Any], addr: str, domain: str | None) -> dict[str, Any]:
        d: dict[str, Any] = {"os": spec["os"], "address": addr, "netsh": spec["netsh"]}
        if domain:
            d["domain"] = domain
        else:
            d["workgroup"] = "WORKGROUP"
        if spec["policy"] and domain:
            d["policy"] = dict(spec["policy"])
        if not spec["enable_dcom"]:
            d["dcom"] = {"enable_dcom": False}
        return d

    b_addr = "10.1.0.2/24" if n["same_subnet"] else "10.2.0.2/24"
    doc: dict[str, Any] = {
        "domains": {
            "CORP": {"accounts": {"admin": "A!", "bob": "B!"},
                     "groups": {"Domain Admins": ["admin"]}, "trusts": ["TRUSTED"]},
            "OTHER": {"accounts": {"x": "X!"}},
            "TRUSTED": {"accounts": {"t": "T!"}},
        },
        "hosts": {"A": h(n["A"], "10.1.0.1/24", "CORP"),
                  "B": h(n["B"], b_addr, n["b_domain"])},
        "calls": [],
    }
    doc["hosts"]["B"]["accounts"] = {"local": "L!"}
    doc["hosts"]["B"]["groups"] = {"Administrators": ["B\\local"]}
    call: dict[str, Any] = {"from": "A", "to": "B", "user": n["user"], "mode": n["mode"]}
    if n["mode"] == "async":
        call["sink"] = n["sink"]
    doc["calls"] = [call]
    return doc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network)
def test_every_fix_is_proven_minimal_and_least_privilege(n: dict[str, Any]) -> None:
    s = make(_doc(n))
    c = s.calls[0]
    r = remedy(s.world, c)
    if flow.evaluate(s.world, c).ok:
        assert r.changes == [] and r.proven
        return
    if r.unfixable is None:
        # Proven: the call works with the fix applied.
        w, c2 = apply(s.world, c, r.changes)
        assert flow.evaluate(w, c2).ok
        assert r.proven
        # Minimal: without any one of the changes it fails again.
        for i in range(len(r.changes)):
            w, c2 = apply(s.world, c, r.changes[:i] + r.changes[i + 1:])
            assert not flow.evaluate(w, c2).ok
    else:
        # Unfixable only for reasons no configuration can change: the logon itself (wrong
        # password, unknown account, untrusted domain) or a namespace that does not exist.
        assert any(k in r.unfixable for k in ("password", "cannot find", "does not trust",
                                               "namespace")), r.unfixable
    for ch in r.all_changes():
        e = ch.edit
        if isinstance(e, NetshAdd):
            low = e.command.lower()
            assert "mode=disable" not in low and "scope=all" not in low
            assert "addresses=" in low or "opmode" in low
        if isinstance(e, DcomRights | WmiRights):
            assert e.principal.lower() != "everyone"
            if e.principal == "ANONYMOUS LOGON":
                assert e.table == "access_limits" and ch.host == "A"
        if isinstance(e, PolicySet):
            assert "protect all network connections" not in e.key.lower()
