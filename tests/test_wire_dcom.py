"""MS-DCOM stub codecs, cross-checked against impacket's and aiowmi's own client code."""

from __future__ import annotations

import contextlib
import struct
import uuid

import pytest
from aiowmi.dcom_const import CLSID_IWbemLevel1Login, IID_IWbemLevel1Login
from aiowmi.exceptions import ServerNotOptimized
from aiowmi.ndr.rem_query_interface_response import RemQueryInterfaceResponse as AioQIR
from aiowmi.ndr.remote_create_instance import RemoteCreateInstance as AioRCI
from aiowmi.ndr.remote_create_instance_response import RemoteCreateInstanceResponse as AioRCIR
from hypothesis import example, given
from hypothesis import strategies as st
from impacket.dcerpc.v5 import dcomrt
from impacket.dcerpc.v5.dcom import wmi as iwmi
from impacket.dcerpc.v5.dtypes import NULL

from conftest import impacket_orpcthis
from wmilab.wire import dcom, ids
from wmilab.wire.dcom import properties

OXID = 0x1122334455667788
IPID_REMUNK = uuid.UUID("00001234-0000-0000-1111-222233334444")
IPID_LOGIN = uuid.UUID("00005678-0000-0000-1111-222233334444")


@pytest.fixture(autouse=True)
def _impacket_pings_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """impacket keeps the OIDs it must ping in class-level dicts of DCOMConnection; the
    activation parsed here (for a host at 127.0.0.2 that does not exist) must not stay
    there, or a later test's DCOMConnection.pingServer() tries that target first and stops
    pinging its own host (test_host_gc)."""
    for name in ("OID_ADD", "OID_DEL", "OID_SET", "PORTMAPS"):
        monkeypatch.setattr(dcomrt.DCOMConnection, name, {})


