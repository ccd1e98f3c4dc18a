"""The seed's picture of one call as an SVG: A and B, their firewalls, and the connections.

The picture is the diagram of the seed page (a WMI client on computer A, WMI on computer B,
a Windows Firewall in front of each, Connection 1 from A to B and, for an asynchronous call,
Connection 2 from B back to the sink on A), drawn for one call of a scenario and coloured by
what ``flow.evaluate`` found. Nothing here decides anything: every mark comes from a step of
the verdict, every fix from ``remedy``.

Each connection is drawn as the TCP connections it is made of, because that is what a
firewall sees (seed: TCP 135 first, then the service's port): a *hop* is one of them.

- Connection 1: A to RPCSS on B (TCP 135), then A to the WMI service's port on B.
- Connection 2: B to the OXID resolver on A (TCP 135), then B to the sink's port on A.

A hop is *passed* when every step drawn on it succeeded, *blocked* when the failing step
is on it, *unreached* when the call stopped before it. Where each step is drawn comes from
the step table (``wmilab.steps``): its firewall steps are the hops, and every other step
sits on the TCP connection it happens on, at the computer whose settings decide it
(``HOP_OF_STEP``).

The SVG carries machine-readable marks for tests and tools: every hop is a ``<g>`` with
``class="hop passed|blocked|unreached"``, ``data-hop`` and ``data-steps``; every step mark
has ``data-step``; the failure panel has ``class="failure"``, ``data-step`` and
``data-hresult``.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import drawsvg as dw

from wmilab import flow, steps
from wmilab.errors import ConfigError

if TYPE_CHECKING:
    from wmilab.model.world import HostModel, World
    from wmilab.report import CallReport
    from wmilab.scenario import Call, Scenario

__all__ = ["HOPS", "HOP_OF_STEP", "Hop", "draw", "pick_call", "svg"]

Place = Literal["start", "wall", "end"]
State = Literal["passed", "blocked", "unreached"]


@dataclass(frozen=True)
class Hop:
    """One TCP connection of the picture: a firewall step of the step table and its lane."""

    key: str  # "c1-rpcss", "c1-wmi", "c2-rpcss", "c2-sink"
    connection: int
    firewall: steps.FirewallHop  # the listener it reaches, and so its port
    lane: int  # 0..3, top to bottom

    def label(self, listener: HostModel) -> str:
        name = {"rpcss": "RPCSS" if self.connection == 1 else "the OXID resolver",
                "wmi": "the WMI service", "sink": "the sink"}.get(self.firewall.purpose,
                                                                self.firewall.purpose)
        return f"Connection {self.connection}: TCP {_port_text(self.firewall, listener)} to {name}"


def _port_text(hop: steps.FirewallHop, listener: HostModel) -> str:
    """135, or the listener's dynamic RPC range (the program picks one port of it)."""
    port = hop.port(listener)
    return str(port) if port is not None else listener.rpc_ports.describe()


def _table_hops() -> tuple[Hop, ...]:
    """The firewall steps of the step table, in order: one hop (and lane) each."""
    out: list[Hop] = []
    for sid in steps.ORDER:
        spec = steps.TABLE[sid]
        if spec.hop is not None:
            out.append(Hop(f"c{spec.connection}-{spec.hop.purpose}", spec.connection, spec.hop,
                           len(out)))
    return tuple(out)


HOPS = _table_hops()


def _place(sid: str) -> tuple[str, Place]:
    """Where the step table puts a step: a firewall step on its hop's wall; any other on the
    TCP connection it happens on (the last firewall step before it in its connection), at the
    end of the computer whose settings decide it: the caller's ("start") or the callee's."""
    spec = steps.TABLE[sid]
    caller = "A" if spec.connection == 1 else "B"  # Connection 2 is B calling A back
    if spec.hop is not None:
        return f"c{spec.connection}-{spec.hop.purpose}", "wall"
    before = [steps.TABLE[x] for x in steps.ORDER[:spec.index]]
    hops = [f"c{b.connection}-{b.hop.purpose}" for b in before
            if b.hop is not None and b.connection == spec.connection]
    first = next(h.key for h in HOPS if h.connection == spec.connection)
    return (hops[-1] if hops else first), ("start" if spec.decider == caller else "end")


