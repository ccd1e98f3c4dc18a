"""Benchmark wmilab's own client and doctor against emulated hosts on loopback.

1. Query latency and client CPU per query, wmilab vs aiowmi vs impacket, on the same emulated
   host (bench_wire.py's child-process emulator), in one run so the ratios are comparable:
   a whole session (connect, activation, NTLMLogin, query, all rows) and one query on an
   established session.
2. Doctor throughput on a fleet of emulated hosts (1,000 by default) served by a child
   process; the fleet runs on one asyncio loop with --concurrency 64.

Prints figures; asserts nothing. impacket's figures need port 135 (root). Usage:
    .venv/bin/python bench/bench_client.py [--runs 30] [--fleet 1000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_wire as bw

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------
# wmilab's client


def options(address: str, port: int) -> Any:
    from wmilab.client.session import ConnectOptions

    return ConnectOptions(address, f"{bw.DOMAIN}\\{bw.USER}", bw.PASSWORD, rpcss_port=port,
                          timeout=10)


async def wmilab_session(address: str, port: int) -> int:
    from wmilab.client.session import connect

    async with await connect(options(address, port)) as s:
        return len(await s.query(bw.QUERY))


async def interleaved(emu: bw.Emulator, runs: int, clients: dict[str, Any]
                      ) -> dict[str, bw.Timed]:
    """Each client once per round, in turn, so load on the machine hits all alike."""
    for once in clients.values():  # warm up imports and caches
        for _ in range(2):
            await once()
    walls: dict[str, list[float]] = {name: [] for name in clients}
    cpu = dict.fromkeys(clients, 0.0)
    emu_cpu = dict.fromkeys(clients, 0.0)
    for _ in range(runs):
        for name, once in clients.items():
            c0, e0, t0 = time.process_time(), emu.cpu(), time.perf_counter()
            rows = await once()
            walls[name].append(time.perf_counter() - t0)
            cpu[name] += time.process_time() - c0
            emu_cpu[name] += emu.cpu() - e0
            assert rows > 0
    return {name: bw.Timed(walls[name], cpu[name], emu_cpu[name]) for name in clients}


async def query_figures(emu: bw.Emulator, runs: int) -> dict[str, bw.Timed]:
    from wmilab.client.session import connect

    out = await interleaved(emu, runs, {
        "wmilab session": lambda: wmilab_session(emu.address, emu.rpcss),
        "aiowmi session": lambda: bw.aiowmi_session(emu.address, emu.rpcss)})
    session = await connect(options(emu.address, emu.rpcss))
    conn, service = await bw.aiowmi_login(emu.address, emu.rpcss)

    async def ours() -> int:
        return len(await session.query(bw.QUERY))
    out.update(await interleaved(emu, runs * 3, {
        "wmilab query": ours, "aiowmi query": lambda: bw.aiowmi_query(conn, service)}))
    await session.close()
    conn.close()
    return out


# ------------------------------------------------------------------------------------------
# A fleet of emulated hosts, in a child process


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (proc(5))."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / bw.CLK_TCK


def fleet_doc(n: int) -> dict[str, Any]:
    hosts: dict[str, Any] = {"A": {"os": "xp-sp2", "domain": "CORP",
                                   "address": "10.200.0.1/16"}}
    for i in range(n):
        h: dict[str, Any] = {"os": "xp-sp2", "domain": "CORP",
                             "address": f"10.200.{1 + i // 250}.{1 + i % 250}/16"}
        if i % 4:  # a quarter keep XP SP2's closed firewall: the doctor stops at c1.rpcss-port
            h["netsh"] = ["netsh firewall set service RemoteAdmin enable"]
        hosts[f"B{i}"] = h
    return {"domains": {"CORP": {"dns": "corp.example", "accounts": {"admin": bw.PASSWORD},
                                 "groups": {"Domain Admins": ["admin"]}}},
            "hosts": hosts, "calls": []}


def serve_fleet(n: int) -> None:
    import tomlkit

    from wmilab.lab.loopback import LoopbackLab
    from wmilab.scenario import loads

    logging.basicConfig(level=logging.WARNING)
    s = loads(tomlkit.dumps(fleet_doc(n)), "<fleet>")

    async def main() -> None:
        names = [h for h in s.world.configs if h != "A"]
        lab = LoopbackLab(s.world, client_host="A", hosts=names, ports={135: 0, 1025: 0})
        await lab.start()
        # A Windows host's repository is there before anyone asks; the emulated hosts build
        # theirs on first use (docs/host.md), which is set-up, not diagnosis: build them now.
        for srv in lab.servers.values():
            if srv.runtime is not None:
                _ = srv.runtime.repository
        ports = {srv.address: srv.ports["rpcss"] for srv in lab.servers.values()}
        print("READY " + json.dumps({"a": str(lab.map.loopback("A")), "ports": ports}),
              flush=True)
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        loop.add_reader(sys.stdin.fileno(), done.set)
        await done.wait()
        await lab.stop()

    asyncio.run(main())


async def doctor_fleet(a: str, ports: dict[str, int], concurrency: int
                       ) -> tuple[float, float, dict[str, int]]:
    from wmilab.client.session import ConnectOptions
    from wmilab.realhost.doctor import DoctorRequest, ListenerPool, diagnose
    from wmilab.realhost.fleet import summarize

    sem = asyncio.Semaphore(concurrency)
    pool = ListenerPool(0)

    async def one(addr: str, port: int) -> Any:
        async with sem:
            o = ConnectOptions(addr, f"{bw.DOMAIN}\\{bw.USER}", bw.PASSWORD, rpcss_port=port,
                               local_address=a, timeout=10)
            return await diagnose(DoctorRequest(addr, o), pool)

    cpu0, t0 = time.process_time(), time.perf_counter()
    reports = await asyncio.gather(*(one(addr, p) for addr, p in ports.items()))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await pool.close()
    return wall, cpu, dict(summarize(reports))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--fleet", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--serve-fleet", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_fleet:
        serve_fleet(args.serve_fleet)
        return
    print(f"machine: {bw.machine()}")
    emu = bw.Emulator.start(bw.SCENARIO, "B", 4096, 100_000, False)
    try:
        with bw.quiet():
            figures = asyncio.run(query_figures(emu, args.runs))
            if emu.rpcss == 135:
                figures["impacket session"] = bw.timed(
                    emu, args.runs, lambda: bw.impacket_session(emu.address))
    finally:
        emu.stop()
    print(f"\nquery {bw.QUERY!r}, {args.runs} runs (x3 on an established session)")
    print("| client | median | p95 | client CPU per query | emulator CPU per query |")
    print("|---|---|---|---|---|")
    for name, t in figures.items():
        n = len(t.wall)
        print(f"| {name} | {bw.ms(t.median)} | {bw.ms(t.p95)} | {bw.ms(t.client_cpu / n)} | "
              f"{bw.ms(t.emulator_cpu / n)} |")
    for kind in ("session", "query"):
        ours, theirs = figures[f"wmilab {kind}"], figures[f"aiowmi {kind}"]
        print(f"wmilab / aiowmi ({kind}): latency {ours.median / theirs.median:.2f}, "
              f"client CPU {ours.client_cpu / theirs.client_cpu:.2f}")
    if "impacket session" in figures:
        ours, theirs = figures["wmilab session"], figures["impacket session"]
        print(f"wmilab / impacket (session): latency {ours.median / theirs.median:.2f}, "
              f"client CPU {ours.client_cpu / theirs.client_cpu:.2f}")

    proc = subprocess.Popen([sys.executable, __file__, "--serve-fleet", str(args.fleet)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit("the fleet did not start")
        info = json.loads(line[6:])
        fleet_cpu0 = process_cpu(proc.pid)
        with bw.quiet():
            wall, cpu, counts = asyncio.run(doctor_fleet(info["a"], info["ports"],
                                                         args.concurrency))
        fleet_cpu = process_cpu(proc.pid) - fleet_cpu0
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(60)
    n = len(info["ports"])
    print(f"\ndoctor on {n} emulated hosts, concurrency {args.concurrency}: {wall:.2f} s, "
          f"{n / wall:.0f} hosts/s, doctor CPU {cpu * 1000 / n:.2f} ms per host, emulated "
          f"fleet CPU {fleet_cpu * 1000 / n:.2f} ms per host; verdicts {counts}")
    # What the CPU figures allow when each process has a core of its own (the load of the
    # moment aside): the busier side sets the pace.
    print(f"CPU-bound ceiling, one free core per process: "
          f"{n / max(cpu, fleet_cpu, 1e-9):.0f} hosts/s")


if __name__ == "__main__":
    main()
