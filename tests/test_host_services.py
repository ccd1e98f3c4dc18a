"""Every IWbemServices method against an emulated XP SP2 host, with impacket's unmodified
DCOM/WMI classes (impacket.dcerpc.v5.dcom.wmi) and, where impacket cannot express a call
(a class with new properties, ppCallResult), with wmilab's own wire codecs through impacket's
request machinery. impacket dials port 135, so these tests need root; they skip otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from impacket.dcerpc.v5.dcom import wmi as iwmi
from impacket.dcerpc.v5.dcomrt import DCOMConnection
from impacket.dcerpc.v5.dtypes import NULL
from impacket.dcerpc.v5.rpcrt import DCERPCException

import test_host_clients
from test_host_clients import RunningLab, StartLab, scenario
from wmilab.wire import dcom, wmi, wmio
from wmilab.wire.wmio import CimType

pytestmark = pytest.mark.slow
start_lab = test_host_clients.start_lab  # the fixture: a LoopbackLab in a background loop

WBEM_E_NOT_FOUND = 0x80041002
WBEM_E_ACCESS_DENIED = 0x80041003
WBEM_E_INVALID_PARAMETER = 0x80041008
WBEM_E_INVALID_CLASS = 0x80041010
WBEM_E_ALREADY_EXISTS = 0x80041019
WBEM_E_PROVIDER_NOT_CAPABLE = 0x80041024
WBEM_E_INVALID_OBJECT_PATH = 0x8004103A
E_NOTIMPL = 0x80004001
WBEM_E_NOT_SUPPORTED = 0x8004100C
CREATE_ONLY, UPDATE_ONLY = 0x2, 0x1
LAUNCH = ["local launch", "remote launch", "local activation", "remote activation"]


@contextmanager
def session(lab: RunningLab, user: str = "admin", password: str = "Adm1n!",
            domain: str = "CORP") -> Iterator[tuple[Any, Any]]:
    """impacket's own connection: activation, NTLMLogin to root/cimv2."""
    conn = DCOMConnection(lab.address(), user, password, domain, "", "", oxidResolver=True)
    try:
        iface = conn.CoCreateInstanceEx(iwmi.CLSID_WbemLevel1Login, iwmi.IID_IWbemLevel1Login)
        login = iwmi.IWbemLevel1Login(iface)
        svc = login.NTLMLogin("//./root/cimv2", NULL, NULL)
        yield login, svc
    finally:
        conn.disconnect()


def error_of(call: Any) -> int:
    with pytest.raises(DCERPCException) as info:
        call()
    code = info.value.get_error_code()
    assert isinstance(code, int)
    return code & 0xFFFFFFFF


class Encoded:
    """What impacket's PutClass/PutInstance take: an object with getData() and len()."""

    def __init__(self, encoded: bytes) -> None:
        self.data = dcom.encode_objref(dcom.wbem_object_ref(encoded))

    def getData(self) -> bytes:
        return self.data

    def __len__(self) -> int:
        return len(self.data)


def lab_class(name: str = "Lab_Thing", extra: tuple[wmio.Property, ...] = ()) -> bytes:
    """A new class as a client builds it from the empty class GetObject("") returns."""
    key = wmio.Qualifier("key", True, CimType.BOOLEAN)
    cls = wmio.ClassDef(name, properties=(wmio.Property("Name", CimType.STRING, (key,)),
                                          wmio.Property("Size", CimType.UINT32), *extra))
    return wmio.encode_encoding_unit(cls, "", "", False)


def put(svc: Any, request: Any, field: str, encoded: bytes, flags: int = 0) -> int:
    """Send PutClass/PutInstance through impacket's request machinery; the HRESULT."""
    req = request()
    data = Encoded(encoded)
    req[field]["ulCntData"] = len(data)
    req[field]["abData"] = list(data.getData())
    req["lFlags"] = flags
    req["pCtx"] = NULL
    try:
        resp = svc.request(req, iid=svc._iid, uuid=svc.get_iPid())
    except DCERPCException as e:
        return int(e.get_error_code()) & 0xFFFFFFFF
    return int(resp["ErrorCode"])


