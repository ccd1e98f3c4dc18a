"""The `wmilab query` and `wmilab doctor` commands (registered by ``wmilab.cli``)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wmilab import steps
from wmilab.client.session import ConnectOptions, StepFailed
from wmilab.model import hresult as hr
from wmilab.realhost import options as opt
from wmilab.realhost.doctor import DoctorReport, DoctorRequest, ListenerPool, diagnose
from wmilab.realhost.fleet import FleetEntry, parse_shard, read_targets, run_fleet, summarize
from wmilab.realhost.query import (
    QueryRequest,
    ResolverBindError,
    as_csv,
    as_json,
    cells,
    failure_line,
    run_query,
    title_of,
)

__all__ = ["doctor", "query"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def usage_error(message: str) -> typer.Exit:
    _err().print(f"[red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(EXIT_BAD_INPUT)


# Options both commands take.
UserOpt = Annotated[str, typer.Option("-u", "--user", help="DOMAIN\\user to log on as.",
                                      show_default=False)]
PasswordOpt = Annotated[str | None, typer.Option(
    "-p", "--password", help="The password (or --password-file, or WMILAB_PASSWORD).",
    show_default=False)]
PasswordFileOpt = Annotated[Path | None, typer.Option(
    "--password-file", help="Read the password from the first line of FILE.",
    show_default=False)]
NamespaceOpt = Annotated[str, typer.Option("--namespace", help="WMI namespace.")]
ModeOpt = Annotated[str, typer.Option("--mode", help="sync, semisync or async (async: B calls "
                                      "back this machine's sink, which needs TCP 135 here).")]
AuthOpt = Annotated[str, typer.Option("--auth-level",
                                      help="connect, pkt, integrity or privacy.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds per connection attempt "
                                           "(and to wait for B's callback).", min=0.1)]
SourceOpt = Annotated[str | None, typer.Option(
    "--source", help="Local IPv4 address to connect from (A's address; default: the system's "
    "choice).", show_default=False)]
# Where B's RPCSS and A's resolver listen: 135 on real hosts; tests remap them.
RpcPortOpt = Annotated[int, typer.Option("--rpc-port", hidden=True)]
ResolverPortOpt = Annotated[int, typer.Option("--resolver-port", hidden=True)]


def connect_options(target: str, user: str, password: str | None, password_file: Path | None,
                    namespace: str, auth_level: str, timeout: float, source: str | None,
                    rpc_port: int) -> ConnectOptions:
    """Every option checked; raises :class:`opt.UsageError`."""
    u = opt.user(user)
    level = opt.auth_level(auth_level)
    if source is not None and not opt.is_address(source):
        raise opt.UsageError(f"--source {source!r}: not an IPv4 address")
    pw = opt.password(password, password_file)
    address = opt.resolve_target(target)
    return ConnectOptions(address, u, pw, namespace, level, timeout, source, rpc_port)


def query(
    target: Annotated[str, typer.Argument(help="Address or name of the computer to query.",
                                          show_default=False)],
    wql: Annotated[str, typer.Argument(help="The WQL query.", show_default=False)],
    user: UserOpt,
    password: PasswordOpt = None,
    password_file: PasswordFileOpt = None,
    namespace: NamespaceOpt = "root\\cimv2",
    mode: ModeOpt = "semisync",
    auth_level: AuthOpt = "privacy",
    timeout: TimeoutOpt = 10.0,
    source: SourceOpt = None,
    as_json_: Annotated[bool, typer.Option("--json", help="Print a JSON list, one object "
                                           "per row.")] = False,
    as_csv_: Annotated[bool, typer.Option("--csv", help="Print CSV with a header row.")] = False,
    rpc_port: RpcPortOpt = 135,
    resolver_port: ResolverPortOpt = 135,
) -> None:
    """Run one WQL query against a real host with wmilab's own client.

    Exit code: 0 with the rows printed, 1 when the call fails (its HRESULT, symbol and the
    step, as `check` names them), 2 for bad usage.
    """
    try:
        if as_json_ and as_csv_:
            raise opt.UsageError("give either --json or --csv, not both")
        m = opt.check_mode(mode)
        co = connect_options(target, user, password, password_file, namespace, auth_level,
                             timeout, source, rpc_port)
    except opt.UsageError as e:
        raise usage_error(str(e)) from None
    req = QueryRequest(co, wql, m, resolver_port)
    try:
        rows, _log = asyncio.run(run_query(req))
    except StepFailed as e:
        _err().print(f"[red]error:[/] {failure_line(e)}", markup=True, highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    except ResolverBindError as e:
        raise usage_error(str(e)) from None
    if as_json_:
        sys.stdout.write(as_json(rows) + "\n")
    elif as_csv_:
        sys.stdout.write(as_csv(rows))
    else:
        cols, body = cells(rows)
        table = Table(*cols, title=f"{wql}  ({len(rows)} rows from {target})")
        for line in body:
            table.add_row(*line)
        _out().print(table)


# -- doctor -------------------------------------------------------------------------------


def render_report(console: Console, rep: DoctorReport) -> None:
    """Steps with timings, the verdict, the Windows version and the model's fix."""
    table = Table("step", "", "ms", "detail", title=f"wmilab doctor {rep.target} "
                  f"({rep.address}, {rep.mode})", title_justify="left")
    for s in rep.steps:
        mark = "[green]pass[/]" if s.ok else "[red]FAIL[/]"
        table.add_row(f"{s.step}\n[dim]{escape(title_of(s.step))}[/]", mark, f"{s.ms:.1f}",
                      escape(s.detail))
    console.print(table)
    if rep.windows:
        console.print(f"Windows: {escape(rep.windows)}"
                      + (f"  (model: {rep.os})" if rep.os else ""))
    if rep.error is not None:
        console.print(f"[red]error:[/] {escape(rep.error)}")
        return
    if rep.failed is None:
        console.print("[green]ok[/]: every step passed")
        return
    console.print(f"[red]{escape(failure_line(rep.failed))}[/]")
    fix = rep.fix
    if fix is None:
        return
    if fix.assumption:
        console.print(f"[bold]Fix[/] (the model assumes: {escape(fix.assumption)})")
    if fix.note:
        console.print(f"  {escape(fix.note)}")
    for i, f in enumerate(fix.fixes, 1):
        where = escape(f"[{f['host']}] ") if f["host"] else ""
        console.print(f"  {i}. {where}[bold]{escape(f['summary'])}[/]")
        for cmd in f["commands"]:
            console.print(f"       {escape(cmd)}")
    if fix.fixes and any(f["host"] == "A" for f in fix.fixes):
        console.print("  [dim]A is this machine: on Linux, open TCP 135 and the sink's port "
                      "to B in its own firewall instead.[/]")


