"""The emulator keeps encoded query results per host state (Repository.query_encoded):
every state change must be on the wire at once, and cached octets equal fresh ones.

The wire tests poll the same queries on one client session, change the host's state in
between (Win32_Process.Create and Terminate, PutInstance, DeleteInstance, PutClass, and a
change made through the repository directly) and expect each change in the next answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from impacket.dcerpc.v5.dcom import wmi as iwmi

import test_host_clients
import test_host_services
from conftest import make
from test_host_clients import StartLab, scenario
from test_host_services import lab_class, put, query, session
from wmilab.host.runtime import repository_for
from wmilab.repository import EncodedRow, Repository

pytestmark = pytest.mark.slow

start_lab = test_host_clients.start_lab  # the fixture: a LoopbackLab in a background loop
assert test_host_services  # the helpers above come from there

OS_QUERY = "SELECT NumberOfProcesses FROM Win32_OperatingSystem"
CALC_QUERY = "SELECT Handle, Name FROM Win32_Process WHERE Name = 'calc.exe'"


def _processes(svc: Any) -> int:
    rows = query(svc, OS_QUERY)
    assert len(rows) == 1
    return int(rows[0]["NumberOfProcesses"])


def test_process_create_and_terminate_are_seen_by_the_next_query(start_lab: StartLab) -> None:
    lab = start_lab(scenario())
    with session(lab) as (_login, svc):
        before = _processes(svc)
        assert _processes(svc) == before  # answered from the cache this time
        assert query(svc, CALC_QUERY) == []
        proc, _ = svc.GetObject("Win32_Process")
        out = proc.Create("calc.exe", "C:\\", None)
        assert out.ReturnValue == 0
        # The same queries on the same session see the new process at once.
        assert _processes(svc) == before + 1
        assert query(svc, CALC_QUERY) == [{"Handle": str(out.ProcessId), "Name": "calc.exe"}]
        svc.ExecMethod(f'Win32_Process.Handle="{out.ProcessId}"', "Terminate")
        assert _processes(svc) == before
        assert query(svc, CALC_QUERY) == []
        # CreateInstanceEnum is cached the same way.
        enum = svc.CreateInstanceEnum("Win32_OperatingSystem", iwmi.WBEM_FLAG_FORWARD_ONLY)
        os_obj = enum.Next(0xFFFFFFFF, 1)[0]
        assert os_obj.getProperties()["NumberOfProcesses"]["value"] == before
        enum.RemRelease()


def test_instance_and_class_writes_are_seen_by_the_next_query(start_lab: StartLab) -> None:
    lab = start_lab(scenario())
    with session(lab) as (_login, svc):
        assert put(svc, iwmi.IWbemServices_PutClass, "pObject", lab_class()) == 0
        assert query(svc, "SELECT Name, Size FROM Lab_Thing") == []
        cls, _ = svc.GetObject("Lab_Thing")
        inst = cls.SpawnInstance()
        inst.Name, inst.Size = "first", 7
        svc.PutInstance(inst.marshalMe())
        assert query(svc, "SELECT Name, Size FROM Lab_Thing") == [{"Name": "first", "Size": 7}]
        inst.Size = 8  # a modification of the same instance
        svc.PutInstance(inst.marshalMe())
        assert query(svc, "SELECT Name, Size FROM Lab_Thing") == [{"Name": "first", "Size": 8}]
        svc.DeleteInstance('Lab_Thing.Name="first"')
        assert query(svc, "SELECT Name, Size FROM Lab_Thing") == []


async def _aiowmi_poll(lab: Any, queries: list[str], between: Any) -> list[list[dict[str, Any]]]:
    """One aiowmi session running each query, calling ``between()`` after each one."""
    from aiowmi.connection import Connection
    from aiowmi.query import Query

    conn = Connection(lab.address(), "admin", "Adm1n!", domain="CORP", port=lab.port("rpcss"))
    answers = []
    try:
        await conn.connect(timeout=10)
        service = await conn.negotiate_ntlm()
        await conn.login_ntlm(service, "root/cimv2")
        for text in queries:
            rows = []
            async with Query(text).context(conn, service) as qc:
                async for props in qc.results():
                    rows.append({k: v.value for k, v in props.items()})
            answers.append(rows)
            await asyncio.get_running_loop().run_in_executor(None, between)
    finally:
        conn.close()
    return answers


def test_aiowmi_polling_sees_a_state_change_between_two_queries(start_lab: StartLab) -> None:
    lab = start_lab(scenario(), root=False)
    repo = lab.repository()

    async def start_process() -> None:  # on the lab's own loop, as a client's call would
        repo.start_process("notepad.exe")

    # Nothing changes between the first two queries (the second is served from the cache);
    # a process starts before the third.
    steps = iter([lambda: None, lambda: lab.run(start_process())])
    answers = asyncio.run(_aiowmi_poll(lab, [OS_QUERY] * 3,
                                       lambda: next(steps, lambda: None)()))
    counts = [int(a[0]["NumberOfProcesses"]) for a in answers]
    assert counts[0] == counts[1] and counts[2] == counts[1] + 1, counts


# -- the cache itself ----------------------------------------------------------------------

QUERIES = [
    "SELECT * FROM Win32_OperatingSystem",
    "SELECT Name, ProcessId FROM Win32_Process WHERE Name = 'svchost.exe'",
    "SELECT * FROM Win32_Service",
    "SELECT * FROM __Namespace",
    "SELECT * FROM meta_class WHERE __Class = 'Win32_Process'",
    "ASSOCIATORS OF {Win32_ComputerSystem.Name=\"B\"}",
]


def _fresh(repo: Repository, text: str) -> tuple[EncodedRow, ...]:
    rows = repo.exec_query("root\\cimv2", text)
    return tuple(EncodedRow(r.name if hasattr(r, "superclass") else r.cls.name,  # type: ignore[union-attr]
                            repo.encode(r, "root\\cimv2")) for r in rows)


@pytest.fixture
def repo() -> Repository:
    s = make(scenario())
    return repository_for(s.world, "B")


@pytest.mark.parametrize("text", QUERIES)
def test_cached_octets_equal_fresh_ones(repo: Repository, text: str) -> None:
    first = repo.query_encoded("root\\cimv2", text)
    assert first == _fresh(repo, text)
    assert repo.query_encoded("root\\cimv2", text) is first  # kept


def test_every_kind_of_change_makes_a_new_result(repo: Repository) -> None:
    def count() -> int:
        return len(repo.query_encoded("root\\cimv2", "SELECT * FROM Win32_Process"))

    n = count()
    pid = repo.start_process("calc.exe").get("ProcessId")
    assert count() == n + 1
    out = repo.exec_method("root\\cimv2", f'Win32_Process.Handle="{pid}"', "Terminate")
    assert out.values["ReturnValue"] == 0
    assert count() == n
    # A change of the host state made without the repository (HostState directly).
    repo.state.create_process("cmd.exe", None)
    assert count() == n + 1
    # Instances enumerated by class are kept and invalidated alike.
    listed = repo.query_encoded("root\\cimv2", "Win32_Process", kind="instances")
    assert len(listed) == n + 1
    repo.state.terminate(repo.state.processes[-1].pid)
    assert len(repo.query_encoded("root\\cimv2", "Win32_Process", kind="instances")) == n


def test_errors_are_raised_every_time(repo: Repository) -> None:
    from wmilab.repository import WmiError

    for _ in range(2):
        with pytest.raises(WmiError):
            repo.query_encoded("root\\cimv2", "SELECT * FROM Win32_Nothing")