def query(svc: Any, wql: str) -> list[dict[str, Any]]:
    enum = svc.ExecQuery(wql, iwmi.WBEM_FLAG_RETURN_IMMEDIATELY | iwmi.WBEM_FLAG_FORWARD_ONLY)
    out = []
    while True:
        try:
            obj = enum.Next(0xFFFFFFFF, 1)[0]
        except DCERPCException as e:
            assert "S_FALSE" in str(e), e
            break
        out.append({k: v["value"] for k, v in obj.getProperties().items()})
    enum.RemRelease()
    return out


# ------------------------------------------------------------------------------------------


def test_classes_and_instances_are_written_at_run_time(start_lab: StartLab) -> None:
    lab = start_lab(scenario())
    with session(lab) as (_login, svc):
        # MS-WMI 3.1.4.3.4: the empty path gives a new empty class.
        empty, _ = svc.GetObject("")
        assert empty.getClassName() in ("", "None")  # impacket shows a NULL name as 'None'
        assert not empty.getProperties()
        # impacket's own way to make a class: name it, add a property, PutClass.
        empty.setClassName("Lab_Impacket")
        empty.addNewAttribute("Label", iwmi.CIM_TYPE_ENUM.CIM_TYPE_STRING, "made by impacket")
        svc.PutClass(empty.marshalMe())
        made, _ = svc.GetObject("Lab_Impacket")
        assert made.getClassName() == "Lab_Impacket"
        assert made.getProperties()["Label"]["value"] == "made by impacket"
        assert put(svc, iwmi.IWbemServices_PutClass, "pObject", lab_class(), CREATE_ONLY) == 0
        # The class exists now: create-only fails, update-only works.
        assert put(svc, iwmi.IWbemServices_PutClass, "pObject", lab_class(),
                   CREATE_ONLY) == WBEM_E_ALREADY_EXISTS
        assert put(svc, iwmi.IWbemServices_PutClass, "pObject",
                   lab_class("Lab_Missing"), UPDATE_ONLY) == WBEM_E_NOT_FOUND
        cls, _ = svc.GetObject("Lab_Thing")
        assert set(cls.getProperties()) >= {"Name", "Size"}
        # impacket's own instance: SpawnInstance, set the values, marshal and PutInstance.
        inst = cls.SpawnInstance()
        inst.Name = "first"
        inst.Size = 7
        svc.PutInstance(inst.marshalMe())
        assert query(svc, "SELECT Name, Size FROM Lab_Thing") == [{"Name": "first", "Size": 7}]
        got, _ = svc.GetObject('Lab_Thing.Name="first"')
        assert got.Size == 7
        assert error_of(lambda: svc.PutInstance(inst.marshalMe(), CREATE_ONLY)) \
            == WBEM_E_ALREADY_EXISTS
        # The repository of that host changed, and only that one.
        assert lab.repository().get_object("root\\cimv2", 'Lab_Thing.Name="first"')
        assert lab.repository("A").namespace("root\\cimv2").get("Lab_Thing") is None
        svc.DeleteInstance('Lab_Thing.Name="first"')
        assert query(svc, "SELECT * FROM Lab_Thing") == []
        assert error_of(lambda: svc.DeleteInstance('Lab_Thing.Name="first"')) == WBEM_E_NOT_FOUND
        svc.DeleteClass("Lab_Thing")
        # MSDocs WmiSdk/iwbemservices-deleteclass: a missing class -> WBEM_E_NOT_FOUND.
        assert error_of(lambda: svc.DeleteClass("Lab_Thing")) == WBEM_E_NOT_FOUND
        assert error_of(lambda: svc.GetObject("Lab_Thing")) == WBEM_E_NOT_FOUND
        assert error_of(lambda: svc.GetObject('Win32_Process.Handle="1')) \
            == WBEM_E_INVALID_OBJECT_PATH
        # A bad class name (MS-WMI 3.1.4.3.6: leading underscore is reserved).
        assert put(svc, iwmi.IWbemServices_PutClass, "pObject",
                   lab_class("_Lab_Bad")) == WBEM_E_INVALID_PARAMETER
        # Instances of provider classes are not written by the emulated providers.
        proc, _ = svc.GetObject("Win32_Process")
        p = proc.SpawnInstance()
        p.Handle = "99999"
        assert error_of(lambda: svc.PutInstance(p.marshalMe())) == WBEM_E_PROVIDER_NOT_CAPABLE


