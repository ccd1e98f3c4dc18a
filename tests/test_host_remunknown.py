"""IRemUnknown is served once (host/remunknown.py) for the WMI exporter and the sink exporter.

Requests are built by impacket's dcomrt classes; replies are parsed by impacket's response
classes, so both sides of the wire are checked, not our own reading of it.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from impacket.dcerpc.v5 import dcomrt

from conftest import impacket_orpcthis
from wmilab.host import remunknown
from wmilab.host.objects import Enumerator, ObjectTable
from wmilab.host.runtime import OP_RANGE, RPC_E_DISCONNECTED
from wmilab.host.sink import SinkExporter
from wmilab.wire import dcom, ids

OP = ids.RemUnknownOp


def _qi(ipid: uuid.UUID, *iids: uuid.UUID, refs: int = 1) -> bytes:
    req = dcomrt.RemQueryInterface()
    req["ORPCthis"] = impacket_orpcthis()
    req["ripid"] = ipid.bytes_le
    req["cRefs"] = refs
    req["cIids"] = len(iids)
    for iid in iids:
        i = dcomrt.IID()
        i["Data"] = iid.bytes_le
        req["iids"].append(i)
    data: bytes = req.getData()
    return data


def _refs(cls: Any, ipid: uuid.UUID, public: int) -> bytes:
    req = cls()
    req["ORPCthis"] = impacket_orpcthis()
    req["cInterfaceRefs"] = 1
    el = dcomrt.REMINTERFACEREF()
    el["ipid"] = ipid.bytes_le
    el["cPublicRefs"] = public
    el["cPrivateRefs"] = 0
    req["InterfaceRefs"].append(el)
    data: bytes = req.getData()
    return data


def _qi_results(reply: Any) -> list[tuple[int, int, uuid.UUID]]:
    """(hResult, oxid, ipid) per IID. impacket reads the first REMQIRESULT (its
    RemQueryInterfaceResponse holds one); the others are read at their NDR offsets."""
    assert isinstance(reply, bytes)
    first = dcomrt.RemQueryInterfaceResponse(reply)["ppQIResults"]
    r = dcom.NdrReader(reply)
    dcom.read_orpcthat(r)
    r.ptr()
    out = []
    for _ in range(r.u32()):
        r.align(8)
        code = r.u32()
        r.align(8)
        r.u32()
        r.u32()
        oxid = r.u64()
        r.u64()
        out.append((code, oxid, r.guid()))
    assert out and (first["hResult"] & 0xFFFFFFFF, first["std"]["oxid"]) == out[0][:2]
    assert uuid.UUID(bytes_le=bytes(first["std"]["ipid"])) == out[0][2]
    return out


def test_wmi_exporter_table_query_add_ref_and_release() -> None:
    table = ObjectTable(oxid=0x1122334455667788)
    enum = table.export(Enumerator("root\\cimv2", []), ids.IID_IENUMWBEMCLASSOBJECT, refs=1)
    reply = remunknown.handle(table, OP.REM_QUERY_INTERFACE,
                              _qi(enum.ipid, ids.IID_IWBEMFETCHSMARTENUM))
    [(code, oxid, fetch_ipid)] = _qi_results(reply)
    assert (code, oxid) == (dcom.S_OK, table.oxid)
    assert table.lookup(fetch_ipid) is not None and fetch_ipid != enum.ipid
    # An interface the object does not have: E_NOINTERFACE (aiowmi then falls back to Next).
    reply = remunknown.handle(table, OP.REM_QUERY_INTERFACE,
                              _qi(enum.ipid, ids.IID_IWBEMSERVICES))
    assert [c for c, _, _ in _qi_results(reply)] == [dcom.E_NOINTERFACE]
    add = remunknown.handle(table, OP.REM_ADD_REF, _refs(dcomrt.RemAddRef, enum.ipid, 2))
    assert dcomrt.RemAddRefResponse(add)["ErrorCode"] == dcom.S_OK
    # 1 + 2 references: released by three, the entry goes (MS-DCOM 3.1.1.5.6.1.3).
    rel = remunknown.handle(table, OP.REM_RELEASE, _refs(dcomrt.RemRelease, enum.ipid, 3))
    assert dcomrt.RemReleaseResponse(rel)["ErrorCode"] == dcom.S_OK
    assert table.lookup(enum.ipid) is None


@pytest.mark.parametrize("kind", ["wmi", "sink"])
def test_unknown_ipid_answers_alike_in_both_exporters(kind: str) -> None:
    table: Any = ObjectTable() if kind == "wmi" else SinkExporter(SimpleNamespace(model=None))
    gone = uuid.uuid4()
    reply = remunknown.handle(table, OP.REM_QUERY_INTERFACE,
                              _qi(gone, ids.IID_IUNKNOWN, ids.IID_IWBEMOBJECTSINK))
    assert [c for c, _, _ in _qi_results(reply)] == [RPC_E_DISCONNECTED] * 2
    add = remunknown.handle(table, OP.REM_ADD_REF, _refs(dcomrt.RemAddRef, gone, 1))
    assert add[-4:] == remunknown.E_INVALIDARG.to_bytes(4, "little")
    rel = remunknown.handle(table, OP.REM_RELEASE, _refs(dcomrt.RemRelease, gone, 1))
    assert dcomrt.RemReleaseResponse(rel)["ErrorCode"] == dcom.S_OK  # impacket releases twice
    assert remunknown.handle(table, 99, b"") == OP_RANGE


def test_sink_exporter_answers_for_its_sinks_and_keeps_them_on_release() -> None:
    exporter = SinkExporter(SimpleNamespace(model=None))
    sink = exporter.create()
    reply = remunknown.handle(exporter, OP.REM_QUERY_INTERFACE,
                              _qi(sink.ipid, ids.IID_IWBEMOBJECTSINK, ids.IID_IWBEMSERVICES))
    results = _qi_results(reply)
    assert results[0] == (dcom.S_OK, exporter.oxid, sink.ipid)
    assert results[1][0] == dcom.E_NOINTERFACE
    rel = remunknown.handle(exporter, OP.REM_RELEASE, _refs(dcomrt.RemRelease, sink.ipid, 5))
    assert dcomrt.RemReleaseResponse(rel)["ErrorCode"] == dcom.S_OK
    # Choice (host/sink.py): the client that owns the sink decides when it goes.
    again = remunknown.handle(exporter, OP.REM_QUERY_INTERFACE,
                              _qi(sink.ipid, ids.IID_IUNKNOWN))
    assert _qi_results(again)[0][0] == dcom.S_OK