HOP_OF_STEP: dict[str, tuple[str, Place]] = {sid: _place(sid) for sid in steps.ORDER}


def place_of(step: flow.Step) -> tuple[str, Place]:
    """The hop and point a step is drawn at (a step not in the table: the first hop of its
    connection, so that it still shows)."""
    found = HOP_OF_STEP.get(step.id)
    if found is not None:
        return found
    first = next(h.key for h in HOPS if h.connection == step.connection)
    return first, "end"


# Colours an administrator reads without a legend; red and green also differ in the marks
# (✘ / ✔) and in the line style, for readers who do not tell them apart.
GREEN, RED, GREY, INK, MUTED = "#2e7d32", "#c62828", "#9e9e9e", "#212121", "#616161"
WALL, WALL_OFF, BOX, SUB = "#e65100", "#ffcc80", "#f5f5f5", "#ffffff"
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Consolas, monospace"

W = 1000
TOP = 74  # top of the computer boxes
BOX_H = 306
A_X, A_W = 20, 250
FW_A_X = 290
FW_B_X = 690
FW_W = 20
B_X, B_W = 730, 250
LANE_Y = (152, 216, 278, 338)
WRAP = 128  # characters per line in the panels below the picture (13 px sans)


def _hop_states(verdict: flow.Verdict) -> dict[str, State]:
    states: dict[str, State] = {}
    reached: dict[str, bool] = {}
    for s in verdict.steps:
        key, _ = place_of(s)
        reached[key] = True
        if not s.ok:
            states[key] = "blocked"
    for h in HOPS:
        if h.key not in states:
            states[h.key] = "passed" if reached.get(h.key) else "unreached"
    return states


def _wrap(text: str, width: int = WRAP) -> list[str]:
    return textwrap.wrap(text, width) or [""]


class _Canvas:
    """A drawsvg drawing plus the few shapes this picture repeats."""

    def __init__(self, height: int, prefix: str, **attrs: str) -> None:
        self.d = dw.Drawing(W, height, id_prefix=prefix, font_family=FONT, **attrs)
        self.d.append(dw.Rectangle(0, 0, W, height, fill="#ffffff"))

    def text(self, parent: dw.Group | dw.Drawing, s: str, x: float, y: float, size: float = 13,
             **kw: str | float) -> None:
        parent.append(dw.Text(s, size, x, y, fill=kw.pop("fill", INK), **kw))

    def box(self, parent: dw.Group | dw.Drawing, x: float, y: float, w: float, h: float,
            title: str, sub: str = "", **kw: str | float) -> None:
        parent.append(dw.Rectangle(x, y, w, h, rx=6, fill=SUB, stroke="#757575", **kw))
        self.text(parent, title, x + 10, y + 20, 13, font_weight="bold")
        if sub:
            self.text(parent, sub, x + 10, y + 37, 12, fill=MUTED)

    def mark(self, parent: dw.Group, x: float, y: float, ok: bool, step: flow.Step) -> None:
        g = dw.Group(class_="check " + ("passed" if ok else "blocked"), data_step=step.id)
        g.append(dw.Title(f"{'✔' if ok else '✘'} {step.id}: {step.title}. {step.detail}"))
        g.append(dw.Circle(x, y, 10, fill=GREEN if ok else RED, stroke="#ffffff", stroke_width=2))
        g.append(dw.Text("✔" if ok else "✘", 13, x, y + 5, fill="#ffffff", text_anchor="middle",
                         font_weight="bold"))
        parent.append(g)


_COLOUR = {"passed": GREEN, "blocked": RED, "unreached": GREY}
_STYLE: dict[str, dict[str, str]] = {"bold": {"font_weight": "bold"}, "code": {"font_family": MONO},
                                     "hresult": {"font_weight": "bold", "fill": RED}, "plain": {}}


