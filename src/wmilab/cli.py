"""The `wmilab` command.

Help texts are Markdown (the app's `rich_markup_mode`), so a docstring's paragraphs are
wrapped by the terminal, not where the source breaks its lines. Every command's help ends
with one example and its exit codes; tests/test_cli_help.py checks all of them.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated

import typer
import typer.rich_utils
from rich.markup import escape
from typer.core import TyperOption

from wmilab import __version__, report
from wmilab.errors import ConfigError
from wmilab.lab.commands import lab_app
from wmilab.realhost import commands as realhost
from wmilab.scenario import Scenario, ScenarioError, load
from wmilab.terminal import EXIT_BAD_INPUT, EXIT_MISMATCH, EXIT_OK, err, error, no_color, out, write, write_json

app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown", pretty_exceptions_enable=False)

# typer prints a value type for every option, `<bool>` even for a flag, which takes no value.
_display_type = TyperOption.display_type_rich
TyperOption.display_type_rich = (  # type: ignore[method-assign]
    lambda self, ctx: None if self.is_flag else _display_type(self, ctx))
if no_color():
    typer.rich_utils.COLOR_SYSTEM = None   # help and usage errors in plain text too

__all__ = ["EXIT_OK", "app", "err", "main", "out"]


def _version(value: bool) -> None:
    if value:
        write(f"wmilab {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", help="Print the version of wmilab and exit.", is_eager=True,
        callback=_version)] = False,
) -> None:
    """Remote WMI through Windows Firewall and DCOM: explain, fix, emulate, call.

    A scenario file (TOML) describes computers, their firewalls, DCOM and WMI settings,
    and the WMI calls made between them. `check` says for each call whether it works and,
    if not, which connection and step stop it, with which HRESULT, and the smallest
    least-privilege fix. `examples` lists the scenarios that ship with wmilab.

    Example: `wmilab examples 03 -o async.toml && wmilab check async.toml`

    Exit codes: 0 success; 1 a result differs from what was expected; 2 bad usage or a
    file that cannot be used. Each command's help says what its codes mean.
    """


def _example_names(incomplete: str) -> list[str]:
    from wmilab import examples as shipped

    return [ex.name for ex in shipped.all_examples() if ex.name.startswith(incomplete)]


@app.command()
def examples(
    name: Annotated[str | None, typer.Argument(
        help="An example's name as listed, with or without .toml, or its number (`3` or "
        "`03`). Without a name, list the examples.", show_default=False,
        autocompletion=_example_names)] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Write the example to this file (it must not exist yet). "
        "Without it, the example is printed.", show_default=False)] = None,
) -> None:
    """List the scenarios that ship with wmilab, or copy one out to start from.

    The examples follow the seed page, *Connecting Through Windows Firewall*, step by step:
    the firewall blocking Connection 1, the Remote Administration exception, an
    asynchronous call that also needs Connection 2, the callback from a workgroup or an
    untrusted domain, and a user who is not an administrator.

    Example: `wmilab examples 03-async-a-unconfigured -o async.toml`

    Exit codes: 0 when listed or copied, 2 for an unknown name or an output file that
    exists or cannot be written.
    """
    from wmilab import examples as shipped

    if name is None:
        if output is not None:
            error("--output needs the NAME of an example (see `wmilab examples`)")
            raise typer.Exit(EXIT_BAD_INPUT)
        found = shipped.all_examples()
        if not found:
            error(f"no examples are installed (looked in {shipped.directory()})")
            raise typer.Exit(EXIT_BAD_INPUT)
        width = max(len(ex.name) for ex in found)
        for ex in found:
            out.print(f"[bold]{ex.name:<{width}}[/]  {escape(ex.title)}")
        return
    example = shipped.find(name)
    if example is None:
        error(f"no example called {name!r}; the examples are: "
              + ", ".join(ex.name for ex in shipped.all_examples()))
        raise typer.Exit(EXIT_BAD_INPUT)
    if output is None:
        write(example.text)
        return
    try:
        with output.open("x", encoding="utf-8") as f:
            f.write(example.text)
    except FileExistsError:
        error(f"--output {output}: the file exists already; choose another name")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except OSError as e:
        error(f"--output {output}: cannot write it: {e.strerror or e}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    out.print(f"wrote {escape(str(output))} ({escape(example.title)})")


def _load(path: Path) -> Scenario:
    # Loading makes no cyclic garbage (tests/test_check_scale.py), only objects that live as
    # long as the scenario: the cyclic collector would walk the growing heap again and again
    # while a big file loads (a fifth of a 10,000-host load, docs/benchmarks.md).
    gc.disable()
    try:
        scenario = load(path)
    except ScenarioError as e:
        error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    finally:
        gc.enable()
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

    A call that fails is named by its connection (1: A to B; 2: B's callback to A's sink),
    the step that stops it and the HRESULT the client gets, followed by the fixes that make
    it work, each proven by evaluating the changed scenario again.

    Example: `wmilab check async.toml`

    Exit codes: 0 when every call's `expect` matches (or none has one), 1 when any does not,
    2 for a file that cannot be used.
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
        write_json(report.as_json(scenario, reports))
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

    Each hop is marked passed or blocked; a failing call shows its step, its HRESULT in
    words and the first fix. The verdict is the one `wmilab check` gives.

    Example: `wmilab draw async.toml --call "async query" -o call.svg`

    Exit codes: 0 when the picture was written (whatever the verdict), 2 for a file that
    cannot be used, an unknown call or an output that cannot be written.
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

    Each netsh command, setting and grant that it adds carries a comment with its reason.
    Calls that no configuration can fix are listed with the reason. The input file is
    left as it is.

    Example: `wmilab fix blocked.toml -o fixed.toml`

    Exit codes: 0 when the written scenario works as fixed, 1 when a call still fails
    after the fix, 2 for a file that cannot be used or an output that cannot be written.
    """
    from wmilab.fixfile import fix as do_fix

    scenario = _load(file)
    outcome = do_fix(scenario, prefer_semisync=semisync)
    try:
        output.write_text(outcome.text, encoding="utf-8")
    except OSError as e:
        error(f"cannot write {output}: {e.strerror or e}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    for call, changes in outcome.applied:
        out.print(f"[green]fixed[/] {escape(call.name)}: "
                  + escape("; ".join(c.summary for c in changes)))
    for call in outcome.already_ok:
        out.print(f"[dim]ok already[/] {escape(call.name)}")
    for call, reason in outcome.unfixable:
        out.print(f"[yellow]cannot fix[/] {escape(call.name)}: {escape(reason)}")
    for name, result in outcome.still_failing:
        error(f"{name} still fails ({result}) after the fix")
    out.print(f"wrote {escape(str(output))}")
    if outcome.still_failing:
        raise typer.Exit(EXIT_MISMATCH)


@app.command()
def netsh(
    file: Annotated[Path, typer.Argument(help="Scenario file (TOML).", show_default=False)],
    host: Annotated[str, typer.Argument(help="Host name in the scenario.", show_default=False)],
    command: Annotated[str, typer.Argument(help='For example "firewall show config".',
                                           show_default=False)],
) -> None:
    """Run a netsh firewall or advfirewall command (or "int ipv4 show dynamicport tcp") on a
    host's configuration and print what netsh prints.

    The command runs on the firewall that the scenario gives the host (its Windows
    defaults, then its netsh lines, then Group Policy). A command that changes something
    (add, set, delete) shows its effect, but the file is not changed.

    Example: `wmilab netsh async.toml A "firewall show config"`

    Exit codes: 0 when the command ran, 2 for a file that cannot be used, an unknown host
    or a command that netsh would reject.
    """
    scenario = _load(file)
    match = {h.upper(): h for h in scenario.world.configs}.get(host.upper())
    if match is None:
        error(f"{file}: no host {host!r} (hosts: "
                  f"{', '.join(scenario.world.configs)})")
        raise typer.Exit(EXIT_BAD_INPUT)
    text = command.strip()
    from wmilab.model import netshwords

    first = text.split(None, 1)[0].lower() if text else ""
    if first not in ("netsh", "netsh.exe") and netshwords.match(first, netshwords.TOP) not in (
            "firewall", "advfirewall", "interface"):
        text = "firewall " + text
    if not command.strip():
        example = ("advfirewall firewall show rule name=all"
                   if scenario.world.host(match).spec.modern else "firewall show config")
        error(f"{file}: {match}: COMMAND is empty (for example \"{example}\")")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        result = scenario.world.host(match).netsh_show(text)
    except ConfigError as e:
        # The place is the command line's argument: the file, the host and the command.
        error(f"{file}: {match}: {command.strip()!r}: {e.message}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    write(result)


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

    Real clients such as impacket and aiowmi connect to it unmodified; its firewall,
    logon, DCOM and WMI decisions come from the same model as `check`. Each connection,
    logon and call is logged on one line. Ctrl-C stops it. Port 135 needs root (or a
    lower `net.ipv4.ip_unprivileged_port_start`).

    Example: `wmilab host remote-admin.toml B`

    Exit codes: 0 after Ctrl-C, 2 for a file that cannot be used, an unknown host or an
    address and port that cannot be bound.
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
        error(f"{file}: no host {name!r} (hosts: "
                  f"{', '.join(scenario.world.configs)})")
        raise typer.Exit(EXIT_BAD_INPUT)
    source = client
    if source is not None:
        if source.upper() not in names:
            error(f"--client {source!r} is not a host of {file}")
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
            error(str(e))
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except HostBindError as e:
            error(str(e.strerror))
            raise typer.Exit(EXIT_BAD_INPUT) from None
        out.print(f"{match} serving on {server.address} (RPCSS {server.ports['rpcss']}, "
                  f"WMI {server.ports['wmi']}); clients from other addresses count as "
                  f"{source or 'themselves'}. Ctrl-C stops.")
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    from wmilab.host import eventloop

    try:
        with contextlib.suppress(KeyboardInterrupt):
            eventloop.run(serve())  # uvloop's loop when installed (host/eventloop.py)
    except ConfigError as e:  # a bad WMILAB_EVENT_LOOP
        error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    out.print("stopped")


# `wmilab lab FILE` and `wmilab lab up|exec|status|down FILE` (src/wmilab/lab/commands.py).
app.add_typer(lab_app, name="lab")


# Calling real hosts (src/wmilab/realhost/commands.py).
app.command()(realhost.query)
app.command()(realhost.doctor)


def main() -> None:
    app(prog_name="wmilab")   # also under `python -m wmilab`: usage, completion and errors say wmilab


if __name__ == "__main__":
    main()
