"""The `wmilab query` and `wmilab doctor` commands (registered by ``wmilab.cli``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from wmilab.client.session import ConnectOptions, StepFailed
from wmilab.realhost import options as opt
from wmilab.realhost.query import (
    QueryRequest,
    ResolverBindError,
    as_csv,
    as_json,
    cells,
    failure_line,
    run_query,
)

__all__ = ["query"]

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