def draw(world: World, rep: CallReport, prefix: str = "wmilab") -> dw.Drawing:
    """The picture of one call of a scenario, as a drawsvg drawing."""
    v = rep.verdict
    call = v.call
    panel = _panel_lines(rep)
    checklist = _checklist(v)
    height = TOP + BOX_H + 30 + 20 * len(panel) + 26 + 18 * len(checklist) + 20
    c = _Canvas(height, prefix, data_call=call.name, data_result=v.result, role="img")
    c.d.append(dw.Title(f"{call.name}: {'works' if v.ok else 'fails with ' + v.result}"))
    _heading(c, v)
    _computers(c, world, call)
    _hops(c, world, v)
    _below(c, v, panel, checklist)
    return c.d


def _heading(c: _Canvas, v: flow.Verdict) -> None:
    """Which call, and the verdict in one word."""
    call, d = v.call, c.d
    c.text(d, call.name, 20, 26, 17, font_weight="bold")
    c.text(d, f"{call.source} → {call.target} · {call.mode} · {call.user} · {call.namespace}",
           20, 46, 12, fill=MUTED)
    badge = "WORKS" if v.ok else f"FAILS  {v.result}"
    bw = 90 if v.ok else 190
    d.append(dw.Rectangle(W - 20 - bw, 12, bw, 28, rx=14, fill=GREEN if v.ok else RED))
    c.text(d, badge, W - 20 - bw / 2, 31, 14, fill="#ffffff", text_anchor="middle",
           font_weight="bold")


def _computers(c: _Canvas, world: World, call: Call) -> None:
    """Computers A and B with their scenario names, addresses and services; their firewalls."""
    a, b = world.host(call.source), world.host(call.target)
    d = c.d
    for x, w, role, host in ((A_X, A_W, "A", a), (B_X, B_W, "B", b)):
        g = dw.Group(class_="computer", data_role=role, data_host=host.name)
        g.append(dw.Rectangle(x, TOP, w, BOX_H, rx=10, fill=BOX, stroke="#424242", stroke_width=1.5))
        c.text(g, f"Computer {role}: {host.name}", x + 12, TOP + 22, 15, font_weight="bold")
        c.text(g, str(host.config.address.ip), x + 12, TOP + 40, 12.5, fill=MUTED,
               font_family=MONO, class_="address")
        d.append(g)
    is_async = call.mode == "async"
    c.box(d, A_X + 12, LANE_Y[0] - 24, A_W - 24, LANE_Y[1] - LANE_Y[0] + 46, "WMI client",
          f"as {call.user}")
    c.box(d, B_X + 12, LANE_Y[0] - 24, B_W - 24, 46, "RPCSS", "TCP 135 (svchost.exe)")
    c.box(d, B_X + 12, LANE_Y[1] - 24, B_W - 24, (LANE_Y[3] if is_async else LANE_Y[1]) -
          LANE_Y[1] + 46, "WMI service", "svchost.exe, a dynamic port")
    if is_async:
        c.box(d, A_X + 12, LANE_Y[2] - 24, A_W - 24, 46, "OXID resolver (RPCSS)",
              "TCP 135 (svchost.exe)")
        program = flow.sink_program(call).rsplit("\\", 1)[-1]
        c.box(d, A_X + 12, LANE_Y[3] - 24, A_W - 24, 46, "Sink", f"{program}, a dynamic port")
    else:
        c.text(d, "No Connection 2: the results of a", A_X + 14, LANE_Y[2] + 6, 12, fill=MUTED)
        c.text(d, f"{call.mode} call come back on Connection 1", A_X + 14, LANE_Y[2] + 22, 12,
               fill=MUTED)
    # Each firewall is a wall in front of its computer; a dashed pale wall is switched off.
    for x, host in ((FW_A_X, a), (FW_B_X, b)):
        on = host.firewall.enabled
        g = dw.Group(class_="firewall", data_host=host.name, data_enabled=str(on).lower())
        g.append(dw.Title(f"Windows Firewall on {host.name}: "
                          f"{'on' if on else 'off'}, {host.firewall.profile} profile"))
        g.append(dw.Rectangle(x, TOP, FW_W, BOX_H, fill=WALL if on else WALL_OFF,
                              stroke="#bf360c", stroke_dasharray="" if on else "6 4"))
        for yy in range(TOP + 15, TOP + BOX_H, 15):  # bricks
            g.append(dw.Line(x, yy, x + FW_W, yy, stroke="#ffffff", stroke_width=1, opacity=0.6))
        c.text(g, f"Firewall ({host.name})", x + FW_W / 2, TOP - 6, 11.5, text_anchor="middle",
               fill="#bf360c", font_weight="bold")
        c.text(g, "on" if on else "off", x + FW_W / 2, TOP + BOX_H + 16, 11.5,
               text_anchor="middle", fill="#bf360c")
        d.append(g)