def test_namespace_write_rights_decide_access(start_lab: StartLab) -> None:
    doc = scenario()
    doc["hosts"]["B"]["dcom"] = {"launch_limits": {"CORP\\bob": LAUNCH, "CORP\\carol": LAUNCH}}
    reader = ["enable account", "remote enable", "execute methods", "provider write"]
    doc["hosts"]["B"]["wmi"] = {"root\\cimv2": {
        "CORP\\bob": reader, "CORP\\carol": [*reader, "partial write"]}}
    lab = start_lab(doc)
    with session(lab) as (_l, svc):
        assert put(svc, iwmi.IWbemServices_PutClass, "pObject", lab_class()) == 0
    with session(lab, "bob", "B0b!") as (_l, svc):
        cls, _ = svc.GetObject("Lab_Thing")
        inst = cls.SpawnInstance()
        inst.Name = "x"
        # Full Write is needed for classes, Partial Write (or Full) for static instances.
        assert put(svc, iwmi.IWbemServices_PutClass, "pObject",
                   lab_class("Lab_Other")) == WBEM_E_ACCESS_DENIED
        assert error_of(lambda: svc.PutInstance(inst.marshalMe())) == WBEM_E_ACCESS_DENIED
        assert error_of(lambda: svc.DeleteClass("Lab_Thing")) == WBEM_E_ACCESS_DENIED
        # Provider Write is enough for a provider's instance (Win32_Process: ends it).
        pid = lab.repository().exec_query(
            "root\\cimv2", "SELECT ProcessId FROM Win32_Process WHERE Name = 'notepad.exe'")
        assert pid == []
    with session(lab, "carol", "C4rol!") as (_l, svc):
        cls, _ = svc.GetObject("Lab_Thing")
        inst = cls.SpawnInstance()
        inst.Name = "by-carol"
        svc.PutInstance(inst.marshalMe())
        assert put(svc, iwmi.IWbemServices_PutClass, "pObject",
                   lab_class("Lab_Other")) == WBEM_E_ACCESS_DENIED
    assert [r.get("Name") for r in lab.repository().exec_query(
        "root\\cimv2", "SELECT * FROM Lab_Thing")] == ["by-carol"]


def test_execute_methods_right_and_method_errors(start_lab: StartLab) -> None:
    doc = scenario()
    doc["hosts"]["B"]["dcom"] = {"launch_limits": {"CORP\\bob": LAUNCH}}
    # Everyone keeps only Enable Account (the default also grants Execute Methods and
    # Provider Write, MSDocs WmiSdk/namespace-access-rights-constants).
    doc["hosts"]["B"]["wmi"] = {"root\\cimv2": {
        "Everyone": ["enable account"], "CORP\\bob": ["enable account", "remote enable"]}}
    lab = start_lab(doc)
    with session(lab) as (_l, svc):
        proc, _ = svc.GetObject("Win32_Process")
        out = proc.Create("notepad.exe", "C:\\", None)  # impacket builds the in-parameters
        assert out.ReturnValue == 0
        assert lab.repository().get_object(
            "root\\cimv2", f'Win32_Process.Handle="{out.ProcessId}"').get("Name") == "notepad.exe"
        assert error_of(lambda: svc.ExecMethod("Win32_Nothing", "Create")) == WBEM_E_INVALID_CLASS
    with session(lab, "bob", "B0b!") as (_l, svc):
        assert error_of(lambda: svc.ExecMethod("Win32_Process", "Create")) == WBEM_E_ACCESS_DENIED
        # Provider Write is missing too: deleting the process instance is refused.
        assert error_of(lambda: svc.DeleteInstance(
            f'Win32_Process.Handle="{out.ProcessId}"')) == WBEM_E_ACCESS_DENIED
    with session(lab) as (_l, svc):
        # MSDocs WmiSdk/namespace-access-rights-constants, Provider Write: an administrator
        # deletes the provider's instance, and the emulated process ends.
        svc.DeleteInstance(f'Win32_Process.Handle="{out.ProcessId}"')
        assert error_of(lambda: svc.GetObject(
            f'Win32_Process.Handle="{out.ProcessId}"')) == WBEM_E_NOT_FOUND


