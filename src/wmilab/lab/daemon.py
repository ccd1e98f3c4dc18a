"""The background processes of a lab (started by lab/runner.py, never by hand).

``python -m wmilab.lab.daemon netns STATE_DIR HOST`` runs inside HOST's network namespace:
the emulated host on its scenario address, and a control socket ``STATE_DIR/HOST.sock``
through which ``lab --netns --verify`` makes calls *from* this host (so every packet leaves
from the caller's namespace) and reads the outcome of this host's callbacks.

``python -m wmilab.lab.daemon loopback STATE_DIR [WORKER]`` runs every host of the scenario
on its loopback address, as ``wmilab lab FILE`` does in the foreground; with ``--workers``
the lab starts one per worker, and each serves the hosts the state gives that worker.

Each writes ``STATE_DIR/NAME.ready`` once it listens (for the loopback lab: which hosts it
serves, its process id and its listening sockets, as JSON), ``STATE_DIR/NAME.progress``
while a big lab starts, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from wmilab.lab.state import LabState

log = logging.getLogger("wmilab.lab")

CONTROL_LIMIT = 64 * 1024  # bytes of one control request


def ready_file(directory: Path, name: str) -> Path:
    return directory / f"{name}.ready"


def progress(directory: Path, name: str) -> str:
    """What process ``name`` last reported while starting ("" if nothing)."""
    try:
        return (directory / f"{name}.progress").read_text()
    except OSError:
        return ""


def control_socket(directory: Path, host: str) -> Path:
    return directory / f"{host}.sock"


async def _until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def ask(directory: Path, host: str, request: dict[str, Any],
              timeout: float = 120.0) -> dict[str, Any]:
    """Send one request to a host daemon's control socket and return its answer."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_unix_connection(str(control_socket(directory, host)),
                                     limit=CONTROL_LIMIT), 10)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    answer: dict[str, Any] = json.loads(line or b"{}")
    return answer


class HostDaemon:
    """One emulated host inside its namespace, with its control socket."""

    def __init__(self, directory: Path, host: str) -> None:
        from wmilab.host.loopback_map import DirectMap
        from wmilab.host.server import HostServer
        from wmilab.scenario import load

        self.directory = directory
        state = LabState.load(directory)
        if state is None:
            raise SystemExit(f"no lab state in {directory}")
        self.state = state
        self.scenario = load(Path(state.scenario))
        world = self.scenario.world
        self.host = host
        self.address = state.hosts[host]["address"]
        self.quick = bool(state.hosts[host].get("quick"))
        self.server = HostServer(world, host, address=self.address,
                                 addresses=DirectMap.for_world(world))
        # A's outbound rules are the nftables output chain of A's namespace here (lab/nft.py),
        # which filters every program in it; the gate asks only this host's inbound rules.
        self.server.gate.outbound = False
        self.peers = [world.host(name) for name in world.configs if name != host]
        if self.quick:
            # A verify run: a dropped SYN on Connection 2 costs 2 s, not 5.
            self.server.callbacks.connect_timeout = 2.0

    async def run(self) -> None:
        from wmilab.lab import nft

        await self.server.start()
        # Now the WMI service's dynamic port is drawn and bound: compile the ruleset again
        # for it (the lab loaded the first one before the host had an address).
        nft.apply(nft.ruleset(self.server.model, self.server.ports["wmi"], peers=self.peers))
        path = control_socket(self.directory, self.host)
        path.unlink(missing_ok=True)
        ctl = await asyncio.start_unix_server(self._serve, str(path), limit=CONTROL_LIMIT)
        ready_file(self.directory, self.host).write_text(str(self.server.ports))
        log.info("%s listening on %s (RPCSS %s, WMI %s)", self.host, self.address,
                 self.server.ports["rpcss"], self.server.ports["wmi"])
        try:
            await _until_terminated()
        finally:
            ctl.close()
            await self.server.stop()
            path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            request = json.loads(line)
            answer = await self._handle(request)
        except Exception as e:  # a bad request must not stop the host
            log.exception("control request failed")
            answer = {"error": repr(e)}
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()
        writer.close()

    async def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "callbacks":
            # The outcome of this host's last callback (Connection 2), once all are done.
            await self.server.callbacks.wait_idle(float(request.get("timeout", 60)))
            outcomes = self.server.callbacks.outcomes
            return {"hresult": outcomes[-1].hresult if outcomes else None}
        if op == "call":
            from wmilab.lab.verify import CALLER_REFUSES, refused_by_caller

            call = self.scenario.calls[int(request["index"])]
            refusal = refused_by_caller(self.scenario.world, call)
            if refusal is not None:
                return {"wire": refusal, "rows": 0, "note": CALLER_REFUSES}
            wire, rows = await self._call(int(request["index"]), str(request["password"]),
                                          float(request.get("connect_timeout", 2.0)))
            return {"wire": wire, "rows": rows}
        return {"error": f"unknown op {op!r}"}

    async def _call(self, index: int, password: str, connect_timeout: float) -> tuple[str, int]:
        from wmilab.lab import nft
        from wmilab.lab.verify import (
            activation_level_for,
            async_call,
            call_level_for,
            impacket_level_for,
            impacket_query,
        )

        call = self.scenario.calls[index]
        target = self.state.hosts[call.target]["address"]
        # The level A activates with, where B's DCOM hardening judges it (KB 5004442).
        level = activation_level_for(self.scenario.world, call)
        if call.mode != "async":
            # impacket, as wmiquery.py uses it, from this namespace.
            return await asyncio.to_thread(impacket_query, target, call.user, password,
                                           call.namespace, call.query, call.mode,
                                           connect_timeout,
                                           impacket_level_for(self.scenario.world, call))

        async def outcome() -> int | None:
            answer = await ask(self.directory, call.target, {"op": "callbacks"})
            value = answer.get("hresult")
            return None if value is None else int(value)

        # While the sink listens (its own dynamic port, the call's program), the ruleset
        # also holds the rule the model gives that listener; then it goes again.
        model = self.server.model
        wmi = self.server.ports["wmi"]

        def open_sink(port: int, program: str) -> None:
            nft.apply(nft.ruleset(model, wmi, (port, program), self.peers))

        try:
            return await async_call(self.server, target, 135, call, password, outcome,
                                    local_address=self.address,
                                    # wmilab's client bounds connects and calls alike.
                                    timeout=max(connect_timeout, 5.0), on_sink=open_sink,
                                    activation_level=level,
                                    auth_level=call_level_for(self.scenario.world, call))
        finally:
            nft.apply(nft.ruleset(model, wmi, peers=self.peers))


