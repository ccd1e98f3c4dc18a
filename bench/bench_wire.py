"""Benchmark an emulated host on loopback with real clients: impacket, aiowmi, wmiquery.py.

Prints figures; asserts nothing (machines are noisy). The emulator runs in a child process
(this script with ``--serve``) so its CPU time and memory can be read from /proc; the clients
run in this process. Usage:
    .venv/bin/python bench/bench_wire.py [--runs 30] [--clients 50] [--duration 20]
                                         [--idle 1000] [--scenario FILE] [--host B]
                                         [--loop uvloop|asyncio] [--compare-loops N]
                                         [--baseline CHECKOUT] [--instructions N]

The client's own cap is the rate one aiowmi process reaches when its CPU is the only limit:
1 / (its CPU time per query), measured in the same run as the throughput. Throughput at
80 % of that cap means the client process was busy 80 % of the time: the emulator kept up.

impacket's DCOMConnection always dials port 135, so the impacket figures need root (or
net.ipv4.ip_unprivileged_port_start <= 135); without it they are skipped.

``--instructions N`` counts instead of timing: the emulator runs under valgrind's callgrind,
instrumentation off until a few aiowmi clients have logged in and made ``--warm-up``
queries, then on for exactly N queries. The count of the emulator's user-space instructions
per query does not move with the load of the machine (the kernel's share, a tenth of the
emulator's CPU here, is not in it); with ``--baseline`` the other checkout is counted too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "src" / "wmilab" / "examples" / "02-remote-admin.toml"
QUERY = "SELECT * FROM Win32_OperatingSystem"
USER, PASSWORD, DOMAIN = "admin", "Adm1n!", "CORP"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


# ------------------------------------------------------------------------------------------
# The emulator, in a child process


def serve(scenario: Path, host: str, free_ports: bool, max_connections: int,
          max_objects: int, verbose: bool) -> None:
    """Child: serve ``host`` until stdin closes; print the bound ports first."""
    from wmilab.host.gate import default_client
    from wmilab.host.server import HostServer, Limits
    from wmilab.scenario import load

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        stream=sys.stderr, format="%(message)s")
    s = load(scenario)
    client = default_client(s.world, host, [(c.source, c.target) for c in s.calls])

    async def main() -> None:
        ports = {135: 0} if free_ports else None
        server = HostServer(s.world, host, client_host=client, ports=ports,
                            limits=Limits(max_connections=max_connections,
                                          max_objects=max_objects))
        await server.start()
        trim()  # start from a tight RSS: the scenario load leaves freed heap behind
        print(f"READY {server.address} {server.ports['rpcss']} {server.ports['wmi']}",
              flush=True)
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        with contextlib.suppress(OSError, ValueError):  # stdin may be a file, not a pipe
            loop.add_reader(sys.stdin.fileno(), done.set)  # the parent closed our stdin
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, done.set)
        await done.wait()
        await server.stop()

    from wmilab.host import eventloop

    eventloop.run(main())  # uvloop's loop unless WMILAB_EVENT_LOOP=asyncio


def trim() -> None:
    """Collect garbage and give freed heap back to the OS (glibc malloc_trim)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class Emulator:
    proc: subprocess.Popen[str]
    address: str
    rpcss: int
    wmi: int

    @classmethod
    def start(cls, scenario: Path, host: str, max_connections: int, max_objects: int,
              verbose: bool, loop: str = DEFAULT_LOOP, free_ports: bool = False,
              checkout: Path | None = None, prefix: tuple[str, ...] = ()) -> Emulator:
        """``checkout``: serve another checkout's code (its bench_wire.py and src/);
        ``prefix``: a command to run it under (valgrind)."""
        script = str(checkout / "bench" / "bench_wire.py") if checkout else __file__
        base = [*prefix, sys.executable, script, "--serve", "--scenario", str(scenario), "--host",
                host, "--max-connections", str(max_connections),
                "--max-objects", str(max_objects)] + (
                    ["--verbose"] if verbose else [])
        env = dict(os.environ, WMILAB_EVENT_LOOP=loop)
        if checkout is not None:
            env["PYTHONPATH"] = str(checkout / "src")
        for extra in ([["--free-ports"]] if free_ports else [[], ["--free-ports"]]):
            proc = subprocess.Popen(base + extra, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True, env=env)
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            if line and line[0] == "READY":
                return cls(proc, line[1], int(line[2]), int(line[3]))
            proc.wait(10)
        raise SystemExit("the emulator did not start (see its error above)")

    def cpu(self) -> float:
        """User + system CPU seconds of the emulator process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (proc(5))

    def rss(self) -> int:
        """Resident set size of the emulator process, in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# ------------------------------------------------------------------------------------------
