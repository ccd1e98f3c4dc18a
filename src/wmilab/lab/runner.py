"""Start, inspect and stop a lab in the background: ``wmilab lab up | exec | status | down``.

A lab belongs to one scenario file (its state directory is named after the file's resolved
path, lab/state.py). In the netns lab each host runs in its own network namespace
(lab/netns.py) behind its nftables firewall (lab/nft.py); in the loopback lab one process
serves every host on its loopback address behind the in-process gate. Either may write one
capture per host (lab/pcap.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from ipaddress import IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wmilab.host.loopback_map import LoopbackMap
from wmilab.lab import netns, pcap
from wmilab.lab.daemon import ask, progress, ready_file
from wmilab.lab.state import LabState, ProcessRecord, lab_key, marked_processes, state_root

if TYPE_CHECKING:
    from wmilab.lab.verify import CallCheck
    from wmilab.scenario import Scenario

__all__ = ["LabError", "down", "exec_as", "find", "loopback_captures",
           "status", "up", "verify_netns"]


class LabError(RuntimeError):
    """The lab cannot do what was asked; the message says why and what to do."""


def state_dir(path: Path) -> Path:
    return state_root() / lab_key(path)


def find(path: Path) -> LabState | None:
    """The lab of scenario file ``path``, if one is up (or was left by a crash)."""
    return LabState.load(state_dir(path))


def up(path: Path, scenario: Scenario, *, use_netns: bool, pcap_dir: Path | None = None,
       quick: bool = False, network: IPv4Network | None = None,
       timeout: float = 60.0, workers: int = 1, listeners: str = "auto",
       shard: tuple[int, int] | None = None) -> LabState:
    """Start the lab of ``path`` in the background; return once every host listens.
    ``network`` is the loopback lab's loopback network (``--loopback-net``); ``workers``
    processes share its hosts, each host in exactly one (``worker_of``); ``listeners`` is
    how they listen (lab/loopback.py LISTENER_MODES); ``shard`` (I, N) serves only the
    hosts ``shard_hosts`` gives (``--shard I/N``). ``timeout`` is how long a starting
    process may go without reporting progress (a big lab reports every few hundred hosts),
    not a bound on the whole start.

    On any failure, everything made so far is removed again before the error is raised.
    """
    if workers < 1:
        raise LabError(f"--workers {workers}: give 1 or more processes")
    if use_netns and workers != 1:
        raise LabError("--workers is for the loopback lab; the netns lab already runs one "
                       "process per host")
    if use_netns and shard is not None:
        raise LabError("--shard is for the loopback lab")
    if workers > 1 and listeners == "shared":
        raise LabError("--listeners shared needs a single process: a shared listening socket "
                       "serves every address on its port, so two workers cannot each have "
                       "one (use --workers 1, or per-host listeners)")
    state = _new_state(path, "netns" if use_netns else "loopback", pcap_dir, network,
                       workers, listeners, shard)
    try:
        if use_netns:
            _up_netns(state, scenario, pcap_dir, quick)
        else:
            _up_loopback(state, scenario, pcap_dir)
        _wait_ready(state, timeout)
    except BaseException as e:
        down(state)
        if isinstance(e, (netns.NetnsError, pcap.CaptureError)):
            raise LabError(str(e)) from None
        raise
    return state


def _new_state(path: Path, mode: str, pcap_dir: Path | None,
               network: IPv4Network | None, workers: int = 1,
               listeners: str = "auto", shard: tuple[int, int] | None = None) -> LabState:
    """Check that the lab can start, and write its (empty) state."""
    directory = state_dir(path)
    if LabState.load(directory) is not None:
        raise LabError(f"a lab of {path} is already up (or was left by a crash); "
                       f"run: wmilab lab down {path}")
    if mode == "netns":
        problem = netns.root_problem()
        if problem is not None:
            raise LabError(problem)
    if pcap_dir is not None:
        problem = pcap.capture_problem()
        if problem is not None:
            raise LabError(problem)
        try:
            pcap_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LabError(f"--pcap {pcap_dir}: {e.strerror or e}") from None
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = LabState(scenario=str(path.resolve()), key=lab_key(path), mode=mode,
                     directory=str(directory),
                     pcap=str(pcap_dir.resolve()) if pcap_dir is not None else None,
                     network=str(network) if network is not None else None,
                     workers=workers, listeners=listeners,
                     shard=f"{shard[0]}/{shard[1]}" if shard is not None else None)
    state.save()
    return state


def shard_hosts(names: Iterable[str], shard: tuple[int, int] | None) -> list[str]:
    """The hosts of shard (I, N): every N-th host in name order, from the I-th (0-based),
    as ``doctor --shard`` splits a targets file; all hosts when ``shard`` is None."""
    ordered = sorted(names)
    return ordered if shard is None else ordered[shard[0]::shard[1]]


def parse_shard(text: str) -> tuple[int, int]:
    """``--shard I/N``; LabError when it is not 0 <= I < N."""
    from wmilab.realhost import options as opt
    from wmilab.realhost.fleet import parse_shard as parse

    try:
        return parse(text)
    except opt.UsageError as e:
        raise LabError(str(e)) from None


def worker_of(index: int, workers: int) -> int:
    """The worker that serves the ``index``-th host in name order (round robin)."""
    return index % workers


def loopback_process(state: LabState, worker: int) -> tuple[str, str, str]:
    """(role, ready-file name, log file) of a loopback lab's process ``worker``."""
    if state.workers == 1:
        return "loopback lab", "loopback", "loopback.log"
    return f"loopback worker {worker}", f"loopback-{worker}", f"loopback-{worker}.log"


