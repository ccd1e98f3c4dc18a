"""Bad input to the WMI service's new methods: parsers raise only their own errors, and the
exporter answers every IWbemServices / activation / class-factory call with a reply or an RPC
fault, never an exception, and keeps serving (Windows' answer: a fault or a WBEM error)."""

from __future__ import annotations

import contextlib
import os
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make, remote_admin_pair
from wmilab.host.activation import remote_activation
from wmilab.host.exporter import WmiExporter
from wmilab.host.objects import ClassFactory, Services
from wmilab.host.runtime import CallContext, HostRuntime
from wmilab.repository import WmiError
from wmilab.repository.events import parse_event_query
from wmilab.wire import dcom, iactivation, ids, wmi, wmio
from wmilab.wire.dcom import RpcFaultReply, StubError

FUZZ = settings(max_examples=int(os.environ.get("WMILAB_FUZZ_EXAMPLES", "300")), deadline=2000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _orpcthis() -> bytes:
    w = dcom.NdrWriter()
    dcom.write_orpcthis(w, dcom.OrpcThis())
    return w.getvalue()


ORPC = _orpcthis()
STUBS = st.one_of(st.binary(max_size=200), st.binary(max_size=300).map(lambda b: ORPC + b))

_S = make(remote_admin_pair())
_RT = HostRuntime(_S.world, "B", wmi_listen_port=1025)
_EXPORTER = WmiExporter(_RT, None)
_TOKEN = _S.world.directory.network_logon("B", "CORP\\admin", lambda p: p == "Adm1n!").token
assert _TOKEN is not None
_CTX = CallContext(_TOKEN, "127.0.0.2", "127.0.0.1")
_SERVICES = _RT.table.export(Services("root\\cimv2", _TOKEN), ids.IID_IWBEMSERVICES)
_FACTORY = _RT.table.export(ClassFactory(_TOKEN), ids.IID_ICLASSFACTORY)


@FUZZ
@given(st.integers(3, 26), STUBS)
def test_wbem_services_parser_raises_only_stub_errors(opnum: int, stub: bytes) -> None:
    with contextlib.suppress(StubError):
        wmi.parse_wbem_services(opnum, stub)


@FUZZ
@given(st.integers(0, 30), STUBS)
def test_exporter_answers_any_services_call(opnum: int, stub: bytes) -> None:
    _name, reply = _EXPORTER.handle(opnum, _SERVICES.ipid, stub, _CTX)
    assert isinstance(reply, bytes | RpcFaultReply)
    if isinstance(reply, bytes):
        assert len(reply) >= 8  # ORPCTHAT and an HRESULT at least


@FUZZ
@given(st.integers(0, 6), STUBS)
def test_class_factory_and_activation_answer_any_call(opnum: int, stub: bytes) -> None:
    _, reply = _EXPORTER.handle(opnum, _FACTORY.ipid, stub, _CTX)
    assert isinstance(reply, bytes | RpcFaultReply)
    try:
        got = remote_activation(_RT, opnum, stub, _CTX)
    except StubError:
        return
    assert isinstance(got, bytes | RpcFaultReply)


@FUZZ
@given(st.binary(max_size=400))
def test_put_class_with_garbage_objects_is_invalid_parameter(junk: bytes) -> None:
    encoded = struct.pack("<II", 0x12345678, len(junk)) + junk
    stub = wmi.build_put_request(ids.WbemServicesOp.PUT_CLASS, encoded)
    _, reply = _EXPORTER.handle(ids.WbemServicesOp.PUT_CLASS, _SERVICES.ipid, stub, _CTX)
    assert isinstance(reply, bytes)
    code = struct.unpack("<I", reply[-4:])[0]
    try:
        obj = wmio.decode_encoding_unit(encoded).obj
    except wmio.WmioError:
        # MS-WMI 3.1.4.3.6: an object the server cannot read is not a valid parameter.
        assert code == 0x80041008
        return
    assert code == 0 or code & 0x80000000, obj


@FUZZ
@given(st.text(max_size=120))
def test_event_query_parser_raises_only_wmi_errors(text: str) -> None:
    with contextlib.suppress(WmiError):
        parse_event_query(text)


@FUZZ
@given(st.binary(max_size=200))
def test_activation_and_client_id_parsers(data: bytes) -> None:
    for parse in (iactivation.parse_remote_activation, iactivation.parse_class_factory_create,
                  iactivation.parse_lock_server, wmi.parse_set_client_info):
        with contextlib.suppress(StubError):
            parse(ORPC + data)  # type: ignore[operator]
