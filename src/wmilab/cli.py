"""The `wmilab` command."""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from wmilab import report
from wmilab.errors import ConfigError
from wmilab.lab.commands import lab_app
from wmilab.realhost import commands as realhost
from wmilab.scenario import Scenario, ScenarioError, load

app = typer.Typer(
    help="Remote WMI through Windows Firewall and DCOM: explain, fix, emulate, call.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
# Piped output (CI logs, files) gets 120 columns instead of rich's 80, so tables stay legible.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


def _load(path: Path) -> Scenario:
    try:
        scenario = load(path)
    except ScenarioError as e:
        err.print(f"[red]error:[/] {e}", markup=True, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    # The scenario lives as long as the command: keep the cyclic garbage collector from
    # walking its objects (a 10,000-host fleet is millions) on every full collection.
    gc.freeze()
    return scenario


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="Scenario file (TOML).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Show every step, not only the failing one.")] = False,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Also write the report as one self-contained HTML page, with the "
        "seed's picture for every call.", show_default=False)] = None,
) -> None:
    """Say for each call whether it works, why not, and the smallest fix.

    Exit code: 0 when every `expect` matches, 1 when any does not, 2 for a file
    that cannot be used.
    """
    scenario = _load(file)
    # Evaluating calls and searching fixes makes no cyclic garbage (tests/test_check_scale.py
    # holds this), only objects that live until the report is printed: the cyclic collector
    # would walk them again and again for nothing (a sixth of a 10,000-host check).
    gc.disable()
    reports = report.evaluate(scenario)
    if html is not None:
        from wmilab.htmlreport import page

        _write(html, page(scenario, reports))
    if as_json:
        sys.stdout.write(json.dumps(report.as_json(scenario, reports), indent=2) + "\n")
    else:
        report.render(out, scenario, reports, verbose)
    if any(r.verdict.matches() is False for r in reports):
        raise typer.Exit(EXIT_MISMATCH)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        err.print(f"[red]error:[/] cannot write {path}: {e.strerror or e}")
        raise typer.Exit(EXIT_BAD_INPUT) from None


