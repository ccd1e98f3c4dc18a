"""``wmilab lab``: run a scenario's hosts, in the foreground or in the background.

``wmilab lab FILE [--verify] [--netns] [--pcap DIR]`` runs the lab until Ctrl-C (or, with
--verify, makes every call and compares it with ``check``); ``wmilab lab up | exec |
status | down FILE`` manage a lab in the background (lab/runner.py). cli.py registers
this group.
"""

from __future__ import annotations

import time
from ipaddress import IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from wmilab.scenario import Scenario, ScenarioError, load
from wmilab.terminal import err, error, out

if TYPE_CHECKING:
    from wmilab.lab.verify import CallCheck

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


SUBCOMMANDS = ("up", "exec", "status", "down")


class _LabGroup(TyperGroup):
    """``wmilab lab FILE ...`` runs the lab; ``wmilab lab up|exec|status|down`` manage one."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in (*SUBCOMMANDS, "run", "--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


lab_app = typer.Typer(
    cls=_LabGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Run a scenario's emulated hosts: `wmilab lab FILE [--verify] [--netns] [--pcap DIR]`"
    " in the foreground (its options: `wmilab lab FILE --help`), or `wmilab lab "
    "up|exec|status|down FILE` in the background.\n\n"
    "Example: `wmilab lab non-admin.toml --verify`\n\n"
    "Exit codes: 0 when the lab ran (with --verify: the wire agrees with the model on every "
    "call), 1 when the wire disagrees, 2 for a bad file, a port that cannot be bound or "
    "--netns without root. Each subcommand's help gives its own.",
)

FileArg = Annotated[Path, typer.Argument(help="Scenario file (TOML).", show_default=False)]
NetnsOpt = Annotated[bool, typer.Option(
    "--netns", help="Run each host in its own network namespace on its scenario address, "
    "behind its firewall compiled into nftables: a blocked SYN is dropped and the client "
    "times out. Needs root.")]
PcapOpt = Annotated[Path | None, typer.Option(
    "--pcap", help="Write one capture per host, DIR/HOST.pcapng (needs dumpcap).",
    show_default=False)]
WorkersOpt = Annotated[int, typer.Option(
    "--workers", min=1, help="Loopback lab: spread the hosts over N processes (each host in "
    "exactly one), so that every core serves. Not with --verify or --netns.")]
ListenersOpt = Annotated[str, typer.Option(
    "--listeners", help="Loopback lab: `per-host` (each host its own listening sockets), "
    "`shared` (one socket per port for all hosts, on the loopback interface only, each "
    "connection served by the host whose address it was made to; one process only) or "
    "`auto` (per-host while two sockets per host fit in half the descriptor limit).")]
ShardOpt = Annotated[str | None, typer.Option(
    "--shard", help="Loopback lab: serve only shard I/N of the hosts, every N-th in name "
    "order from the I-th (0-based), so that N machines or jobs each serve their part. Not "
    "with --verify.", show_default=False)]
LoopbackNetOpt = Annotated[str | None, typer.Option(
    "--loopback-net", help="Loopback lab: the loopback network the scenario's addresses map "
    "into (default 127.0.0.0/8: 192.168.10.2 becomes 127.168.10.2; with 127.77.0.0/16 it "
    "becomes 127.77.10.2), so that several labs can run side by side.", show_default=False)]


def _network(text: str | None, use_netns: bool) -> IPv4Network | None:
    from wmilab.errors import ConfigError
    from wmilab.lab.loopback import loopback_network

    if text is None:
        return None
    if use_netns:
        raise _fail("--loopback-net is for the loopback lab; with --netns every host has "
                    "its scenario address in its own namespace")
    try:
        return loopback_network(text)
    except ConfigError as e:
        raise _fail(f"--loopback-net: {e}") from None


def _listeners(text: str, use_netns: bool, workers: int) -> str:
    from wmilab.lab.loopback import LISTENER_MODES

    if text not in LISTENER_MODES:
        raise _fail(f"--listeners {text!r}: give one of {', '.join(LISTENER_MODES)}")
    if use_netns and (workers != 1 or text != "auto"):
        raise _fail("--workers and --listeners are for the loopback lab; the netns lab runs "
                    "one process per host, on its own address")
    return text


def _shard(text: str | None, use_netns: bool) -> tuple[int, int] | None:
    from wmilab.lab import runner

    if text is None:
        return None
    if use_netns:
        raise _fail("--shard is for the loopback lab")
    try:
        return runner.parse_shard(text)
    except runner.LabError as e:
        raise _fail(str(e)) from None


# A lab of more hosts than this prints the first ones and a count (`lab status` lists all).
_TABLE_ROWS = 50


def _fail(message: str) -> typer.Exit:
    error(message)
    return typer.Exit(EXIT_BAD_INPUT)


def _load(path: Path) -> Scenario:
    try:
        return load(path)
    except ScenarioError as e:
        raise _fail(str(e)) from None


def _host(scenario: Scenario, path: Path, name: str) -> str:
    match = {h.upper(): h for h in scenario.world.configs}.get(name.upper())
    if match is None:
        raise _fail(f"{path}: no host {name!r} (hosts: {', '.join(scenario.world.configs)})")
    return match


def _print_checks(checks: list[CallCheck]) -> int:
    from wmilab.lab.verify import CALLER_REFUSES

    result = Table("call", "mode", "wmilab check", "on the wire", "client", "")
    disagree = 0
    mark = {True: "[green]agrees[/]", False: "[red]DIFFERS[/]", None: "[dim]not run[/]"}
    for chk in checks:
        if chk.agrees is False:
            disagree += 1
        wire = chk.wire if chk.wire is not None else chk.note
        if chk.wire == "ok":
            wire = f"ok ({chk.rows} objects)"
        client = "wmilab + sink" if chk.call.mode == "async" else "impacket"
        if chk.note == CALLER_REFUSES:
            client = "A's DCOM (no packet)"
        result.add_row(chk.call.name, chk.call.mode, chk.predicted.result, wire, client,
                       mark[chk.agrees])
    out.print(result)
    return disagree


def _print_status(state: Any, summary: bool = True) -> None:
    from wmilab.lab import runner

    table = Table("host", "address", "namespace", "state", "pid", "capture")
    rows = runner.status(state)
    for row in rows[:_TABLE_ROWS] if len(rows) > _TABLE_ROWS and summary else rows:
        table.add_row(row["host"], row["address"], row["namespace"], row["state"],
                      str(row["pid"] or "-"), row["capture"])
    out.print(table)
    if summary and len(rows) > _TABLE_ROWS:
        states: dict[str, int] = {}
        for row in rows:
            states[row["state"]] = states.get(row["state"], 0) + 1
        counts = ", ".join(f"{n} {what}" for what, n in sorted(states.items()))
        out.print(f"... and {len(rows) - _TABLE_ROWS} more hosts ({counts} in all; "
                  f"`wmilab lab status FILE` lists every one)")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for_interrupt() -> None:
    import signal

    # SIGTERM (and SIGINT, even when inherited as ignored) stop a foreground lab cleanly.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    out.print("Serving; Ctrl-C stops.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return


@lab_app.command("run", hidden=True, help=(
    "Run every host of a scenario (RPCSS 135, WMI on the model's port) until Ctrl-C.\n\n"
    "On loopback addresses by default; in network namespaces with --netns. Real clients "
    "connecting from 127.0.0.1 to the loopback lab count as the `from` host of the first call "
    "to each host. With --verify it makes each call of the scenario on the wire, compares the "
    "outcome with what `check` predicts, and stops.\n\n"
    "Example: `wmilab lab non-admin.toml --verify`\n\n"
    "Exit codes: 0 after Ctrl-C or, with --verify, when the wire agrees with the model on "
    "every call; 1 when it does not; 2 for a bad file, a port that cannot be bound, or "
    "--netns without root."))
def run(
    file: FileArg,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Make each call on the wire against the emulated hosts (impacket for "
        "sync and semisync calls; wmilab's own client and sink for async calls), compare with "
        "what `check` predicts, then stop.")] = False,
    use_netns: NetnsOpt = False,
    pcap_dir: PcapOpt = None,
    loopback_net: LoopbackNetOpt = None,
    workers: WorkersOpt = 1,
    listeners: ListenersOpt = "auto",
    shard: ShardOpt = None,
) -> None:
    import logging

    from wmilab.lab import runner

    scenario = _load(file)
    network = _network(loopback_net, use_netns)
    listeners = _listeners(listeners, use_netns, workers)
    if (workers > 1 or shard is not None) and verify:
        raise _fail("--workers and --shard serve the hosts for clients of your own; --verify "
                    "makes every call from this process: drop them")
    part = _shard(shard, use_netns)
    passwords = {c.user: scenario.world.password_of(c.user) for c in scenario.calls}
    if not verify:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if use_netns:
        try:
            state = runner.up(file, scenario, use_netns=True, pcap_dir=pcap_dir, quick=verify)
        except runner.LabError as e:
            raise _fail(str(e)) from None
        try:
            _print_status(state)
            if not verify:
                out.print(f"Each host logs to {state.directory}/host-HOST.log.")
                _wait_for_interrupt()
                return
            checks = runner.verify_netns(state, scenario, passwords)
        finally:
            runner.down(state)
    elif workers > 1:
        _run_workers(file, scenario, pcap_dir, network, workers, listeners, part)
        return
    else:
        ran = _run_loopback(file, scenario, verify, pcap_dir, passwords, network, listeners,
                            part)
        if ran is None:
            return
        checks = ran
    if _print_checks(checks):
        raise typer.Exit(EXIT_MISMATCH)


def _run_workers(file: Path, scenario: Scenario, pcap_dir: Path | None,
                 network: IPv4Network | None, workers: int, listeners: str,
                 shard: tuple[int, int] | None) -> None:
    """``wmilab lab FILE --workers N``: the background lab's processes, stopped on Ctrl-C."""
    from wmilab.lab import runner

    try:
        state = runner.up(file, scenario, use_netns=False, pcap_dir=pcap_dir, network=network,
                          workers=workers, listeners=listeners, shard=shard)
    except runner.LabError as e:
        raise _fail(str(e)) from None
    try:
        _print_status(state)
        out.print(f"{len(state.hosts)} hosts in {workers} processes; each logs to "
                  f"{state.directory}/loopback-N.log.")
        _wait_for_interrupt()
    finally:
        runner.down(state)