# Clients


def impacket_session(address: str) -> int:
    """connect + activation + NTLMLogin + ExecQuery + Next until the end, as wmiquery.py."""
    from impacket.dcerpc.v5.dcom import wmi
    from impacket.dcerpc.v5.dcomrt import DCOMConnection
    from impacket.dcerpc.v5.dtypes import NULL

    dcom = DCOMConnection(address, USER, PASSWORD, DOMAIN, "", "", None, oxidResolver=True)
    rows = 0
    try:
        iface = dcom.CoCreateInstanceEx(wmi.CLSID_WbemLevel1Login, wmi.IID_IWbemLevel1Login)
        login = wmi.IWbemLevel1Login(iface)
        services = login.NTLMLogin("//./root/cimv2", NULL, NULL)
        login.RemRelease()
        enum = services.ExecQuery(QUERY)
        while True:
            try:
                enum.Next(0xFFFFFFFF, 1)[0].getProperties()
                rows += 1
            except Exception as e:
                if "S_FALSE" not in str(e):
                    raise
                break
        enum.RemRelease()
        services.RemRelease()
    finally:
        dcom.disconnect()
    return rows


async def aiowmi_login(address: str, port: int) -> tuple[Any, Any]:
    from aiowmi.connection import Connection

    conn = Connection(address, USER, PASSWORD, domain=DOMAIN, port=port)
    await conn.connect(timeout=10)
    service = await conn.negotiate_ntlm()
    await conn.login_ntlm(service, "root/cimv2")
    return conn, service


async def aiowmi_query(conn: Any, service: Any) -> int:
    from aiowmi.query import Query

    rows = 0
    async with Query(QUERY).context(conn, service) as qc:
        async for props in qc.results():
            rows += 1 if props else 0
    return rows


async def aiowmi_session(address: str, port: int) -> int:
    conn, service = await aiowmi_login(address, port)
    try:
        return await aiowmi_query(conn, service)
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------
# Measurements


@dataclass
class Timed:
    wall: list[float]
    client_cpu: float
    emulator_cpu: float

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def p95(self) -> float:
        ordered = sorted(self.wall)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def cpu_ratio(self) -> float:
        return self.emulator_cpu / self.client_cpu if self.client_cpu else float("nan")


def timed(emu: Emulator, runs: int, once: Callable[[], int]) -> Timed:
    for _ in range(2):  # warm up imports and caches
        once()
    walls: list[float] = []
    cpu0, emu0 = time.process_time(), emu.cpu()
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = once()
        walls.append(time.perf_counter() - t0)
        assert rows > 0, "the query returned no rows"
    return Timed(walls, time.process_time() - cpu0, emu.cpu() - emu0)


def wmiquery_once(address: str) -> float:
    script = Path(sys.executable).parent / "wmiquery.py"
    qfile = Path(f"/tmp/bench-wql-{os.getpid()}.txt")
    qfile.write_text(QUERY + "\n", encoding="utf-8")
    try:
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, str(script), "-file", str(qfile),
                              f"{DOMAIN}/{USER}:{PASSWORD}@{address}"],
                             capture_output=True, text=True, timeout=120, check=False)
        wall = time.perf_counter() - t0
    finally:
        qfile.unlink(missing_ok=True)
    if "| Microsoft Windows" not in res.stdout:
        raise RuntimeError(f"wmiquery.py failed: {res.stdout}{res.stderr}")
    return wall


@dataclass
class Throughput:
    queries: int
    seconds: float
    client_cpu: float
    emulator_cpu: float
    failures: int
    latencies: list[float]
    first_error: str

    @property
    def rate(self) -> float:
        return self.queries / self.seconds

    @property
    def cap(self) -> float:
        """The client's own cap: queries/s at one query per client CPU time per query."""
        return self.queries / self.client_cpu if self.client_cpu else float("nan")

    @property
    def cpu_ratio(self) -> float:
        return self.emulator_cpu / self.client_cpu if self.client_cpu else float("nan")


