"""MS-WMIO encoder/decoder, checked against impacket's and aiowmi's decoders as oracles."""

from __future__ import annotations

import struct
from collections import OrderedDict
from datetime import datetime
from typing import Any

import pytest
from aiowmi.ndr.encoding_unit import EncodingUnit
from aiowmi.ndr.next_response import NextResponse
from aiowmi.ndr.object_block import ObjectBlock
from hypothesis import given
from hypothesis import strategies as st
from impacket.dcerpc.v5.dcom.wmi import (
    CLSID_WbemClassObject,
    IID_IWbemClassObject,
    IWbemClassObject,
)
from impacket.dcerpc.v5.dcomrt import INTERFACE, OBJREF_CUSTOM

from wmilab.wire.wmio import (
    ARRAY_FLAG,
    HEAP_LENGTH_MSB,
    CimType,
    ClassDef,
    Instance,
    Method,
    Property,
    Qualifier,
    WmioError,
    decode_encoding_unit,
    decode_object_block,
    encode_encoding_unit,
    encode_object_block,
    encode_string,
)

KEY = Qualifier("key", True, CimType.BOOLEAN)

SCALARS: list[tuple[str, CimType, Any]] = [
    ("S8", CimType.SINT8, -5), ("U8", CimType.UINT8, 200), ("S16", CimType.SINT16, -300),
    ("U16", CimType.UINT16, 60000), ("S32", CimType.SINT32, -70000),
    ("U32", CimType.UINT32, 4000000000), ("S64", CimType.SINT64, -(2**40)),
    ("U64", CimType.UINT64, 2**63 + 5), ("R32", CimType.REAL32, 1.5),
    ("R64", CimType.REAL64, -2.25), ("Flag", CimType.BOOLEAN, True),
    ("Text", CimType.STRING, "héllo"), ("When", CimType.DATETIME, "20060314083012.125000+060"),
    ("Ref", CimType.REFERENCE, 'Win32_Process.Handle="4"'), ("Ch", CimType.CHAR16, "Z"),
]
ARRAYS: list[tuple[str, int, Any]] = [
    ("AU8", CimType.UINT8 | ARRAY_FLAG, [1, 2, 255]),
    ("AS16", CimType.SINT16 | ARRAY_FLAG, [-1, 7]),
    ("AU32", CimType.UINT32 | ARRAY_FLAG, [1, 2, 3]),
    ("AS64", CimType.SINT64 | ARRAY_FLAG, [-(2**33), 9]),
    ("AR64", CimType.REAL64 | ARRAY_FLAG, [0.5, -1.0]),
    ("ABool", CimType.BOOLEAN | ARRAY_FLAG, [True, False]),
    ("AStr", CimType.STRING | ARRAY_FLAG, ["a", "bé", "中文"]),
    ("ADate", CimType.DATETIME | ARRAY_FLAG, ["20060314083012.000000+000"]),
    ("ARef", CimType.REFERENCE | ARRAY_FLAG, ['A.K="1"', 'B.K="2"']),
    ("AChar", CimType.CHAR16 | ARRAY_FLAG, ["x", "y"]),
]

INNER = ClassDef("Inner", properties=(Property("Id", CimType.UINT32, (KEY,)),
                                      Property("Label", CimType.STRING)))


def every_type_class() -> ClassDef:
    props = [Property("Name", CimType.STRING, (KEY,))]
    props += [Property(n, t) for n, t, _ in SCALARS]
    props += [Property(n, t) for n, t, _ in ARRAYS]
    props.append(Property("Obj", CimType.OBJECT, class_ref="Inner"))
    props.append(Property("AObj", CimType.OBJECT | ARRAY_FLAG, class_ref="Inner"))
    props.append(Property("Missing", CimType.UINT32))
    props.append(Property("MissingText", CimType.STRING))
    return ClassDef("Test_All", ("Test_Base",), (Qualifier("dynamic", True, CimType.BOOLEAN),),
                    tuple(props))


def every_type_instance() -> Instance:
    values: dict[str, Any] = {"Name": "one"}
    values.update({n: v for n, _, v in SCALARS})
    values.update({n: v for n, _, v in ARRAYS})
    values["Obj"] = Instance(INNER, {"Id": 7, "Label": "seven"})
    values["AObj"] = [Instance(INNER, {"Id": 1}), Instance(INNER, {"Id": 2, "Label": "b"})]
    return Instance(every_type_class(), values)