def loopback_captures(path: Path, scenario: Scenario, pcap_dir: Path,
                      network: IPv4Network | None,
                      shard: tuple[int, int] | None = None) -> LabState:
    """Captures for a loopback lab that runs in this process (``wmilab lab FILE --pcap``),
    recorded as a lab of ``path`` so that ``down`` stops them whatever happens; one per
    host of ``shard`` (all hosts without one)."""
    state = _new_state(path, "loopback", pcap_dir, network, shard=shard)
    try:
        _loopback_hosts(state, scenario)
        start_loopback_captures(state, pcap_dir)
    except BaseException as e:
        down(state)
        if isinstance(e, pcap.CaptureError):
            raise LabError(str(e)) from None
        raise
    return state


def _spawn(state: LabState, role: str, cmd: list[str], log_name: str) -> None:
    log = (Path(state.directory) / log_name).open("ab")
    with log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=state.environment())
    state.add_process(proc.pid, role)


def _daemon() -> list[str]:
    return [sys.executable, "-m", "wmilab.lab.daemon"]


def _up_netns(state: LabState, scenario: Scenario, pcap_dir: Path | None, quick: bool) -> None:
    world = scenario.world
    netns.create_network(state, world)
    for name in sorted(world.configs):
        state.hosts[name]["quick"] = quick
    state.save()
    if pcap_dir is not None:
        for name in sorted(world.configs):
            pcap.start_capture(state, name, pcap_dir, interface="eth0",
                               namespace=state.hosts[name]["namespace"])
    for name in sorted(world.configs):
        ns = state.hosts[name]["namespace"]
        _spawn(state, f"host {name}",
               ["ip", "netns", "exec", ns, *_daemon(), "netns", state.directory, name],
               f"host-{name}.log")


def _loopback_hosts(state: LabState, scenario: Scenario) -> None:
    network = IPv4Network(state.network) if state.network else None
    clients: dict[str, str] = {}
    for c in scenario.calls:
        clients.setdefault(c.target, c.source)
    shard = parse_shard(state.shard) if state.shard else None
    names = shard_hosts(scenario.world.configs, shard)
    worker = {name: worker_of(i, state.workers) for i, name in enumerate(names)}
    for name, loop in LoopbackMap.for_world(scenario.world, network).items():
        if name in worker:
            state.hosts[name] = {"address": str(loop), "client": clients.get(name, ""),
                                 "worker": worker[name]}
    state.save()


def _up_loopback(state: LabState, scenario: Scenario, pcap_dir: Path | None) -> None:
    _loopback_hosts(state, scenario)
    if pcap_dir is not None:
        start_loopback_captures(state, pcap_dir)
    for worker in range(state.workers):
        role, _ready, log_name = loopback_process(state, worker)
        _spawn(state, role, [*_daemon(), "loopback", state.directory, str(worker)], log_name)


def start_loopback_captures(state: LabState, pcap_dir: Path) -> None:
    """One capture per host on ``lo``, filtered by the host's loopback address."""
    for name, info in sorted(state.hosts.items()):
        pcap.start_capture(state, name, pcap_dir, interface="lo",
                           capture_filter=f"host {info['address']}")


def _wait_ready(state: LabState, timeout: float) -> None:
    """Wait for every process's ready file; fail when one stops, or when none has reported
    progress (its progress file) for ``timeout`` seconds."""
    directory = Path(state.directory)
    logs = {loopback_process(state, w)[0]: loopback_process(state, w)[2]
            for w in range(state.workers)}
    names = (list(state.hosts) if state.mode == "netns"
             else [loopback_process(state, w)[1] for w in range(state.workers)])
    deadline = time.monotonic() + timeout
    pending = set(names)
    seen: dict[str, str] = {}
    while pending:
        for name in list(pending):
            if ready_file(directory, name).exists():
                pending.discard(name)
            report = progress(directory, name)
            if report != seen.get(name, ""):
                seen[name] = report
                deadline = time.monotonic() + timeout
        dead = [p for p in state.processes if not p.alive()]
        if dead:
            rec = dead[0]
            log_name = logs.get(rec.role) or (
                f"host-{rec.role.removeprefix('host ')}.log" if rec.role.startswith("host ")
                else f"capture-{rec.role.removeprefix('capture ')}.log")
            tail = _tail(directory / log_name)
            raise LabError(f"{rec.role} stopped while starting: {tail}")
        if pending and time.monotonic() > deadline:
            what = "hosts" if state.mode == "netns" else "loopback lab processes"
            raise LabError(f"{what} {', '.join(sorted(pending))} did not listen, nor report "
                           f"progress, within {timeout:g} s")
        if pending:
            time.sleep(0.05)