def _run_loopback(file: Path, scenario: Scenario, verify: bool, pcap_dir: Path | None,
                  passwords: dict[str, str | None], network: IPv4Network | None,
                  listeners: str = "auto",
                  shard: tuple[int, int] | None = None) -> list[CallCheck] | None:
    from wmilab.host.server import HostBindError
    from wmilab.lab import runner
    from wmilab.lab.state import LabState
    from wmilab.lab.verify import ThreadedLab, verify_calls

    clients: dict[str, str] = {}
    for c in scenario.calls:
        clients.setdefault(c.target, c.source)
    state: LabState | None = None
    if pcap_dir is not None:
        # Recorded like a background lab, so `lab down FILE` stops the captures even if
        # this process is killed.
        try:
            state = runner.loopback_captures(file, scenario, pcap_dir, network, shard)
        except runner.LabError as e:
            raise _fail(str(e)) from None
    hosts = runner.shard_hosts(scenario.world.configs, shard)
    running = ThreadedLab(scenario, network=network, listeners=listeners,
                          hosts=hosts if shard is not None else None)
    for target, source in clients.items():
        if target in running.lab.servers:
            running.act_as(target, source)
    try:
        try:
            running.start()
        except HostBindError as e:
            raise _fail(e.strerror or str(e)) from None
        try:
            table = Table("host", "scenario address", "loopback address",
                          "clients from 127.0.0.1 count as")
            configs = [(h, scenario.world.configs[h]) for h in running.lab.servers]
            for name, cfg in configs[:_TABLE_ROWS]:
                table.add_row(name, str(cfg.address.ip), running.address(name),
                              clients.get(name, "-"))
            out.print(table)
            if len(configs) > _TABLE_ROWS:
                out.print(f"... and {len(configs) - _TABLE_ROWS} more hosts")
            if running.lab.shared is not None:
                out.print(f"{len(configs)} hosts share {running.lab.shared.sockets} listening "
                          "sockets (one per port, on the loopback interface only)")
            if not verify:
                _wait_for_interrupt()
                return None
            return verify_calls(running, passwords)
        finally:
            running.close()
    finally:
        if state is not None:
            runner.down(state)


