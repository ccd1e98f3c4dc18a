"""The `wmilab query` and `wmilab doctor` commands: their options (registered by
``wmilab.cli``). The work is in :mod:`wmilab.realhost.main`, imported when a command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["doctor", "query"]

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
    from wmilab.realhost.main import query_command

    query_command(target, wql, user, password, password_file, namespace, mode, auth_level,
                  timeout, source, as_json_, as_csv_, rpc_port, resolver_port)


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
    from wmilab.realhost.main import doctor_command

    doctor_command(target, user, password, password_file, namespace, mode, auth_level,
                   timeout, source, as_json_, targets, concurrency, shard, rpc_port,
                   resolver_port)