def _impacket_rci_stub(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The exact stub impacket's IRemoteSCMActivator.RemoteCreateInstance sends."""
    captured: list[bytes] = []

    class Stop(Exception):
        pass

    class FakeDce:
        def bind(self, iid: bytes) -> None:
            pass

        def request(self, req: dcomrt.RemoteCreateInstance) -> None:
            captured.append(req.getData())
            raise Stop

    with pytest.raises(Stop):
        dcomrt.IRemoteSCMActivator(FakeDce()).RemoteCreateInstance(
            iwmi.CLSID_WbemLevel1Login, iwmi.IID_IWbemLevel1Login)
    return captured[0]


def _scm(addr: str = "127.0.0.2", port: int = 49667, hint: int = 5) -> dcom.ScmReply:
    return dcom.ScmReply(OXID, IPID_REMUNK,
                         dcom.tcp_bindings(["WMILAB-B", addr], port), authn_hint=hint)


def _login_objref(addr: str = "127.0.0.2") -> dcom.ObjRefStandard:
    return dcom.ObjRefStandard(
        ids.IID_IWBEMLEVEL1LOGIN, dcom.StdObjRef(OXID, 0x42, IPID_LOGIN),
        dcom.tcp_bindings([addr], None))


def test_impacket_activation_request_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    req = dcom.parse_remote_create_instance(_impacket_rci_stub(monkeypatch))
    assert req.clsid == ids.CLSID_WBEMLEVEL1LOGIN
    assert req.iids == (ids.IID_IWBEMLEVEL1LOGIN,)
    assert req.requested_protseqs == (7,)
    assert req.orpcthis.flags == 1


def test_aiowmi_activation_request_parses_despite_other_order() -> None:
    stub = AioRCI(CLSID_IWbemLevel1Login, IID_IWbemLevel1Login).get_data()
    req = dcom.parse_remote_create_instance(stub)
    assert req.clsid == ids.CLSID_WBEMLEVEL1LOGIN
    assert req.iids == (ids.IID_IWBEMLEVEL1LOGIN,)
    assert req.requested_protseqs == (7,)
    # aiowmi lists Location before ScmRequest; impacket lists ActivationContext second.
    assert req.property_clsids.index(ids.CLSID_SCMREQUESTINFO) == 3


def test_own_activation_request_round_trip() -> None:
    stub = dcom.build_remote_create_instance_request(
        ids.CLSID_WBEMLEVEL1LOGIN, [ids.IID_IWBEMLEVEL1LOGIN, ids.IID_IUNKNOWN])
    req = dcom.parse_remote_create_instance(stub)
    assert req.iids == (ids.IID_IWBEMLEVEL1LOGIN, ids.IID_IUNKNOWN)


def _reply() -> bytes:
    return dcom.build_activation_reply(
        [dcom.InterfaceResult(ids.IID_IWBEMLEVEL1LOGIN, objref=_login_objref())], _scm())


def test_activation_reply_parsed_by_impacket_client_code(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = _reply()

    class FakeTransport:
        def getRemoteName(self) -> str:
            return "127.0.0.2"

    class FakeDce:
        def bind(self, iid: bytes) -> None:
            pass

        def request(self, req: object) -> dcomrt.RemoteCreateInstanceResponse:
            return dcomrt.RemoteCreateInstanceResponse(stub)

        def get_auth_type(self) -> int:
            return 10

        def get_rpc_transport(self) -> FakeTransport:
            return FakeTransport()

    iface = dcomrt.IRemoteSCMActivator(FakeDce()).RemoteCreateInstance(
        iwmi.CLSID_WbemLevel1Login, iwmi.IID_IWbemLevel1Login)
    assert iface.get_oxid() == OXID
    assert uuid.UUID(bytes_le=iface.get_iPid()) == IPID_LOGIN
    assert uuid.UUID(bytes_le=iface.get_ipidRemUnknown()) == IPID_REMUNK
    bindings = [b["aNetworkAddr"] for b in iface.get_cinstance().get_string_bindings()]
    assert "127.0.0.2[49667]\x00" in bindings
    assert iface.get_cinstance().get_auth_level() == 5


def test_activation_reply_parsed_by_aiowmi() -> None:
    resp = AioRCIR("127.0.0.2", _reply())
    assert resp.get_binding() == ("127.0.0.2", 49667)
    assert resp.scm_reply_info_data.authn_hint == 5
    assert resp.scm_reply_info_data.oxid == OXID
    assert resp.get_ipid().upper() == str(IPID_LOGIN).upper()
    assert resp.scm_reply_info_data.ipid_rem_unknown.upper() == str(IPID_REMUNK).upper()


def test_activation_reply_round_trip_and_padding() -> None:
    results = [dcom.InterfaceResult(ids.IID_IWBEMLEVEL1LOGIN, objref=_login_objref()),
               dcom.InterfaceResult(ids.IID_IWBEMSERVICES, dcom.E_NOINTERFACE)]
    reply = dcom.parse_activation_reply(dcom.build_activation_reply(results, _scm()))
    assert reply.hresult == dcom.S_OK
    assert reply.interfaces[0].objref == _login_objref()
    assert reply.interfaces[1].hresult == dcom.E_NOINTERFACE
    assert reply.interfaces[1].objref is None
    assert reply.scm == _scm()
    blob = dcom.encode_activation_properties_out(results, _scm())
    _dest, props = properties.parse_properties_blob(blob)
    assert [c for c, _ in props] == [ids.CLSID_PROPSOUTINFO, ids.CLSID_SCMREPLYINFO]
    assert all(len(p) % 8 == 0 for _, p in props)


def test_all_interfaces_unknown_gives_e_nointerface() -> None:
    stub = dcom.build_activation_reply(
        [dcom.InterfaceResult(ids.IID_IWBEMSERVICES, dcom.E_NOINTERFACE)], _scm())
    assert struct.unpack("<I", stub[-4:])[0] == dcom.E_NOINTERFACE


def test_access_denied_is_a_fault_with_win32_status() -> None:
    assert dcom.activation_access_denied().status == 5
    err = dcom.build_activation_error(0x80040154)
    assert err[-4:] == struct.pack("<I", 0x80040154)
    assert dcom.parse_activation_reply(err).scm is None


def test_bad_stub_raises_stub_error() -> None:
    with pytest.raises(dcom.StubError) as info:
        dcom.parse_remote_create_instance(b"\x05\x00\x07\x00")
    assert "RemoteCreateInstance" in str(info.value)


@given(st.binary(max_size=200))
def test_garbage_never_escapes_as_raw_error(data: bytes) -> None:
    for fn in (dcom.parse_remote_create_instance, dcom.parse_rem_query_interface,
               dcom.parse_complex_ping, dcom.parse_rem_refs):
        with contextlib.suppress(dcom.StubError):
            fn(data)


def test_objref_custom_round_trip_and_impacket() -> None:
    obj = dcom.wbem_object_ref(b"\x78\x56\x34\x12" + b"xyzw" * 3)
    raw = dcom.encode_objref(obj)
    assert dcom.decode_objref(raw) == obj
    parsed = dcomrt.OBJREF_CUSTOM(raw)
    assert parsed["clsid"] == iwmi.CLSID_WbemClassObject
    assert parsed["pObjectData"] == obj.data


def test_objref_standard_needs_public_refs() -> None:
    bad = dcom.ObjRefStandard(ids.IID_IWBEMSERVICES, dcom.StdObjRef(1, 2, IPID_LOGIN, 0),
                              dcom.tcp_bindings(["a"], None))
    with pytest.raises(ValueError, match="public_refs"):
        dcom.encode_objref(bad)


def test_objref_standard_readable_by_impacket() -> None:
    raw = dcom.encode_objref(_login_objref())
    parsed = dcomrt.OBJREF_STANDARD(raw)
    assert parsed["std"]["oxid"] == OXID
    assert parsed["std"]["cPublicRefs"] == 5


def test_resolve_oxid2_and_pings_against_impacket() -> None:
    req = dcomrt.ResolveOxid2()
    req["pOxid"] = OXID
    req["cRequestedProtseqs"] = 1
    req["arRequestedProtseqs"].append(7)
    parsed = dcom.parse_resolve_oxid(req.getData(), v2=True)
    assert parsed.oxid == OXID and parsed.requested_protseqs == (7,)
    stub = dcom.build_resolve_oxid_reply(dcom.tcp_bindings(["127.0.0.2"], 49667), IPID_REMUNK,
                                         v2=True)
    resp = dcomrt.ResolveOxid2Response(stub)
    assert resp["pAuthnHint"] == 5
    assert uuid.UUID(bytes_le=resp["pipidRemUnknown"]) == IPID_REMUNK
    assert resp["pComVersion"]["MinorVersion"] == 7
    unknown = dcom.build_resolve_oxid_reply(None, IPID_REMUNK, status=dcom.OR_INVALID_OXID)
    assert unknown[-4:] == struct.pack("<I", 1910)

    cp = dcomrt.ComplexPing()
    cp["pSetId"] = 0
    cp["SequenceNum"] = 0
    cp["cAddToSet"] = 1
    cp["cDelFromSet"] = 0
    oid = dcomrt.OID()
    oid["Data"] = 0x42
    cp["AddToSet"].append(oid)
    cp["DelFromSet"] = NULL
    assert dcom.parse_complex_ping(cp.getData()).add == (0x42,)
    resp2 = dcomrt.ComplexPingResponse(dcom.build_complex_ping_reply(77))
    assert resp2["pSetId"] == 77
    sp = dcomrt.SimplePing()
    sp["pSetId"] = 77
    assert dcom.parse_simple_ping(sp.getData()) == 77
    sa = dcomrt.ServerAlive2Response(
        dcom.build_server_alive2_reply(dcom.tcp_bindings(["127.0.0.2"], None)))
    assert sa["ErrorCode"] == 0


def test_rem_query_interface_against_both_clients() -> None:
    req = dcomrt.RemQueryInterface()
    req["ORPCthis"] = impacket_orpcthis(1)
    req["ripid"] = IPID_LOGIN.bytes_le
    req["cRefs"] = 1
    req["cIids"] = 1
    i = dcomrt.IID()
    i["Data"] = iwmi.IID_IWbemFetchSmartEnum
    req["iids"].append(i)
    parsed = dcom.parse_rem_query_interface(req.getData())
    assert parsed.ipid == IPID_LOGIN and parsed.iids == (ids.IID_IWBEMFETCHSMARTENUM,)

    ok = dcom.build_rem_query_interface_reply(
        [dcom.QiResult(dcom.S_OK, dcom.StdObjRef(OXID, 9, IPID_REMUNK))])
    r = dcomrt.RemQueryInterfaceResponse(ok)
    assert r["ppQIResults"]["std"]["oxid"] == OXID
    assert AioQIR(ok).get_ipid().upper() == str(IPID_REMUNK).upper()

    denied = dcom.build_rem_query_interface_reply([dcom.QiResult(dcom.E_NOINTERFACE)])
    assert denied[-4:] == struct.pack("<I", dcom.E_NOINTERFACE)
    with pytest.raises(ServerNotOptimized):
        AioQIR(denied[:-4] + b"\x00" * 4)  # aiowmi reads the per-IID hResult first


def test_rem_release_from_impacket_and_reply() -> None:
    req = dcomrt.RemRelease()
    req["ORPCthis"] = impacket_orpcthis(1)
    req["cInterfaceRefs"] = 1
    el = dcomrt.REMINTERFACEREF()
    el["ipid"] = IPID_LOGIN.bytes_le
    el["cPublicRefs"] = 1
    el["cPrivateRefs"] = 0
    req["InterfaceRefs"].append(el)
    parsed = dcom.parse_rem_refs(req.getData())
    assert parsed.refs == (dcom.RemInterfaceRef(IPID_LOGIN, 1, 0),)
    assert dcomrt.RemReleaseResponse(dcom.build_rem_release_reply())["ErrorCode"] == 0
    add = dcomrt.RemAddRefResponse(dcom.build_rem_add_ref_reply([0]))
    assert add["ErrorCode"] == 0


def test_dual_string_array_round_trip() -> None:
    dsa = dcom.tcp_bindings(["HOST", "127.0.0.2"], 135)
    parsed, n = dcom.decode_dsa_packed(dcom.encode_dsa_packed(dsa))
    assert parsed == dsa
    assert parsed.tcp_endpoints() == [("HOST", 135), ("127.0.0.2", 135)]
    assert n == len(dcom.encode_dsa_packed(dsa))
    assert {s.authn_svc for s in parsed.security} >= {10}


@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                        min_size=1, max_size=12), min_size=1, max_size=4),
       st.integers(1, 65535))
@example(["A\u0100", "\u0100\u0100B"], 135)  # UTF-16 41 00 00 01: 00 00 across two chars
def test_dual_string_array_names_round_trip(names: list[str], port: int) -> None:
    # A name ends at a NUL character, never at 00 00 straddling two characters.
    dsa = dcom.tcp_bindings(names, port)
    data = dcom.encode_dsa_packed(dsa)
    parsed, n = dcom.decode_dsa_packed(data)
    assert parsed == dsa and n == len(data)