def _hops(c: _Canvas, world: World, v: flow.Verdict) -> None:
    """Each hop as an arrow, coloured by its state, with a mark per step drawn on it."""
    call = v.call
    a, b = world.host(call.source), world.host(call.target)
    states = _hop_states(v)
    arrow = {state: _arrowhead(colour) for state, colour in _COLOUR.items()}
    labels = {h.key: h.label(b if h.connection == 1 else a) for h in HOPS}
    by_hop: dict[str, list[tuple[Place, flow.Step]]] = {h.key: [] for h in HOPS}
    for s in v.steps:
        key, where = place_of(s)
        by_hop[key].append((where, s))
    for h in HOPS:
        if h.connection == 2 and call.mode != "async":
            continue
        state = states[h.key]
        y = LANE_Y[h.lane]
        forward = h.connection == 1
        x0, x1 = (A_X + A_W - 12, B_X + 12) if forward else (B_X + 12, A_X + A_W - 12)
        wall = FW_B_X + FW_W / 2 if forward else FW_A_X + FW_W / 2
        steps = by_hop[h.key]
        g = dw.Group(class_=f"hop {state}", data_hop=h.key, data_connection=str(h.connection),
                     data_steps=" ".join(s.id for _, s in steps))
        g.append(dw.Title(f"{labels[h.key]}: {state}"))
        colour = _COLOUR[state]
        stop: float = x1
        if state == "blocked":
            where = next(w for w, s in steps if not s.ok)
            stop = {"start": x0, "wall": wall, "end": x1}[where]
        if stop != x1:  # red up to where it is blocked, grey beyond
            g.append(dw.Line(x0, y, stop, y, stroke=colour, stroke_width=3))
            g.append(dw.Line(stop, y, x1, y, stroke=GREY, stroke_width=2, stroke_dasharray="6 5",
                             marker_end=arrow["unreached"]))
        else:
            g.append(dw.Line(x0, y, x1, y, stroke=colour, stroke_width=3 if state != "unreached"
                             else 2, stroke_dasharray="6 5" if state == "unreached" else "",
                             marker_end=arrow[state]))
        c.text(g, labels[h.key], (FW_A_X + FW_W + FW_B_X) / 2, y - 9, 12.5, text_anchor="middle",
               fill=colour, font_weight="bold" if state == "blocked" else "normal")
        points: dict[Place, list[flow.Step]] = {}
        for where, s in steps:
            points.setdefault(where, []).append(s)
        # Steps decided inside a computer sit at the right of its box, the firewall's on the wall.
        inside = {"start": (A_X if forward else B_X), "end": (B_X if forward else A_X)}
        for where, group in points.items():
            for i, s in enumerate(group):
                mx = wall if where == "wall" else inside[where] + A_W - 30 - i * 24
                c.mark(g, mx, y, s.ok, s)
        c.d.append(g)


def _below(c: _Canvas, v: flow.Verdict, panel: list[tuple[str, str]],
           checklist: list[tuple[State, str, str]]) -> None:
    """Below the picture: what failed, in words, and the first fix; then every step."""
    failed = v.failed
    y = TOP + BOX_H + 40
    attrs = {} if failed is None else {
        "data_step": failed.id, "data_connection": str(failed.connection),
        "data_hresult": v.hresult.hex, "data_symbol": v.hresult.symbol}
    g = dw.Group(class_="failure" if failed is not None else "success", **attrs)
    g.append(dw.Rectangle(14, y - 18, W - 28, 20 * len(panel) + 12, rx=6,
                          fill="#ffebee" if failed is not None else "#e8f5e9",
                          stroke=RED if failed is not None else GREEN))
    for kind, line in panel:
        c.text(g, line, 26, y, 13, **_STYLE[kind])
        y += 20
    c.d.append(g)
    y += 20
    steps_g = dw.Group(class_="steps")
    c.text(steps_g, "Steps", 20, y, 13, font_weight="bold")
    y += 20
    for state, sid, text in checklist:
        mark = {"passed": "✔", "blocked": "✘", "unreached": "·"}[state]
        row = dw.Group(class_=f"step {state}", data_step=sid)
        c.text(row, mark, 26, y, 13, fill=_COLOUR[state], font_weight="bold")
        c.text(row, text, 44, y, 12.5, fill=INK if state != "unreached" else GREY)
        steps_g.append(row)
        y += 18
    c.d.append(steps_g)