def impacket_object(data: bytes, services: object = None) -> Any:
    ref = OBJREF_CUSTOM()
    ref["iid"] = IID_IWbemClassObject
    ref["clsid"] = CLSID_WbemClassObject
    ref["cbExtension"] = 0
    ref["ObjectReferenceSize"] = len(data)
    ref["pObjectData"] = data
    return IWbemClassObject(INTERFACE(None, ref.getData(), None, oxid=b"\0" * 8,
                                      target="127.0.0.1"), services)


class _AioResponse(NextResponse):
    def __init__(self, block: ObjectBlock) -> None:
        self._obj_block = block

    def _get_object_block(self) -> ObjectBlock:
        return self._obj_block


def aiowmi_values(data: bytes) -> OrderedDict[str, Any]:
    props = _AioResponse(EncodingUnit(data).object_block).get_properties()
    return OrderedDict((k, v.value) for k, v in props.items())


# -- our own decoder ------------------------------------------------------------------------

def test_instance_of_every_type_round_trips() -> None:
    inst = every_type_instance()
    decoded = decode_encoding_unit(encode_encoding_unit(inst, "HOSTB", "root\\cimv2"))
    assert decoded.server == "HOSTB" and decoded.namespace == "root\\cimv2"
    assert isinstance(decoded.obj, Instance)
    out = decoded.obj.values
    for name, _, value in SCALARS + ARRAYS:
        if isinstance(value, float):
            assert out[name] == pytest.approx(value)
        else:
            assert out[name] == value, name
    assert isinstance(out["Obj"], Instance) and out["Obj"].values == {"Id": 7, "Label": "seven"}
    assert [o.values["Id"] for o in out["AObj"]] == [1, 2]
    assert out["Missing"] is None and out["MissingText"] is None
    assert decoded.obj.cls.derivation == ("Test_Base",)


def test_class_with_methods_round_trips() -> None:
    sig_in = ClassDef("__PARAMETERS", properties=(
        Property("CommandLine", CimType.STRING, (Qualifier("ID", 0, CimType.SINT32),)),))
    sig_out = ClassDef("__PARAMETERS", properties=(Property("ReturnValue", CimType.UINT32),))
    parent = ClassDef("Base", properties=(Property("Handle", CimType.STRING, (KEY,)),))
    cls = ClassDef("Derived", ("Base",), (), (
        Property("Handle", CimType.STRING, (KEY,), inherited=True, origin=1),
        Property("Count", CimType.UINT32, default=3)),
        (Method("Run", sig_in, sig_out, (Qualifier("Static", True, CimType.BOOLEAN),)),
         Method("Stop", None, sig_out)), parent)
    decoded = decode_object_block(encode_object_block(cls)).obj
    assert isinstance(decoded, ClassDef)
    assert [p.name for p in decoded.properties] == ["Handle", "Count"]
    assert decoded.properties[0].inherited and decoded.properties[1].default == 3
    assert decoded.parent is not None and decoded.parent.name == "Base"
    run = decoded.method("Run")
    assert run is not None and run.inputs is not None and run.outputs is not None
    assert run.inputs.properties[0].name == "CommandLine"
    assert run.qualifiers[0].name == "Static"
    stop = decoded.method("Stop")
    assert stop is not None and stop.inputs is None


@given(st.text(alphabet=st.characters(blacklist_characters="\x00",
                                      blacklist_categories=("Cs",)), max_size=40))
def test_any_string_survives(text: str) -> None:
    cls = ClassDef("T", properties=(Property("S", CimType.STRING),))
    out = decode_encoding_unit(encode_encoding_unit(Instance(cls, {"S": text}))).obj
    assert isinstance(out, Instance) and out.values["S"] == text


@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(-(2**31), 2**31 - 1))
def test_integers_survive(u64: int, s32: int) -> None:
    cls = ClassDef("T", properties=(Property("U", CimType.UINT64), Property("S", CimType.SINT32)))
    out = decode_encoding_unit(encode_encoding_unit(Instance(cls, {"U": u64, "S": s32}))).obj
    assert isinstance(out, Instance) and out.values == {"U": u64, "S": s32}


def test_strings_are_compressed_when_they_can_be() -> None:
    assert encode_string("abc") == b"\x00abc\x00"
    assert encode_string("中") == b"\x01" + "中".encode("utf-16-le") + b"\x00\x00"


