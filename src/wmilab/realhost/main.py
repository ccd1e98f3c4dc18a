"""What `wmilab query` and `wmilab doctor` do once their options are parsed: run, print, exit.

``realhost/commands.py`` holds the typer signatures and imports this module only when a
command runs, so that `wmilab --help` and the other commands do not load the client.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from wmilab import hresult as hr
from wmilab import steps
from wmilab.client.session import ConnectOptions, StepFailed
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

__all__ = ["doctor_command", "query_command"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def usage_error(message: str) -> typer.Exit:
    _err().print(f"[red]error:[/] {escape(message)}", markup=True, highlight=False)
    return typer.Exit(EXIT_BAD_INPUT)


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


def query_command(target: str, wql: str, user: str, password: str | None,
                  password_file: Path | None, namespace: str, mode: str, auth_level: str,
                  timeout: float, source: str | None, as_json_: bool, as_csv_: bool,
                  rpc_port: int, resolver_port: int) -> None:
    """`wmilab query`; raises typer.Exit with the exit code."""
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
        _err().print(f"[red]error:[/] {escape(failure_line(e))}", markup=True, highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    except ResolverBindError as e:
        raise usage_error(str(e)) from None
    if as_json_:
        sys.stdout.write(as_json(rows) + "\n")
    elif as_csv_:
        sys.stdout.write(as_csv(rows))
    else:
        cols, body = cells(rows)
        # Values are data, never markup: a WMI string may hold "[...]".
        table = Table(title=Text(f"{wql}  ({len(rows)} rows from {target})"))
        for c in cols:
            table.add_column(Text(c))
        for line in body:
            table.add_row(*(Text(x) for x in line))
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


def doctor_command(target: str | None, user: str, password: str | None,
                   password_file: Path | None, namespace: str, mode: str, auth_level: str,
                   timeout: float, source: str | None, as_json_: bool, targets: Path | None,
                   concurrency: int, shard: str | None, rpc_port: int,
                   resolver_port: int) -> None:
    """`wmilab doctor`; raises typer.Exit with the exit code."""
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
