"""Shared helpers: build scenario files from Python dicts."""

from __future__ import annotations

import copy
import itertools
import os
import random
from typing import Any

import pytest
import tomlkit
from hypothesis import settings

from wmilab.host.server import HostBindError
from wmilab.lab.verify import ThreadedLab
from wmilab.scenario import Scenario, loads

# Speed is measured by bench/, never asserted: hypothesis's default 200 ms deadline per
# example only fails on a loaded machine. Tests that need a bound (the fuzzers' hang
# guard) set their own.
settings.register_profile("wmilab", deadline=None)
settings.load_profile("wmilab")

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


# One counter for every test module: each lab gets a subnet (and so loopback addresses) of its
# own, and xdist workers (distinct pids) start far apart.
_subnets = itertools.count(os.getpid() % 200 * 200 + 1)


_NET_SALT = random.SystemRandom().randrange(1 << 20)


def fresh_net() -> str:
    """A /24 prefix such as ``10.3.17`` that no other test of this process uses."""
    n = next(_subnets)
    return f"10.{n // 250 % 250 + 1}.{n % 250 + 1}"


def needs_root(reason: str) -> None:
    """A test that cannot run without root (port 135, namespaces, capture): skip it when not
    root, with the reason in the summary; under root (CI) it is a failure, never a skip."""
    if os.geteuid() == 0:
        pytest.fail(f"running as root, yet: {reason}")
    pytest.skip(f"needs root: {reason}")


def started_lab(scenario: Scenario, client_host: str = "A", **kw: Any) -> ThreadedLab:
    """A ThreadedLab of ``scenario``, started; a lab that cannot bind port 135 is
    :func:`needs_root` (impacket dials 135)."""
    lab = ThreadedLab(scenario, client_host=client_host, **kw)
    try:
        lab.start()
    except HostBindError as e:
        needs_root(f"impacket needs port 135: {e.strerror}")
    return lab


def loopback_net() -> str:
    """A /24 of 127.0.0.0/8 for one lab of this test process: never the examples' default
    addresses (127.168.x.y), and apart from other processes' labs (pids and a random start
    spread them over about 38,000 networks)."""
    n = next(_subnets) + _NET_SALT
    second = 100 + n % 150
    if second == 168:
        second = 99
    return f"127.{second}.{n // 150 % 256}.0/24"


def remote_admin_pair(**b: Any) -> dict[str, Any]:
    """A and B in CORP on a fresh subnet, B open for remote administration (``b`` overrides)."""
    net = fresh_net()
    return {
        "domains": {"CORP": copy.deepcopy(CORP)},
        "hosts": {
            "A": {"os": "xp-sp2", "domain": "CORP", "address": f"{net}.1/24"},
            "B": {"os": "xp-sp2", "domain": "CORP", "address": f"{net}.2/24",
                  "netsh": ["netsh firewall set service RemoteAdmin enable"], **b},
        },
        "calls": [{"from": "A", "to": "B", "user": "CORP\\admin"}],
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


def impacket_orpcthis(flags: int = 0) -> Any:
    """An ORPCTHIS as impacket's dcomrt builds it (for requests built with impacket)."""
    from impacket.dcerpc.v5 import dcomrt
    from impacket.dcerpc.v5.dtypes import NULL
    from impacket.uuid import generate

    o = dcomrt.ORPCTHIS()
    o["cid"] = generate()
    o["extensions"] = NULL
    o["flags"] = flags
    return o
