"""Shared helpers: build scenario files from Python dicts."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import tomlkit

from wmilab.scenario import Scenario, loads

CORP: dict[str, Any] = {
    "dns": "corp.example",
    "accounts": {"admin": "Adm1n!", "bob": "B0b!"},
    "groups": {"Domain Admins": ["admin"]},
}


def base_doc(os_a: str = "xp-sp2", os_b: str = "xp-sp2") -> dict[str, Any]:
    """The seed's picture: A and B in CORP, nothing configured."""
    return {
        "domains": {"CORP": copy.deepcopy(CORP)},
        "hosts": {
            "A": {"os": os_a, "domain": "CORP", "address": "192.168.10.1/24"},
            "B": {"os": os_b, "domain": "CORP", "address": "192.168.10.2/24"},
        },
        "calls": [],
    }


def call(mode: str = "semisync", user: str = "CORP\\admin", **kw: Any) -> dict[str, Any]:
    return {"from": "A", "to": "B", "user": user, "mode": mode, **kw}


def make(doc: dict[str, Any]) -> Scenario:
    return loads(tomlkit.dumps(doc), "test.toml")


def results(doc: dict[str, Any]) -> list[str]:
    from wmilab import flow

    s = make(doc)
    return [flow.evaluate(s.world, c).result for c in s.calls]


@pytest.fixture
def doc() -> dict[str, Any]:
    return base_doc()
