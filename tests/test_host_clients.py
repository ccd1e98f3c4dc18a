"""Real clients against emulated hosts on loopback: impacket's scripts, aiowmi, raw sockets.

impacket's wmiquery/wmiexec always dial port 135, so those tests need root (or
net.ipv4.ip_unprivileged_port_start <= 135); they are skipped otherwise. aiowmi takes a
port, so its tests bind free ports and run anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import make, needs_root, remote_admin_pair
from wmilab import flow, steps
from wmilab.host import client_errors
from wmilab.host.server import HostBindError, Limits
from wmilab.lab.loopback import LoopbackLab
from wmilab.scenario import Scenario

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def scenario(netsh_b: list[str] | None = None, **b: Any) -> dict[str, Any]:
    """A and B in CORP on a subnet of their own (tests may run in parallel)."""
    doc = remote_admin_pair(**b)
    if netsh_b is not None:
        doc["hosts"]["B"]["netsh"] = netsh_b
    doc["domains"]["CORP"]["accounts"].update({"carol": "C4rol!", "dave": "D4ve!"})
    return doc


class RunningLab:
    """A LoopbackLab served from a background thread's event loop."""

    def __init__(self, s: Scenario, ports: dict[int, int] | None, limits: Limits | None) -> None:
        self.scenario = s
        self.lab = LoopbackLab(s.world, client_host="A", ports=ports, limits=limits)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.records: list[str] = []

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def address(self, host: str = "B") -> str:
        return str(self.lab.map.loopback(host))

    def port(self, kind: str, host: str = "B") -> int:
        return self.lab.servers[host].ports[kind]

    def repository(self, host: str = "B") -> Any:
        rt = self.lab.servers[host].runtime
        assert rt is not None
        return rt.repository

    def close(self) -> None:
        self.run(self.lab.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


StartLab = Callable[..., RunningLab]


@pytest.fixture
def start_lab() -> Iterator[StartLab]:
    labs: list[RunningLab] = []
    logger = logging.getLogger("wmilab.host")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    handlers: list[logging.Handler] = []

    def start(doc: dict[str, Any], *, root: bool = True, limits: Limits | None = None
              ) -> RunningLab:
        ports = None if root else {135: 0}
        running = RunningLab(make(doc), ports, limits)
        try:
            running.run(running.lab.start())
        except HostBindError as e:
            running.loop.call_soon_threadsafe(running.loop.stop)
            if root:
                needs_root(f"impacket needs port 135: {e.strerror}")
            raise
        labs.append(running)
        h = _Collect(running.records)
        logger.addHandler(h)
        handlers.append(h)
        return running

    yield start
    for h in handlers:
        logger.removeHandler(h)
    logger.setLevel(old_level)
    for running in labs:
        running.close()


def wmiquery(lab: RunningLab, queries: list[str], user: str = "CORP/admin:Adm1n!",
             level: str = "default", tmp: Path | None = None) -> str:
    qfile = (tmp or Path("/tmp")) / f"wql-{os.getpid()}-{time.monotonic_ns()}.txt"
    qfile.write_text("\n".join(queries) + "\n", encoding="utf-8")
    try:
        res = subprocess.run(
            [sys.executable, str(BIN / "wmiquery.py"), "-file", str(qfile),
             "-rpc-auth-level", level, f"{user}@{lab.address()}"],
            capture_output=True, text=True, timeout=90, check=False)
    finally:
        qfile.unlink(missing_ok=True)
    return res.stdout + res.stderr


def expected(lab: RunningLab) -> str:
    verdict = flow.evaluate(lab.scenario.world, lab.scenario.calls[0])
    return verdict.result


# ------------------------------------------------------------------------------------------
# impacket wmiquery / wmiexec (port 135: root)


@pytest.mark.parametrize("level", ["default", "integrity", "privacy"])
def test_wmiquery_reads_the_host_s_repository(start_lab: StartLab, level: str,
                                              tmp_path: Path) -> None:
    lab = start_lab(scenario())
    assert expected(lab) == "ok"
    out = wmiquery(lab, [
        "SELECT * FROM Win32_OperatingSystem",
        "SELECT Name, ProcessId FROM Win32_Process WHERE Name = 'lsass.exe'",
        "SELECT Name, State FROM Win32_Service WHERE Name = 'winmgmt'",
    ], level=level, tmp=tmp_path)
    repo = lab.repository()
    os_row = repo.exec_query("root\\cimv2", "SELECT * FROM Win32_OperatingSystem")[0]
    for prop in ("Caption", "Version", "CSName"):
        assert f"| {os_row.get(prop)} |" in out, out
    lsass = repo.exec_query("root\\cimv2",
                            "SELECT ProcessId FROM Win32_Process WHERE Name = 'lsass.exe'")
    assert f"| lsass.exe | {lsass[0].get('ProcessId')} |" in out, out
    assert "svchost.exe" not in out
    assert "| winmgmt | Running |" in out, out
    assert "[-]" not in out, out
    # One log line per connection, logon and call.
    assert any("IWbemServices::EXEC_QUERY as CORP\\admin -> 0x00000000" in r
               for r in lab.records)
    assert any("logon CORP\\admin" in r for r in lab.records)


def test_wmiexec_creates_an_emulated_process_and_runs_nothing(start_lab: StartLab,
                                                              tmp_path: Path) -> None:
    lab = start_lab(scenario())
    repo = lab.repository()
    before = len(repo.exec_query("root\\cimv2", "SELECT * FROM Win32_Process"))
    marker = tmp_path / "ran"
    command = f"touch {marker}"
    res = subprocess.run(
        [sys.executable, str(BIN / "wmiexec.py"), "-nooutput",
         f"CORP/admin:Adm1n!@{lab.address()}", command],
        capture_output=True, text=True, timeout=90, check=False, cwd=tmp_path)
    out = res.stdout + res.stderr
    assert "ReturnValue = 0" in out, out
    rows = repo.exec_query("root\\cimv2", "SELECT * FROM Win32_Process")
    assert len(rows) == before + 1
    created = [r for r in rows if command in str(r.get("CommandLine") or "")]
    assert len(created) == 1, [r.get("CommandLine") for r in rows]
    assert f"ProcessId = {created[0].get('ProcessId')}" in out
    assert not marker.exists()


def _wrong_password(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    doc["calls"][0]["password"] = "not-it"
    return doc, "CORP/admin:not-it"


def _no_remote_enable(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    # Seed, step 1: launch rights but no Remote Enable on the namespace.
    doc["hosts"]["B"]["dcom"] = {"launch_limits": {
        "CORP\\carol": ["local launch", "remote launch", "local activation",
                        "remote activation"]}}
    doc["calls"][0]["user"] = "CORP\\carol"
    return doc, "CORP/carol:C4rol!"


def _no_remote_launch(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    doc["hosts"]["B"]["wmi"] = {"root\\cimv2": {"CORP\\bob": ["enable account",
                                                               "remote enable"]}}
    doc["calls"][0]["user"] = "CORP\\bob"
    return doc, "CORP/bob:B0b!"


def _firewall_closed(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    doc["hosts"]["B"]["netsh"] = []  # XP SP2 default: firewall on, no RemoteAdmin
    return doc, "CORP/admin:Adm1n!"


def _only_135_open(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    # Port 135 opened by hand, but not the WMI service's dynamic port (flow c1.wmi-port).
    doc["hosts"]["B"]["netsh"] = [
        "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135"]
    return doc, "CORP/admin:Adm1n!"


@pytest.mark.parametrize(("make_case", "code", "step"), [
    (_wrong_password, 0x80070005, steps.C1_LOGON),
    (_no_remote_enable, 0x80041003, steps.C1_NAMESPACE),
    (_no_remote_launch, 0x80070005, steps.C1_ACTIVATION),
    (_firewall_closed, 0x800706BA, steps.C1_RPCSS),
    (_only_135_open, 0x800706BA, steps.C1_WMI_PORT),
])
def test_wmiquery_errors_equal_the_flow_s_prediction(
        start_lab: StartLab, make_case: Callable[[dict[str, Any]], tuple[dict[str, Any], str]],
        code: int, step: str, tmp_path: Path) -> None:
    doc, user = make_case(scenario())
    lab = start_lab(doc)
    predicted = expected(lab)
    assert predicted == f"0x{code:08X}"
    failed = flow.evaluate(lab.scenario.world, lab.scenario.calls[0]).failed
    assert failed is not None and failed.id == step
    out = wmiquery(lab, ["SELECT * FROM Win32_OperatingSystem"], user=user, tmp=tmp_path)
    got = client_errors.from_impacket_output(out)
    assert got is not None, out
    assert f"0x{got:08X}" == predicted, out


def test_garbage_and_silent_clients_do_not_stop_the_host(start_lab: StartLab,
                                                         tmp_path: Path) -> None:
    lab = start_lab(scenario(), limits=Limits(bind_timeout=1.0))
    addr = lab.address()
    silent = socket.create_connection((addr, 135), timeout=5)
    for junk in (b"\x00" * 64, b"GET / HTTP/1.0\r\n\r\n",
                 bytes([5, 0, 11, 3, 16, 0, 0, 0, 0xFF, 0xFF, 0, 0, 1, 0, 0, 0]) + b"\x00" * 40):
        with socket.create_connection((addr, 135), timeout=5) as s:
            s.sendall(junk)
            s.settimeout(5)
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except ConnectionResetError:
                pass
            # Either closed at once, or a bind_nak (13) / fault (3) PDU and then closed.
            assert data == b"" or data[2] in (3, 13)
    out = wmiquery(lab, ["SELECT Caption FROM Win32_OperatingSystem"], tmp=tmp_path)
    assert "| Microsoft Windows XP Professional |" in out, out
    silent.settimeout(5)
    assert silent.recv(10) == b""  # the idle connection was closed after bind_timeout
    silent.close()


# ------------------------------------------------------------------------------------------
# aiowmi (in process; free ports, no root needed)


async def _aiowmi(lab: RunningLab, query: str, *, skip_optimize: bool,
                  user: str = "admin", password: str = "Adm1n!") -> list[dict[str, Any]]:
    from aiowmi.connection import Connection
    from aiowmi.query import Query

    conn = Connection(lab.address(), user, password, domain="CORP", port=lab.port("rpcss"))
    try:
        await conn.connect(timeout=10)
        service = await conn.negotiate_ntlm()
        await conn.login_ntlm(service, "root/cimv2")
        rows: list[dict[str, Any]] = []
        async with Query(query).context(conn, service, skip_optimize=skip_optimize) as qc:
            async for props in qc.results():
                rows.append({k: v.value for k, v in props.items()})
        return rows
    finally:
        conn.close()


@pytest.mark.parametrize("smart", [True, False])
def test_aiowmi_smart_enum_and_fallback(start_lab: StartLab, smart: bool) -> None:
    lab = start_lab(scenario(), root=False)
    repo = lab.repository()
    for query in ("SELECT * FROM Win32_OperatingSystem",
                  "SELECT Name, ProcessId FROM Win32_Process WHERE Name = 'svchost.exe'",
                  "SELECT Name, State FROM Win32_Service WHERE State = 'Running'"):
        lab.records.clear()
        rows = asyncio.run(_aiowmi(lab, query, skip_optimize=not smart))
        want = repo.exec_query("root\\cimv2", query)
        assert len(rows) == len(want) > 0
        for row, inst in zip(rows, want, strict=True):
            for name in ("Caption", "Version", "CSName", "Name", "ProcessId", "State"):
                if name in row:
                    assert row[name] == inst.get(name)
        used_smart = any("IWbemWCOSmartEnum::NEXT" in r for r in lab.records)
        used_next = any("IEnumWbemClassObject::NEXT" in r for r in lab.records)
        assert (used_smart, used_next) == (smart, not smart), lab.records


def test_aiowmi_without_remote_enable_gets_wbem_e_access_denied(start_lab: StartLab) -> None:
    doc, _ = _no_remote_enable(scenario())
    lab = start_lab(doc, root=False)
    with pytest.raises(Exception) as info:
        asyncio.run(_aiowmi(lab, "SELECT * FROM Win32_OperatingSystem", skip_optimize=True,
                            user="carol", password="C4rol!"))
    assert f"0x{client_errors.from_exception(info.value) or 0:08X}" == expected(lab)


def test_aiowmi_firewall_closed_is_server_unavailable(start_lab: StartLab) -> None:
    doc, _ = _firewall_closed(scenario())
    lab = start_lab(doc, root=False)
    with pytest.raises(Exception) as info:
        asyncio.run(_aiowmi(lab, "SELECT * FROM Win32_OperatingSystem", skip_optimize=True))
    assert client_errors.from_exception(info.value) == 0x800706BA
    assert expected(lab) == "0x800706BA"
    assert any("dropped by the firewall" in r for r in lab.records)


# ------------------------------------------------------------------------------------------
# Our own sans-IO client: calls Windows clients never make (no root needed)


class RawClient:
    def __init__(self, addr: str, port: int, user: str = "admin", password: str = "Adm1n!"
                 ) -> None:
        from wmilab.wire.rpc import AuthLevel
        from wmilab.wire.rpc_conn import ClientConnection, ClientCredentials

        self.sock = socket.create_connection((addr, port), timeout=10)
        self.conn = ClientConnection(credentials=ClientCredentials(user, password, "CORP"),
                                     auth_level=AuthLevel.PKT_PRIVACY)

    def _events(self) -> list[Any]:
        while True:
            data = self.sock.recv(65536)
            if not data:
                return []
            events = self.conn.receive_data(data)
            pending = self.conn.data_to_send()
            if pending:
                self.sock.sendall(pending)
            if events:
                return events

    def bind(self, iid: Any) -> None:
        from wmilab.wire import rpc

        self.conn.bind(rpc.SyntaxId(iid, 0, 0))
        self.sock.sendall(self.conn.data_to_send())
        self._events()

    def call(self, opnum: int, stub: bytes, ipid: Any) -> Any:
        self.conn.request(opnum, stub, object_uuid=ipid)
        self.sock.sendall(self.conn.data_to_send())
        return self._events()[0]


def test_unknown_ipid_opnum_and_bad_stub_get_faults(start_lab: StartLab) -> None:
    import uuid

    from wmilab.wire import dcom, ids, rpc, wmi
    from wmilab.wire.rpc_conn import FaultReceived, ResponseReceived

    lab = start_lab(scenario(), root=False)
    rt = lab.lab.servers["B"].runtime
    assert rt is not None
    client = RawClient(lab.address(), lab.port("wmi"))
    client.bind(ids.IID_IREMUNKNOWN)
    rem = rt.table.rem_unknown.ipid
    release_unknown = dcom.NdrWriter()
    dcom.write_orpcthis(release_unknown, dcom.OrpcThis())
    release_unknown.u16(1)
    release_unknown.u32(1)
    release_unknown.guid(uuid.uuid4())
    release_unknown.i32(1)
    release_unknown.i32(0)
    got = client.call(ids.RemUnknownOp.REM_RELEASE, release_unknown.getvalue(), rem)
    assert isinstance(got, ResponseReceived) and wmi.parse_hresult_reply(got.stub) == 0
    got = client.call(3, b"\x00" * 40, uuid.uuid4())  # an IPID nobody exported
    assert isinstance(got, FaultReceived) and got.status == 0x80010108
    got = client.call(9, b"\x00" * 40, rem)  # IRemUnknown has no opnum 9
    assert isinstance(got, FaultReceived) and got.status == rpc.NCA_S_OP_RNG_ERROR
    got = client.call(ids.RemUnknownOp.REM_QUERY_INTERFACE, b"\x05\x00", rem)
    assert isinstance(got, FaultReceived) and got.status == rpc.STATUS_BAD_STUB_DATA
    client.sock.close()


def test_ntlmlogin_to_a_missing_namespace_matches_the_flow(start_lab: StartLab) -> None:
    from wmilab.wire import dcom, ids, wmi
    from wmilab.wire.rpc_conn import ResponseReceived

    doc = scenario()
    doc["calls"][0]["namespace"] = "root\\nothere"
    lab = start_lab(doc, root=False)
    scm = RawClient(lab.address(), lab.port("rpcss"))
    scm.bind(ids.IID_IREMOTESCMACTIVATOR)
    got = scm.call(ids.RemoteScmActivatorOp.REMOTE_CREATE_INSTANCE,
                   dcom.build_remote_create_instance_request(
                       ids.CLSID_WBEMLEVEL1LOGIN, [ids.IID_IWBEMLEVEL1LOGIN]), None)
    assert isinstance(got, ResponseReceived)
    act = dcom.parse_activation_reply(got.stub)
    assert act.scm is not None and act.interfaces[0].objref is not None
    assert act.scm.bindings.tcp_endpoints() == [(lab.address(), lab.port("wmi"))]
    login_ipid = act.interfaces[0].objref.std.ipid
    wmi_client = RawClient(lab.address(), lab.port("wmi"))
    wmi_client.bind(ids.IID_IWBEMLEVEL1LOGIN)
    got = wmi_client.call(ids.WbemLevel1LoginOp.NTLM_LOGIN,
                          wmi.build_ntlm_login_request("//./root/nothere"), login_ipid)
    assert isinstance(got, ResponseReceived)
    code = int.from_bytes(got.stub[-4:], "little")
    assert f"0x{code:08X}" == expected(lab) == "0x8004100E"
    scm.sock.close()
    wmi_client.sock.close()


def test_oxid_resolver_answers_unauthenticated_pings_and_resolution(start_lab: StartLab) -> None:
    import struct

    from wmilab.wire import dcom, ids, rpc
    from wmilab.wire.rpc_conn import ClientConnection, ResponseReceived

    lab = start_lab(scenario(), root=False)
    rt = lab.lab.servers["B"].runtime
    assert rt is not None
    client = RawClient(lab.address(), lab.port("rpcss"))
    client.conn = ClientConnection()  # MS-DCOM 3.2.4.1.2.1: no security on these calls
    client.conn.bind(rpc.SyntaxId(ids.IID_IOBJECTEXPORTER, 0, 0))
    client.sock.sendall(client.conn.data_to_send())
    client._events()

    def call(opnum: int, stub: bytes) -> bytes:
        got = client.call(opnum, stub, None)
        assert isinstance(got, ResponseReceived), got
        return bytes(got.stub)

    alive = call(ids.ObjectExporterOp.SERVER_ALIVE2, b"")
    assert lab.address().encode("utf-16-le") in alive and alive[-4:] == b"\x00" * 4

    def resolve(oxid: int) -> bytes:
        w = dcom.NdrWriter()
        w.u64(oxid)
        w.u16(1)
        w.u32(1)
        w.u16(dcom.TOWER_NCACN_IP_TCP)
        return call(ids.ObjectExporterOp.RESOLVE_OXID2, w.getvalue())

    known = resolve(rt.table.oxid)
    assert f"{lab.address()}[{lab.port('wmi')}]".encode("utf-16-le") in known
    assert rt.table.rem_unknown.ipid.bytes_le in known and known[-4:] == b"\x00" * 4
    # MS-DCOM 3.1.2.5.1.1: OR_INVALID_OXID for an OXID the resolver does not know.
    assert struct.unpack("<I", resolve(rt.table.oxid ^ 1)[-4:])[0] == dcom.OR_INVALID_OXID
    w = dcom.NdrWriter()
    w.u64(0)
    for v in (0, 0, 0):
        w.u16(v)
    w.u32(0)
    w.u32(0)
    pinged = call(ids.ObjectExporterOp.COMPLEX_PING, w.getvalue())
    set_id = struct.unpack_from("<Q", pinged)[0]
    assert set_id != 0 and pinged[-4:] == b"\x00" * 4
    assert call(ids.ObjectExporterOp.SIMPLE_PING, struct.pack("<Q", set_id)) == b"\x00" * 4
    assert struct.unpack("<I", call(ids.ObjectExporterOp.SIMPLE_PING,
                                    struct.pack("<Q", set_id + 1)))[0] == dcom.OR_INVALID_SET
    client.sock.close()


def _iface(stub: bytes) -> Any:
    """The interface pointer of an ORPCTHAT + MInterfacePointer + HRESULT reply."""
    from wmilab.wire import dcom

    r = dcom.NdrReader(stub)
    dcom.read_orpcthat(r)
    obj = dcom.read_unique_objref(r)
    assert isinstance(obj, dcom.ObjRefStandard)
    return obj


def _logged_in(lab: RunningLab, namespace: str = "//./root/cimv2") -> tuple[RawClient, Any]:
    """Activation on 135 and NTLMLogin on the WMI port; (client, IWbemServices IPID)."""
    from wmilab.wire import dcom, ids
    from wmilab.wire.rpc_conn import ResponseReceived

    scm = RawClient(lab.address(), lab.port("rpcss"))
    scm.bind(ids.IID_IREMOTESCMACTIVATOR)
    got = scm.call(ids.RemoteScmActivatorOp.REMOTE_CREATE_INSTANCE,
                   dcom.build_remote_create_instance_request(
                       ids.CLSID_WBEMLEVEL1LOGIN, [ids.IID_IWBEMLEVEL1LOGIN]), None)
    scm.sock.close()
    assert isinstance(got, ResponseReceived)
    ref = dcom.parse_activation_reply(got.stub).interfaces[0].objref
    assert ref is not None
    client = RawClient(lab.address(), lab.port("wmi"))
    client.bind(ids.IID_IWBEMLEVEL1LOGIN)
    from wmilab.wire import wmi

    got = client.call(ids.WbemLevel1LoginOp.NTLM_LOGIN, wmi.build_ntlm_login_request(namespace),
                      ref.std.ipid)
    assert isinstance(got, ResponseReceived)
    return client, _iface(got.stub).std.ipid


def test_sync_query_next_counts_reset_and_errors(start_lab: StartLab) -> None:
    from wmilab.wire import dcom, ids, wmi, wmio
    from wmilab.wire.rpc_conn import ResponseReceived

    lab = start_lab(scenario(), root=False)
    client, services = _logged_in(lab)
    want = lab.repository().exec_query("root\\cimv2", "SELECT * FROM Win32_Service")
    # Synchronous (flags 0): an enumerator that can be reset.
    got = client.call(ids.WbemServicesOp.EXEC_QUERY, wmi.build_exec_query_request(
        "SELECT * FROM Win32_Service", flags=0), services)
    assert isinstance(got, ResponseReceived)
    enum = _iface(got.stub)

    def next_(count: int) -> tuple[list[str], int]:
        reply = client.call(ids.EnumWbemClassObjectOp.NEXT, wmi.build_next_request(count=count),
                            enum.std.ipid)
        objs, code = wmi.parse_next_reply(reply.stub)
        names = []
        for o in objs:
            assert isinstance(o, dcom.ObjRefCustom)
            inst = wmio.decode_encoding_unit(o.data).obj
            assert isinstance(inst, wmio.Instance)
            names.append(str(inst.get("Name")))
        return names, code

    first, code = next_(5)
    assert code == 0 and first == [str(w.get("Name")) for w in want[:5]]
    rest, code = next_(1000)
    assert code == wmi.WBEM_S_FALSE and len(first) + len(rest) == len(want)
    assert next_(1) == ([], wmi.WBEM_S_FALSE)
    this = dcom.NdrWriter()
    dcom.write_orpcthis(this, dcom.OrpcThis())
    reset = client.call(ids.EnumWbemClassObjectOp.RESET, this.getvalue(), enum.std.ipid)
    assert wmi.parse_hresult_reply(reset.stub) == 0
    assert next_(1)[0] == first[:1]
    # Semisynchronous and forward-only (impacket's and aiowmi's flags): no Reset.
    semi = _iface(client.call(ids.WbemServicesOp.EXEC_QUERY, wmi.build_exec_query_request(
        "SELECT * FROM Win32_Service"), services).stub)
    denied = client.call(ids.EnumWbemClassObjectOp.RESET, this.getvalue(), semi.std.ipid)
    assert wmi.parse_hresult_reply(denied.stub) == 0x80041016  # WBEM_E_INVALID_OPERATION
    # A bad class fails ExecQuery itself with the repository's HRESULT.
    bad = client.call(ids.WbemServicesOp.EXEC_QUERY, wmi.build_exec_query_request(
        "SELECT * FROM Win32_Nothing"), services)
    assert int.from_bytes(bad.stub[-4:], "little") == 0x80041010  # WBEM_E_INVALID_CLASS
    # An asynchronous call whose sink names 127.0.0.1 (nothing listens there).
    sink = dcom.ObjRefStandard(ids.IID_IWBEMOBJECTSINK, dcom.StdObjRef(1, 2, enum.std.ipid),
                               dcom.tcp_bindings(["127.0.0.1"], None))
    asyn = client.call(ids.WbemServicesOp.EXEC_QUERY_ASYNC, wmi.build_exec_query_request(
        "SELECT * FROM Win32_Service", sink=sink), services)
    # MS-WMI 3.1.1.1.3: the async call returns WBEM_S_NO_ERROR once the operation started;
    # the results go to the sink over Connection 2 (tests/test_host_async.py).
    assert wmi.parse_hresult_reply(asyn.stub) == 0
    client.sock.close()


def test_tshark_dissects_the_traffic_without_errors(start_lab: StartLab, tmp_path: Path) -> None:
    import shutil
    import signal

    if not (shutil.which("dumpcap") and shutil.which("tshark")):
        needs_root("tshark/dumpcap not installed (scripts/bootstrap.sh installs them as root)")
    lab = start_lab(scenario())
    cap = tmp_path / "wmi.pcapng"
    dump = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", f"host {lab.address()}",
                             "-w", str(cap)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        if dump.poll() is not None:
            needs_root("dumpcap cannot capture on lo here")
        for level in ("default", "privacy"):
            out = wmiquery(lab, ["SELECT * FROM Win32_OperatingSystem"], level=level,
                           tmp=tmp_path)
            assert "[-]" not in out, out
        time.sleep(1)
    finally:
        dump.send_signal(signal.SIGTERM)
        dump.wait(10)
    decode = ["-d", f"tcp.port=={lab.port('wmi')},dcerpc"]
    expert = subprocess.run(["tshark", "-r", str(cap), *decode, "-q", "-z", "expert"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert "Errors (" not in expert and "Warnings (" not in expert, expert
    malformed = subprocess.run(["tshark", "-r", str(cap), *decode, "-Y", "_ws.malformed"],
                               capture_output=True, text=True, timeout=60, check=True).stdout
    assert malformed.strip() == ""
    calls = subprocess.run(["tshark", "-r", str(cap), *decode, "-Y", "dcerpc.pkt_type == 2"],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert "RemoteCreateInstance response" in calls and calls.count("\n") >= 8, calls