def test_level1login_methods_answer_as_xp(start_lab: StartLab) -> None:
    lab = start_lab(scenario())
    with session(lab) as (login, _svc):
        assert login.EstablishPosition() == 0  # MS-WMI 3.1.4.1.1: LocaleVersion 0
        assert error_of(login.RequestChallenge) == WBEM_E_NOT_SUPPORTED
        # XP: E_NOTIMPL with a NULL pointer (impacket reads it and raises the code).
        assert error_of(login.WBEMLogin) == E_NOTIMPL
        # MS-WMI 3.1.4.1 / 3.2.3: the object also offers IWbemLoginClientID.
        client_id = iwmi.IWbemLoginClientID(
            login.RemQueryInterface(1, (iwmi.IID_IWbemLoginClientID,)))
        assert client_id.SetClientInfo("HOSTA", 4242)["ErrorCode"] == 0
        assert any("client HOSTA process 4242" in r for r in lab.records)
        # The helper interface is not offered (clients SHOULD NOT use it).
        with pytest.raises(DCERPCException):
            login.RemQueryInterface(1, (iwmi.IID_IWbemLoginHelper,))


@pytest.mark.parametrize("domain", ["corp.example", "CORP.EXAMPLE", "corp"])
def test_the_domain_s_dns_name_logs_on(start_lab: StartLab, domain: str) -> None:
    # NetBIOS or DNS domain name (docs/choices.md); the model's Directory.find_domain.
    lab = start_lab(scenario())
    with session(lab, domain=domain) as (_l, svc):
        assert query(svc, "SELECT Name FROM Win32_Service WHERE Name = 'winmgmt'") \
            == [{"Name": "winmgmt"}]
    assert any("logon " + domain + "\\admin" in r and ": ok" in r for r in lab.records)


def test_class_enum_and_call_results(start_lab: StartLab) -> None:
    lab = start_lab(scenario())
    with session(lab) as (_l, svc):
        req = iwmi.IWbemServices_CreateClassEnum()
        req["strSuperClass"]["asData"] = "CIM_Process"
        req["lFlags"] = iwmi.WBEM_FLAG_RETURN_IMMEDIATELY | iwmi.WBEM_FLAG_FORWARD_ONLY
        req["pCtx"] = NULL
        resp = svc.request(req, iid=svc._iid, uuid=svc.get_iPid())
        enum = iwmi.IEnumWbemClassObject(dcom_interface(svc, resp["ppEnum"]), svc)
        names = [enum.Next(0xFFFFFFFF, 1)[0].getClassName()]
        assert names == ["Win32_Process"]
        req["strSuperClass"]["asData"] = "Win32_Nothing"
        assert error_of(lambda: svc.request(req, iid=svc._iid, uuid=svc.get_iPid())) \
            == WBEM_E_INVALID_CLASS
        # Semisynchronous PutInstance with a call result: the path comes back through
        # IWbemCallResult::GetResultString (MS-WMI 3.1.4.5.2).
        assert put(svc, iwmi.IWbemServices_PutClass, "pObject", lab_class()) == 0
        inst = wmio.Instance(wmio.decode_encoding_unit(lab_class()).obj,  # type: ignore[arg-type]
                             {"Name": "viaresult", "Size": 1})
        stub = wmi.build_put_request(14, wmio.encode_encoding_unit(inst, "", "", False),
                                     iwmi.WBEM_FLAG_RETURN_IMMEDIATELY, call_result=True)
        reply = raw_call(svc, 14, stub)
        r = dcom.NdrReader(reply)
        dcom.read_orpcthat(r)
        assert r.ptr()
        ref = dcom.read_unique_objref(r)
        assert r.u32() == 0 and isinstance(ref, dcom.ObjRefStandard)
        result = iwmi.IWbemCallResult(dcom_interface(svc, ref))
        text = result.GetResultString(0xFFFFFFFF)["pstrResultString"]["asData"]
        assert text == 'Lab_Thing.Name="viaresult"'
        assert lab.repository().get_object("root\\cimv2", text).get("Size") == 1
        assert result.GetCallStatus(0xFFFFFFFF) == 0  # MS-WMI 3.1.4.5.4