def test_out_of_range_and_wrong_types_are_refused() -> None:
    cls = ClassDef("T", properties=(Property("U8", CimType.UINT8),))
    with pytest.raises(WmioError, match="out of range"):
        encode_encoding_unit(Instance(cls, {"U8": 256}))
    with pytest.raises(WmioError, match="must be an int"):
        encode_encoding_unit(Instance(cls, {"U8": "1"}))
    with pytest.raises(WmioError, match="no property"):
        encode_encoding_unit(Instance(cls, {"Nope": 1}))


def test_malformed_bytes_raise_wmio_error() -> None:
    data = encode_encoding_unit(every_type_instance())
    with pytest.raises(WmioError, match="signature"):
        decode_encoding_unit(b"\0" * 4 + data[4:])
    for cut in (9, 40, len(data) // 2, len(data) - 3):
        with pytest.raises(WmioError):
            decode_object_block(data[8:cut])
    with pytest.raises(WmioError, match="neither"):
        decode_object_block(b"\x03" + data[9:])


def test_heaps_have_top_bit_and_no_value_at_offset_zero() -> None:
    cls = ClassDef("T", properties=(Property("A", CimType.STRING), Property("B", CimType.STRING)))
    block = encode_object_block(Instance(cls, {"A": "x", "B": "y"}))
    (class_len,) = struct.unpack_from("<L", block, 1)  # ClassHeader.EncodingLength
    inst = block[1 + class_len:]
    # EncodingLength(4) InstanceFlags(1) InstanceClassName(4) NdTable(1) ValueTable(2 x 4)
    # InstanceQualifierSet(4) InstPropQualSetFlag(1) InstanceHeap.
    class_name_ref, ref_a, ref_b = struct.unpack_from("<L", inst, 5) + struct.unpack_from(
        "<LL", inst, 10)
    assert class_name_ref == 0 and 0 not in (ref_a, ref_b)
    (raw,) = struct.unpack_from("<L", inst, 23)
    assert raw & HEAP_LENGTH_MSB and raw & ~HEAP_LENGTH_MSB == len(inst) - 27
    assert inst[27:27 + 3] == b"\x00T\x00"  # the class name comes first


# -- impacket as oracle ---------------------------------------------------------------------

def test_impacket_reads_an_instance_of_every_type() -> None:
    # impacket 0.13.1 cannot read non-NULL real32/real64 instance values (it slices the heap
    # with the float), so the reals are NULL here; aiowmi and our decoder read them.
    inst = every_type_instance()
    inst.values.update(R32=None, R64=None)
    obj = impacket_object(encode_encoding_unit(inst, "HOSTB", "root\\cimv2"))
    props = obj.getProperties()
    assert obj.getClassName() == "Test_All"
    got = {name: p["value"] for name, p in props.items()}
    for name, ctype, value in SCALARS:
        if ctype == CimType.BOOLEAN:
            assert got[name] == "True"  # impacket renders booleans as text
        elif ctype == CimType.CHAR16:
            assert got[name] == ord(value)
        elif isinstance(value, float):
            assert got[name] is None
        else:
            assert got[name] == value, name
    assert got["AStr"] == ["a", "bé", "中文"]
    assert got["AU32"] == [1, 2, 3] and got["AS64"] == [-(2**33), 9]
    assert got["Missing"] is None and got["MissingText"] is None
    assert "key" in props["Name"]["qualifiers"]
    inner = impacket_object(got["Obj"].getData())
    assert inner.getClassName() == "Inner"
    assert inner.getProperties()["Label"]["value"] == "seven"


def test_impacket_reads_a_class_with_parent_and_qualifiers() -> None:
    obj = impacket_object(encode_encoding_unit(every_type_class(), "HOSTB", "root\\cimv2"))
    assert obj.getClassName() == "Test_All"
    props = obj.getProperties()
    assert list(props)[:3] == ["Name", "S8", "U8"]
    assert props["U64"]["stype"] == "uint64" and props["AStr"]["stype"] == "string"
    assert props["Obj"]["qualifiers"]["CIMTYPE"] == "object:Inner"
    assert obj.encodingUnit["ObjectBlock"].ctCurrent["qualifiers"] == {"dynamic": "True"}


def win32_process_class() -> ClassDef:
    startup = "Win32_ProcessStartup"
    ins = ClassDef("__PARAMETERS", properties=(
        Property("CommandLine", CimType.STRING, (Qualifier("ID", 0, CimType.SINT32),)),
        Property("CurrentDirectory", CimType.STRING, (Qualifier("ID", 1, CimType.SINT32),)),
        Property("ProcessStartupInformation", CimType.OBJECT,
                 (Qualifier("ID", 2, CimType.SINT32),), class_ref=startup)))
    outs = ClassDef("__PARAMETERS", properties=(Property("ProcessId", CimType.UINT32),
                                               Property("ReturnValue", CimType.UINT32)))
    return ClassDef("Win32_Process", ("CIM_Process", "CIM_LogicalElement"), (), (
        Property("Handle", CimType.STRING, (KEY,), inherited=True, origin=1),
        Property("ProcessId", CimType.UINT32)), (Method("Create", ins, outs),))


class _Services:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []

    def ExecMethod(self, path: str, method: str, pInParams: Any = None) -> None:
        data = pInParams["pObjectData"]
        self.calls.append((path, method, data if isinstance(data, bytes) else data.getData()))


def test_impacket_wmiexec_builds_create_in_params_that_we_decode() -> None:
    services = _Services()
    process = impacket_object(encode_encoding_unit(win32_process_class(), "B", "root\\cimv2"),
                              services)
    create = process.getMethods()["Create"]
    assert list(create["InParams"]) == ["CommandLine", "CurrentDirectory",
                                        "ProcessStartupInformation"]
    assert list(create["OutParams"]) == ["ProcessId", "ReturnValue"]
    # What wmiexec.py does: win32Process.Create(command, pwd, None)
    process.Create("cmd.exe /Q /c whoami", "C:\\", None)
    ((path, method, data),) = services.calls
    assert (path, method) == ("Win32_Process", "Create")
    decoded = decode_encoding_unit(data).obj
    assert isinstance(decoded, Instance) and decoded.cls.name == "__PARAMETERS"
    assert decoded.values == {"CommandLine": "cmd.exe /Q /c whoami", "CurrentDirectory": "C:\\",
                              "ProcessStartupInformation": None}


def test_impacket_reads_out_params() -> None:
    outs = win32_process_class().methods[0].outputs
    assert outs is not None
    obj = impacket_object(encode_encoding_unit(Instance(outs, {"ProcessId": 1234,
                                                               "ReturnValue": 0})))
    props = obj.getProperties()
    assert props["ProcessId"]["value"] == 1234 and props["ReturnValue"]["value"] == 0


# -- aiowmi as oracle -----------------------------------------------------------------------

def test_aiowmi_reads_an_instance() -> None:
    cls = ClassDef("Test_Scalars", properties=tuple(
        [Property("Name", CimType.STRING, (KEY,))] + [Property(n, t) for n, t, _ in SCALARS]
        + [Property(n, t) for n, t, _ in ARRAYS]))
    values: dict[str, Any] = {"Name": "one"}
    values.update({n: v for n, _, v in SCALARS})
    values.update({n: v for n, _, v in ARRAYS})
    # aiowmi 1.1.3 looks for a UTF-16 terminator from the start of the heap, so it only reads
    # compressed (Latin-1) strings reliably: that is why the encoder compresses when it can.
    values["AStr"] = ["a", "bé", "z"]
    got = aiowmi_values(encode_encoding_unit(Instance(cls, values), "HOSTB", "root\\cimv2"))
    for name, ctype, value in SCALARS:
        if ctype == CimType.DATETIME:
            assert isinstance(got[name], datetime) and got[name].year == 2006
        elif ctype == CimType.CHAR16:
            assert got[name] == ord(value)
        elif isinstance(value, float):
            assert got[name] == pytest.approx(value)
        else:
            assert got[name] == value, name
    assert got["AStr"] == ["a", "bé", "z"] and got["AU32"] == [1, 2, 3]
    assert got["ABool"] == [0xFFFF, 0]  # aiowmi returns raw array items


def test_aiowmi_reads_zero_and_false_values() -> None:
    cls = ClassDef("T", properties=(Property("Name", CimType.STRING), Property("N", CimType.UINT32),
                                    Property("B", CimType.BOOLEAN)))
    got = aiowmi_values(encode_encoding_unit(Instance(cls, {"Name": "x", "N": 0, "B": False})))
    assert got == {"Name": "x", "N": 0, "B": False}