def _arrowhead(colour: str) -> dw.Marker:
    m = dw.Marker(-1, -0.5, 0, 0.5, scale=4, orient="auto")
    m.append(dw.Lines(-1, -0.5, -1, 0.5, 0, 0, close=True, fill=colour))
    return m


def _panel_lines(rep: CallReport) -> list[tuple[str, str]]:
    """The failure (or success) panel: (style, line) pairs, already wrapped."""
    v = rep.verdict
    failed = v.failed
    if failed is None:
        both = len({s.connection for s in v.steps}) == 2
        return [("bold", "Every step passes: the call works "
                 f"({'both connections' if both else 'Connection 1'}).")]
    out: list[tuple[str, str]] = [
        ("bold", line) for line in _wrap(
            f"Blocked on Connection {failed.connection} at step {failed.id}: {failed.title}")]
    out += [("plain", line) for line in _wrap(failed.detail)]
    h = failed.hresult or v.hresult
    out += [("hresult", line) for line in _wrap(f"{h.hex} {h.symbol}: {h.meaning}")]
    r = rep.remedy
    if r is None:
        return out
    changes = r.all_changes()
    if r.unfixable and not r.semisync:
        out += [("plain", line) for line in _wrap(f"No configuration fixes this: {r.unfixable}")]
    elif changes:
        first = changes[0]
        where = f"{first.kind} on {first.host}" if first.host else first.kind
        out += [("bold", line) for line in _wrap(f"First fix [{where}]: {first.summary}")]
        out += [("code", line) for cmd in first.commands[:3] for line in _wrap("  " + cmd, 110)]
        if len(first.commands) > 3:
            out.append(("plain", f"  … and {len(first.commands) - 3} more (see wmilab check)"))
    return out


def _checklist(v: flow.Verdict) -> list[tuple[State, str, str]]:
    """The call's steps: passed or blocked as the flow found them, then those it never reached.

    The flow records a step only when it asks it (A's EnableDCOM shows only when it fails), so
    a step counts as not reached only when it comes after the last step the flow recorded.
    """
    conns = {1, 2} if v.call.mode == "async" else {1}
    out: list[tuple[State, str, str]] = [
        ("passed" if s.ok else "blocked", s.id, f"Connection {s.connection} · {s.id} · {s.title}")
        for s in v.steps]
    last = max((steps.TABLE[s.id].index for s in v.steps if s.id in steps.TABLE), default=-1)
    for sid in steps.ORDER[last + 1:]:
        spec = steps.TABLE[sid]
        if spec.connection in conns:
            out.append(("unreached", sid, f"Connection {spec.connection} · {sid} · {spec.title} "
                        "(not reached)"))
    return out


def svg(world: World, rep: CallReport, prefix: str = "wmilab", *, header: bool = True) -> str:
    """The picture as SVG text (``header=False`` for inlining in HTML)."""
    text: str = draw(world, rep, prefix).as_svg(header="" if not header else
                                                 '<?xml version="1.0" encoding="UTF-8"?>\n')
    return text


def pick_call(scenario: Scenario, name: str | None) -> Call:
    """The call named ``name`` (exactly, else ignoring case), or the first call."""
    if not scenario.calls:
        raise ConfigError("the scenario has no calls to draw", ("calls",))
    if name is None:
        return scenario.calls[0]
    for exact in (True, False):
        for c in scenario.calls:
            if c.name == name if exact else c.name.casefold() == name.casefold():
                return c
    names = ", ".join(repr(c.name) for c in scenario.calls)
    raise ConfigError(f"--call {name!r}: no call of that name (calls: {names})", ("calls",))