def test_semisync_get_object_open_namespace_and_query_object_sink(start_lab: StartLab) -> None:
    doc = scenario()
    doc["hosts"]["B"]["dcom"] = {"launch_limits": {"CORP\\bob": LAUNCH}}
    doc["hosts"]["B"]["wmi"] = {"root\\cimv2": {"CORP\\bob": ["enable account",
                                                               "remote enable"]}}
    lab = start_lab(doc)
    with session(lab) as (_l, svc):
        # Semisynchronous GetObject with a call result: ppObject NULL, the class comes from
        # IWbemCallResult::GetResultObject (MS-WMI 3.1.4.3.4, 3.1.4.5.1).
        reply = raw_call(svc, 6, wmi.build_path_request(
            6, "Win32_Process", iwmi.WBEM_FLAG_RETURN_IMMEDIATELY, call_result=True))
        r = dcom.NdrReader(reply)
        dcom.read_orpcthat(r)
        assert r.ptr() == 0  # ppObject
        assert r.ptr()
        ref = dcom.read_unique_objref(r)
        assert r.u32() == 0 and isinstance(ref, dcom.ObjRefStandard)
        result = iwmi.IWbemCallResult(dcom_interface(svc, ref))
        obj = result.GetResultObject(0xFFFFFFFF)
        got = dcom.decode_objref(b"".join(obj["ppResultObject"]["abData"]))
        assert isinstance(got, dcom.ObjRefCustom)
        cls = wmio.decode_encoding_unit(got.data).obj
        assert isinstance(cls, wmio.ClassDef) and cls.name == "Win32_Process"
        # A missing class: the call still returns at once; the status says why.
        reply = raw_call(svc, 6, wmi.build_path_request(
            6, "Win32_Nothing", iwmi.WBEM_FLAG_RETURN_IMMEDIATELY, call_result=True))
        r = dcom.NdrReader(reply)
        dcom.read_orpcthat(r)
        r.ptr()
        r.ptr()
        ref = dcom.read_unique_objref(r)
        assert r.u32() == 0
        status = iwmi.IWbemCallResult(dcom_interface(svc, ref)).GetCallStatus(0)
        assert status & 0xFFFFFFFF == WBEM_E_NOT_FOUND  # impacket reads plStatus signed
        # OpenNamespace: a namespace that does not exist.
        assert error_of(lambda: svc.OpenNamespace("nothere")) == 0x8004100E
        # QueryObjectSink: an administrator gets no handler, and no error.
        reply = raw_call(svc, 5, orpc_flags(0))
        assert reply[-8:] == b"\x00" * 8
    with session(lab, "bob", "B0b!") as (_l, svc):
        # Firing events through QueryObjectSink needs Full Write (MSDocs
        # iwbemservices-queryobjectsink).
        assert raw_call(svc, 5, orpc_flags(0))[-4:] == WBEM_E_ACCESS_DENIED.to_bytes(4, "little")


def orpc_flags(flags: int) -> bytes:
    w = dcom.NdrWriter()
    dcom.write_orpcthis(w, dcom.OrpcThis())
    w.i32(flags)
    return w.getvalue()


def dcom_interface(svc: Any, objref: Any) -> Any:
    """impacket's INTERFACE for an OBJREF (impacket's structure or wmilab's ObjRef)."""
    from impacket.dcerpc.v5.dcomrt import INTERFACE

    ours = isinstance(objref, dcom.ObjRefStandard)
    data = dcom.encode_objref(objref) if ours else b"".join(objref["abData"])
    return INTERFACE(svc.get_cinstance(), data, svc.get_ipidRemUnknown(),
                     target=svc.get_target())


def raw_call(svc: Any, opnum: int, stub: bytes) -> bytes:
    """One call with a stub wmilab built, on impacket's authenticated connection."""
    from impacket.dcerpc.v5.dcomrt import DCOMCALL

    class Raw(DCOMCALL):  # type: ignore[misc]
        structure = (("body", ":"),)

    Raw.opnum = opnum
    req = Raw()
    w = dcom.NdrWriter()
    dcom.write_orpcthis(w, dcom.OrpcThis())
    req["body"] = stub[len(w.getvalue()):]
    req["ORPCthis"] = svc.get_cinstance().get_ORPCthis()
    req["ORPCthis"]["flags"] = 0
    svc.connect(svc._iid)
    dce = svc.get_dce_rpc()
    dce.call(opnum, req, svc.get_iPid())
    return bytes(dce.recv())