@lab_app.command("up", help=(
    "Start the lab of FILE in the background; return once every host listens.\n\n"
    "`wmilab lab exec` runs a client as one of its hosts, `status` shows it, `down` stops it.\n\n"
    "Example: `wmilab lab up remote-admin.toml --netns`\n\n"
    "Exit codes: 0 when every host listens, 2 for a bad file, a port that cannot be bound, "
    "--netns without root or a lab of FILE that is up already."))
def lab_up(file: FileArg, use_netns: NetnsOpt = False, pcap_dir: PcapOpt = None,
           loopback_net: LoopbackNetOpt = None, workers: WorkersOpt = 1,
           listeners: ListenersOpt = "auto", shard: ShardOpt = None) -> None:
    from wmilab.lab import runner

    scenario = _load(file)
    network = _network(loopback_net, use_netns)
    listeners = _listeners(listeners, use_netns, workers)
    part = _shard(shard, use_netns)
    try:
        state = runner.up(file, scenario, use_netns=use_netns, pcap_dir=pcap_dir,
                          network=network, workers=workers, listeners=listeners, shard=part)
    except runner.LabError as e:
        raise _fail(str(e)) from None
    _print_status(state)
    where = "in its own network namespace" if use_netns else "on its loopback address"
    out.print(f"Each host runs {where}. `wmilab lab exec {file} HOST -- COMMAND` runs a "
              f"client as HOST; `wmilab lab down {file}` stops the lab.")


