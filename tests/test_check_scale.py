"""`wmilab check` on a fleet: linear work, and no cyclic garbage (the CLI turns the cyclic
collector off while it evaluates, so a cycle would be memory never given back)."""

from __future__ import annotations

import gc
import importlib.util
import sys
import tracemalloc
from pathlib import Path

from wmilab import report
from wmilab.scenario import loads

ROOT = Path(__file__).resolve().parents[1]


def _fleet_text(n: int) -> str:
    spec = importlib.util.spec_from_file_location("bench_fleet", ROOT / "bench" / "fleet.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_fleet"] = mod
    spec.loader.exec_module(mod)
    return mod.fleet_text(n)  # type: ignore[no-any-return]


def test_a_check_with_fixes_leaves_no_cyclic_garbage() -> None:
    s = loads(_fleet_text(140), "fleet.toml")
    gc.collect()
    gc.disable()
    try:
        reports = report.evaluate(s)
        report.as_json(s, reports)
        found = gc.collect()
    finally:
        gc.enable()
    assert sum(1 for r in reports if r.remedy is not None and r.remedy.proven) > 40
    assert found == 0


def test_loading_a_fleet_leaves_no_cyclic_garbage() -> None:
    # The CLI loads with the cyclic collector off (cli._load); a cycle would stay for good.
    text = _fleet_text(140)
    modern = text.replace('os = "xp-sp2"', 'os = "2022"')  # WFAS rules, hardening, UAC
    gc.collect()
    gc.disable()
    try:
        loaded = [loads(text, "fleet.toml"), loads(modern, "modern.toml")]
        for s in loaded:
            s.world.build_all()
        found = gc.collect()
    finally:
        gc.enable()
    assert len(loaded[1].world.configs) == 140
    assert found == 0


def _edit_cost(n: int) -> int:
    """Bytes allocated by trying one candidate edit (netsh on one host) on an n-host fleet."""
    s = loads(_fleet_text(n), "fleet.toml")
    w = s.world
    cfg = w.configs["H00001"]
    w.edit_host("H00001", netsh=(*cfg.netsh, "netsh firewall set opmode mode=ENABLE"))  # warm
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        w2 = w.edit_host("H00001", netsh=(*cfg.netsh, "netsh firewall set opmode mode=ENABLE"))
        w3 = w2.edit_host("H00002", registry={"ForceGuest": 1})
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert w3.configs["H00001"].netsh[-1].endswith("mode=ENABLE")
    return used


def test_an_edit_costs_the_same_on_2000_hosts_as_on_20() -> None:
    # The fix search tries many candidates per failing call; a candidate that copied the
    # host table (or the directory) would make `check` quadratic in the fleet's size.
    small, big = _edit_cost(20), _edit_cost(2000)
    assert big < small * 1.5 + 4096, (small, big)