async def throughput(emu: Emulator, clients: int, duration: float) -> Throughput:
    sessions = await asyncio.gather(*(aiowmi_login(emu.address, emu.rpcss)
                                      for _ in range(clients)))
    latencies: list[float] = []
    failures = 0
    first_error = ""
    stop_at = 0.0

    async def worker(conn: Any, service: Any) -> None:
        nonlocal failures, first_error
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                await aiowmi_query(conn, service)
            except Exception as e:
                failures += 1
                first_error = first_error or f"{type(e).__name__}: {e}"
                return
            latencies.append(time.perf_counter() - t0)

    cpu0, emu0, t0 = time.process_time(), emu.cpu(), time.perf_counter()
    stop_at = t0 + duration
    await asyncio.gather(*(worker(c, s) for c, s in sessions))
    elapsed = time.perf_counter() - t0
    result = Throughput(len(latencies), elapsed, time.process_time() - cpu0,
                        emu.cpu() - emu0, failures, latencies, first_error)
    for conn, _ in sessions:
        conn.close()
    return result


def _bind_and_authenticate(address: str, port: int) -> socket.socket:
    """A connection that binds IWbemLevel1Login with NTLM (PKT_PRIVACY) and then idles."""
    from wmilab.wire import ids, rpc
    from wmilab.wire.rpc_conn import BindAcked, ClientConnection, ClientCredentials

    sock = socket.create_connection((address, port), timeout=10)
    conn = ClientConnection(credentials=ClientCredentials(USER, PASSWORD, DOMAIN),
                            auth_level=rpc.AuthLevel.PKT_PRIVACY)
    conn.bind(rpc.SyntaxId(ids.IID_IWBEMLEVEL1LOGIN, 0, 0))
    sock.sendall(conn.data_to_send())
    while True:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("the emulator closed a binding connection")
        if any(isinstance(e, BindAcked) for e in conn.receive_data(data)):
            break
    sock.sendall(conn.data_to_send())  # AUTH3 (no reply)
    return sock


def settle(emu: Emulator) -> int:
    time.sleep(1.0)
    return emu.rss()


def idle_memory(emu: Emulator, n: int) -> tuple[int, int, int, int]:
    """RSS growth for n silent connections and for n bound + authenticated idle ones."""
    base = settle(emu)
    silent = [socket.create_connection((emu.address, emu.wmi), timeout=10) for _ in range(n)]
    with_silent = settle(emu)
    for s in silent:
        s.close()
    after_silent = settle(emu)
    bound = [_bind_and_authenticate(emu.address, emu.wmi) for _ in range(n)]
    with_bound = settle(emu)
    for s in bound:
        s.close()
    return base, with_silent - base, with_bound - after_silent, settle(emu)


