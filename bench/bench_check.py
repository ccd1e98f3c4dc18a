"""Benchmark `wmilab check`: call verdicts per second on a fleet, and load time.

Prints figures; asserts nothing (machines are noisy). Usage:
    .venv/bin/python bench/bench_check.py [--hosts 1000] [--big 10000]
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc
from ipaddress import IPv4Address
from typing import Any

import tomlkit

from wmilab import flow
from wmilab.model import oses
from wmilab.scenario import Call, build, loads

RA = "netsh firewall set service RemoteAdmin enable"
A_CONN2 = [
    "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135",
    "netsh firewall add allowedprogram program=%windir%\\system32\\wbem\\unsecapp.exe "
    "name=UNSECAPP",
]


def fleet(n: int, with_calls: bool = False, modern: bool = False) -> dict[str, Any]:
    """n hosts in two trusting domains, mixed OS and firewall configuration; ``modern``
    cycles through every OS of the catalogue (Vista and later: WFAS, hardening)."""
    names = oses.NAMES
    hosts: dict[str, Any] = {}
    base = int(IPv4Address("10.0.0.0"))
    for i in range(n):
        netsh: list[str] = []
        if i % 4 != 3:
            netsh.append(RA)
        if i % 2 == 0:
            netsh.extend(A_CONN2)
        hosts[f"H{i:05d}"] = {
            "os": names[i % len(names)] if modern else ("xp-sp2" if i % 3 else "2003-sp1"),
            "domain": "CORP" if i % 5 else "BRANCH",
            "address": f"{IPv4Address(base + 256 + i)}/16",
            "netsh": netsh,
        }
    doc: dict[str, Any] = {
        "domains": {
            "CORP": {"trusts": ["BRANCH"], "accounts": {"admin": "A!", "bob": "B!"},
                     "groups": {"Domain Admins": ["admin"]}},
            "BRANCH": {"accounts": {"badmin": "C!"}, "groups": {"Domain Admins": ["badmin"]}},
        },
        "hosts": hosts,
        "calls": [],
    }
    if with_calls:
        names = list(hosts)
        doc["calls"] = [{"from": names[i], "to": names[(i + 1) % n], "user": "CORP\\admin"}
                        for i in range(n)]
    return doc


def all_pairs(names: list[str]) -> list[Call]:
    modes = ("sync", "semisync", "async")
    users = ("CORP\\admin", "CORP\\bob", "BRANCH\\badmin")
    out = []
    k = 0
    for a in names:
        for b in names:
            if a == b:
                continue
            out.append(Call(k, f"{a}->{b}", a, b, users[k % 3], None, modes[k % 3],
                            "root\\cimv2", "SELECT * FROM Win32_OperatingSystem",
                            "unsecapp", None))
            k += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--big", type=int, default=10000)
    ap.add_argument("--modern", action="store_true",
                    help="cycle through every OS of the catalogue, Vista and later included")
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} python "
          f"{platform.python_version()}")

    t0 = time.perf_counter()
    _, world, _ = build(fleet(args.hosts, modern=args.modern))
    t1 = time.perf_counter()
    calls = all_pairs(list(world.configs))
    t2 = time.perf_counter()
    outcomes: dict[str, int] = {}
    for c in calls:
        r = flow.evaluate(world, c).result
        outcomes[r] = outcomes.get(r, 0) + 1
    t3 = time.perf_counter()
    n = len(calls)
    print(f"fleet: {args.hosts} hosts built in {t1 - t0:.2f} s; {n} all-pairs calls "
          f"made in {t2 - t1:.2f} s")
    print(f"check verdicts: {n / (t3 - t2):,.0f} calls/s on one core "
          f"({(t3 - t2) * 1e6 / n:.1f} µs per call; outcomes {outcomes})")

    doc = fleet(args.big, with_calls=True, modern=args.modern)
    text = tomlkit.dumps(doc)
    t4 = time.perf_counter()
    s = loads(text, "big.toml")
    t5 = time.perf_counter()
    results = [flow.evaluate(s.world, c).result for c in s.calls]
    t6 = time.perf_counter()
    del s
    tracemalloc.start()
    s = loads(text, "big.toml")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{args.big}-host scenario ({len(text) / 1e6:.1f} MB of TOML, {len(s.calls)} calls): "
          f"load {t5 - t4:.2f} s, evaluate {t6 - t5:.2f} s; "
          f"peak traced memory while loading {peak / 1e6:.0f} MB; {results.count('ok')} ok")


if __name__ == "__main__":
    main()