def _tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    error = [ln for ln in lines if "error" in ln.lower()]
    return (error or lines or ["(empty log)"])[-1].strip()


def down(state: LabState) -> dict[str, list[str]]:
    """Stop every process and remove every namespace the lab recorded, then its state.

    Returns what was removed (processes by role, namespaces by name)."""
    stopped = []
    # Hosts before captures (reverse order of start), so a capture sees the last packets.
    for rec in reversed(state.processes):
        if rec.alive():
            if rec.role.startswith("capture "):
                # dumpcap stops at SIGTERM without draining what the kernel still buffers:
                # let it write the last packets first.
                pcap.settle(rec.pid)
            rec.stop()
            stopped.append(f"{rec.role} (pid {rec.pid})")
    # A process started just before a crash of `up`, before it was recorded, carries the
    # lab's marker; a command `lab exec` left running sits in one of the lab's namespaces.
    stray = set(marked_processes(state.directory))
    for name in state.namespaces:
        stray.update(netns.namespace_pids(name))
    for pid in sorted(stray - {os.getpid()}):
        rec = ProcessRecord.of(pid, "unrecorded")
        if rec.alive():
            rec.stop()
            stopped.append(f"unrecorded process (pid {pid})")
    removed = netns.remove_namespaces(state) if state.namespaces else []
    shutil.rmtree(state.directory, ignore_errors=True)
    return {"processes": stopped, "namespaces": removed}


def status(state: LabState) -> list[dict[str, Any]]:
    """One row per host: address, namespace, whether its process runs and listens."""
    directory = Path(state.directory)
    rows = []
    for name, info in sorted(state.hosts.items()):
        if state.mode == "netns":
            procs = [p for p in state.processes if p.role == f"host {name}"]
            ready = ready_file(directory, name).exists()
            ns = info["namespace"]
            ns_ok = netns.namespace_exists(ns)
        else:
            role, ready_name, _log = loopback_process(state, int(info.get("worker", 0)))
            procs = [p for p in state.processes if p.role == role]
            ready = ready_file(directory, ready_name).exists()
            ns, ns_ok = "-", True
        running = bool(procs) and all(p.alive() for p in procs)
        captures = [p for p in state.processes if p.role == f"capture {name}"]
        if state.mode == "loopback" and not procs:
            what = "in the foreground"  # `wmilab lab FILE --pcap`: served by that process
        else:
            what = "listening" if running and ready and ns_ok else (
                "starting" if running else "stopped")
        rows.append({
            "host": name, "address": info["address"], "namespace": ns, "state": what,
            "pid": procs[0].pid if procs else None,
            "capture": (str(Path(state.pcap or "") / f"{name}.pcapng")
                        if captures and captures[0].alive() else "-"),
        })
    return rows


def exec_as(state: LabState, host: str, command: list[str]) -> int:
    """Run ``command`` as scenario host ``host`` and return its exit code."""
    info = state.hosts[host]
    env = {**os.environ, "WMILAB_HOST": host, "WMILAB_ADDRESS": info["address"]}
    for name, other in state.hosts.items():
        env[f"WMILAB_ADDRESS_{name.upper()}"] = other["address"]
    cmd = command
    if state.mode == "netns":
        cmd = ["ip", "netns", "exec", info["namespace"], *command]
    try:
        return subprocess.run(cmd, env=env, check=False).returncode
    except FileNotFoundError:
        raise LabError(f"command not found: {command[0]}") from None


def verify_netns(state: LabState, scenario: Scenario, passwords: dict[str, str | None],
                 connect_timeout: float = 2.0) -> list[CallCheck]:
    """Make each call from inside its caller's namespace (the ``from`` host's daemon) and
    compare with the flow's prediction."""
    from wmilab import flow
    from wmilab.lab.verify import CallCheck

    directory = Path(state.directory)

    async def run_all() -> list[CallCheck]:
        out = []
        for index, call in enumerate(scenario.calls):
            predicted = flow.evaluate(scenario.world, call)
            password = call.password if call.password is not None else passwords.get(call.user)
            answer = await ask(directory, call.source, {
                "op": "call", "index": index, "password": password or "",
                "connect_timeout": connect_timeout})
            if "error" in answer:
                raise LabError(f"{call.source} could not make call {call.name}: "
                               f"{answer['error']}")
            note = str(answer.get("note") or (
                "wmilab client + sink" if call.mode == "async" else ""))
            out.append(CallCheck(call, predicted, str(answer["wire"]), int(answer["rows"]),
                                 note))
        return out

    return asyncio.run(run_all())