# ------------------------------------------------------------------------------------------
# Report


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{model}, {os.cpu_count()} cores, {platform.machine()}, "
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """impacket logs through the root logger; keep the report readable."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.setLevel(old)


def report_load(t: Throughput) -> None:
    lat = sorted(t.latencies) or [0.0]
    print(f"   {t.rate:.1f} queries/s ({t.queries} in {t.seconds:.1f} s, "
          f"{t.failures} failed); per query median {ms(statistics.median(lat))}, "
          f"p95 {ms(lat[round(0.95 * (len(lat) - 1))])}")
    if t.failures:
        print(f"   first failure: {t.first_error} (after {t.queries} queries)")
    per_q = max(t.queries, 1)
    print(f"   CPU per query: client {ms(t.client_cpu / per_q)}, emulator "
          f"{ms(t.emulator_cpu / per_q)}; emulator/client = {t.cpu_ratio:.2f} (target <= 0.5)")
    print(f"   client's own cap (1 / client CPU per query): {t.cap:.0f} queries/s; "
          f"throughput = {t.rate / t.cap:.0%} of it (target >= 80 %)")


def count_instructions(args: argparse.Namespace, checkout: Path | None) -> float:
    """Instructions of the emulator per aiowmi query (callgrind), after a warm-up."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("--instructions needs valgrind (Debian package valgrind)")
    out = Path(f"/tmp/bench-wire-callgrind-{os.getpid()}.out")
    prefix = ("valgrind", "--tool=callgrind", "--instr-atstart=no", "--log-file=/dev/null",
              f"--callgrind-out-file={out}")
    emu = Emulator.start(args.scenario, args.host, 512, args.max_objects, False,
                         loop=args.loop, free_ports=True, checkout=checkout, prefix=prefix)
    clients = 5
    queries = args.instructions // clients * clients

    async def run(sessions: list[tuple[Any, Any]], n: int) -> None:
        async def one(conn: Any, service: Any) -> None:
            for _ in range(n // len(sessions)):
                if await aiowmi_query(conn, service) <= 0:
                    raise RuntimeError("the query returned no rows")
        await asyncio.gather(*(one(c, s) for c, s in sessions))

    async def main() -> None:
        sessions = [await aiowmi_login(emu.address, emu.rpcss) for _ in range(clients)]
        await run(sessions, args.warm_up)
        subprocess.run(["callgrind_control", "-i", "on", str(emu.proc.pid)], check=True,
                       capture_output=True)
        await run(sessions, queries)
        subprocess.run(["callgrind_control", "-i", "off", str(emu.proc.pid)], check=True,
                       capture_output=True)
        for conn, _ in sessions:
            conn.close()

    try:
        asyncio.run(main())
    finally:
        assert emu.proc.stdin is not None
        emu.proc.stdin.close()
        emu.proc.wait(300)
    total = 0
    for path in Path(out.parent).glob(out.name + "*"):
        for line in path.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
        path.unlink()
    return total / queries


def compare_loops(args: argparse.Namespace, rounds: int) -> None:
    """Alternate emulators on uvloop and asyncio (and ``--baseline``'s code, on its own
    loop) under the same load, ``rounds`` times."""
    print(f"\nEvent loops: {rounds} alternating rounds of {args.duration:.0f} s, "
          f"{args.clients} aiowmi clients")
    per: dict[str, list[Throughput]] = {"asyncio": []}
    if DEFAULT_LOOP == "uvloop":
        per["uvloop"] = []
    if args.baseline is not None:
        per = {"baseline": [], **per}
    loop = asyncio.new_event_loop()
    for _ in range(rounds):
        for kind in per:
            emu = Emulator.start(args.scenario, args.host, max(256, 2 * args.clients + 64),
                                 args.max_objects, False,
                                 loop=DEFAULT_LOOP if kind == "baseline" else kind,
                                 free_ports=True,
                                 checkout=args.baseline if kind == "baseline" else None)
            try:
                loop.run_until_complete(throughput(emu, args.clients, 2.0))  # warm up
                t = loop.run_until_complete(throughput(emu, args.clients, args.duration))
            finally:
                emu.stop()
            per[kind].append(t)
            print(f"   {kind:<8} {t.rate:7.1f} q/s, {t.failures} failed, client "
                  f"{ms(t.client_cpu / max(t.queries, 1))}, emulator "
                  f"{ms(t.emulator_cpu / max(t.queries, 1))} per query: ratio {t.cpu_ratio:.2f}")
    loop.close()
    print("   all rounds together:")
    for kind, runs in per.items():
        queries = sum(t.queries for t in runs)
        client, emulator = sum(t.client_cpu for t in runs), sum(t.emulator_cpu for t in runs)
        rate = queries / sum(t.seconds for t in runs)
        cap = queries / client if client else float("nan")
        print(f"   {kind:<8} {rate:7.1f} q/s, {sum(t.failures for t in runs)} failed; CPU per "
              f"query client {ms(client / max(queries, 1))}, emulator "
              f"{ms(emulator / max(queries, 1))}; emulator/client {emulator / client:.2f}; "
              f"throughput {rate / cap:.0%} of the client's own cap ({cap:.0f} q/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", type=Path, default=SCENARIO)
    ap.add_argument("--host", default="B")
    ap.add_argument("--runs", type=int, default=30, help="sessions per client (latency)")
    ap.add_argument("--clients", type=int, default=50, help="concurrent aiowmi clients")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of sustained load")
    ap.add_argument("--idle", type=int, default=1000, help="idle connections (memory)")
    ap.add_argument("--verbose", action="store_true",
                    help="the emulator logs each call at INFO (as `wmilab host` does)")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default=DEFAULT_LOOP,
                    help="the emulator's event loop (WMILAB_EVENT_LOOP)")
    ap.add_argument("--compare-loops", type=int, default=0, metavar="N",
                    help="only compare the two event loops under load, N alternating rounds")
    ap.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                    help="with --compare-loops: also serve another checkout's code (e.g. a "
                    "`git worktree` of an older commit) in the same rounds")
    ap.add_argument("--instructions", type=int, default=0, metavar="N",
                    help="only count the emulator's instructions per query over N queries "
                    "(valgrind callgrind; with --baseline, that checkout's too)")
    ap.add_argument("--warm-up", type=int, default=1000,
                    help="with --instructions: queries before counting starts")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--free-ports", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--max-connections", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--max-objects", type=int, default=1_000_000,
                    help="the emulator's Limits.max_objects (default 65,536 in wmilab, a "
                    "last resort: DCOM garbage collection frees the two objects per query "
                    "aiowmi never releases, three ping periods after their last call)")
    args = ap.parse_args()
    if args.serve:
        serve(args.scenario, args.host, args.free_ports, args.max_connections,
              args.max_objects, args.verbose)
        return

    print(f"machine: {machine()}")
    print(f"scenario: {args.scenario.name} host {args.host}; query: {QUERY}")
    if args.compare_loops:
        compare_loops(args, args.compare_loops)
        return
    if args.instructions:
        print(f"\nEmulator instructions per query (callgrind, user space; {args.loop} loop; "
              f"5 aiowmi clients, {args.warm_up} queries of warm-up, then "
              f"{args.instructions // 5 * 5} counted)")
        counts = {}
        for name, checkout in (("baseline", args.baseline), ("this checkout", None)):
            if name == "baseline" and checkout is None:
                continue
            counts[name] = count_instructions(args, checkout)
            print(f"   {name:<14} {counts[name] / 1e6:.3f} M instructions per query")
        if len(counts) == 2:
            print(f"   this / baseline: {counts['this checkout'] / counts['baseline']:.2f}")
        return
    # The idle test needs the cap above 2 x --idle; the default cap is Limits.max_connections.
    cap = max(256, args.idle + 2 * args.clients + 64)
    emu = Emulator.start(args.scenario, args.host, cap, args.max_objects, args.verbose,
                         loop=args.loop)
    try:
        rss0 = emu.rss()
        print(f"emulator: pid {emu.proc.pid} on {emu.address} (RPCSS {emu.rpcss}, "
              f"WMI {emu.wmi}), RSS at start {rss0 / 2**20:.1f} MiB, "
              f"Limits(max_connections={cap}, max_objects={args.max_objects}), logging "
              f"{'INFO' if args.verbose else 'WARNING'}")

        print(f"\n1. One full session (connect, activation, NTLMLogin, ExecQuery, all rows, "
              f"release), {args.runs} runs each")
        results: dict[str, Timed] = {}
        if emu.rpcss == 135:
            with quiet():
                results["impacket (in-process)"] = timed(
                    emu, args.runs, lambda: impacket_session(emu.address))
        else:
            print("   impacket skipped: it dials port 135, which needs root")
        loop = asyncio.new_event_loop()
        results["aiowmi (in-process)"] = timed(
            emu, args.runs,
            lambda: loop.run_until_complete(aiowmi_session(emu.address, emu.rpcss)))
        print(f"   {'client':<24} {'median':>10} {'p95':>10} {'client CPU':>11} "
              f"{'emulator CPU':>13} {'emu/client':>11}")
        for name, r in results.items():
            print(f"   {name:<24} {ms(r.median):>10} {ms(r.p95):>10} "
                  f"{ms(r.client_cpu / args.runs):>11} {ms(r.emulator_cpu / args.runs):>13} "
                  f"{r.cpu_ratio:>11.2f}")
        imp = results.get("impacket (in-process)")
        aio = results["aiowmi (in-process)"]
        if imp is not None:
            print(f"   latency ratio impacket / aiowmi (median): {imp.median / aio.median:.2f}")
            try:
                print(f"   wmiquery.py subprocess, once (includes interpreter start and "
                      f"imports): {ms(wmiquery_once(emu.address))}")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"   wmiquery.py failed: {e}")

        print(f"\n2. Sustained load: {args.clients} aiowmi clients, one connection each "
              f"(logged in once), querying for {args.duration:.0f} s; emulator loop: {args.loop}")
        t = loop.run_until_complete(throughput(emu, args.clients, args.duration))
        report_load(t)
        loop.close()

        print(f"\n3. Memory per idle connection ({args.idle} connections to the WMI port)")
        base, silent, bound, after = idle_memory(emu, args.idle)
        print(f"   RSS before {base / 2**20:.1f} MiB; connected and silent: "
              f"+{silent / 2**20:.1f} MiB ({silent / args.idle / 1024:.1f} KiB each); "
              f"bound + NTLM-authenticated, idle: +{bound / 2**20:.1f} MiB "
              f"({bound / args.idle / 1024:.1f} KiB each); after closing all "
              f"{after / 2**20:.1f} MiB")
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
