"""DCOM garbage collection as MS-DCOM describes it: ping sets, SimplePing / ComplexPing, the
120 s ping period and three missed periods (compressed or simulated here), instead of a fixed
table that evicts the least recently used object.

The long-run test drives simulated time: impacket's own pinger (DCOMConnection.pingServer)
keeps its objects for a simulated day, an abandoned client's objects are freed, a client that
calls but never pings (aiowmi's way) keeps its objects while it calls, and the table stays
bounded by what clients really hold.
"""

from __future__ import annotations

from typing import Any

import pytest
from impacket.dcerpc.v5 import dcomrt
from impacket.dcerpc.v5.dcom import wmi as iwmi
from impacket.dcerpc.v5.dtypes import NULL

import test_host_clients
from test_host_clients import StartLab, _logged_in, scenario
from test_host_services import query
from wmilab.host.objects import Enumerator, ObjectTable
from wmilab.host.pinging import GcSettings, PingSets
from wmilab.host.server import Limits
from wmilab.wire import dcom, ids, wmi
from wmilab.wire.rpc_conn import FaultReceived, ResponseReceived

start_lab = test_host_clients.start_lab
RPC_E_DISCONNECTED = 0x80010108
DAY = 24 * 3600


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def table_with(clock: Clock) -> tuple[ObjectTable, PingSets]:
    table = ObjectTable(clock=clock)
    return table, PingSets(table, GcSettings())


