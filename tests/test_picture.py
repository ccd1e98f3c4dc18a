"""`wmilab draw` and `wmilab check --html`: the picture says what `check` says.

Every call of every example is drawn with the command and read back as SVG XML: the blocked
hop, the failing step and its HRESULT are in the picture exactly when `check --json` says the
call fails. Then a real browser (headless Chromium) renders the HTML report and the pictures,
and the screenshots are checked where the blocked hop is drawn.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from wmilab import picture, steps
from wmilab.cli import app
from wmilab.examples import directory as examples_directory
from wmilab.scenario import load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = examples_directory()
EXAMPLES = sorted(EXAMPLE_DIR.glob("*.toml"))
NS = {"s": "http://www.w3.org/2000/svg"}
runner = CliRunner()


def check_json(path: Path) -> dict[str, Any]:
    r = runner.invoke(app, ["check", "--json", str(path)])
    assert r.exit_code in (0, 1), r.output
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def draw(path: Path, out: Path, call: str | None = None) -> ET.Element:
    args = ["draw", str(path), "-o", str(out)] + (["--call", call] if call is not None else [])
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return ET.parse(out).getroot()


def classes(el: ET.Element) -> set[str]:
    return set(el.get("class", "").split())


def text_of(el: ET.Element) -> str:
    """All text drawn in an element, wrapped lines joined by one space."""
    return " ".join(" ".join(t.itertext()).strip() for t in el.iter(f"{{{NS['s']}}}text"))


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{{{NS['s']}}}g") if cls in classes(g)]


CALLS = [pytest.param(path, i, id=f"{path.stem[:2]}-{i}")
         for path in EXAMPLES for i, _ in enumerate(load(path).calls)]


@pytest.mark.parametrize(("path", "index"), CALLS)
def test_the_picture_of_every_example_call_matches_check(path: Path, index: int,
                                                         tmp_path: Path) -> None:
    report = check_json(path)["calls"][index]
    scenario = load(path)
    call = scenario.calls[index]
    root = draw(path, tmp_path / "call.svg", call.name)
    all_text = text_of(root)
    fails = report["result"] != "ok"
    assert root.get("data-result") == report["result"]

    # A and B, each labelled with its scenario name and address.
    computers = {g.get("data-role"): g for g in groups(root, "computer")}
    for role, host in (("A", report["from"]), ("B", report["to"])):
        assert computers[role].get("data-host") == host
        label = text_of(computers[role])
        assert host in label and str(scenario.world.configs[host].address.ip) in label
    assert {g.get("data-host") for g in groups(root, "firewall")} == {report["from"], report["to"]}

    # Connection 2 is drawn for asynchronous calls only.
    hops = {g.get("data-hop"): g for g in groups(root, "hop")}
    expected = {h.key for h in picture.HOPS if h.connection == 1 or report["mode"] == "async"}
    assert set(hops) == expected
    blocked = [k for k, g in hops.items() if "blocked" in classes(g)]
    failure = groups(root, "failure")
    if not fails:
        assert blocked == [] and failure == [] and groups(root, "success")
        assert all("passed" in classes(g) for g in hops.values())
        assert not re.search(r"0x8[0-9A-F]{7}", all_text)
        assert not any("blocked" in classes(g) for g in root.iter())
        return
    # Exactly one blocked hop, carrying the failing step; the hops before it passed, after it
    # the call never went.
    assert len(blocked) == 1
    hop = hops[blocked[0]]
    assert report["step"] in (hop.get("data-steps") or "").split()
    assert hops[blocked[0]].get("data-connection") == str(report["connection"])
    marks = [g for g in groups(root, "check") if "blocked" in classes(g)]
    assert [m.get("data-step") for m in marks] == [report["step"]]
    order = [h.key for h in picture.HOPS if h.key in hops]
    at = order.index(blocked[0])
    assert all("passed" in classes(hops[k]) for k in order[:at])
    assert all("unreached" in classes(hops[k]) for k in order[at + 1:])
    # The failure panel: step, its title, the HRESULT in words, the first fix.
    [panel] = failure
    assert panel.get("data-step") == report["step"]
    assert panel.get("data-hresult") == report["result"]
    words = text_of(panel)
    title = steps.TABLE[report["step"]].title
    assert f"Connection {report['connection']} at step {report['step']}: {title}" in words
    assert f"{report['result']} {report['symbol']}: {report['meaning']}" in words
    if report["fixes"]:
        first = report["fixes"][0]
        assert f"First fix [{first['kind']} on {first['host']}]: {first['summary']}" in words \
            or f"First fix [{first['kind']}]: {first['summary']}" in words
        assert first["commands"][0] in words
    else:
        assert f"No configuration fixes this: {report['unfixable']}" in words


def test_draw_defaults_to_the_first_call_and_matches_names_ignoring_case(tmp_path: Path) -> None:
    path = EXAMPLE_DIR / "07-non-admin.toml"
    s = load(path)
    assert draw(path, tmp_path / "a.svg").get("data-call") == s.calls[0].name
    assert draw(path, tmp_path / "b.svg", s.calls[2].name.upper()).get("data-call") == s.calls[2].name


def test_every_step_is_drawn_where_the_step_table_says_it_happens() -> None:
    # Firewall steps on the wall of their TCP connection; the others in the computer that
    # decides them, on the connection they happen on.
    assert picture.HOP_OF_STEP == {
        "c1.client-dcom": ("c1-rpcss", "start"), "c1.rpcss-port": ("c1-rpcss", "wall"),
        "c1.logon": ("c1-rpcss", "end"), "c1.activation": ("c1-rpcss", "end"),
        "c1.wmi-port": ("c1-wmi", "wall"), "c1.access": ("c1-wmi", "end"),
        "c1.namespace": ("c1-wmi", "end"), "c2.identity": ("c2-rpcss", "start"),
        "c2.resolver-port": ("c2-rpcss", "wall"), "c2.sink-port": ("c2-sink", "wall"),
        "c2.access": ("c2-sink", "end")}
    assert [h.key for h in picture.HOPS] == ["c1-rpcss", "c1-wmi", "c2-rpcss", "c2-sink"]
    assert set(picture.HOP_OF_STEP) == set(steps.ORDER)


@pytest.mark.parametrize(("args", "words"), [
    (["--call", "no such call"], ["--call 'no such call'", "calls: 'bob"]),
    (["-o", "/nonexistent-dir/x.svg"], ["cannot write /nonexistent-dir/x.svg"]),
])
def test_draw_bad_options_say_what_is_wrong_in_one_line(args: list[str], words: list[str],
                                                        tmp_path: Path) -> None:
    base = ["draw", str(EXAMPLE_DIR / "07-non-admin.toml")]
    if "-o" not in args:
        base += ["-o", str(tmp_path / "x.svg")]
    r = runner.invoke(app, base + args)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.output
    for w in words:
        assert w in lines[0]


@pytest.mark.parametrize(("text", "words"), [
    ("[hosts.A]\nos = 'xp-sp2'\nworkgroup = 'WG'\naddress = 'nope'\n", ["bad.toml:4", "hosts.A.address"]),
    ("[hosts.A]\nos = 'xp-sp2'\nworkgroup = 'WG'\naddress = '10.1.1.1/24'\n", ["no calls"]),
])
def test_draw_bad_scenarios_exit_2_with_one_line(text: str, words: list[str],
                                                 tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    r = runner.invoke(app, ["draw", str(bad), "-o", str(tmp_path / "x.svg")])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), r.stderr
    assert not (tmp_path / "x.svg").exists()


def test_check_html_unwritable_exits_2() -> None:
    r = runner.invoke(app, ["check", str(EXAMPLE_DIR / "01-default-blocked.toml"),
                            "--html", "/nonexistent-dir/r.html"])
    assert r.exit_code == 2
    assert r.stderr.strip() == ("error: cannot write /nonexistent-dir/r.html: "
                                "No such file or directory")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem[:2])
def test_check_html_is_one_self_contained_page(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    r = runner.invoke(app, ["check", str(path), "--html", str(out)])
    assert r.exit_code == 0, r.output
    page = out.read_text(encoding="utf-8")
    report = check_json(path)
    # Nothing to fetch: no scripts, style sheets, images, fonts or links outside the page.
    assert not re.search(r"<script|<link|<img|<iframe|@import|src=|href=\"(?!#)", page)
    assert re.findall(r"url\(([^)]*)\)", page) == [u for u in re.findall(r"url\(([^)]*)\)", page)
                                                   if u.startswith("#")]
    assert page.count("<svg") == len(report["calls"]) and "<style>" in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    # The text report of every call: its name, result and, when it fails, step and HRESULT.
    for i, c in enumerate(report["calls"], 1):
        section = page.split(f'id="call-{i}"')[1].split("</section>")[0]
        assert f'data-result="{c["result"]}"' in page.split(f'id="call-{i}"')[0][-200:] + section[:60]
        plain = re.sub(r"<[^>]+>", "", section)
        assert c["name"].replace("&", "&amp;") in plain or c["name"] in plain
        if c["result"] != "ok":
            assert c["step"] in plain and f"{c['result']} {c['symbol']}" in plain


# ------------------------------------------------------------------------------------------
# A real browser


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.geteuid() == 0:
            pytest.fail("chromium is missing: scripts/bootstrap.sh installs it when run as root")
        pytest.skip("chromium is not installed and only root can install it (scripts/bootstrap.sh)")
    return found


def screenshot(url: str, out: Path, width: int, height: int, profile: Path) -> Any:
    from PIL import Image

    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
           f"--window-size={width},{height}", f"--screenshot={out}", url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and out.exists(), r.stderr[-2000:]
    return Image.open(out).convert("RGB")


def near(pixel: tuple[int, int, int], hex_colour: str, tolerance: int = 40) -> bool:
    want = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return all(abs(p - w) <= tolerance for p, w in zip(pixel, want, strict=True))


def count(img: Any, hex_colour: str, tolerance: int = 40) -> int:
    return sum(n for n, px in img.getcolors(img.width * img.height)
               if near(px, hex_colour, tolerance))


@pytest.mark.slow
def test_chromium_renders_the_blocked_hop_red_where_it_is_drawn(tmp_path: Path) -> None:
    # Example 1: TCP 135 to B is dropped by B's firewall. Example 2: every call works.
    marks = []
    for name in ("01-default-blocked", "02-remote-admin"):
        svg = tmp_path / f"{name}.svg"
        draw(EXAMPLE_DIR / f"{name}.toml", svg)
        img = screenshot(svg.as_uri(), tmp_path / f"{name}.png", picture.W, 700, tmp_path / "p")
        assert img.size == (picture.W, 700)
        # The mark on B's wall (beside its white glyph), and the hop's line between the walls.
        x, y = int(picture.FW_B_X + picture.FW_W / 2) + 7, picture.LANE_Y[0]
        marks.append(img.getpixel((x, y)))
        mid = int((picture.FW_A_X + picture.FW_B_X) / 2)
        marks.append(img.getpixel((mid, y)))
    blocked_mark, blocked_line, ok_mark, ok_line = marks
    assert near(blocked_mark, picture.RED) and near(blocked_line, picture.RED), marks
    assert near(ok_mark, picture.GREEN) and near(ok_line, picture.GREEN), marks


@pytest.mark.slow
def test_chromium_renders_the_html_report_as_a_page_an_administrator_reads(tmp_path: Path) -> None:
    pages = {}
    for name in ("03-async-a-unconfigured", "02-remote-admin"):
        html = tmp_path / f"{name}.html"
        r = runner.invoke(app, ["check", str(EXAMPLE_DIR / f"{name}.toml"), "--html", str(html)])
        assert r.exit_code == 0, r.output
        pages[name] = screenshot(html.as_uri(), tmp_path / f"{name}.png", 1100, 1400,
                                 tmp_path / "profile")
    for img in pages.values():
        assert img.size == (1100, 1400)
        colours = img.getcolors(img.width * img.height)
        assert len(colours) > 200  # text, lines and fills, not a blank or error page
        white = sum(n for n, px in colours if px[0] > 245 and px[1] > 245 and px[2] > 245)
        assert white < 0.9 * img.width * img.height
        assert count(img, picture.WALL, 20) > 2000  # the firewalls are drawn
    failing, working = pages["03-async-a-unconfigured"], pages["02-remote-admin"]
    assert count(failing, picture.RED, 15) > 1500  # the blocked hop, the badge, the panel
    assert count(working, picture.RED, 15) < 50
    assert count(working, picture.GREEN, 15) > 1500
