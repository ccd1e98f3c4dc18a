"""Benchmark a big loopback lab: start time and memory of 1,000 and 10,000 emulated hosts,
and aiowmi queries answered on random hosts.

Each configuration is started as a user starts it, ``wmilab lab up FLEET --workers W``
(interpreter start, loading the scenario, binding every listener; it returns once every
host listens), then measured: wall-clock time of ``up``, the resident memory of every
process of the lab summed (from /proc), then whole aiowmi sessions (connect to 135,
activation, NTLM logon, ``SELECT * FROM Win32_OperatingSystem``) on hosts drawn at random,
then the memory again, and ``down``. The fleet is ``bench/fleet.py``'s; the hosts drawn are
those whose incoming call works (the client on 127.0.0.1 counts as that call's caller).

Prints figures; asserts nothing. Needs port 135 on loopback (root, or
net.ipv4.ip_unprivileged_port_start <= 135). Usage:
    .venv/bin/python bench/bench_lab.py [--hosts 1000 10000] [--queries 100]
        [--config 1000:1:auto --config 10000:1:auto --config 10000:2:per-host]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet

QUERY = "SELECT * FROM Win32_OperatingSystem"
NETWORK = "127.96.0.0/16"  # fleet addresses 10.0.x.y become 127.96.x.y
USER, PASSWORD, DOMAIN = "admin", "A!", "CORP"  # bench/fleet.py's domain administrator


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def lab_processes(state_dir: Path) -> list[dict[str, Any]]:
    """What each loopback lab process wrote in its ready file (pid, hosts, sockets)."""
    out = []
    for ready in sorted(state_dir.glob("*/loopback*.ready")):
        out.append(json.loads(ready.read_text()))
    return out


async def session(address: str) -> tuple[float, int]:
    from aiowmi.connection import Connection
    from aiowmi.query import Query

    started = time.perf_counter()
    conn = Connection(address, USER, PASSWORD, domain=DOMAIN, port=135)
    await conn.connect(timeout=10)
    try:
        service = await conn.negotiate_ntlm()
        await conn.login_ntlm(service, "root/cimv2")
        rows = 0
        async with Query(QUERY).context(conn, service) as qc:
            async for props in qc.results():
                rows += 1 if props else 0
    finally:
        conn.close()
    return time.perf_counter() - started, rows


async def query_random(addresses: list[str], count: int, concurrency: int
                       ) -> tuple[int, int, list[float]]:
    sem = asyncio.Semaphore(concurrency)
    times: list[float] = []
    failed = 0

    async def one(address: str) -> None:
        nonlocal failed
        async with sem:
            try:
                took, rows = await session(address)
            except Exception as e:  # counted and shown: a benchmark, not a test
                failed += 1
                print(f"  {address}: {e!r}")
                return
            if rows != 1:
                failed += 1
                return
            times.append(took)

    await asyncio.gather(*(one(a) for a in addresses[:count]))
    return len(times), failed, times


def run(hosts: int, workers: int, listeners: str, queries: int, concurrency: int,
        seed: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="wmilab-bench-lab-"))
    path = tmp / f"fleet-{hosts}.toml"
    path.write_text(fleet.fleet_text(hosts))
    state_dir = tmp / "state"
    env = {**os.environ, "WMILAB_STATE_DIR": str(state_dir)}
    wmilab = [sys.executable, "-m", "wmilab"]
    started = time.perf_counter()
    up = subprocess.run([*wmilab, "lab", "up", str(path), "--loopback-net", NETWORK,
                         "--workers", str(workers), "--listeners", listeners],
                        env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if up.returncode != 0:
        raise SystemExit(f"lab up failed ({up.returncode}): {up.stderr or up.stdout}")
    try:
        procs = lab_processes(state_dir)
        pids = [p["pid"] for p in procs]
        rss_idle = sum(rss_kib(pid) for pid in pids)
        served = [h for p in procs for h in p["hosts"]]
        sockets = sum(p["listening_sockets"] for p in procs)
        state = json.loads(next(state_dir.glob("*/state.json")).read_text())
        names = sorted(state["hosts"])
        working = [state["hosts"][name]["address"] for j, name in enumerate(names)
                   if fleet.kind((j - 1) % hosts).startswith("ok")]
        rng = random.Random(seed)
        drawn = rng.sample(working, min(queries, len(working)))
        q_started = time.perf_counter()
        answered, failed, times = asyncio.run(query_random(drawn, queries, concurrency))
        q_took = time.perf_counter() - q_started
        rss_after = sum(rss_kib(pid) for pid in pids)
    finally:
        subprocess.run([*wmilab, "lab", "down", str(path)], env=env, capture_output=True)
    return {
        "hosts": hosts, "workers": workers, "listeners": listeners, "start_s": took,
        "served": len(served), "served_once": len(set(served)) == len(served) == hosts,
        "listening_sockets": sockets, "rss_idle_mib": rss_idle / 1024,
        "rss_after_mib": rss_after / 1024, "queries": len(drawn), "answered": answered,
        "failed": failed, "query_s": q_took,
        "median_ms": statistics.median(times) * 1000 if times else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--config", action="append", default=[],
                    help="HOSTS:WORKERS:LISTENERS, e.g. 10000:1:auto (repeatable)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    configs = args.config or ["1000:1:auto", "10000:1:auto", "10000:2:per-host"]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    for spec in configs:
        hosts, workers, listeners = spec.split(":")
        r = run(int(hosts), int(workers), listeners, args.queries, args.concurrency,
                args.seed)
        print(f"{r['hosts']:>6} hosts, {r['workers']} process(es), listeners {r['listeners']}: "
              f"up in {r['start_s']:.1f} s; {r['listening_sockets']} listening sockets; "
              f"RSS {r['rss_idle_mib']:.0f} MiB idle, {r['rss_after_mib']:.0f} MiB after "
              f"the queries; every host served by exactly one process: {r['served_once']}; "
              f"{r['answered']}/{r['queries']} aiowmi sessions on random hosts answered "
              f"({r['failed']} failed) in {r['query_s']:.1f} s, median {r['median_ms']:.0f} ms",
              flush=True)


if __name__ == "__main__":
    main()
