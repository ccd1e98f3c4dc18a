"""The emulated hosts' event loop (host/eventloop.py): uvloop's when installed, chosen by
WMILAB_EVENT_LOOP; a real client gets the same answers on either loop."""

from __future__ import annotations

import asyncio

import pytest

from conftest import make
from test_host_clients import _aiowmi, scenario
from wmilab.errors import ConfigError
from wmilab.host import eventloop
from wmilab.lab.verify import ThreadedLab

uvloop = pytest.importorskip("uvloop")  # a dependency (pyproject.toml), optional at run time


async def _loop_kind() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_uvloop_is_the_default_and_the_variable_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.run(_loop_kind()) == "uvloop"
    monkeypatch.setenv(eventloop.ENV, "asyncio")
    assert eventloop.run(_loop_kind()) == "asyncio"
    monkeypatch.setenv(eventloop.ENV, "UVLOOP")
    assert eventloop.loop_factory() is uvloop.new_event_loop
    monkeypatch.setenv(eventloop.ENV, "tokio")
    with pytest.raises(ConfigError, match="WMILAB_EVENT_LOOP='tokio': use asyncio or uvloop"):
        eventloop.loop_factory()


class _View:
    """What tests/test_host_clients._aiowmi needs of a lab: address and port of host B."""

    def __init__(self, lab: ThreadedLab) -> None:
        self.lab = lab

    def address(self, host: str = "B") -> str:
        return self.lab.address(host)

    def port(self, kind: str, host: str = "B") -> int:
        return self.lab.lab.servers[host].ports[kind]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_aiowmi_gets_the_same_rows_on_either_loop(monkeypatch: pytest.MonkeyPatch,
                                                  kind: str) -> None:
    monkeypatch.setenv(eventloop.ENV, kind)
    lab = ThreadedLab(make(scenario()), client_host="A", ports={135: 0})
    try:
        lab.start()
        assert isinstance(lab.loop, uvloop.Loop) == (kind == "uvloop")
        query = "SELECT Name, ProcessId FROM Win32_Process WHERE Name = 'svchost.exe'"
        rows = asyncio.run(_aiowmi(_View(lab), query, skip_optimize=False))  # type: ignore[arg-type]
        runtime = lab.lab.servers["B"].runtime
        assert runtime is not None
        want = runtime.repository.exec_query("root\\cimv2", query)
        assert len(rows) > 1
        assert [r["ProcessId"] for r in rows] == [w.get("ProcessId") for w in want]
    finally:
        lab.close()
