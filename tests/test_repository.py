"""The repository of an emulated host: classes, instances, queries, methods, wire encoding."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from aiowmi.ndr.encoding_unit import EncodingUnit

from test_wmio import _AioResponse, impacket_object
from wmilab.errors import ConfigError
from wmilab.hresult import (
    WBEM_E_INVALID_CLASS,
    WBEM_E_INVALID_METHOD,
    WBEM_E_INVALID_METHOD_PARAMETERS,
    WBEM_E_INVALID_NAMESPACE,
    WBEM_E_INVALID_OBJECT_PATH,
    WBEM_E_INVALID_PARAMETER,
    WBEM_E_INVALID_QUERY,
    WBEM_E_INVALID_QUERY_TYPE,
    WBEM_E_NOT_FOUND,
    HResult,
)
from wmilab.repository import CimClass, CimInstance, MachineFacts, Repository, WmiError
from wmilab.repository.mof import parse_mof
from wmilab.wire.wmio import Instance, decode_encoding_unit

NS = "root\\cimv2"


@pytest.fixture
def xp() -> Repository:
    return Repository.for_host(MachineFacts("HOSTB", os="xp-sp2", workgroup="WORKGROUP",
                                        ipv4="10.0.0.5", prefix=24))


@pytest.fixture
def w2003() -> Repository:
    return Repository.for_host(MachineFacts("SRV1", os="2003-sp1", domain="CORP.EXAMPLE"))


def query(repo: Repository, wql: str, ns: str = NS) -> list[Any]:
    return repo.exec_query(ns, wql)


def fails(hresult: HResult, fn: Any, *args: Any) -> None:
    with pytest.raises(WmiError) as info:
        fn(*args)
    assert info.value.hresult == hresult, info.value


def test_os_identity_is_true_to_each_os(xp: Repository, w2003: Repository) -> None:
    (os_xp,) = query(xp, "SELECT * FROM Win32_OperatingSystem")
    assert (os_xp.get("Caption"), os_xp.get("Version"), os_xp.get("BuildNumber"),
            os_xp.get("CSDVersion")) == ("Microsoft Windows XP Professional", "5.1.2600", "2600",
                                         "Service Pack 2")
    (os_srv,) = query(w2003, "SELECT Caption, Version, CSDVersion FROM Win32_OperatingSystem")
    assert (os_srv.get("Caption"), os_srv.get("Version"), os_srv.get("CSDVersion")) == (
        "Microsoft(R) Windows(R) Server 2003, Standard Edition", "5.2.3790", "Service Pack 1")
    (cs,) = query(w2003, "SELECT * FROM Win32_ComputerSystem")
    assert cs.get("Domain") == "CORP.EXAMPLE" and cs.get("PartOfDomain") is True
    assert cs.get("DomainRole") == 3
    (cs_xp,) = query(xp, "SELECT * FROM Win32_ComputerSystem")
    assert cs_xp.get("Domain") == "WORKGROUP" and cs_xp.get("DomainRole") == 0


def test_processes_and_services(xp: Repository, w2003: Repository) -> None:
    names = [p.get("Name") for p in query(xp, "SELECT Name FROM Win32_Process")]
    for expected in ("System Idle Process", "System", "smss.exe", "csrss.exe", "winlogon.exe",
                     "services.exe", "lsass.exe", "wmiprvse.exe"):
        assert expected in names
    assert names.count("svchost.exe") == 5
    pids = [p.get("ProcessId") for p in query(xp, "SELECT * FROM Win32_Process")]
    assert pids[:2] == [0, 4] and len(set(pids)) == len(pids)
    assert all(pid % 4 == 0 for pid in pids)
    fw = xp.get_object(NS, 'Win32_Service.Name="SharedAccess"')
    assert isinstance(fw, CimInstance) and fw.get("State") == "Running"
    assert fw.get("DisplayName") == "Windows Firewall/Internet Connection Sharing (ICS)"
    fw2 = w2003.get_object(NS, 'Win32_Service.Name="sharedaccess"')
    assert isinstance(fw2, CimInstance) and fw2.get("State") == "Stopped"
    (winmgmt,) = query(xp, "SELECT * FROM Win32_Service WHERE Name = 'WinMgmt'")
    host = xp.get_object(NS, f'Win32_Process.Handle="{winmgmt.get("ProcessId")}"')
    assert isinstance(host, CimInstance) and host.get("CommandLine").endswith("-k netsvcs")


def test_same_spec_gives_same_bytes() -> None:
    spec = MachineFacts("HOSTC", os="xp-sp2")
    a, b = Repository.for_host(spec), Repository.for_host(spec)
    qa = [a.encode(o, NS) for o in query(a, "SELECT * FROM Win32_Process")]
    qb = [b.encode(o, NS) for o in query(b, "SELECT * FROM Win32_Process")]
    assert qa == qb
    other = Repository.for_host(MachineFacts("HOSTD", os="xp-sp2"))
    assert [o.get("ProcessId") for o in query(other, "SELECT * FROM Win32_Process")] != [
        o.get("ProcessId") for o in query(a, "SELECT * FROM Win32_Process")]


def test_superclass_query_returns_subclass_instances(xp: Repository) -> None:
    procs = query(xp, "SELECT * FROM CIM_Process")
    assert procs and all(p.cls.name == "Win32_Process" for p in procs)
    elems = query(xp, "SELECT * FROM CIM_LogicalElement WHERE __CLASS = 'Win32_BIOS'")
    assert [e.cls.name for e in elems] == ["Win32_BIOS"]
    isa = query(xp, "SELECT * FROM CIM_ManagedSystemElement WHERE __THIS ISA 'CIM_Service'")
    assert isa and {e.cls.name for e in isa} == {"Win32_Service"}
    shallow = xp.create_instance_enum(NS, "CIM_Process", deep=False)
    assert shallow == []


def test_projection_keeps_selected_and_key_properties(xp: Repository) -> None:
    (svc,) = query(xp, "SELECT State FROM Win32_Service WHERE Name = 'RpcSs'")
    wire = svc.to_wire()
    assert [p.name for p in wire.cls.properties] == ["Name", "State"]
    assert wire.values == {"Name": "RpcSs", "State": "Running"}
    decoded = decode_encoding_unit(xp.encode(svc, NS)).obj
    assert isinstance(decoded, Instance) and decoded.values == wire.values


def test_where_clause_features(xp: Repository) -> None:
    running = query(xp, "SELECT * FROM Win32_Service WHERE State = 'running' AND NOT "
                        "(StartMode = 'Manual' OR StartMode = 'Disabled')")
    assert running and all(s.get("State") == "Running" for s in running)
    assert query(xp, "SELECT * FROM Win32_Process WHERE ProcessId <= 4 AND ProcessId > 0")[
        0].get("Name") == "System"
    assert [d.get("DeviceID") for d in query(xp, "SELECT * FROM Win32_LogicalDisk WHERE "
                                                 "Size IS NULL")] == ["D:"]
    assert [d.get("DeviceID") for d in query(xp, "SELECT * FROM Win32_LogicalDisk WHERE "
                                                 "FileSystem IS NOT NULL")] == ["C:"]
    assert len(query(xp, "SELECT * FROM Win32_Process WHERE Name LIKE '[s]%.exe'")) >= 7
    adapters = query(xp, "SELECT * FROM Win32_NetworkAdapterConfiguration WHERE IPEnabled = TRUE")
    assert [a.get("IPAddress") for a in adapters] == [["10.0.0.5"]]
    assert adapters[0].get("IPSubnet") == ["255.255.255.0"]


@pytest.mark.parametrize(("wql", "hresult"), [
    ("SELECT * FROM Win32_Nothing", WBEM_E_INVALID_CLASS),
    ("SELECT Nope FROM Win32_Process", WBEM_E_INVALID_QUERY),
    ("SELECT * FROM Win32_Process WHERE Nope = 1", WBEM_E_INVALID_QUERY),
    ("SELECT * FROM Win32_Process WHERE ProcessId = 'abc'", WBEM_E_INVALID_QUERY),
    ("SELECT * FROM Win32_BIOS WHERE BIOSVersion = 'x'", WBEM_E_INVALID_QUERY),
    ("SELECT * FROM Win32_Process WHERE", WBEM_E_INVALID_QUERY),
    ('ASSOCIATORS OF {Win32_Service.Name="NoSuchService"}', WBEM_E_NOT_FOUND),
    ('ASSOCIATORS OF {Win32_Service.Name="RpcSs"} WHERE ResultClass = Nope',
     WBEM_E_INVALID_CLASS),
])
def test_query_errors(xp: Repository, wql: str, hresult: HResult) -> None:
    fails(hresult, xp.exec_query, NS, wql)


def test_namespaces(xp: Repository) -> None:
    names = [n.get("Name") for n in query(xp, "SELECT * FROM __NAMESPACE", "root")]
    # Children of root as Windows names them; root\directory\LDAP is a grandchild.
    assert sorted(names, key=str.lower) == ["CIMV2", "Cli", "DEFAULT", "directory", "Policy",
                                            "RSOP", "SECURITY", "SecurityCenter",
                                            "subscription", "WMI"]
    assert [n.get("Name") for n in query(xp, "SELECT * FROM __NAMESPACE", "root/directory")] == [
        "LDAP"]
    assert xp.get_object("//./root/cimv2", "Win32_Process").name == "Win32_Process"  # type: ignore[union-attr]
    assert query(xp, "SELECT * FROM __NAMESPACE", "\\\\.\\ROOT\\CIMV2") == []
    fails(WBEM_E_INVALID_NAMESPACE, xp.exec_query, "root\\nothing", "SELECT * FROM __NAMESPACE")
    fails(WBEM_E_INVALID_CLASS, xp.exec_query, "root\\default", "SELECT * FROM Win32_Process")
    with pytest.raises(WmiError) as info:
        xp.exec_query(NS, "SELECT * FROM Win32_Process", "SQL")
    assert info.value.hresult == WBEM_E_INVALID_QUERY_TYPE


def test_get_object(xp: Repository) -> None:
    cls = xp.get_object(NS, "Win32_Process")
    assert isinstance(cls, CimClass) and cls.keys == ("Handle",)
    os_ = xp.get_object(NS, "Win32_OperatingSystem=@")
    assert isinstance(os_, CimInstance) and os_.relpath == "Win32_OperatingSystem=@"
    sys_ = xp.get_object(NS, '\\\\HOSTB\\root\\cimv2:Win32_Process.Handle="4"')
    assert isinstance(sys_, CimInstance) and sys_.get("Name") == "System"
    bios = query(xp, "SELECT * FROM Win32_BIOS")[0]
    assert xp.get_object(NS, bios.relpath).get("Manufacturer") == "Phoenix Technologies LTD"  # type: ignore[union-attr]
    fails(WBEM_E_NOT_FOUND, xp.get_object, NS, "Win32_NoSuchClass")
    fails(WBEM_E_NOT_FOUND, xp.get_object, NS, 'Win32_Process.Handle="99999"')
    fails(WBEM_E_INVALID_OBJECT_PATH, xp.get_object, NS, 'Win32_Process.Handle="4')
    fails(WBEM_E_INVALID_CLASS, xp.get_class, NS, "Win32_NoSuchClass")


def test_create_adds_a_process_and_terminate_removes_it(xp: Repository) -> None:
    before = {p.get("ProcessId") for p in query(xp, "SELECT * FROM Win32_Process")}
    out = xp.exec_method(NS, "Win32_Process", "Create",
                         {"CommandLine": "cmd.exe /Q /c whoami", "CurrentDirectory": "C:\\"})
    assert out.cls.name == "__PARAMETERS" and out.values["ReturnValue"] == 0
    pid = out.values["ProcessId"]
    assert isinstance(pid, int) and pid not in before and pid % 4 == 0
    (new,) = query(xp, f"SELECT * FROM Win32_Process WHERE ProcessId = {pid}")
    assert new.get("Name") == "cmd.exe" and new.get("CommandLine") == "cmd.exe /Q /c whoami"
    wmiprvse = query(xp, "SELECT * FROM Win32_Process WHERE Name = 'wmiprvse.exe'")[0]
    assert new.get("ParentProcessId") == wmiprvse.get("ProcessId")
    second = xp.exec_method(NS, "Win32_Process", "Create", {"CommandLine": "notepad.exe"})
    assert second.values["ProcessId"] != pid
    done = xp.exec_method(NS, f'Win32_Process.Handle="{pid}"', "Terminate", {"Reason": 0})
    assert done.values == {"ReturnValue": 0}
    assert query(xp, f"SELECT * FROM Win32_Process WHERE ProcessId = {pid}") == []
    assert xp.exec_method(NS, 'Win32_Process.Handle="4"', "Terminate", {})
    assert xp.exec_method(NS, "Win32_Process", "Create", {}).values["ReturnValue"] == 21


def test_method_errors(xp: Repository) -> None:
    fails(WBEM_E_INVALID_METHOD, xp.exec_method, NS, "Win32_Process", "Explode", {})
    fails(WBEM_E_INVALID_METHOD_PARAMETERS, xp.exec_method, NS, "Win32_Process", "Create",
          {"Bogus": 1})
    fails(WBEM_E_INVALID_PARAMETER, xp.exec_method, NS, "Win32_Process", "Terminate", {})
    fails(WBEM_E_NOT_FOUND, xp.exec_method, NS, 'Win32_Process.Handle="99999"', "Terminate",
          {})
    fails(WBEM_E_INVALID_CLASS, xp.exec_method, NS, "Nope", "Create", {})


def test_associators_and_references(xp: Repository) -> None:
    cs = 'Win32_ComputerSystem.Name="HOSTB"'
    os_ = query(xp, f"ASSOCIATORS OF {{{cs}}} WHERE ResultClass = Win32_OperatingSystem")
    assert [o.relpath for o in os_] == ["Win32_OperatingSystem=@"]
    services = query(xp, f"ASSOCIATORS OF {{{cs}}} WHERE AssocClass = Win32_SystemServices")
    assert services and all(s.cls.name == "Win32_Service" for s in services)
    back = query(xp, 'ASSOCIATORS OF {Win32_Service.Name="RpcSs"}')
    assert [b.relpath for b in back] == [cs]
    assert query(xp, 'ASSOCIATORS OF {Win32_Service.Name="RpcSs"} WHERE Role = '
                     "GroupComponent") == []
    classes = query(xp, f"ASSOCIATORS OF {{{cs}}} WHERE ClassDefsOnly")
    assert {c.name for c in classes} == {"Win32_OperatingSystem", "Win32_Service",
                                        "Win32_Process", "Win32_BIOS"}
    refs = query(xp, f"REFERENCES OF {{{cs}}} WHERE ResultClass = Win32_SystemOperatingSystem")
    assert len(refs) == 1 and refs[0].get("PrimaryOS") is True
    keys = query(xp, 'ASSOCIATORS OF {Win32_Service.Name="RpcSs"} WHERE KeysOnly')
    assert keys[0].to_wire().values == {"Name": "HOSTB"}


def test_every_object_decodes_with_impacket_and_aiowmi(xp: Repository) -> None:
    objects: list[Any] = list(xp.namespace(NS).classes.values())
    for cls in xp.namespace(NS).classes.values():
        objects += xp.instances_of(NS, cls.name, deep=False)
    for obj in objects:
        data = xp.encode(obj, NS)
        parsed = impacket_object(data)
        assert parsed.getClassName() == (obj.name if isinstance(obj, CimClass) else obj.cls.name)
        if isinstance(obj, CimInstance):
            values = {k: v["value"] for k, v in parsed.getProperties().items()}
            for key in obj.cls.keys:
                assert values[key] == obj.get(key)
            props = _AioResponse(EncodingUnit(data).object_block).get_properties()
            for name, value in obj.values.items():
                if isinstance(value, str | int) and not name.endswith("Date") and \
                        "Time" not in name:
                    assert props[name].value == value, (obj.relpath, name)


def test_win32_process_class_is_what_wmiexec_needs(xp: Repository) -> None:
    obj = impacket_object(xp.encode(xp.get_object(NS, "Win32_Process"), NS))
    methods = obj.getMethods()
    assert list(methods["Create"]["InParams"]) == ["CommandLine", "CurrentDirectory",
                                                   "ProcessStartupInformation"]
    assert list(methods["Create"]["OutParams"]) == ["ProcessId", "ReturnValue"]
    assert list(methods["Terminate"]["InParams"]) == ["Reason"]


def test_host_spec_validation() -> None:
    with pytest.raises(ConfigError, match="os"):
        MachineFacts("A", os="win95")
    with pytest.raises(ConfigError, match="15"):
        MachineFacts("A" * 16)
    with pytest.raises(ConfigError, match="IPv4"):
        MachineFacts("A", ipv4="300.1.1.1")
    with pytest.raises(ConfigError, match="not both"):
        MachineFacts("A", domain="D", workgroup="W")


def test_mof_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"x\.mof:3"):
        parse_mof("class A\n{\n  string ;\n};\n", "x.mof")
    (cls,) = parse_mof('[Association] class A { [key] B ref R; string S[] = {"a"}; };')
    assert cls.properties[0].class_ref == "B" and cls.properties[1].default == ["a"]


def _decoded_names(repo: Repository, wql: str) -> list[str]:
    out = []
    for row in query(repo, wql):
        obj = decode_encoding_unit(repo.encode(row, NS)).obj
        assert isinstance(obj, Instance)
        out.append(str(obj.values["Name"]))
    return out


def test_encoded_results_follow_state_changes_while_class_encodings_are_reused(
        xp: Repository) -> None:
    # Classes are encoded once per (server, namespace); instances are encoded afresh, so a
    # process created between two identical queries is on the wire the second time.
    wql = "SELECT Name, ProcessId FROM Win32_Process"
    first = _decoded_names(xp, wql)
    cls = xp.get_class(NS, "Win32_Process")
    blob = xp.encode(cls, NS)
    assert xp.encode(cls, "//./root/cimv2") == blob and xp.encode(cls, NS) is blob
    xp.exec_method(NS, "Win32_Process", "Create", {"CommandLine": "calc.exe"})
    second = _decoded_names(xp, wql)
    assert second == [*first, "calc.exe"]
    decoded = decode_encoding_unit(xp.encode(cls, NS))
    assert (decoded.server, decoded.namespace) == ("HOSTB", NS)
    assert xp.encode(cls, NS) is blob  # the class itself did not change


def test_class_tables_answer_any_case(xp: Repository) -> None:
    cls = xp.get_class(NS, "Win32_Process")
    assert cls.get_property("processid") is cls.get_property("ProcessId") is not None
    assert cls.get_property("NoSuchProperty") is None
    assert cls.get_method("CREATE") is cls.get_method("Create") is not None
    assert cls.is_a("cim_process") and cls.is_a("WIN32_PROCESS") and not cls.is_a("Win32_Service")
    assert [c.name for c in xp.namespace(NS).subclasses("cim_process")] == [
        "CIM_Process", "Win32_Process"]
    # A projection is kept per property list, with the same bytes as a fresh one.
    a = query(xp, "SELECT Name FROM Win32_Process")[0]
    b = query(xp, "SELECT name FROM Win32_Process")[0]
    assert a.to_wire().cls is b.to_wire().cls
    assert xp.encode(a, NS) == xp.encode(b, NS)


def test_dmtf_datetime_keeps_each_offset() -> None:
    from datetime import datetime, timedelta, timezone

    from wmilab.repository.cim import dmtf_datetime

    utc = datetime(2005, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    east = utc.astimezone(timezone(timedelta(hours=1)))
    assert utc == east  # equal instants: a cache keyed on the datetime alone would mix them
    assert dmtf_datetime(utc) == "20050102030405.000006+000"
    assert dmtf_datetime(east) == "20050102040405.000006+060"
    assert dmtf_datetime(utc.replace(tzinfo=None)) == "20050102030405.000006+000"


def test_namespaces_follow_the_os(xp: Repository, w2003: Repository) -> None:
    # Security Center is an XP SP2 client feature: Server 2003 SP1 has no root\SecurityCenter.
    assert query(xp, "SELECT * FROM __NAMESPACE", "root\\SecurityCenter") == []
    fails(WBEM_E_INVALID_NAMESPACE, w2003.exec_query, "root\\SecurityCenter",
          "SELECT * FROM __NAMESPACE")
    for ns in ("root\\subscription", "ROOT\\WMI", "root/rsop", "root\\directory\\ldap"):
        assert w2003.get_object(ns, "__NAMESPACE").name == "__NAMESPACE"  # type: ignore[union-attr]