@lab_app.command("exec", context_settings={"allow_interspersed_args": False}, help=(
    "Run COMMAND as scenario host HOST of the running lab of FILE.\n\n"
    "In a netns lab the command runs inside HOST's network namespace, so its connections come "
    "from HOST's scenario address and meet the other hosts' firewalls. In the loopback lab it "
    "runs here: connections from 127.0.0.1 count as the `from` host of the first call to each "
    "target (see `status`). `WMILAB_HOST` and `WMILAB_ADDRESS_<HOST>` are set.\n\n"
    "Example: `wmilab lab exec remote-admin.toml A -- ping -c 1 192.168.10.2`\n\n"
    "Exit codes: the command's own; 2 when FILE is bad, HOST unknown or no lab of FILE is up."))
def lab_exec(
    file: FileArg,
    host: Annotated[str, typer.Argument(help="Scenario host to act as.", show_default=False)],
    command: Annotated[list[str], typer.Argument(
        help="The command and its arguments (after --).", show_default=False)],
) -> None:
    from wmilab.lab import runner

    scenario = _load(file)
    name = _host(scenario, file, host)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise _fail("lab exec: give the command after --, e.g. "
                    f"wmilab lab exec {file} {name} -- wmiquery.py ...")
    state = runner.find(file)
    if state is None:
        raise _fail(f"no lab of {file} is up; start one with: wmilab lab up {file}")
    if state.mode == "loopback":
        others = [h for h, info in state.hosts.items() if info.get("client") not in ("", name)]
        if others:
            err.print(f"note: loopback lab: connections from 127.0.0.1 to {', '.join(others)} "
                      f"count as another host (see `wmilab lab status {file}`); use --netns "
                      f"to act as {name} everywhere")
    try:
        code = runner.exec_as(state, name, command)
    except runner.LabError as e:
        raise _fail(str(e)) from None
    raise typer.Exit(code)


@lab_app.command("status")
def lab_status(file: FileArg) -> None:
    """List the hosts of the running lab of FILE: address, namespace, process, capture.

    Example: `wmilab lab status remote-admin.toml`

    Exit codes: 0 when the lab is up, 1 when no lab of FILE is up.
    """
    from wmilab.lab import runner

    state = runner.find(file)
    if state is None:
        out.print(f"no lab of {file} is up")
        raise typer.Exit(EXIT_MISMATCH)
    out.print(f"{state.mode} lab of {state.scenario} (state in {state.directory})")
    _print_status(state, summary=False)
    if state.mode == "loopback":
        for name, info in sorted(state.hosts.items()):
            if info.get("client"):
                out.print(f"connections from 127.0.0.1 to {name} count as {info['client']}")


@lab_app.command("down")
def lab_down(file: FileArg) -> None:
    """Stop the lab of FILE: every process, namespace, bridge and ruleset it made.

    Example: `wmilab lab down remote-admin.toml`

    Exit codes: 0 when it is stopped (or was not up), 2 when something it made cannot be
    removed (the error names it).
    """
    from wmilab.lab import runner

    state = runner.find(file)
    if state is None:
        out.print(f"no lab of {file} is up; nothing to remove")
        return
    try:
        removed = runner.down(state)
    except Exception as e:  # a namespace that cannot be deleted: say which
        raise _fail(str(e)) from None
    procs, spaces = len(removed["processes"]), len(removed["namespaces"])
    out.print(f"stopped {procs} process{'' if procs == 1 else 'es'}, removed {spaces} "
              f"network namespace{'' if spaces == 1 else 's'}")