@app.command()
def draw(
    file: Annotated[Path, typer.Argument(help="Scenario file (TOML).", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the SVG.",
                                         show_default=False)],
    call: Annotated[str | None, typer.Option(
        "--call", help="Name of the call to draw (default: the first).", show_default=False)] = None,
) -> None:
    """Draw the seed's picture of one call as SVG: A, B, their firewalls and connections.

    Each hop is marked passed or blocked; a failing call shows its step, HRESULT and first fix.
    """
    from wmilab.picture import pick_call, svg

    scenario = _load(file)
    try:
        chosen = pick_call(scenario, call)
    except ConfigError as e:
        err.print(f"[red]error:[/] {file}: {e.message}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    rep = report.evaluate_call(scenario, chosen)
    _write(output, svg(scenario.world, rep))
    out.print(f"wrote {output} ({chosen.name}: {rep.verdict.result})")


@app.command()
def fix(
    file: Annotated[Path, typer.Argument(help="Scenario file (TOML).", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the fixed "
                                         "scenario.", show_default=False)],
    semisync: Annotated[bool, typer.Option(
        "--semisync", help="Where an asynchronous call fails on Connection 2, make it "
        "semisynchronous instead of opening computer A.")] = False,
) -> None:
    """Write the scenario with the smallest least-privilege fixes applied.

    Each added netsh command, setting and grant carries a comment with its reason.
    Calls that no configuration can fix are listed with the reason.
    """
    from wmilab.fixfile import fix as do_fix

    scenario = _load(file)
    outcome = do_fix(scenario, prefer_semisync=semisync)
    try:
        output.write_text(outcome.text, encoding="utf-8")
    except OSError as e:
        err.print(f"[red]error:[/] cannot write {output}: {e.strerror or e}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    for call, changes in outcome.applied:
        out.print(f"[green]fixed[/] {call.name}: " + "; ".join(c.summary for c in changes))
    for call in outcome.already_ok:
        out.print(f"[dim]ok already[/] {call.name}")
    for call, reason in outcome.unfixable:
        out.print(f"[yellow]cannot fix[/] {call.name}: {reason}")
    for name, result in outcome.still_failing:
        err.print(f"[red]error:[/] {name} still fails ({result}) after the fix")
    out.print(f"wrote {output}")
    if outcome.still_failing:
        raise typer.Exit(EXIT_MISMATCH)


@app.command()
def netsh(
    file: Annotated[Path, typer.Argument(help="Scenario file (TOML).", show_default=False)],
    host: Annotated[str, typer.Argument(help="Host name in the scenario.", show_default=False)],
    command: Annotated[str, typer.Argument(help='For example "firewall show config".',
                                           show_default=False)],
) -> None:
    """Run a netsh firewall (or, Vista and later, advfirewall) command on a host's resulting
    configuration and print its output.

    Changes (add/set/delete) are shown but not saved to the file.
    """
    scenario = _load(file)
    match = {h.upper(): h for h in scenario.world.configs}.get(host.upper())
    if match is None:
        err.print(f"[red]error:[/] {file}: no host {host!r} (hosts: "
                  f"{', '.join(scenario.world.configs)})")
        raise typer.Exit(EXIT_BAD_INPUT)
    text = command.strip()
    if not text.lower().startswith(("netsh ", "firewall", "advfirewall")):
        text = "firewall " + text
    try:
        result = scenario.world.host(match).netsh_show(text)
    except ConfigError as e:
        err.print(f"[red]error:[/] {e.message}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    sys.stdout.write(result if result.endswith("\n") else result + "\n")


@app.command()
def host(
    file: Annotated[Path, typer.Argument(help="Scenario file (TOML).", show_default=False)],
    name: Annotated[str, typer.Argument(help="Host name in the scenario.", show_default=False)],
    address: Annotated[str | None, typer.Option(
        "--address", help="IP address to listen on (default: the host's loopback address, "
        "e.g. 127.168.10.2 for 192.168.10.2).", show_default=False)] = None,
    client: Annotated[str | None, typer.Option(
        "--client", help="Scenario host that connections from other addresses (such as "
        "127.0.0.1) come from (default: the 'from' host of the first call to HOST).",
        show_default=False)] = None,
    loopback_net: Annotated[str | None, typer.Option(
        "--loopback-net", help="Loopback network the scenario's addresses map into (default "
        "127.0.0.0/8: 192.168.10.2 becomes 127.168.10.2; with 127.77.0.0/16 it becomes "
        "127.77.10.2).", show_default=False)] = None,
) -> None:
    """Run one emulated Windows host in the foreground: RPCSS on 135, WMI on a dynamic port.

    impacket and aiowmi connect to it unmodified. Logs each connection, logon and call
    on one line; Ctrl-C stops it.
    """
    import asyncio
    import contextlib
    import logging

    from wmilab.host.gate import default_client
    from wmilab.host.loopback_map import LoopbackMap, loopback_network
    from wmilab.host.server import HostBindError, HostServer

    scenario = _load(file)
    names = {h.upper(): h for h in scenario.world.configs}
    match = names.get(name.upper())
    if match is None:
        err.print(f"[red]error:[/] {file}: no host {name!r} (hosts: "
                  f"{', '.join(scenario.world.configs)})")
        raise typer.Exit(EXIT_BAD_INPUT)
    source = client
    if source is not None:
        if source.upper() not in names:
            err.print(f"[red]error:[/] --client {source!r} is not a host of {file}")
            raise typer.Exit(EXIT_BAD_INPUT)
        source = names[source.upper()]
    else:
        source = default_client(scenario.world, match,
                                [(c.source, c.target) for c in scenario.calls])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    async def serve() -> None:
        try:
            network = None if loopback_net is None else loopback_network(loopback_net)
            addresses = LoopbackMap.for_world(scenario.world, network)
            server = HostServer(scenario.world, match, address=address, client_host=source,
                                addresses=addresses)
            await server.start()
        except ConfigError as e:
            err.print(f"[red]error:[/] {e}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except HostBindError as e:
            err.print(f"[red]error:[/] {e.strerror}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        out.print(f"{match} serving on {server.address} (RPCSS {server.ports['rpcss']}, "
                  f"WMI {server.ports['wmi']}); clients from other addresses count as "
                  f"{source or 'themselves'}. Ctrl-C stops.")
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    out.print("stopped")


# `wmilab lab FILE` and `wmilab lab up|exec|status|down FILE` (src/wmilab/lab/commands.py).
app.add_typer(lab_app, name="lab")


# Calling real hosts (src/wmilab/realhost/commands.py).
app.command()(realhost.query)
app.command()(realhost.doctor)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
