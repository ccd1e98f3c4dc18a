"""What `wmilab check` prints: one block per call, as text or as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape

from wmilab import flow
from wmilab.remedy import Remedy, remedy
from wmilab.scenario import Call, Scenario


@dataclass
class CallReport:
    verdict: flow.Verdict
    remedy: Remedy | None

    def as_json(self) -> dict[str, Any]:
        v = self.verdict
        call = v.call
        failed = v.failed
        fixes = [] if self.remedy is None else [c.as_json() for c in self.remedy.all_changes()]
        out: dict[str, Any] = {
            "name": call.name, "from": call.source, "to": call.target, "mode": call.mode,
            "user": call.user, "namespace": call.namespace,
            "result": v.result,
            "symbol": v.hresult.symbol,
            "meaning": None if v.ok else v.hresult.meaning,
            "connection": None if failed is None else failed.connection,
            "step": None if failed is None else failed.id,
            "explanation": (f"{failed.title}: {failed.detail}" if failed is not None
                            else "every step of the call succeeds"),
            "expect": None if call.expect is None else (
                call.expect[0] if len(call.expect) == 1 else list(call.expect)),
            "matches": v.matches(),
            "fixes": fixes,
            "fix_proven": None if self.remedy is None else self.remedy.proven,
            "unfixable": None if self.remedy is None else self.remedy.unfixable,
            "trace": [
                {"step": s.id, "connection": s.connection, "host": s.host, "title": s.title,
                 "ok": s.ok, "detail": s.detail} for s in v.steps],
        }
        return out


def evaluate(scenario: Scenario, *, fixes: bool = True) -> list[CallReport]:
    return [evaluate_call(scenario, call, fixes=fixes) for call in scenario.calls]


def evaluate_call(scenario: Scenario, call: Call, *, fixes: bool = True) -> CallReport:
    v = flow.evaluate(scenario.world, call)
    r = None if v.ok or not fixes else remedy(scenario.world, call)
    return CallReport(v, r)


def as_json(scenario: Scenario, reports: list[CallReport]) -> dict[str, Any]:
    return {"scenario": scenario.path, "title": scenario.title,
            "warnings": scenario.warnings(),
            "calls": [r.as_json() for r in reports]}


def render(console: Console, scenario: Scenario, reports: list[CallReport],
           verbose: bool = False) -> None:
    title = scenario.title or scenario.path
    console.print(f"[bold]{escape(title)}[/]  [dim]({escape(scenario.path)})[/]")
    for w in scenario.warnings():
        console.print(f"[yellow]warning:[/] {escape(w)}")
    for rep in reports:
        console.print()
        _render_call(console, rep, verbose)
    console.print()
    console.print(f"[bold]{summary(reports)}[/]")


def summary(reports: list[CallReport]) -> str:
    """The closing line of the report: how many calls work, and whether each expect matches."""
    ok = sum(1 for r in reports if r.verdict.ok)
    mism = sum(1 for r in reports if r.verdict.matches() is False)
    line = f"{ok} of {len(reports)} calls work"
    if any(r.verdict.call.expect is not None for r in reports):
        line += f"; {mism} do not match their expect" if mism else "; every expect matches"
    return line


def render_call(console: Console, rep: CallReport, verbose: bool = False) -> None:
    """One call's block of the report: verdict, failing step, HRESULT and fix."""
    _render_call(console, rep, verbose)


def _render_call(console: Console, rep: CallReport, verbose: bool) -> None:
    v = rep.verdict
    call = v.call
    head = (f"{escape(call.name)}  [dim]{call.source} → {call.target}, {call.mode}, "
            f"{escape(call.user)}[/]")
    match = v.matches()
    tail = ""
    if match is True:
        tail = "  [green](as expected)[/]"
    elif match is False:
        exp = " or ".join(call.expect or ())
        tail = f"  [red bold](expected {exp})[/]"
    if v.ok:
        console.print(f"[green bold]✔ OK[/]    {head}{tail}")
    else:
        console.print(f"[red bold]✘ FAILS[/] {head}{tail}")
    failed = v.failed
    if verbose or failed is not None:
        for s in v.steps:
            if s.ok and not verbose:
                continue
            mark = "[green]✔[/]" if s.ok else "[red]✘[/]"
            console.print(f"   {mark} Connection {s.connection} · {s.id} · {escape(s.title)}")
            console.print(f"       [dim]{escape(s.detail)}[/]")
    if failed is not None and failed.hresult is not None:
        console.print(f"   [bold]{failed.hresult.hex} {failed.hresult.symbol}[/]: "
                      f"{escape(failed.hresult.meaning)}")
    r = rep.remedy
    if r is None:
        return
    if r.unfixable and not r.semisync:
        console.print(f"   [yellow]No configuration fixes this:[/] {escape(r.unfixable)}")
        return
    changes = r.all_changes()
    proof = "proven by re-evaluation" if r.proven or r.semisync else "not proven"
    console.print(f"   [bold]Fix[/] [dim]({proof}; least privilege)[/]:")
    n = 0
    if r.semisync:
        for ch in r.semisync:
            n += 1
            _render_change(console, n, ch)
        if r.changes:
            console.print("     [dim]or keep the call asynchronous and apply:[/]")
    for ch in r.changes:
        if r.semisync and ch in r.semisync:
            continue
        n += 1
        _render_change(console, n, ch)
    if r.unfixable and r.semisync:
        console.print(f"     [dim]Asynchronous as it is: {escape(r.unfixable)}[/]")
    del changes


def _render_change(console: Console, n: int, ch: Any) -> None:
    where = f"{ch.kind} on {ch.host}" if ch.host else ch.kind
    console.print(f"     {n}. [cyan]\\[{escape(where)}][/] {escape(ch.summary)}")
    for cmd in ch.commands:
        console.print(f"          [bold]{escape(cmd)}[/]", soft_wrap=True)
