"""MS-WMI stub codecs, cross-checked against impacket's and aiowmi's own client code."""

from __future__ import annotations

import struct
import uuid

import pytest
from aiowmi.ndr.get_smart_enum_response import GetSmartEnumResponse
from aiowmi.ndr.next_big_response import NextBigResponse
from aiowmi.ndr.ntlm_login_response import NTLMLoginResponse
from aiowmi.ndr.query_response import QueryResponse
from aiowmi.ndr.smart_response import SmartResponse
from aiowmi.ntlm.login import NTLMLogin as AioNTLMLogin
from aiowmi.query import Query as AioQuery
from impacket.dcerpc.v5 import dcomrt
from impacket.dcerpc.v5.dcom import wmi as iwmi
from impacket.dcerpc.v5.dtypes import NULL

from conftest import impacket_orpcthis
from wmilab.wire import dcom, ids, wmi

OXID = 0x0102030405060708
IPID = uuid.UUID("0000abcd-0000-0000-aaaa-bbbbccccdddd")


def _std(iid: uuid.UUID = ids.IID_IWBEMSERVICES) -> dcom.ObjRefStandard:
    return dcom.ObjRefStandard(iid, dcom.StdObjRef(OXID, 7, IPID),
                               dcom.tcp_bindings(["127.0.0.2"], None))


def _encoded_instance() -> bytes:
    wmio = pytest.importorskip("wmilab.wire.wmio")
    cls = wmio.ClassDef("Win32_OperatingSystem",
                        properties=(wmio.Property("Caption", 8), wmio.Property("Version", 8)))
    inst = wmio.Instance(cls, {"Caption": "Windows XP", "Version": "5.1.2600"})
    return bytes(wmio.encode_encoding_unit(inst, "B", "root\\cimv2"))


def test_ntlm_login_requests_from_both_clients() -> None:
    aio = wmi.parse_ntlm_login(AioNTLMLogin("//./root/cimv2").get_data())
    assert aio.namespace == "root/cimv2"
    req = iwmi.IWbemLevel1Login_NTLMLogin()
    req["ORPCthis"] = impacket_orpcthis()
    req["wszNetworkResource"] = "//./root/cimv2\x00"
    req["wszPreferredLocale"] = NULL
    req["lFlags"] = 0
    req["pCtx"] = NULL
    imp = wmi.parse_ntlm_login(req.getData())
    assert imp.network_resource == "//./root/cimv2" and imp.preferred_locale is None
    own = wmi.parse_ntlm_login(wmi.build_ntlm_login_request("\\\\.\\ROOT\\CIMV2"))
    assert own.namespace == "root/cimv2"


def test_ntlm_login_reply_read_by_both_clients() -> None:
    stub = wmi.build_interface_reply(_std())
    assert NTLMLoginResponse(stub).get_ipid().upper() == str(IPID).upper()
    resp = iwmi.IWbemLevel1Login_NTLMLoginResponse(stub)
    assert dcomrt.OBJREF_STANDARD(b"".join(resp["ppNamespace"]["abData"]))["std"]["oxid"] == OXID


def test_ntlm_login_denied_reply_ends_with_wbem_e_access_denied() -> None:
    stub = wmi.build_interface_reply(_std(), wmi.WBEM_E_ACCESS_DENIED)
    assert stub == bytes(8) + bytes(4) + struct.pack("<I", 0x80041003)


def test_exec_query_requests_from_both_clients() -> None:
    q = AioQuery("SELECT * FROM Win32_OperatingSystem")
    from aiowmi.ndr.orpcthis import ORPCTHIS
    from aiowmi.tools import get_null
    stub = (ORPCTHIS.get_data() + q._language.get_data() + q._query.get_data()
            + struct.pack("<L", 0x30) + get_null())
    parsed = wmi.parse_wbem_services(20, stub)
    assert isinstance(parsed, wmi.WbemRequest)
    assert parsed.query == "SELECT * FROM Win32_OperatingSystem"
    assert parsed.query_language == "WQL" and parsed.semisync and parsed.forward_only

    req = iwmi.IWbemServices_ExecQuery()
    req["ORPCthis"] = impacket_orpcthis()
    req["strQueryLanguage"]["asData"] = "WQL"
    req["strQuery"]["asData"] = "select Name from Win32_Process"
    req["lFlags"] = 0
    req["pCtx"] = NULL
    parsed = wmi.parse_wbem_services(20, req.getData())
    assert isinstance(parsed, wmi.WbemRequest)
    assert parsed.query == "select Name from Win32_Process" and not parsed.semisync