def render_summary(console: Console, reports: list[DoctorReport]) -> None:
    counts = summarize(reports)
    table = Table("step", "hosts", "title", title=f"{len(reports)} hosts",
                  title_justify="left")
    order = {sid: i for i, sid in enumerate(steps.ORDER)}
    for step, n in sorted(counts.items(), key=lambda kv: (kv[0] == "ok",
                                                          order.get(kv[0], 99), kv[0])):
        table.add_row(step, str(n), "" if step in ("ok", "error") else title_of(step))
    console.print(table)


def doctor(
    target: Annotated[str | None, typer.Argument(
        help="Address or name of the computer to diagnose (or --targets).",
        show_default=False)] = None,
    user: UserOpt = "",
    password: PasswordOpt = None,
    password_file: PasswordFileOpt = None,
    namespace: NamespaceOpt = "root\\cimv2",
    mode: ModeOpt = "semisync",
    auth_level: AuthOpt = "privacy",
    timeout: TimeoutOpt = 10.0,
    source: SourceOpt = None,
    as_json_: Annotated[bool, typer.Option("--json", help="Print one JSON object (one per "
                                           "line with --targets).")] = False,
    targets: Annotated[Path | None, typer.Option(
        "--targets", help="File with one target per line, or CSV target,user.",
        show_default=False)] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1,
                                             help="Hosts probed at once.")] = 64,
    shard: Annotated[str | None, typer.Option(
        "--shard", help="I/N: only every N-th target starting at I (0-based).",
        show_default=False)] = None,
    rpc_port: RpcPortOpt = 135,
    resolver_port: ResolverPortOpt = 135,
) -> None:
    """Probe a real host step by step and say where remote WMI stops, and the fix.

    Uses the step ids, titles and HRESULTs of `check`. Exit code: 0 when every step passes
    (on every host), 1 when one fails, 2 for bad usage.
    """
    try:
        if (target is None) == (targets is None):
            raise opt.UsageError("give either TARGET or --targets FILE")
        if not user:
            raise opt.UsageError("-u DOMAIN\\user is required")
        m = opt.check_mode(mode)
        entries: list[FleetEntry] = []
        if targets is not None:
            entries = read_targets(targets)
            if shard is not None:
                i, n = parse_shard(shard)
                entries = entries[i::n]
            co = connect_options("127.0.0.1", user, password, password_file, namespace,
                                 auth_level, timeout, source, rpc_port)
        else:
            if shard is not None:
                raise opt.UsageError("--shard needs --targets")
            assert target is not None
            co = connect_options(target, user, password, password_file, namespace,
                                 auth_level, timeout, source, rpc_port)
    except opt.UsageError as e:
        raise usage_error(str(e)) from None
    pool = ListenerPool(resolver_port)
    if target is not None:
        rep = asyncio.run(_single(DoctorRequest(target, co, m), pool))
        if rep.error is not None and rep.failed is None:
            raise usage_error(rep.error)
        if as_json_:
            sys.stdout.write(json.dumps(rep.as_json(), indent=2) + "\n")
        else:
            render_report(_out(), rep)
        raise typer.Exit(EXIT_OK if rep.ok else EXIT_FAILED)
    reports = _fleet(entries, DoctorRequest("", co, m), pool, concurrency, as_json_)
    if not as_json_:
        render_summary(_out(), reports)
    raise typer.Exit(EXIT_OK if all(r.ok for r in reports) else EXIT_FAILED)


async def _single(req: DoctorRequest, pool: ListenerPool) -> DoctorReport:
    try:
        return await diagnose(req, pool)
    finally:
        await pool.close()


def _fleet(entries: list[FleetEntry], base: DoctorRequest, pool: ListenerPool,
           concurrency: int, as_json_: bool) -> list[DoctorReport]:
    out = _out()
    show = sys.stderr.isatty() and not as_json_
    progress = Progress(TextColumn("doctor"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=_err(), disable=not show, transient=True)
    task = progress.add_task("hosts", total=len(entries))

    def done(rep: DoctorReport) -> None:
        if as_json_:
            sys.stdout.write(json.dumps(rep.as_json()) + "\n")
        else:
            f = rep.failed
            line = (f"{rep.target}\t{rep.result}\t"
                    + ("" if f is None else f"{hr.lookup(f.hresult).symbol}\t{f.step}")
                    + (f"\t{rep.error}" if rep.error else ""))
            if show:
                progress.console.print(escape(line))
            else:
                out.print(escape(line))
        progress.advance(task)

    async def run() -> list[DoctorReport]:
        try:
            return await run_fleet(entries, base, concurrency=concurrency, pool=pool,
                                   on_done=done)
        finally:
            await pool.close()

    with progress:
        return asyncio.run(run())
