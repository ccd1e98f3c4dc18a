"""Benchmark `wmilab check`: call verdicts per second, `check` with fixes on 1k and 10k
hosts side by side, and load time.

Prints figures; asserts nothing (machines are noisy). Times are given as wall-clock and as
the process's CPU time: on a shared machine the CPU time is the steadier of the two.
Usage:
    .venv/bin/python bench/bench_check.py [--hosts 1000] [--big 10000] [--small 1000] [--modern]
        [--only-fixes | --only-verdicts]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from ipaddress import IPv4Address
from typing import Any, TypeVar

import tomlkit
from fleet import fleet_text

from wmilab import flow, report
from wmilab.model import oses
from wmilab.scenario import Call, Scenario, build, loads, parse_toml

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """``fn()``, its wall-clock seconds and its CPU seconds."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _check_json(s: Scenario) -> str:
    reports = report.evaluate(s)
    return json.dumps(report.as_json(s, reports))


def check_with_fixes(n: int) -> dict[str, Any]:
    """What `wmilab check --json` does on an n-host fleet file (bench/fleet.py), timed."""
    text = fleet_text(n)
    gc.collect()
    gc.disable()  # as `wmilab check` loads (cli._load)
    raw, parse_w, parse_c = timed(lambda: parse_toml(text))
    _, build_w, build_c = timed(partial(build, raw))
    raw = {}
    gc.enable()
    gc.collect()
    gc.disable()
    s, load_w, load_c = timed(lambda: loads(text, f"fleet-{n}.toml"))
    gc.enable()
    gc.freeze()  # as `wmilab check` does once the scenario is loaded,
    gc.disable()  # and while it evaluates
    out, check_w, check_c = timed(partial(_check_json, s))
    cyclic = gc.collect()  # garbage only the cyclic collector would have found: none
    gc.enable()
    gc.unfreeze()
    doc = json.loads(out)
    calls = doc["calls"]
    return {
        "hosts": n, "mb": len(text) / 1e6, "calls": len(calls),
        "failing": sum(1 for c in calls if c["result"] != "ok"),
        "proven": sum(1 for c in calls if c["fix_proven"]), "cyclic": cyclic,
        "parse": (parse_w, parse_c), "build": (build_w, build_c), "load": (load_w, load_c),
        "check": (check_w, check_c),
        "total": (load_w + check_w, load_c + check_c),
    }


def _pair(t: tuple[float, float]) -> str:
    return f"{t[0]:.2f} s wall / {t[1]:.2f} s CPU"

RA = "netsh firewall set service RemoteAdmin enable"
A_CONN2 = [
    "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135",
    "netsh firewall add allowedprogram program=%windir%\\system32\\wbem\\unsecapp.exe "
    "name=UNSECAPP",
]


def fleet(n: int, with_calls: bool = False, modern: bool = False) -> dict[str, Any]:
    """n hosts in two trusting domains, mixed OS and firewall configuration."""
    hosts: dict[str, Any] = {}
    base = int(IPv4Address("10.0.0.0"))
    for i in range(n):
        netsh: list[str] = []
        if i % 4 != 3:
            netsh.append(RA)
        if i % 2 == 0:
            netsh.extend(A_CONN2)
        hosts[f"H{i:05d}"] = {
            # --modern: every OS of the catalogue in turn (Vista and later: WFAS, hardening).
            "os": oses.NAMES[i % len(oses.NAMES)] if modern else (
                "xp-sp2" if i % 3 else "2003-sp1"),
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
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only-fixes", action="store_true",
                    help="only the check-with-fixes comparison")
    ap.add_argument("--only-verdicts", action="store_true",
                    help="only the all-pairs call verdicts")
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} python "
          f"{platform.python_version()}")
    if not args.only_verdicts:
        fixes(args)
    if not args.only_fixes:
        verdicts(args)


def fixes(args: argparse.Namespace) -> None:

    # `check` with fixes, small and big fleet, alternating in the same run; the best of
    # --repeat runs of each (the run least disturbed by other work on the machine).
    runs: dict[int, list[dict[str, Any]]] = {args.small: [], args.big: []}
    for _ in range(args.repeat):
        for n in (args.small, args.big):
            runs[n].append(check_with_fixes(n))
    best = {n: min(rs, key=lambda r: r["total"][1]) for n, rs in runs.items()}
    for n, rs in runs.items():
        r = best[n]
        print(f"check --json with fixes, {n} hosts ({r['mb']:.1f} MB, {r['calls']} calls, "
              f"{r['failing']} failing, {r['proven']} fixes proven, {r['cyclic']} objects of "
              f"cyclic garbage), best of {len(rs)}: "
              f"load {_pair(r['load'])} (parse {_pair(r['parse'])}, build {_pair(r['build'])}); "
              f"evaluate and fix {_pair(r['check'])}; total {_pair(r['total'])}")
        print("  every run, load + check CPU: "
              + ", ".join(f"{x['total'][1]:.2f} s" for x in rs))
    small, big = best[args.small], best[args.big]
    for i, what in ((0, "wall"), (1, "CPU")):
        print(f"T({args.big})/T({args.small}), {what}: load + check "
              f"{big['total'][i] / small['total'][i]:.1f}, check alone "
              f"{big['check'][i] / small['check'][i]:.1f}")


def verdicts(args: argparse.Namespace) -> None:
    (_, world, _), build_w, build_c = timed(partial(build, fleet(args.hosts, modern=args.modern)))
    calls = all_pairs(list(world.configs))
    outcomes: dict[str, int] = {}

    def run() -> None:
        for c in calls:
            r = flow.evaluate(world, c).result
            outcomes[r] = outcomes.get(r, 0) + 1

    _, ver_w, ver_c = timed(run)
    n = len(calls)
    print(f"fleet: {args.hosts} hosts built in {_pair((build_w, build_c))}; {n} all-pairs calls")
    print(f"check verdicts: {n / ver_w:,.0f} calls/s wall, {n / ver_c:,.0f} calls/s CPU, one "
          f"core ({ver_c * 1e6 / n:.1f} µs CPU per call; outcomes {outcomes})")
    if args.only_verdicts:
        return

    # The older fleet file (every host one call to the next, no failure mix), as tomlkit
    # writes it.
    text = tomlkit.dumps(fleet(args.big, with_calls=True, modern=args.modern))
    gc.collect()
    s, load_w, load_c = timed(lambda: loads(text, "big.toml"))
    results, ev_w, ev_c = timed(lambda: [flow.evaluate(s.world, c).result for c in s.calls])
    s = None  # type: ignore[assignment]
    gc.collect()
    tracemalloc.start()
    s = loads(text, "big.toml")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{args.big}-host scenario ({len(text) / 1e6:.1f} MB of TOML, {len(s.calls)} calls): "
          f"load {_pair((load_w, load_c))}, evaluate {_pair((ev_w, ev_c))}; "
          f"peak traced memory while loading {peak / 1e6:.0f} MB; {results.count('ok')} ok")


if __name__ == "__main__":
    main()
