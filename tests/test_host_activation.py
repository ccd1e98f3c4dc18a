"""DCOM activation paths on TCP 135 with impacket's own classes: IActivation::RemoteActivation
(the pre-XP interface XP and Server 2003 still serve) and IRemoteSCMActivator::
RemoteGetClassObject, whose class factory's CreateInstance gives a working Level1Login."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from impacket.dcerpc.v5.dcom import wmi as iwmi
from impacket.dcerpc.v5.dcomrt import (
    INTERFACE,
    DCOMConnection,
    IActivation,
    IID_IClassFactory,
    IRemoteSCMActivator,
)
from impacket.dcerpc.v5.dtypes import NULL
from impacket.dcerpc.v5.rpcrt import DCERPCException
from impacket.uuid import string_to_bin

import test_host_clients
from test_host_clients import RunningLab, StartLab, scenario
from test_host_services import LAUNCH, query, raw_call
from wmilab.wire import dcom, iactivation, ids

pytestmark = pytest.mark.slow
start_lab = test_host_clients.start_lab


def portmap(lab: RunningLab, user: str = "admin", password: str = "Adm1n!") -> tuple[Any, Any]:
    """impacket's authenticated connection to B's port 135 (and the DCOMConnection it lives in)."""
    conn = DCOMConnection(lab.address(), user, password, "CORP", "", "", oxidResolver=True)
    return conn, DCOMConnection.PORTMAPS[lab.address()]


def close(conn: Any) -> None:
    # impacket's disconnect assumes an interface was used from this thread.
    with contextlib.suppress(KeyError):
        conn.disconnect()


def test_remote_activation_on_135_gives_a_working_login(start_lab: StartLab) -> None:
    lab = start_lab(scenario())
    conn, dce = portmap(lab)
    try:
        unk = IActivation(dce).RemoteActivation(iwmi.CLSID_WbemLevel1Login,
                                                iwmi.IID_IWbemLevel1Login)
        svc = iwmi.IWbemLevel1Login(unk).NTLMLogin("//./root/cimv2", NULL, NULL)
        assert query(svc, "SELECT Name FROM Win32_Service WHERE Name = 'winmgmt'") \
            == [{"Name": "winmgmt"}]
    finally:
        close(conn)
    # An unknown class: phr REGDB_E_CLASSNOTREG and no interface (a new connection:
    # impacket binds again for each activation).
    conn, dce = portmap(lab)
    try:
        from impacket.dcerpc.v5.dcomrt import ORPCTHIS, IID_IActivation, RemoteActivation
        from impacket.dcerpc.v5.dtypes import GUID as IGUID
        from impacket.uuid import generate

        dce.bind(IID_IActivation)
        req = RemoteActivation()
        this = ORPCTHIS()
        this["cid"] = generate()
        this["extensions"] = NULL
        this["flags"] = 1
        req["ORPCthis"] = this
        req["Clsid"] = string_to_bin("11111111-2222-3333-4444-555555555555")
        req["pwszObjectName"] = NULL
        req["pObjectStorage"] = NULL
        req["ClientImpLevel"] = 2
        req["Mode"] = 0
        req["Interfaces"] = 1
        iid = IGUID()
        iid["Data"] = iwmi.IID_IWbemLevel1Login[:16]
        req["pIIDs"].append(iid)
        req["cRequestedProtseqs"] = 1
        req["aRequestedProtseqs"].append(7)
        dce.call(0, req)
        hr, status, results = iactivation.parse_remote_activation_reply(dce.recv())
        # MS-DCOM 3.1.2.5.2.3.1: the failure is in phr; no interface comes back.
        assert (hr, status) == (0x80040154, 0) and results[0].objref is None
    finally:
        close(conn)


def test_remote_activation_codec_round_trips() -> None:
    w = dcom.NdrWriter()
    dcom.write_orpcthis(w, dcom.OrpcThis())
    w.guid(ids.CLSID_WBEMLEVEL1LOGIN)
    w.u32(0)  # no object name
    w.u32(0)  # no storage
    w.u32(2)
    w.u32(0)
    w.u32(1)
    w.ptr(True)
    w.u32(1)
    w.guid(ids.IID_IWBEMLEVEL1LOGIN)
    w.u16(1)
    w.align(4)
    w.u32(1)
    w.u16(7)
    req = iactivation.parse_remote_activation(w.getvalue())
    assert req.iids == (ids.IID_IWBEMLEVEL1LOGIN,) and req.protseqs == (7,)
    bad = w.getvalue()[:-10]
    with pytest.raises(dcom.StubError):
        iactivation.parse_remote_activation(bad)


def test_remote_get_class_object_returns_wmi_s_class_factory(start_lab: StartLab) -> None:
    doc = scenario()
    doc["hosts"]["B"]["dcom"] = {"launch_limits": {"CORP\\bob": LAUNCH}}
    lab = start_lab(doc)
    conn, dce = portmap(lab)
    try:
        factory = IRemoteSCMActivator(dce).RemoteGetClassObject(iwmi.CLSID_WbemLevel1Login,
                                                                 IID_IClassFactory)
        factory._iid = IID_IClassFactory
        reply = raw_call(factory, 3, iactivation.build_class_factory_create_request(
            ids.IID_IWBEMLEVEL1LOGIN))
        r = dcom.NdrReader(reply)
        dcom.read_orpcthat(r)
        ref = dcom.read_unique_objref(r)
        assert r.u32() == 0 and isinstance(ref, dcom.ObjRefStandard)
        login = iwmi.IWbemLevel1Login(INTERFACE(
            factory.get_cinstance(), dcom.encode_objref(ref), factory.get_ipidRemUnknown(),
            target=factory.get_target()))
        svc = login.NTLMLogin("//./root/cimv2", NULL, NULL)
        assert query(svc, "SELECT Name FROM Win32_Service WHERE Name = 'winmgmt'")
        # An interface the factory's product lacks: E_NOINTERFACE, NULL pointer.
        reply = raw_call(factory, 3, iactivation.build_class_factory_create_request(
            ids.IID_IWBEMSERVICES))
        assert reply[-8:] == b"\x00" * 4 + dcom.E_NOINTERFACE.to_bytes(4, "little")
    finally:
        close(conn)
    # The activation check applies to the class object too: bob has a launch grant here.
    conn, dce = portmap(lab, "bob", "B0b!")
    try:
        IRemoteSCMActivator(dce).RemoteGetClassObject(iwmi.CLSID_WbemLevel1Login,
                                                      IID_IClassFactory)
    finally:
        close(conn)


def test_activation_is_denied_as_flow_says(start_lab: StartLab) -> None:
    lab = start_lab(scenario())
    conn, dce = portmap(lab, "bob", "B0b!")
    try:
        with pytest.raises(DCERPCException) as info:
            IActivation(dce).RemoteActivation(iwmi.CLSID_WbemLevel1Login,
                                              iwmi.IID_IWbemLevel1Login)
        assert "5" in str(info.value) or "ACCESS_DENIED" in str(info.value).upper()
    finally:
        close(conn)