def test_exec_query_async_carries_the_sink() -> None:
    sink = _std(ids.IID_IWBEMOBJECTSINK)
    parsed = wmi.parse_wbem_services(21, wmi.build_exec_query_request("select * from A",
                                                                      sink=sink))
    assert isinstance(parsed, wmi.WbemRequest) and parsed.sink is not None
    assert parsed.sink.oxid == OXID and parsed.sink.ipid == IPID
    assert parsed.sink.resolver_endpoints() == [("127.0.0.2", None)]


def test_exec_query_reply_read_by_both_clients() -> None:
    stub = wmi.build_interface_reply(_std(ids.IID_IENUMWBEMCLASSOBJECT))
    assert QueryResponse(stub).get_ipid().upper() == str(IPID).upper()
    resp = iwmi.IWbemServices_ExecQueryResponse(stub)
    assert resp["ErrorCode"] == 0


def test_get_object_and_exec_method_requests_from_impacket() -> None:
    req = iwmi.IWbemServices_GetObject()
    req["ORPCthis"] = impacket_orpcthis()
    req["strObjectPath"]["asData"] = "Win32_Process"
    req["lFlags"] = 0
    req["pCtx"] = NULL
    parsed = wmi.parse_wbem_services(6, req.getData())
    assert isinstance(parsed, wmi.WbemRequest)
    assert parsed.path == "Win32_Process" and not parsed.wants_call_result

    m = iwmi.IWbemServices_ExecMethod()
    m["ORPCthis"] = impacket_orpcthis()
    m["strObjectPath"]["asData"] = "Win32_Process\x00"
    m["strMethodName"]["asData"] = "Create\x00"
    m["lFlags"] = 0
    m["pCtx"] = NULL
    inp = dcom.encode_objref(dcom.wbem_object_ref(b"\x78\x56\x34\x12\x00\x00\x00\x00"))
    m["pInParams"]["ulCntData"] = len(inp)
    m["pInParams"]["abData"] = list(inp)
    m.fields["ppCallResult"] = NULL
    m.fields["ppOutParams"].fields["Data"] = NULL
    parsed = wmi.parse_wbem_services(24, m.getData())
    assert isinstance(parsed, wmi.WbemRequest)
    assert (parsed.path, parsed.method) == ("Win32_Process", "Create")
    assert parsed.in_params_object == b"\x78\x56\x34\x12\x00\x00\x00\x00"


def test_get_object_and_exec_method_replies_read_by_impacket() -> None:
    obj = b"\x78\x56\x34\x12\x04\x00\x00\x00abcd"
    resp = iwmi.IWbemServices_GetObjectResponse(wmi.build_get_object_reply(obj))
    raw = b"".join(resp["ppObject"]["abData"])
    assert dcomrt.OBJREF_CUSTOM(raw)["pObjectData"] == obj
    assert resp["ErrorCode"] == 0
    resp2 = iwmi.IWbemServices_ExecMethodResponse(wmi.build_exec_method_reply(obj))
    assert dcomrt.OBJREF_CUSTOM(b"".join(resp2["ppOutParams"]["abData"]))["pObjectData"] == obj


def test_unsupported_opnum_and_error_reply() -> None:
    w = dcom.NdrWriter()
    dcom.write_orpcthis(w, dcom.OrpcThis())
    # PutClass with a NULL pObject parses (the host answers WBEM_E_INVALID_PARAMETER).
    parsed = wmi.parse_wbem_services(8, w.getvalue() + bytes(16))
    assert isinstance(parsed, wmi.WbemRequest) and parsed.object_data is None
    # Every opnum of MS-WMI 3.1.4.3 is parsed; one past the last is not.
    assert isinstance(wmi.parse_wbem_services(26, w.getvalue()), wmi.Unsupported)
    err = wmi.build_error_reply(ids.IID_IWBEMSERVICES, 8)
    assert err is not None and err[-4:] == struct.pack("<I", 0x8004100C)
    resp = iwmi.IWbemServices_PutClassResponse(err)
    assert resp["ErrorCode"] == 0x8004100C
    assert wmi.build_error_reply(ids.IID_IWBEMSERVICES, 99) is None


