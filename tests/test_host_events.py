"""Intrinsic events from an emulated host: ExecNotificationQuery (semisynchronous, with
impacket's classes) and ExecNotificationQueryAsync (wmilab's own client, the events arriving
at a sink on A over Connection 2). Events are raised by what changes the emulated host:
Win32_Process.Create and Terminate, PutInstance, DeleteInstance, or a test calling
``Repository.start_process`` (nothing runs on this machine)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from impacket.dcerpc.v5.dcom import wmi as iwmi
from impacket.dcerpc.v5.rpcrt import DCERPCException

import test_host_clients
from conftest import make, remote_admin_pair
from test_host_clients import RunningLab, StartLab, scenario
from test_host_services import UPDATE_ONLY, error_of, lab_class, put, session
from wmilab import flow
from wmilab.client.session import login
from wmilab.host.sink import SinkExporter
from wmilab.lab.loopback import LoopbackLab
from wmilab.repository import CimInstance
from wmilab.repository.events import parse_event_query
from wmilab.wire import dcom, ids, wmi, wmio

pytestmark = pytest.mark.slow
start_lab = test_host_clients.start_lab

SEMISYNC = iwmi.WBEM_FLAG_RETURN_IMMEDIATELY | iwmi.WBEM_FLAG_FORWARD_ONLY
CREATION = ("SELECT * FROM __InstanceCreationEvent WITHIN 5 "
            "WHERE TargetInstance ISA 'Win32_Process'")
WBEM_S_TIMEDOUT = 0x40004


def start_process(lab: RunningLab, command: str) -> CimInstance:
    """A test raises a process-start event on B; nothing is executed."""
    async def go() -> CimInstance:
        return lab.repository().start_process(command)  # type: ignore[no-any-return]
    return lab.run(go())  # type: ignore[no-any-return]


def next_event(enum: Any) -> Any:
    return enum.Next(0xFFFFFFFF, 1)[0]


def test_semisync_notification_query_delivers_process_events(start_lab: StartLab) -> None:
    lab = start_lab(scenario())
    with session(lab) as (_l, svc):
        enum = svc.ExecNotificationQuery(CREATION, SEMISYNC)
        # Nothing happened yet: Next times out (MS-WMI 3.1.4.4.2), it never ends the stream.
        assert error_of(lambda: enum.Next(0, 1)) == WBEM_S_TIMEDOUT
        started = start_process(lab, "calc.exe")
        event = next_event(enum)
        assert event.getClassName() == "__InstanceCreationEvent"
        target = event.getProperties()["TargetInstance"]["value"]
        assert target is not None
        # Win32_Process.Create through impacket raises the next one.
        proc, _ = svc.GetObject("Win32_Process")
        out = proc.Create("notepad.exe", "C:\\", None)
        second = next_event(enum)
        assert second.getClassName() == "__InstanceCreationEvent"
        assert error_of(lambda: enum.Next(0, 1)) == WBEM_S_TIMEDOUT
        # Deletions go to a deletion query only.
        gone = svc.ExecNotificationQuery(
            "SELECT * FROM __InstanceDeletionEvent WITHIN 2 WHERE TargetInstance ISA "
            f"'Win32_Process' AND TargetInstance.ProcessId = {out.ProcessId}", SEMISYNC)
        svc.DeleteInstance(f'Win32_Process.Handle="{started.get("ProcessId")}"')
        assert error_of(lambda: gone.Next(0, 1)) == WBEM_S_TIMEDOUT  # another process
        svc.ExecMethod(f'Win32_Process.Handle="{out.ProcessId}"', "Terminate")
        assert next_event(gone).getClassName() == "__InstanceDeletionEvent"
        assert error_of(lambda: enum.Next(0, 1)) == WBEM_S_TIMEDOUT


def test_put_instance_raises_creation_and_modification_events(start_lab: StartLab) -> None:
    lab = start_lab(scenario())
    with session(lab) as (_l, svc):
        assert put(svc, iwmi.IWbemServices_PutClass, "pObject", lab_class()) == 0
        changed = svc.ExecNotificationQuery(
            "SELECT * FROM __InstanceModificationEvent WITHIN 1 "
            "WHERE TargetInstance ISA 'Lab_Thing' AND PreviousInstance.Size = 1", SEMISYNC)
        every = svc.ExecNotificationQuery(
            "SELECT * FROM __InstanceOperationEvent WITHIN 1 "
            "WHERE TargetInstance ISA 'Lab_Thing'", SEMISYNC)
        cls, _ = svc.GetObject("Lab_Thing")
        inst = cls.SpawnInstance()
        inst.Name = "one"
        inst.Size = 1
        svc.PutInstance(inst.marshalMe())
        assert error_of(lambda: changed.Next(0, 1)) == WBEM_S_TIMEDOUT  # a creation
        inst.Size = 2
        svc.PutInstance(inst.marshalMe(), UPDATE_ONLY)
        event = next_event(changed)
        assert event.getClassName() == "__InstanceModificationEvent"
        svc.DeleteInstance('Lab_Thing.Name="one"')
        kinds = [next_event(every).getClassName() for _ in range(3)]
        assert kinds == ["__InstanceCreationEvent", "__InstanceModificationEvent",
                         "__InstanceDeletionEvent"]
    # The events the repository raised carry the instances themselves.
    repo = lab.repository()
    seen: list[Any] = []
    repo.listeners.append(seen.append)
    start_process(lab, "x.exe")
    assert [(c.kind, c.target.get("Name")) for c in seen] == [("creation", "x.exe")]


def test_notification_query_errors(start_lab: StartLab) -> None:
    lab = start_lab(scenario())
    with session(lab) as (_l, svc):
        # MSDocs WmiSdk/within-clause: no event provider, so WITHIN is required.
        assert error_of(lambda: svc.ExecNotificationQuery(
            "SELECT * FROM __InstanceCreationEvent WHERE TargetInstance ISA 'Win32_Process'",
            SEMISYNC)) == 0x80042002
        # MS-WMI 3.1.4.3.20: the flags MUST be semisynchronous and forward-only.
        assert error_of(lambda: svc.ExecNotificationQuery(CREATION, 0)) == 0x80041008
        assert error_of(lambda: svc.ExecNotificationQuery(
            "SELECT * FROM Win32_Process WITHIN 5", SEMISYNC)) == 0x80041010
        assert error_of(lambda: svc.ExecNotificationQuery("SELEKT nonsense", SEMISYNC)) \
            == 0x80041017
    # The host still serves.
    with session(lab) as (_l, svc):
        assert svc.ExecNotificationQuery(CREATION, SEMISYNC) is not None


def test_event_query_parser_matches_changes() -> None:
    from wmilab.repository import MachineFacts, Repository

    repo = Repository.for_host(MachineFacts("HOSTB", os="xp-sp2", workgroup="WORKGROUP"))
    q = parse_event_query("select * from __InstanceOperationEvent within 1.5 where "
                          "TargetInstance isa 'CIM_Process' and TargetInstance.Name = 'a.exe'")
    assert q.within == 1.5 and q.kinds == {"creation", "deletion", "modification"}
    from wmilab.repository.events import matches

    a = repo.start_process("a.exe")
    b = repo.start_process("b.exe")
    assert matches(q, "creation", a) and matches(q, "deletion", a)
    assert not matches(q, "creation", b)
    quoted = parse_event_query("SELECT * FROM __InstanceCreationEvent WITHIN 1 WHERE "
                               "TargetInstance.Name = 'TargetInstance.Name'")
    assert not matches(quoted, "creation", a)


# ------------------------------------------------------------------------------------------
# ExecNotificationQueryAsync: events reach the sink on A over Connection 2 (wmilab's client)


async def _async_events() -> tuple[list[wmio.ClassDef | wmio.Instance], int | None, int]:
    doc = remote_admin_pair()
    doc["hosts"]["A"]["netsh"] = [
        "netsh firewall set service RemoteAdmin enable",
        "netsh firewall add allowedprogram program=%windir%\\system32\\wbem\\unsecapp.exe "
        "name=unsecapp mode=enable"]
    doc["calls"] = [{"from": "A", "to": "B", "user": "CORP\\admin", "mode": "async"}]
    s = make(doc)
    assert flow.evaluate(s.world, s.calls[0]).ok
    ports = {135: 0, 1025: 0, 1026: 0}
    async with LoopbackLab.for_scenario(s, ports=ports) as lab:
        b = lab.servers["B"]
        async with SinkExporter(lab.servers["A"],
                                program=flow.sink_program(s.calls[0])) as sinks:
            sink = sinks.create()
            cli, services = await login(b.address, b.ports["rpcss"],
                                        local_address=str(lab.map.loopback("A")),
                                        user="CORP\\admin", password="Adm1n!",
                                        namespace="root\\cimv2")
            async with cli:
                stub = wmi.build_exec_query_request(CREATION, flags=0, sink=sink.objref())
                reply = wmi.parse_hresult_reply(await cli.call(
                    ids.WbemServicesOp.EXEC_NOTIFICATION_QUERY_ASYNC, stub, services.std.ipid))
                assert b.runtime is not None
                b.runtime.repository.start_process("calc.exe")
                b.runtime.repository.start_process("notepad.exe")
                await b.callbacks.wait_idle(20)
                # CancelAsyncCall ends the subscription: SetStatus(WBEM_E_CALL_CANCELLED).
                w = dcom.NdrWriter()
                dcom.write_orpcthis(w, dcom.OrpcThis())
                dcom.write_unique_mip(w, sink.objref())
                cancelled = wmi.parse_hresult_reply(await cli.call(
                    ids.WbemServicesOp.CANCEL_ASYNC_CALL, w.getvalue(), services.std.ipid))
                await b.callbacks.wait_idle(20)
                again = wmi.parse_hresult_reply(await cli.call(
                    ids.WbemServicesOp.CANCEL_ASYNC_CALL, w.getvalue(), services.std.ipid))
                b.runtime.repository.start_process("after.exe")
                await b.callbacks.wait_idle(20)
                assert reply == 0 and cancelled == 0
            return list(sink.result.objects), sink.result.status, again


def test_async_notification_events_reach_the_sink_over_connection_2() -> None:
    objects, status, again = asyncio.run(_async_events())
    names = []
    for o in objects:
        assert isinstance(o, wmio.Instance) and o.cls.name == "__InstanceCreationEvent"
        target = o.get("TargetInstance")
        assert isinstance(target, wmio.Instance) and target.cls.name == "Win32_Process"
        names.append(target.get("Name"))
    assert names == ["calc.exe", "notepad.exe"]  # and nothing after the cancel
    assert status == 0x80041032  # WBEM_E_CALL_CANCELLED
    assert again == 0x80041008  # no pending call on that sink any more


def test_impacket_cannot_pass_a_sink_but_gets_an_error_not_a_hang(start_lab: StartLab) -> None:
    lab = start_lab(scenario())
    with session(lab) as (_l, svc):
        # impacket's ExecNotificationQueryAsync sends no sink: a NULL pResponseHandler is
        # bad stub data for the host (the RPC runtime answers with a fault).
        with pytest.raises(DCERPCException):
            svc.ExecNotificationQueryAsync(CREATION)
        assert svc.ExecNotificationQuery(CREATION, SEMISYNC) is not None


async def _next_async() -> tuple[list[tuple[int, int, int | None]], int]:
    doc = remote_admin_pair()
    doc["hosts"]["A"]["netsh"] = [
        "netsh firewall set service RemoteAdmin enable",
        "netsh firewall add allowedprogram program=%windir%\\system32\\wbem\\unsecapp.exe "
        "name=unsecapp mode=enable"]
    doc["calls"] = [{"from": "A", "to": "B", "user": "CORP\\admin", "mode": "async"}]
    s = make(doc)
    async with LoopbackLab.for_scenario(s, ports={135: 0, 1025: 0, 1026: 0}) as lab:
        b = lab.servers["B"]
        assert b.runtime is not None
        total = len(b.runtime.repository.exec_query("root\\cimv2", "SELECT * FROM Win32_Service"))
        async with SinkExporter(lab.servers["A"],
                                program=flow.sink_program(s.calls[0])) as sinks:
            cli, services = await login(b.address, b.ports["rpcss"],
                                        local_address=str(lab.map.loopback("A")),
                                        user="CORP\\admin", password="Adm1n!",
                                        namespace="root\\cimv2")
            out: list[tuple[int, int, int | None]] = []
            async with cli:
                r = dcom.NdrReader(await cli.call(
                    ids.WbemServicesOp.EXEC_QUERY,
                    wmi.build_exec_query_request("SELECT * FROM Win32_Service", flags=0),
                    services.std.ipid))
                dcom.read_orpcthat(r)
                enum = dcom.read_unique_objref(r)
                assert isinstance(enum, dcom.ObjRefStandard)
                for count in (3, 100_000, 1):
                    sink = sinks.create()
                    w = dcom.NdrWriter()
                    dcom.write_orpcthis(w, dcom.OrpcThis())
                    w.u32(count)
                    dcom.write_unique_mip(w, sink.objref())
                    reply = wmi.parse_hresult_reply(await cli.call(
                        ids.EnumWbemClassObjectOp.NEXT_ASYNC, w.getvalue(), enum.std.ipid))
                    await b.callbacks.wait_idle(20)
                    out.append((reply, len(sink.result.objects), sink.result.status))
            return out, total


def test_next_async_delivers_batches_to_the_sink() -> None:
    # MS-WMI 3.1.4.4.3; MSDocs ienumwbemclassobject-nextasync.
    out, total = asyncio.run(_next_async())
    assert out[0] == (0, 3, 0)  # uCount delivered: SetStatus WBEM_S_NO_ERROR
    assert out[1] == (0, total - 3, 1)  # fewer than asked: SetStatus WBEM_S_FALSE
    assert out[2] == (1, 0, None)  # nothing left: WBEM_S_FALSE, the sink is not called
