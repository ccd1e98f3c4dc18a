"""`wmilab check FILE --html OUT.html`: the report as one self-contained page.

The page holds everything inline (CSS, one SVG picture per call from ``picture``, the text
of each call as ``check`` prints it, coloured by rich's HTML export), so it can be mailed,
attached to a ticket or opened offline: it loads no script, font, image or style sheet.
"""

from __future__ import annotations

import io
from html import escape

from rich.console import Console

import wmilab
from wmilab import picture, report
from wmilab.scenario import Scenario

__all__ = ["page"]

_CSS = """
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; color: #212121;
       background: #fafafa; margin: 0; }
main { max-width: 1040px; margin: 0 auto; padding: 16px 20px 40px; }
h1 { font-size: 22px; margin: 8px 0 2px; }
.path { color: #616161; margin: 0 0 10px; font-family: "DejaVu Sans Mono", monospace; }
.summary { font-weight: bold; font-size: 16px; }
.warning { color: #8d6e00; }
nav ul { padding-left: 20px; }
nav a { color: inherit; }
.ok-mark { color: #2e7d32; font-weight: bold; }
.fail-mark { color: #c62828; font-weight: bold; }
section.call { background: #ffffff; border: 1px solid #e0e0e0; border-left: 6px solid #2e7d32;
               border-radius: 6px; margin: 22px 0; padding: 10px 16px; }
section.call.fails { border-left-color: #c62828; }
section.call h2 { font-size: 18px; margin: 6px 0 10px; }
section.call h2 small { color: #616161; font-weight: normal; font-size: 13px; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eeeeee; }
pre.report { background: #f5f5f5; color: #212121; border: 1px solid #e0e0e0;
             padding: 10px 12px; border-radius: 4px;
             white-space: pre-wrap; font-size: 12.5px; line-height: 1.35;
             font-family: "DejaVu Sans Mono", Consolas, monospace; }
footer { color: #9e9e9e; font-size: 12px; }
"""


def _call_text(rep: report.CallReport) -> str:
    """One call's block exactly as `check` prints it, as HTML with inline colours."""
    console = Console(record=True, file=io.StringIO(), width=110, color_system="truecolor",
                      highlight=False, soft_wrap=True)
    report.render_call(console, rep, verbose=True)
    html: str = console.export_html(inline_styles=True, code_format="{code}")
    return html


def page(scenario: Scenario, reports: list[report.CallReport]) -> str:
    """The whole HTML page for a scenario's report."""
    title = scenario.title or scenario.path
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>wmilab check: {escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="path">{escape(scenario.path)}</p>',
    ]
    parts += [f'<p class="warning">warning: {escape(w)}</p>' for w in scenario.warnings()]
    parts.append(f'<p class="summary">{escape(report.summary(reports))}</p>')
    parts.append("<nav><ul>")
    for i, rep in enumerate(reports):
        v = rep.verdict
        mark = ('<span class="ok-mark">✔ works</span>' if v.ok else
                f'<span class="fail-mark">✘ {escape(v.result)} {escape(v.hresult.symbol)}</span>')
        parts.append(f'<li><a href="#call-{i + 1}">{escape(v.call.name)}</a> {mark}</li>')
    parts.append("</ul></nav>")
    for i, rep in enumerate(reports):
        v = rep.verdict
        call = v.call
        state = "ok" if v.ok else "fails"
        mark = '<span class="ok-mark">✔</span>' if v.ok else '<span class="fail-mark">✘</span>'
        parts += [
            f'<section class="call {state}" id="call-{i + 1}" data-result="{escape(v.result)}">',
            f"<h2>{mark} {escape(call.name)} <small>{escape(call.source)} → "
            f"{escape(call.target)}, {escape(call.mode)}, {escape(call.user)}</small></h2>",
            "<figure>",
            picture.svg(scenario.world, rep, prefix=f"call{i + 1}-", header=False),
            f"<figcaption hidden>The seed's picture for {escape(call.name)}</figcaption>",
            "</figure>",
            f'<pre class="report"><code>{_call_text(rep)}</code></pre>',
            "</section>",
        ]
    parts.append(f"<footer>wmilab {escape(wmilab.__version__)}</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