async def _loopback(directory: Path, worker: int) -> None:
    import os

    from wmilab.lab.loopback import LoopbackLab
    from wmilab.lab.runner import loopback_process
    from wmilab.scenario import load

    state = LabState.load(directory)
    if state is None:
        raise SystemExit(f"no lab state in {directory}")
    network = IPv4Network(state.network) if state.network else None
    scenario = load(Path(state.scenario))
    clients: dict[str, str] = {}
    for c in scenario.calls:
        clients.setdefault(c.target, c.source)
    hosts = [name for name, info in state.hosts.items() if int(info.get("worker", 0)) == worker]
    # A shared listening socket serves its port for every address: it cannot be split
    # between processes, so workers listen per host.
    listeners = state.listeners if state.workers == 1 else "per-host"
    lab = LoopbackLab(scenario.world, default_clients=clients, hosts=hosts, network=network,
                      listeners=listeners)
    _role, name, _log = loopback_process(state, worker)
    report = directory / f"{name}.progress"

    def on_progress(done: int, total: int) -> None:
        report.write_text(f"{done}/{total}")

    await lab.start(progress=on_progress)
    try:
        sockets = lab.listening_sockets()
        ready_file(directory, name).write_text(json.dumps(
            {"pid": os.getpid(), "hosts": hosts, "listening_sockets": sockets}))
        log.info("%d hosts listening (%d listening sockets)", len(hosts), sockets)
        await _until_terminated()
    finally:
        await lab.stop()


def main(argv: list[str]) -> None:
    from wmilab.host.server import HostBindError

    if len(argv) == 3 and argv[0] == "netns":
        run = HostDaemon(Path(argv[1]), argv[2]).run
    elif len(argv) in (2, 3) and argv[0] == "loopback":
        directory = Path(argv[1])
        worker = int(argv[2]) if len(argv) == 3 else 0

        async def run() -> None:
            await _loopback(directory, worker)
    else:
        raise SystemExit("usage: python -m wmilab.lab.daemon netns STATE_DIR HOST | "
                         "loopback STATE_DIR [WORKER]")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        asyncio.run(run())
    except HostBindError as e:
        # `lab up` shows this line (the last one naming an error) and exits 2.
        print(f"error: {e.strerror or e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main(sys.argv[1:])