def test_next_request_and_reply_with_impacket() -> None:
    req = iwmi.IEnumWbemClassObject_Next()
    req["ORPCthis"] = impacket_orpcthis()
    req["lTimeout"] = 0xFFFFFFFF
    req["uCount"] = 1
    parsed = wmi.parse_enum(4, req.getData())
    assert isinstance(parsed, wmi.EnumRequest) and parsed.count == 1
    obj = b"\x78\x56\x34\x12\x04\x00\x00\x00abcd"
    resp = iwmi.IEnumWbemClassObject_NextResponse(wmi.build_next_reply([obj], 1))
    assert resp["puReturned"] == 1 and resp["ErrorCode"] == 0
    assert dcomrt.OBJREF_CUSTOM(b"".join(resp["apObjects"][0]["abData"]))["pObjectData"] == obj
    end = wmi.build_next_reply([], 1)
    assert end[-8:] == struct.pack("<II", 0, 1)  # zero objects, WBEM_S_FALSE
    objs, hr = wmi.parse_next_reply(wmi.build_next_reply([obj], 1))
    assert hr == 0 and isinstance(objs[0], dcom.ObjRefCustom) and objs[0].data == obj


def test_next_reply_with_real_object_read_by_aiowmi() -> None:
    enc = _encoded_instance()
    props = NextBigResponse(wmi.build_next_reply([enc], 1)).get_properties()
    assert props["Caption"].value == "Windows XP"


def test_smart_enum_replies_read_by_aiowmi() -> None:
    assert GetSmartEnumResponse(wmi.build_interface_reply(
        _std(ids.IID_IWBEMWCOSMARTENUM))).get_ipid().upper() == str(IPID).upper()
    enc = _encoded_instance()
    cid = uuid.UUID("11111111-2222-3333-4444-555555555555")
    stub = wmi.build_smart_next_reply([wmi.SmartObject(cid, enc)], 1)
    props = SmartResponse(stub, {}).get_properties()
    assert props["Version"].value == "5.1.2600"
    end = wmi.build_smart_next_reply([], 1)
    assert end[-4:] == struct.pack("<I", 1)


def test_object_array_header_sizes() -> None:
    buf = wmi.encode_object_array([wmi.SmartObject(uuid.UUID(int=1), b"BLOCK")])
    assert buf[4:12] == b"WBEMDATA"
    h1, d1 = struct.unpack_from("<II", buf, 12)
    assert h1 == 0x1A and d1 == len(buf) - 0x1A
    h2, d2, h3, d3, n = struct.unpack_from("<IIIII", buf, 26)
    assert (h2, h3, n) == (8, 12, 1) and d2 == len(buf) - 34 and d3 == len(buf) - 46


def test_smart_next_request() -> None:
    from aiowmi.ndr.orpcthis import ORPCTHIS
    g = uuid.uuid4()
    stub = ORPCTHIS.get_data(flags=0) + g.bytes_le + struct.pack("<LL", 0xFFFFFFFF, 1)
    parsed = wmi.parse_smart_next(stub)
    assert parsed.proxy_guid == g and parsed.count == 1


def test_sink_indicate_and_set_status_round_trip_and_impacket() -> None:
    obj = b"\x78\x56\x34\x12\x00\x00\x00\x00"
    ind = wmi.parse_indicate(wmi.build_indicate_request([obj, obj]))
    assert len(ind.objects) == 2
    imp = iwmi.IWbemObjectSink_Indicate(wmi.build_indicate_request([obj]))
    assert imp["lObjectCount"] == 1
    st = wmi.parse_set_status(wmi.build_set_status_request(0x80041003, param="x"))
    assert (st.hresult, st.param, st.object) == (0x80041003, "x", None)
    imp2 = iwmi.IWbemObjectSink_SetStatus(wmi.build_set_status_request(0))
    assert imp2["hResult"] == 0
    assert wmi.parse_hresult_reply(dcom.build_orpc_hresult_reply(0)) == 0


def test_call_result_replies_read_by_impacket() -> None:
    r = iwmi.IWbemCallResult_GetCallStatusResponse(wmi.build_get_call_status_reply(0))
    assert r["plStatus"] == 0 and r["ErrorCode"] == 0
    s = iwmi.IWbemCallResult_GetResultStringResponse(wmi.build_get_result_string_reply("a"))
    assert s["ErrorCode"] == 0
    req = iwmi.IWbemCallResult_GetCallStatus()
    req["ORPCthis"] = impacket_orpcthis()
    req["lTimeout"] = 5
    assert wmi.parse_call_result(6, req.getData()).timeout == 5


def test_establish_position_reply() -> None:
    resp = iwmi.IWbemLevel1Login_EstablishPositionResponse(wmi.build_establish_position_reply())
    assert resp["LocaleVersion"] == 0 and resp["ErrorCode"] == 0
