"""Write a fleet scenario file: N hosts, one call per host, a third of the calls failing.

Call i goes from host i to host i+1 (the last one wraps to host 0). Every third call
fails, for one of seven reasons in turn, each with a different fix:

- ``no-ra``: B has no Remote Administration exception (netsh, Connection 1);
- ``ra-scope``: B's Remote Administration exception admits another address only (widen it);
- ``async-a``: an asynchronous call while A has no exception for the callback (Connection 2);
- ``launch``: a user who is not an administrator, with Remote Enable on the namespace but no
  DCOM Remote Launch/Activation on B (a DCOM grant);
- ``gp-noexc``: Group Policy "Do not allow exceptions" on B (a policy change);
- ``guest``: a local account on an XP workgroup computer, whose network logons become Guest
  (the ForceGuest registry value; this one changes the directory of accounts);
- ``namespace``: a user with DCOM Remote Launch/Activation on B but no Remote Enable on
  ``root\\cimv2`` (a WMI namespace grant).

The other calls work: synchronous, semisynchronous and asynchronous calls by a domain
administrator to hosts with Remote Administration enabled.

Usage:
    .venv/bin/python bench/fleet.py 10000 -o fleet-10k.toml
"""

from __future__ import annotations

import argparse
import json
from ipaddress import IPv4Address

RA = "netsh firewall set service RemoteAdmin enable"
RA_ELSEWHERE = ("netsh firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM "
                "addresses=192.168.77.7")
A_CONN2 = (
    "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135",
    "netsh firewall add allowedprogram program=%windir%\\system32\\wbem\\unsecapp.exe "
    "name=UNSECAPP",
)
FAILURES = ("no-ra", "ra-scope", "async-a", "launch", "gp-noexc", "guest", "namespace")
NOEXC = "Network/Network Connections/Windows Firewall/Domain Profile/Windows Firewall: " \
        "Do not allow exceptions"


def kind(i: int) -> str:
    """What call ``i`` is: ``ok-sync``, ``ok-semisync``, ``ok-async`` or a failure."""
    if i % 3 == 0:
        return FAILURES[(i // 3) % len(FAILURES)]
    if i % 3 == 1 and FAILURES[(i // 3) % len(FAILURES)] in ("guest", "gp-noexc"):
        # A workgroup computer (or one where Group Policy allows no exception) cannot
        # receive the callback of an asynchronous call.
        return "ok-sync"
    return ("ok-sync", "ok-semisync", "ok-async")[(i // 3) % 3]


def _s(text: str) -> str:
    # A JSON string of plain text is a valid TOML basic string.
    return json.dumps(text)


def fleet_text(n: int) -> str:
    """The scenario file, as TOML text."""
    if n < 2:
        raise ValueError("a fleet needs at least two hosts")
    names = [f"H{i:05d}" for i in range(n)]
    base = int(IPv4Address("10.0.0.0"))
    out = [
        f"title = {_s(f'fleet of {n} hosts, one call each')}",
        "",
        "[domains.CORP]",
        'trusts = ["BRANCH"]',
        '[domains.CORP.accounts]\nadmin = "A!"\nbob = "B!"',
        '[domains.CORP.groups]\n"Domain Admins" = ["admin"]',
        "[domains.BRANCH.accounts]\nbadmin = \"C!\"",
        "",
    ]
    for j in range(n):
        as_target = kind((j - 1) % n)
        as_source = kind(j)
        name = names[j]
        netsh: list[str] = []
        extra: list[str] = []
        workgroup = as_target == "guest"
        if as_target == "ra-scope":
            netsh.append(RA_ELSEWHERE)
        elif as_target != "no-ra":
            netsh.append(RA)
        if as_source == "ok-async":
            netsh.extend(A_CONN2)
        if as_target == "launch":
            extra.append(f'[hosts.{name}.wmi."root\\\\cimv2"]\n'
                         '"CORP\\\\bob" = ["enable account", "remote enable"]')
        if as_target == "gp-noexc":
            extra.append(f'[hosts.{name}.policy."{NOEXC}"]\nstate = "Enabled"')
        if as_target == "namespace":
            extra.append(f'[hosts.{name}.dcom.launch_limits]\n"CORP\\\\bob" = '
                         '["local launch", "remote launch", "local activation", '
                         '"remote activation"]')
        if workgroup:
            extra.append(f'[hosts.{name}.accounts]\nlocal = "L!"')
            extra.append(f'[hosts.{name}.groups]\nAdministrators = ["{name}\\\\local"]')
        out.append(f"[hosts.{name}]")
        # Server 2003 SP1 has its firewall off by default: only where no call fails.
        out.append(f'os = "{"2003-sp1" if j % 3 == 2 else "xp-sp2"}"')
        out.append('workgroup = "WORKGROUP"' if workgroup else 'domain = "CORP"')
        out.append(f'address = "{IPv4Address(base + 256 + j)}/16"')
        if netsh:
            out.append("netsh = [" + ", ".join(_s(c) for c in netsh) + "]")
        out.extend(extra)
        out.append("")
    for i in range(n):
        k = kind(i)
        a, b = names[i], names[(i + 1) % n]
        user = {"launch": "CORP\\bob", "namespace": "CORP\\bob",
                "guest": f"{b}\\local"}.get(k, "CORP\\admin")
        mode = {"ok-sync": "sync", "ok-async": "async", "async-a": "async"}.get(k, "semisync")
        out.append("[[calls]]")
        out.append(f'name = "{k} {i}"')
        out.append(f'from = "{a}"\nto = "{b}"\nuser = {_s(user)}\nmode = "{mode}"')
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("hosts", type=int)
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(fleet_text(args.hosts))


if __name__ == "__main__":
    main()