def test_a_pinged_object_lives_a_simulated_day_and_dies_three_periods_after() -> None:
    clock = Clock()
    table, pings = table_with(clock)
    entry = table.export(Enumerator("root\\cimv2", []), ids.IID_IENUMWBEMCLASSOBJECT)
    set_id, status = pings.complex_ping(0, 1, (entry.oid,), ())
    assert status == 0 and set_id != 0
    for _ in range(DAY // 120):
        clock.advance(120)  # MS-DCOM 3.1.2.2: one ping per 2-minute period
        assert pings.simple_ping(set_id) == 0
        pings.collect()
    assert table.lookup(entry.ipid) is entry
    # The client stops pinging: after three periods the set expires, the object goes.
    clock.advance(2 * 120)
    pings.collect()
    assert table.lookup(entry.ipid) is entry
    clock.advance(120 + 1)
    pings.collect()
    assert table.lookup(entry.ipid) is None and set_id not in pings
    assert pings.simple_ping(set_id) == dcom.OR_INVALID_SET
    assert pings.complex_ping(set_id, 2, (), ()) == (set_id, dcom.OR_INVALID_SET)
    assert len(table) == 1  # only the exporter's IRemUnknown


def test_a_client_that_never_pings_keeps_objects_only_while_it_calls() -> None:
    # docs/choices.md: no ping set holds the OID; each ORPC call counts as a ping.
    clock = Clock()
    table, pings = table_with(clock)
    entry = table.export(Enumerator("root\\cimv2", []), ids.IID_IENUMWBEMCLASSOBJECT)
    for _ in range(100):
        clock.advance(119)
        table.touch(entry.oid)  # what WmiExporter.handle does on every call
        pings.collect()
    assert table.lookup(entry.ipid) is entry
    clock.advance(3 * 120)
    pings.collect()
    assert table.lookup(entry.ipid) is None


def test_removing_an_oid_from_its_set_and_the_last_resort_bound() -> None:
    clock = Clock()
    table = ObjectTable(clock=clock, max_entries=4)
    pings = PingSets(table, GcSettings())
    held = table.export(Enumerator("ns", []), ids.IID_IENUMWBEMCLASSOBJECT)
    set_id, _ = pings.complex_ping(0, 1, (held.oid, 0xDEAD), ())
    others = [table.export(Enumerator("ns", []), ids.IID_IENUMWBEMCLASSOBJECT)
              for _ in range(5)]
    # The bound never takes an object a live ping set holds.
    assert table.lookup(held.ipid) is held and len(table) == 4
    assert table.lookup(others[-1].ipid) is not None
    # DelFromSet: the OID is on its own again, and goes after the timeout.
    pings.complex_ping(set_id, 2, (), (held.oid,))
    clock.advance(3 * 120)
    pings.simple_ping(set_id)
    pings.collect()
    assert table.lookup(held.ipid) is None


def test_memory_stays_bounded_by_what_clients_hold() -> None:
    clock = Clock()
    table, pings = table_with(clock)
    kept = table.export(Enumerator("ns", []), ids.IID_IENUMWBEMCLASSOBJECT)
    set_id, _ = pings.complex_ping(0, 1, (kept.oid,), ())
    for _ in range(50):
        # A burst of abandoned clients: 200 objects each, then silence.
        for _ in range(200):
            table.export(Enumerator("ns", []), ids.IID_IENUMWBEMCLASSOBJECT)
        for _ in range(4):
            clock.advance(120)
            pings.simple_ping(set_id)
            pings.collect()
        assert len(table) == 2  # IRemUnknown and the one object a client pings
    assert table.reclaimed == 50 * 200


# ------------------------------------------------------------------------------------------
# On the wire, with simulated time


class _NoTimer:
    """impacket's 120 s ping timer, replaced: the test calls its pinger itself."""

    def __init__(self, *_: Any, **__: Any) -> None: ...

    def start(self) -> None: ...

    def cancel(self) -> None: ...

    def join(self) -> None: ...


@pytest.mark.slow
def test_impacket_pings_keep_its_objects_for_a_simulated_day(
        start_lab: StartLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dcomrt, "Timer", _NoTimer)
    # impacket pings every target it ever saw, from class-level dicts, and stops at the first
    # that fails: this test's pings must not depend on what earlier tests left there.
    for name in ("OID_ADD", "OID_DEL", "OID_SET", "PORTMAPS"):
        monkeypatch.setattr(dcomrt.DCOMConnection, name, {})
    # A real-time sweep only every hour: the test drives the simulated clock itself.
    lab = start_lab(scenario(), limits=Limits(gc=GcSettings(ping_period=3600)))
    rt = lab.lab.servers["B"].runtime
    assert rt is not None
    clock = Clock()
    rt.table.clock = clock
    rt.pings.settings = GcSettings()  # MS-DCOM's 120 s period, on the simulated clock

    def sweep() -> int:
        async def go() -> int:
            return rt.pings.collect()
        return int(lab.run(go()))

    conn = dcomrt.DCOMConnection(lab.address(), "admin", "Adm1n!", "CORP", "", "",
                                 oxidResolver=True)
    try:
        iface = conn.CoCreateInstanceEx(iwmi.CLSID_WbemLevel1Login, iwmi.IID_IWbemLevel1Login)
        svc = iwmi.IWbemLevel1Login(iface).NTLMLogin("//./root/cimv2", NULL, NULL)
        # Two other clients: one abandons its objects, one calls but never pings.
        gone_client, gone_services = _logged_in(lab)
        busy_client, busy_services = _logged_in(lab)
        baseline = len(rt.table)
        for period in range(DAY // 120):
            clock.advance(120)
            dcomrt.DCOMConnection.pingServer()  # impacket's own ComplexPing / SimplePing
            if period < 100:
                reply = busy_client.call(ids.WbemServicesOp.EXEC_QUERY,
                                         wmi.build_exec_query_request(
                                             "SELECT Name FROM Win32_ComputerSystem"),
                                         busy_services)
                assert isinstance(reply, ResponseReceived)
            sweep()
            if period == 10:
                # Three periods without a call or a ping: the abandoned client's are gone.
                assert _fault(gone_client, gone_services) == RPC_E_DISCONNECTED
                assert _fault(busy_client, busy_services) is None
        # A day later impacket's objects still work; the busy client stopped calling at
        # period 100, so its objects went too.
        assert query(svc, "SELECT Name FROM Win32_Service WHERE Name = 'winmgmt'") \
            == [{"Name": "winmgmt"}]
        assert _fault(busy_client, busy_services) == RPC_E_DISCONNECTED
        assert len(rt.table) < baseline
        assert any(s.oids for s in rt.pings.sets.values())
        gone_client.sock.close()
        busy_client.sock.close()
    finally:
        conn.disconnect()


def _fault(client: Any, services: Any) -> int | None:
    got = client.call(ids.WbemServicesOp.EXEC_QUERY, wmi.build_exec_query_request(
        "SELECT Name FROM Win32_ComputerSystem"), services)
    return got.status if isinstance(got, FaultReceived) else None


@pytest.mark.slow
def test_aiowmi_never_pings_but_keeps_its_session_while_it_queries(
        start_lab: StartLab) -> None:
    """aiowmi never pings and never releases the enumerator of each query: its
    IWbemServices lives while it keeps calling, the leftovers go (docs/choices.md)."""
    import asyncio

    from aiowmi.connection import Connection
    from aiowmi.query import Query

    lab = start_lab(scenario(), root=False, limits=Limits(gc=GcSettings(ping_period=3600)))
    rt = lab.lab.servers["B"].runtime
    assert rt is not None
    clock = Clock()
    rt.table.clock = clock
    rt.pings.settings = GcSettings()
    sizes: list[int] = []

    def sweep() -> None:
        async def go() -> None:
            rt.pings.collect()
        lab.run(go())

    async def session() -> list[str]:
        # The DNS name of the domain, as many tools send it (Directory.find_domain).
        conn = Connection(lab.address(), "admin", "Adm1n!", domain="corp.example",
                          port=lab.port("rpcss"))
        names: list[str] = []
        try:
            await conn.connect(timeout=10)
            service = await conn.negotiate_ntlm()
            await conn.login_ntlm(service, "root/cimv2")
            for _ in range(40):
                async with Query("SELECT Name FROM Win32_ComputerSystem").context(
                        conn, service) as qc:
                    async for props in qc.results():
                        names.append(str(props["Name"].value))
                clock.advance(100)  # a query every 100 s, never a ping
                await asyncio.to_thread(sweep)
                sizes.append(len(rt.table))
        finally:
            conn.close()
        return names

    names = asyncio.run(session())
    assert names == ["B"] * 40
    # Leftover enumerators of old queries were reclaimed: the table does not grow with the
    # number of queries (about 2 IPIDs stay behind per query without collection).
    assert max(sizes[10:]) <= sizes[5] + 2
    assert rt.table.reclaimed >= 40 - 5
