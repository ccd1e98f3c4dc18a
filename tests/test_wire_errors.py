"""Every malformed input to a wire parser raises a WireError, never a ConfigError.

A bad packet is not bad user input: the CLI turns ConfigError into "error: <field>" and
exit code 2, the emulated host turns WireError into a fault or a close. Random and
truncated bytes go through each parser of wire/; whatever they raise must be a WireError.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wmilab.errors import ConfigError, WireError
from wmilab.wire import dcom, ntlm, rpc, wmi, wmio
from wmilab.wire.dcom import StubError

EXAMPLES = settings(max_examples=int(os.environ.get("WMILAB_FUZZ_EXAMPLES", "300")) // 3,
                    deadline=2000, suppress_health_check=[HealthCheck.too_slow])

PARSERS: dict[str, Callable[[bytes], object]] = {
    "rpc.parse_pdu": rpc.parse_pdu,
    "ntlm.parse_negotiate": ntlm.parse_negotiate,
    "ntlm.parse_challenge": ntlm.parse_challenge,
    "ntlm.parse_authenticate": ntlm.parse_authenticate,
    "dcom.parse_remote_create_instance": dcom.parse_remote_create_instance,
    "dcom.parse_activation_reply": dcom.parse_activation_reply,
    "dcom.decode_objref": dcom.decode_objref,
    "dcom.parse_resolve_oxid": dcom.parse_resolve_oxid,
    "dcom.parse_complex_ping": dcom.parse_complex_ping,
    "dcom.parse_rem_query_interface": dcom.parse_rem_query_interface,
    "dcom.parse_rem_refs": dcom.parse_rem_refs,
    "wmi.parse_ntlm_login": wmi.parse_ntlm_login,
    "wmi.parse_indicate": wmi.parse_indicate,
    "wmio.decode_encoding_unit": wmio.decode_encoding_unit,
}


def test_every_wire_error_class_derives_from_wire_error_only() -> None:
    for cls in (StubError, rpc.RpcProtocolError, ntlm.NtlmError, wmio.WmioError):
        assert issubclass(cls, WireError), cls
        assert not issubclass(cls, ConfigError), cls


def test_a_stub_error_names_the_structure_it_was_reading() -> None:
    with pytest.raises(StubError) as info:
        dcom.parse_rem_query_interface(b"\x05\x00")
    assert str(info.value).startswith("RemQueryInterface: ")


@pytest.mark.parametrize("name", sorted(PARSERS))
@EXAMPLES
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_wire_errors(name: str, data: bytes) -> None:
    with contextlib.suppress(WireError):  # anything else fails the test
        PARSERS[name](data)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_empty_input_is_a_wire_error(name: str) -> None:
    with pytest.raises(WireError):
        PARSERS[name](b"")
