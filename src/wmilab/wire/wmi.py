"""Sans-IO MS-WMI stub codecs: IWbemLevel1Login, IWbemServices, enumerators, call results, sinks.

Requests parse to frozen dataclasses; replies are built from objects given as opaque encoded
bytes (the MS-WMIO encoding unit from wire/wmio.py) wrapped in OBJREF_CUSTOM, or as OBJREFs.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from wmilab import hresult as hr
from wmilab.wire import ids
from wmilab.wire.dcom import (
    NdrReader,
    NdrWriter,
    ObjRef,
    ObjRefCustom,
    ObjRefStandard,
    OrpcThis,
    StubError,
    decode_objref,
    decode_with,
    encode_objref,
    read_mip,
    read_orpcthat,
    read_orpcthis,
    read_unique_objref,
    wbem_object_ref,
    write_mip,
    write_orpcthat,
    write_orpcthis,
    write_unique_mip,
)
from wmilab.wire.rpc import guid_from_bytes_le

# MS-WMI 2.2.11 WBEMSTATUS and 2.2.3 flags.
WBEM_S_NO_ERROR = 0x0
WBEM_S_FALSE = 0x1
WBEM_S_TIMEDOUT = 0x40004
WBEM_E_ACCESS_DENIED = hr.WBEM_E_ACCESS_DENIED.code  # from the status-code catalogue
WBEM_E_NOT_SUPPORTED = hr.WBEM_E_NOT_SUPPORTED.code  # from the status-code catalogue
WBEM_E_INVALID_PARAMETER = hr.WBEM_E_INVALID_PARAMETER.code  # from the status-code catalogue
WBEM_FLAG_RETURN_IMMEDIATELY = 0x10  # MS-WMI 2.2.3: semisynchronous
WBEM_FLAG_FORWARD_ONLY = 0x20  # MS-WMI 2.2.3: no Reset on the enumerator
WBEM_FLAG_SEND_STATUS = 0x80
WBEM_FLAG_USE_AMENDED_QUALIFIERS = 0x20000
WBEM_INFINITE = 0xFFFFFFFF
# MS-WMIO 2.2.1: EncodingUnit = Signature 0x12345678, ObjectEncodingLength, ObjectBlock.
ENCODING_UNIT_SIGNATURE = 0x12345678


# ---------------------------------------------------------------------------------------------
# strings
# ---------------------------------------------------------------------------------------------


def _read_bstr(r: NdrReader) -> str | None:
    """BSTR on the wire (MS-OAUT 2.2.23.2): unique pointer to FLAGGED_WORD_BLOB."""
    if not r.ptr():
        return None
    n = r.u32()  # conformance
    r.u32()  # cbBuffer / fFlags (byte length)
    cl = r.u32()
    if cl > n:
        raise StubError("BSTR length exceeds its size", (r.what,))
    text = r.raw(2 * cl).decode("utf-16-le", errors="replace")
    r.align(4)
    # impacket sends some BSTRs with, some without a trailing NUL (checkNullString).
    return text.rstrip("\x00")


def _write_bstr(w: NdrWriter, text: str | None) -> None:
    if text is None:
        w.u32(0)
        return
    data = text.encode("utf-16-le")
    w.ptr(True)
    w.u32(len(text))
    w.u32(len(data))
    w.u32(len(text))
    w.raw(data)
    w.align(4)


def _read_ppmip(r: NdrReader) -> tuple[bool, ObjRef | None]:
    """[in, out, unique] IFoo** : (outer pointer present, inner object or None)."""
    if not r.ptr():
        return False, None
    if r.remaining() < 4:
        return True, None
    inner = r.ptr()
    if not inner:
        return True, None
    return True, decode_objref(read_mip(r))


def _write_ppmip(w: NdrWriter, obj: ObjRef | None) -> None:
    """[out] IFoo** for an [in,out,unique] parameter: outer referent, then the interface ptr."""
    if obj is None:
        w.u32(0)
        return
    w.ptr(True)
    write_unique_mip(w, obj)


def _as_objref(obj: ObjRef | bytes) -> ObjRef:
    return wbem_object_ref(obj) if isinstance(obj, bytes) else obj


# ---------------------------------------------------------------------------------------------
# IWbemLevel1Login (MS-WMI 3.1.4.1)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NtlmLoginRequest:
    orpcthis: OrpcThis
    network_resource: str | None  # e.g. "//./root/cimv2"
    preferred_locale: str | None
    flags: int
    context: ObjRef | None

    @property
    def namespace(self) -> str:
        """``root/cimv2`` from ``//./root/cimv2`` or ``\\\\.\\root\\cimv2``."""
        text = (self.network_resource or "").replace("\\", "/")
        if text.startswith("//"):
            text = text[2:].partition("/")[2]
        return text.strip("/").lower()


def parse_ntlm_login(stub: bytes) -> NtlmLoginRequest:
    """NTLMLogin (opnum 6): wszNetworkResource, wszPreferredLocale, lFlags, pCtx."""
    def go(r: NdrReader) -> NtlmLoginRequest:
        orpc = read_orpcthis(r)
        res = r.unique_lpwstr()
        loc = r.unique_lpwstr()
        flags = r.i32()
        ctx = read_unique_objref(r) if r.remaining() >= 4 else None
        return NtlmLoginRequest(orpc, res, loc, flags, ctx)
    return decode_with("NTLMLogin", stub, go)


def build_ntlm_login_request(namespace: str, orpcthis: OrpcThis | None = None) -> bytes:
    w = NdrWriter()
    write_orpcthis(w, orpcthis or OrpcThis())
    w.lpwstr(namespace)
    w.u32(0)
    w.i32(0)
    w.u32(0)
    return w.getvalue()


def build_interface_reply(obj: ObjRef | bytes | None,
                          hresult: int = WBEM_S_NO_ERROR) -> bytes:
    """ORPCTHAT + one [out] interface pointer + HRESULT.

    Shape of NTLMLogin, ExecQuery, CreateInstanceEnum, GetSmartEnum, Clone, GetResultObject,
    GetResultServices and QueryObjectSink replies (MS-WMI 3.1.4.1.4, 3.1.4.3.x, 3.1.4.6.1).
    On error the pointer is NULL and the HRESULT says why (e.g. WBEM_E_ACCESS_DENIED).
    ``obj`` may be the OBJREF's octets already encoded.
    """
    if hresult & 0x80000000 or obj is None:
        return _NULL_INTERFACE_REPLY.pack(0, 0, 0, hresult & 0xFFFFFFFF)
    data = obj if isinstance(obj, bytes) else encode_objref(obj)
    # The octets write_orpcthat + write_unique_mip + u32 make, packed at once: ORPCTHAT,
    # the pointer's referent id, ulCntData, the conformant count, the OBJREF, padding to 4.
    return b"".join((_INTERFACE_REPLY_HEAD.pack(0, 0, _REFERENT, len(data), len(data)), data,
                     _PAD4[-len(data) % 4], _U32.pack(hresult & 0xFFFFFFFF)))


_NULL_INTERFACE_REPLY = struct.Struct("<IIII")  # ORPCTHAT, NULL pointer, HRESULT
_INTERFACE_REPLY_HEAD = struct.Struct("<IIIII")
_REFERENT = 0x00020000  # the first referent id an NdrWriter hands out (NdrWriter.ref)
_PAD4 = (b"", b"\x00", b"\x00\x00", b"\x00\x00\x00")
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class SetClientInfoRequest:
    """IWbemLoginClientID::SetClientInfo (MS-WMI 3.1.4.8.1)."""

    orpcthis: OrpcThis
    machine: str | None
    process_id: int
    reserved: int


def parse_set_client_info(stub: bytes) -> SetClientInfoRequest:
    def go(r: NdrReader) -> SetClientInfoRequest:
        orpc = read_orpcthis(r)
        machine = r.unique_lpwstr()
        return SetClientInfoRequest(orpc, machine, r.i32(), r.i32())
    return decode_with("IWbemLoginClientID::SetClientInfo", stub, go)


def build_set_client_info_request(machine: str | None, process_id: int) -> bytes:
    w = NdrWriter()
    write_orpcthis(w, OrpcThis())
    if machine is None:
        w.u32(0)
    else:
        w.lpwstr(machine)
    w.i32(process_id)
    w.i32(0)
    return w.getvalue()


@dataclass(frozen=True)
class EstablishPositionRequest:
    orpcthis: OrpcThis


def parse_establish_position(stub: bytes) -> EstablishPositionRequest:
    return decode_with("EstablishPosition", stub,
                       lambda r: EstablishPositionRequest(read_orpcthis(r)))


def build_establish_position_reply(locale_version: int = 0) -> bytes:
    # MS-WMI 3.1.4.1.1: LocaleVersion MUST be 0 (reserved); returns WBEM_S_NO_ERROR.
    w = NdrWriter()
    write_orpcthat(w)
    w.u32(locale_version)
    w.u32(WBEM_S_NO_ERROR)
    return w.getvalue()


E_NOTIMPL = 0x80004001  # MS-ERREF 2.1


def build_wbem_login_reply(hresult: int = E_NOTIMPL) -> bytes:
    """WBEMLogin (5) as XP and Server 2003 answer it: ORPCTHAT, a NULL interface pointer,
    E_NOTIMPL. Windows' wbemtran.idl declares the last parameter ``IWbemServices**
    ppNamespace`` (MS-WMI 3.1.4.1.3 calls it reserved5); the method is not implemented."""
    w = NdrWriter()
    write_orpcthat(w)
    w.u32(0)
    w.u32(hresult)
    return w.getvalue()


def build_reserved_challenge_reply(hresult: int = WBEM_E_NOT_SUPPORTED) -> bytes:
    """RequestChallenge (4) / WBEMLogin (5): MS-WMI 3.1.4.1.2/3.1.4.1.3 say the server MUST
    return WBEM_E_NOT_SUPPORTED; the [out] 16-byte array is sent zeroed."""
    w = NdrWriter()
    write_orpcthat(w)
    w.u32(16)
    w.u32(0)
    w.u32(16)
    w.raw(bytes(16))
    w.u32(hresult)
    return w.getvalue()


# ---------------------------------------------------------------------------------------------
# IWbemServices (MS-WMI 3.1.4.3)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkRef:
    """The IWbemObjectSink an async call passed (MS-WMI 3.1.4.2): where to call back."""

    objref: ObjRefStandard

    @property
    def oxid(self) -> int:
        return self.objref.std.oxid

    @property
    def ipid(self) -> uuid.UUID:
        return self.objref.std.ipid

    def resolver_endpoints(self) -> list[tuple[str, int | None]]:
        return self.objref.resolver.tcp_endpoints()


def _sink(obj: ObjRef | None, what: str) -> SinkRef:
    if not isinstance(obj, ObjRefStandard):
        raise StubError(f"{what}: pResponseHandler is not an OBJREF_STANDARD sink", (what,))
    return SinkRef(obj)


class WbemRequest(NamedTuple):
    """A parsed IWbemServices call. Fields that an opnum does not carry stay None/0.

    A NamedTuple (one per request; a frozen dataclass sets each field through
    object.__setattr__)."""

    opnum: int
    orpcthis: OrpcThis
    flags: int = 0
    path: str | None = None  # strObjectPath / strSuperClass / strNamespace / strClass
    method: str | None = None
    query_language: str | None = None
    query: str | None = None
    context: ObjRef | None = None
    in_params: ObjRef | None = None
    sink: SinkRef | None = None
    wants_call_result: bool = False
    object: ObjRef | None = None  # pObject of PutClass, pInst of PutInstance

    @property
    def object_data(self) -> bytes | None:
        """Encoded class or instance (opaque MS-WMIO bytes) of PutClass / PutInstance."""
        return self.object.data if isinstance(self.object, ObjRefCustom) else None

    @property
    def name(self) -> str:
        return ids.op_name(ids.IID_IWBEMSERVICES, self.opnum)

    @property
    def semisync(self) -> bool:
        return bool(self.flags & WBEM_FLAG_RETURN_IMMEDIATELY)

    @property
    def forward_only(self) -> bool:
        return bool(self.flags & WBEM_FLAG_FORWARD_ONLY)

    @property
    def in_params_object(self) -> bytes | None:
        """Encoded in-parameters object (opaque MS-WMIO bytes) of ExecMethod."""
        return self.in_params.data if isinstance(self.in_params, ObjRefCustom) else None


@dataclass(frozen=True)
class Unsupported:
    """An opnum we decode no further; the host answers it with :func:`build_error_reply`."""

    iid: uuid.UUID
    opnum: int
    orpcthis: OrpcThis | None

    @property
    def name(self) -> str:
        return ids.op_name(self.iid, self.opnum)


Op = ids.WbemServicesOp
# The ExecQuery family as plain ints: an IntEnum member read from its class is slow on 3.11.
_QUERY_OPS = frozenset(int(op) for op in (Op.EXEC_QUERY, Op.EXEC_QUERY_ASYNC,
                                          Op.EXEC_NOTIFICATION_QUERY,
                                          Op.EXEC_NOTIFICATION_QUERY_ASYNC))
_ASYNC_QUERY_OPS = frozenset(int(op) for op in (Op.EXEC_QUERY_ASYNC,
                                                Op.EXEC_NOTIFICATION_QUERY_ASYNC))


@lru_cache(maxsize=256)
def _services_op_name(opnum: int) -> str:
    return ids.op_name(ids.IID_IWBEMSERVICES, opnum)


def parse_wbem_services(opnum: int, stub: bytes) -> WbemRequest | Unsupported:
    """Parse any IWbemServices request; opnums we do not serve give ``Unsupported``."""
    if opnum == _EXEC_QUERY:
        fast = _parse_exec_query_fast(opnum, stub)
        if fast is not None:
            return fast
    return _parse_wbem_services(opnum, stub)


_EXEC_QUERY = int(Op.EXEC_QUERY)
# ORPCTHIS without extensions, then strQueryLanguage's unique pointer and the head of its
# FLAGGED_WORD_BLOB (MS-OAUT 2.2.23.2: conformance, cbBuffer, clSize), as _read_bstr reads.
_EXEC_QUERY_HEAD = struct.Struct("<HHII16sIIIII")
_BSTR_HEAD = struct.Struct("<IIII")
_FLAGS_AND_CONTEXT = struct.Struct("<iI")


def _parse_exec_query_fast(opnum: int, stub: bytes) -> WbemRequest | None:
    """The usual synchronous ExecQuery (no ORPC extensions, both strings present, no
    context object) read with three unpacks, as the NDR reader reads it; None for anything
    else, which the general reader then reads (tests/test_wire_fastpaths.py)."""
    size = len(stub)
    if size < _EXEC_QUERY_HEAD.size:
        return None
    major, minor, oflags, _res, cid, ext, ptr, conformance, _cb, count = \
        _EXEC_QUERY_HEAD.unpack_from(stub)
    at = _EXEC_QUERY_HEAD.size
    end = at + 2 * count
    if ext or not ptr or count > conformance or end > size:
        return None
    language = stub[at:end].decode("utf-16-le", errors="replace").rstrip("\x00")
    at = end + (-end % 4)
    if at + _BSTR_HEAD.size > size:
        return None
    ptr, conformance, _cb, count = _BSTR_HEAD.unpack_from(stub, at)
    at += _BSTR_HEAD.size
    end = at + 2 * count
    if not ptr or count > conformance or end > size:
        return None
    query = stub[at:end].decode("utf-16-le", errors="replace").rstrip("\x00")
    at = end + (-end % 4)
    if at + _FLAGS_AND_CONTEXT.size > size:
        return None
    flags, context = _FLAGS_AND_CONTEXT.unpack_from(stub, at)
    if context:
        return None
    return WbemRequest(opnum, OrpcThis._read((major, minor), oflags, cid, False),
                       flags & 0xFFFFFFFF, query_language=language, query=query)


def _parse_wbem_services(opnum: int, stub: bytes) -> WbemRequest | Unsupported:
    """parse_wbem_services with the NDR reader, for every request."""
    what = _services_op_name(opnum)

    def go(r: NdrReader) -> WbemRequest | Unsupported:
        orpc = read_orpcthis(r)
        if opnum in _QUERY_OPS:
            lang = _read_bstr(r)
            q = _read_bstr(r)
            flags = r.i32() & 0xFFFFFFFF
            ctx = read_unique_objref(r)
            sink = None
            if opnum in _ASYNC_QUERY_OPS:
                sink = _sink(read_unique_objref(r), what)
            return WbemRequest(opnum, orpc, flags, query_language=lang, query=q,
                               context=ctx, sink=sink)
        if opnum in (Op.GET_OBJECT, Op.GET_OBJECT_ASYNC, Op.CREATE_INSTANCE_ENUM,
                     Op.CREATE_INSTANCE_ENUM_ASYNC, Op.CREATE_CLASS_ENUM,
                     Op.CREATE_CLASS_ENUM_ASYNC, Op.DELETE_INSTANCE, Op.DELETE_INSTANCE_ASYNC,
                     Op.DELETE_CLASS, Op.DELETE_CLASS_ASYNC):
            path = _read_bstr(r)
            flags = r.i32() & 0xFFFFFFFF
            ctx = read_unique_objref(r)
            if opnum in (Op.GET_OBJECT_ASYNC, Op.CREATE_INSTANCE_ENUM_ASYNC,
                         Op.CREATE_CLASS_ENUM_ASYNC, Op.DELETE_INSTANCE_ASYNC,
                         Op.DELETE_CLASS_ASYNC):
                return WbemRequest(opnum, orpc, flags, path=path, context=ctx,
                                   sink=_sink(read_unique_objref(r), what))
            wants = False
            if opnum == Op.GET_OBJECT and r.remaining() >= 4:
                _read_ppmip(r)  # ppObject [in, out, unique]
                if r.remaining() >= 4:
                    wants, _ = _read_ppmip(r)  # ppCallResult
            elif opnum in (Op.DELETE_INSTANCE, Op.DELETE_CLASS) and r.remaining() >= 4:
                wants, _ = _read_ppmip(r)
            return WbemRequest(opnum, orpc, flags, path=path, context=ctx,
                               wants_call_result=wants)
        if opnum in (Op.EXEC_METHOD, Op.EXEC_METHOD_ASYNC):
            path = _read_bstr(r)
            method = _read_bstr(r)
            flags = r.i32() & 0xFFFFFFFF
            ctx = read_unique_objref(r)
            inp = read_unique_objref(r)
            if opnum == Op.EXEC_METHOD_ASYNC:
                return WbemRequest(opnum, orpc, flags, path=path, method=method, context=ctx,
                                   in_params=inp, sink=_sink(read_unique_objref(r), what))
            wants = False
            if r.remaining() >= 4:
                _read_ppmip(r)  # ppOutParams
                if r.remaining() >= 4:
                    wants, _ = _read_ppmip(r)
            return WbemRequest(opnum, orpc, flags, path=path, method=method, context=ctx,
                               in_params=inp, wants_call_result=wants)
        if opnum == Op.OPEN_NAMESPACE:
            ns = _read_bstr(r)
            flags = r.i32() & 0xFFFFFFFF
            ctx = read_unique_objref(r)
            wants = False
            if r.remaining() >= 4:
                _read_ppmip(r)
                if r.remaining() >= 4:
                    wants, _ = _read_ppmip(r)
            return WbemRequest(opnum, orpc, flags, path=ns, context=ctx, wants_call_result=wants)
        if opnum in (Op.PUT_CLASS, Op.PUT_CLASS_ASYNC, Op.PUT_INSTANCE, Op.PUT_INSTANCE_ASYNC):
            # MS-WMI 3.1.4.3.6/.7/.12/.13: pObject, lFlags, pCtx, then ppCallResult (sync) or
            # pResponseHandler (async). impacket's PutClass also sends a NULL pResponseHandler
            # before ppCallResult; the trailing pointers are read leniently.
            obj = read_unique_objref(r)
            flags = r.i32() & 0xFFFFFFFF
            ctx = read_unique_objref(r)
            if opnum in (Op.PUT_CLASS_ASYNC, Op.PUT_INSTANCE_ASYNC):
                return WbemRequest(opnum, orpc, flags, context=ctx, object=obj,
                                   sink=_sink(read_unique_objref(r), what))
            wants = False
            while r.remaining() >= 4 and not wants:
                wants, _ = _read_ppmip(r)
            return WbemRequest(opnum, orpc, flags, context=ctx, object=obj,
                               wants_call_result=wants)
        if opnum == Op.QUERY_OBJECT_SINK:
            return WbemRequest(opnum, orpc, r.i32() & 0xFFFFFFFF)
        if opnum == Op.CANCEL_ASYNC_CALL:
            return WbemRequest(opnum, orpc, sink=_sink(read_unique_objref(r), what))
        return Unsupported(ids.IID_IWBEMSERVICES, opnum, orpc)

    return decode_with(what, stub, go)


def build_exec_query_request(
    query: str, flags: int = WBEM_FLAG_RETURN_IMMEDIATELY | WBEM_FLAG_FORWARD_ONLY,
    language: str = "WQL", sink: ObjRefStandard | None = None, orpcthis: OrpcThis | None = None,
) -> bytes:
    """Client role: ExecQuery (sink None) or ExecQueryAsync request stub."""
    w = NdrWriter()
    write_orpcthis(w, orpcthis or OrpcThis())
    _write_bstr(w, language)
    _write_bstr(w, query)
    w.u32(flags)
    w.u32(0)  # pCtx
    if sink is not None:
        write_unique_mip(w, sink)
    return w.getvalue()


def build_put_request(opnum: int, encoded: bytes, flags: int = 0, *,
                      call_result: bool = False, sink: ObjRefStandard | None = None,
                      orpcthis: OrpcThis | None = None) -> bytes:
    """Client role: PutClass / PutInstance (sync or async) with an encoded object."""
    w = NdrWriter()
    write_orpcthis(w, orpcthis or OrpcThis())
    write_unique_mip(w, wbem_object_ref(encoded))
    w.u32(flags)
    w.u32(0)  # pCtx
    if sink is not None:
        write_unique_mip(w, sink)
    elif call_result:
        w.ptr(True)  # ppCallResult: a pointer to a NULL interface pointer
        w.u32(0)
    else:
        w.u32(0)
    return w.getvalue()


def build_path_request(opnum: int, path: str, flags: int = 0, *, call_result: bool = False,
                       sink: ObjRefStandard | None = None,
                       orpcthis: OrpcThis | None = None) -> bytes:
    """Client role: GetObject, DeleteClass, DeleteInstance, CreateClassEnum,
    CreateInstanceEnum (sync or async), OpenNamespace: strPath, lFlags, pCtx, ..."""
    w = NdrWriter()
    write_orpcthis(w, orpcthis or OrpcThis())
    _write_bstr(w, path)
    w.u32(flags)
    w.u32(0)  # pCtx
    if sink is not None:
        write_unique_mip(w, sink)
        return w.getvalue()
    if opnum in (Op.GET_OBJECT, Op.OPEN_NAMESPACE):
        w.u32(0)  # ppObject / ppWorkingNamespace
    if opnum not in (Op.CREATE_CLASS_ENUM, Op.CREATE_INSTANCE_ENUM):
        if call_result:
            w.ptr(True)
            w.u32(0)
        else:
            w.u32(0)
    return w.getvalue()


def build_call_result_reply(call_result: ObjRef | None, hresult: int = WBEM_S_NO_ERROR) -> bytes:
    """PutClass, DeleteClass, PutInstance, DeleteInstance reply: ppCallResult, HRESULT."""
    w = NdrWriter()
    write_orpcthat(w)
    _write_ppmip(w, call_result)
    w.u32(hresult)
    return w.getvalue()


def build_get_object_reply(
    obj: ObjRef | bytes | None, call_result: ObjRef | None = None,
    hresult: int = WBEM_S_NO_ERROR,
) -> bytes:
    """GetObject (6) reply: ppObject, ppCallResult, HRESULT (MS-WMI 3.1.4.3.4)."""
    w = NdrWriter()
    write_orpcthat(w)
    _write_ppmip(w, None if obj is None else _as_objref(obj))
    _write_ppmip(w, call_result)
    w.u32(hresult)
    return w.getvalue()


def build_exec_method_reply(
    out_params: ObjRef | bytes | None, call_result: ObjRef | None = None,
    hresult: int = WBEM_S_NO_ERROR,
) -> bytes:
    """ExecMethod (24) reply: ppOutParams, ppCallResult, HRESULT (MS-WMI 3.1.4.3.22)."""
    return build_get_object_reply(out_params, call_result, hresult)


def build_open_namespace_reply(
    services: ObjRef | None, call_result: ObjRef | None = None, hresult: int = WBEM_S_NO_ERROR,
) -> bytes:
    """OpenNamespace (3) reply: ppWorkingNamespace, ppResult, HRESULT (MS-WMI 3.1.4.3.1)."""
    return build_get_object_reply(services, call_result, hresult)


# Number of [out] pointer slots per opnum, for error replies (MS-WMI 3.1.4.3 IDL).
_WBEM_OUT_PTRS: dict[int, int] = {
    3: 2, 4: 0, 5: 1, 6: 2, 7: 0, 8: 1, 9: 0, 10: 1, 11: 0, 12: 1, 13: 0, 14: 1, 15: 0, 16: 1,
    17: 0, 18: 1, 19: 0, 20: 1, 21: 0, 22: 1, 23: 0, 24: 2, 25: 0,
}
_OTHER_OUT_PTRS: dict[uuid.UUID, dict[int, int]] = {
    ids.IID_IWBEMLEVEL1LOGIN: {3: 1, 6: 1},
    ids.IID_IENUMWBEMCLASSOBJECT: {3: 0, 5: 0, 6: 1, 7: 0},
    ids.IID_IWBEMCALLRESULT: {3: 1, 4: 1, 5: 1, 6: 1},
    ids.IID_IWBEMFETCHSMARTENUM: {3: 1},
    ids.IID_IWBEMWCOSMARTENUM: {3: 3},
    ids.IID_IWBEMOBJECTSINK: {3: 0, 4: 0},
    ids.IID_IREMUNKNOWN: {5: 0},
}


def build_error_reply(
    iid: uuid.UUID, opnum: int, hresult: int = WBEM_E_NOT_SUPPORTED, requested_count: int = 1,
) -> bytes | None:
    """ORPCTHAT, every [out] parameter NULL/zero, then ``hresult``.

    Returns None for an (interface, opnum) whose out-parameters we do not know; the host
    then answers with a fault (nca_s_op_rng_error), as the RPC runtime does.
    """
    if iid == ids.IID_IENUMWBEMCLASSOBJECT and opnum == ids.EnumWbemClassObjectOp.NEXT:
        return build_next_reply([], requested_count, hresult)
    if iid == ids.IID_IWBEMLEVEL1LOGIN and opnum == 4:
        return build_reserved_challenge_reply(hresult)
    if iid == ids.IID_IWBEMLEVEL1LOGIN and opnum == 5:
        return build_wbem_login_reply(hresult)
    table = _WBEM_OUT_PTRS if iid == ids.IID_IWBEMSERVICES else _OTHER_OUT_PTRS.get(iid)
    if table is None or opnum not in table:
        return None
    w = NdrWriter()
    write_orpcthat(w)
    for _ in range(table[opnum]):
        w.u32(0)
    w.u32(hresult)
    return w.getvalue()


# ---------------------------------------------------------------------------------------------
# IEnumWbemClassObject (MS-WMI 3.1.4.4)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnumRequest:
    opnum: int
    orpcthis: OrpcThis
    timeout: int = 0
    count: int = 0
    sink: SinkRef | None = None


def parse_enum(opnum: int, stub: bytes) -> EnumRequest | Unsupported:
    what = ids.op_name(ids.IID_IENUMWBEMCLASSOBJECT, opnum)
    E = ids.EnumWbemClassObjectOp

    def go(r: NdrReader) -> EnumRequest | Unsupported:
        orpc = read_orpcthis(r)
        if opnum in (E.NEXT, E.SKIP):
            timeout = r.u32()
            return EnumRequest(opnum, orpc, timeout, r.u32())
        if opnum == E.NEXT_ASYNC:
            # MS-WMI 3.1.4.4.3: NextAsync(uCount, pSink); impacket names uCount "lTimeout".
            count = r.u32()
            return EnumRequest(opnum, orpc, count=count, sink=_sink(read_unique_objref(r), what))
        if opnum in (E.RESET, E.CLONE):
            return EnumRequest(opnum, orpc)
        return Unsupported(ids.IID_IENUMWBEMCLASSOBJECT, opnum, orpc)

    return decode_with(what, stub, go)


def build_next_request(timeout: int = WBEM_INFINITE, count: int = 1,
                       orpcthis: OrpcThis | None = None) -> bytes:
    w = NdrWriter()
    write_orpcthis(w, orpcthis or OrpcThis())
    w.u32(timeout)
    w.u32(count)
    return w.getvalue()


def build_next_reply(
    objects: Sequence[bytes | ObjRef], requested: int, hresult: int | None = None,
) -> bytes:
    """IEnumWbemClassObject::Next (4) reply.

    apObjects is [out, size_is(uCount), length_is(*puReturned)]: max count = uCount, offset 0,
    actual = returned, the unique pointers, then each MInterfacePointer. The HRESULT is S_OK
    when uCount objects came back and WBEM_S_FALSE (1) when fewer did (MS-WMI 3.1.4.4.2).
    The host sends one object per call (wire-notes; aiowmi parses only one per reply).
    """
    if len(objects) > requested:
        raise StubError("Next: more objects than the client asked for", ("Next",))
    if hresult is None:
        hresult = WBEM_S_NO_ERROR if len(objects) == requested else WBEM_S_FALSE
    w = NdrWriter()
    write_orpcthat(w)
    w.u32(requested)
    w.u32(0)
    w.u32(len(objects))
    for _ in objects:
        w.ptr(True)
    for obj in objects:
        write_mip(w, encode_objref(_as_objref(obj)))
    w.u32(len(objects))
    w.u32(hresult)
    return w.getvalue()


def parse_next_reply(stub: bytes) -> tuple[list[ObjRef], int]:
    """Client role: (objects, HRESULT) of a Next reply."""
    def go(r: NdrReader) -> tuple[list[ObjRef], int]:
        read_orpcthat(r)
        r.u32()
        r.u32()
        n = r.u32()
        ptrs = [r.ptr() for _ in range(n)]
        objs = [decode_objref(read_mip(r)) for p in ptrs if p]
        r.u32()
        return objs, r.u32()
    return decode_with("Next reply", stub, go)


# ---------------------------------------------------------------------------------------------
# IWbemFetchSmartEnum / IWbemWCOSmartEnum (MS-WMI 3.1.4.6, 3.1.4.7, 2.2.14 ObjectArray)
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: set with plain stores, as one is read per Next
class SmartNextRequest:
    orpcthis: OrpcThis
    proxy_guid: uuid.UUID
    timeout: int
    count: int


# ORPCTHIS without extensions (version, flags, reserved1, causality id, NULL extensions),
# then the proxy GUID, lTimeout and uCount: the usual request in one unpack.
_SMART_NEXT = struct.Struct("<HHII16sI16sII")


def parse_smart_next(stub: bytes) -> SmartNextRequest:
    if len(stub) >= _SMART_NEXT.size:
        major, minor, flags, _res, cid, ext, guid, timeout, count = _SMART_NEXT.unpack_from(stub)
        if not ext:
            return SmartNextRequest(OrpcThis._read((major, minor), flags, cid, False),
                                    guid_from_bytes_le(guid), timeout, count)

    def go(r: NdrReader) -> SmartNextRequest:
        orpc = read_orpcthis(r)
        guid = r.guid()  # REFGUID: [in] ref pointer, marshalled inline
        return SmartNextRequest(orpc, guid, r.u32(), r.u32())
    return decode_with("IWbemWCOSmartEnum::Next", stub, go)


def object_block(encoded: bytes) -> bytes:
    """The ObjectBlock inside an MS-WMIO EncodingUnit (strips signature and length)."""
    if len(encoded) >= 8 and struct.unpack_from("<I", encoded, 0)[0] == ENCODING_UNIT_SIGNATURE:
        length = struct.unpack_from("<I", encoded, 4)[0]
        return encoded[8:8 + length]
    return encoded


class SmartObject(NamedTuple):
    """One instance for the ObjectArray: its class GUID and its encoded bytes."""

    class_id: uuid.UUID  # MS-WMI 2.2.14: random per class, fixed for the enumeration
    encoded: bytes  # EncodingUnit or ObjectBlock with the full class part


def encode_object_array(objects: Sequence[SmartObject], packet_type: int = 1) -> bytes:
    """MS-WMI 2.2.14 ObjectArray. Every object is a WBEMOBJECT_INSTANCE (type 2, full class).

    Choice: packet type 1 for IWbemWCOSmartEnum::Next (aiowmi asserts bPacketType == 1).
    Choice: always send the class part (wire-notes: no class cache), so type 3 is unused.
    """
    parts: list[bytes] = []
    size = 0
    for obj in objects:
        block = object_block(obj.encoded)
        # ObjectArray element: header size 9, length, type 2; WBEMOBJECT_INSTANCE header size
        # 0x18, the block's length, the class GUID; the block (MS-WMI 2.2.14).
        parts.append(_ELEMENT.pack(9, 0x18 + len(block), 2, 0x18, len(block),
                                   obj.class_id.bytes_le))
        parts.append(block)
        size += _ELEMENT.size + len(block)
    # The two length-prefixed headers around the elements and the array header before them.
    head = _ARRAY_HEAD.pack(0, b"WBEMDATA", 0x1A, 8 + 12 + size, 0, 1, packet_type,
                            8, 12 + size, 12, size, len(objects))
    return b"".join((head, *parts))


_ELEMENT = struct.Struct("<IIBII16s")
_ARRAY_HEAD = struct.Struct("<I8sIIIBBIIIII")


def build_smart_next_reply(objects: Sequence[SmartObject], requested: int) -> bytes:
    """IWbemWCOSmartEnum::Next reply, hand-packed (impacket's class lacks the pBuffer pointer).

    puReturned, pdwBuffSize, pBuffer (byte**: unique referent + conformant array), HRESULT.
    At the end: zero objects, NULL buffer, WBEM_S_FALSE.
    """
    if not objects:
        return _SMART_NEXT_END
    buf = encode_object_array(objects)
    # ORPCTHAT, puReturned, pdwBuffSize, pBuffer's referent id and conformant count, the
    # buffer padded to 4, the HRESULT: the octets of the NdrWriter sequence, packed at once.
    return b"".join((_SMART_NEXT_HEAD.pack(0, 0, len(objects), len(buf), _REFERENT, len(buf)),
                     buf, _PAD4[-len(buf) % 4],
                     _U32.pack(WBEM_S_NO_ERROR if len(objects) == requested
                               else WBEM_S_FALSE)))


_SMART_NEXT_HEAD = struct.Struct("<IIIIII")
# The end: ORPCTHAT, no objects, size 0, NULL buffer, WBEM_S_FALSE.
_SMART_NEXT_END = struct.pack("<IIIIII", 0, 0, 0, 0, 0, WBEM_S_FALSE)


# ---------------------------------------------------------------------------------------------
# IWbemCallResult (MS-WMI 3.1.4.5)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallResultRequest:
    opnum: int
    orpcthis: OrpcThis
    timeout: int


def parse_call_result(opnum: int, stub: bytes) -> CallResultRequest:
    what = ids.op_name(ids.IID_IWBEMCALLRESULT, opnum)
    return decode_with(what, stub,
                       lambda r: CallResultRequest(opnum, read_orpcthis(r), r.u32()))


def build_get_result_string_reply(text: str | None, hresult: int = WBEM_S_NO_ERROR) -> bytes:
    w = NdrWriter()
    write_orpcthat(w)
    _write_bstr(w, text)
    w.u32(hresult)
    return w.getvalue()


def build_get_call_status_reply(status: int, hresult: int = WBEM_S_NO_ERROR) -> bytes:
    """GetCallStatus: plStatus is the final HRESULT of the call; the call's own HRESULT is
    WBEM_S_TIMEDOUT while the operation is still running (MS-WMI 3.1.4.5.4)."""
    w = NdrWriter()
    write_orpcthat(w)
    w.u32(status)
    w.u32(hresult)
    return w.getvalue()


# ---------------------------------------------------------------------------------------------
# IWbemObjectSink (MS-WMI 3.1.4.2): B calls A's sink (client role builds, A parses)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndicateRequest:
    orpcthis: OrpcThis
    objects: tuple[ObjRef, ...]


@dataclass(frozen=True)
class SetStatusRequest:
    orpcthis: OrpcThis
    flags: int
    hresult: int
    param: str | None
    object: ObjRef | None


def build_indicate_request(objects: Sequence[bytes | ObjRef],
                           orpcthis: OrpcThis | None = None) -> bytes:
    """Indicate(lObjectCount, apObjArray): a conformant array of interface pointers."""
    w = NdrWriter()
    write_orpcthis(w, orpcthis or OrpcThis())
    w.i32(len(objects))
    w.u32(len(objects))
    for _ in objects:
        w.ptr(True)
    for obj in objects:
        write_mip(w, encode_objref(_as_objref(obj)))
    return w.getvalue()


def parse_indicate(stub: bytes) -> IndicateRequest:
    def go(r: NdrReader) -> IndicateRequest:
        orpc = read_orpcthis(r)
        count = r.i32()
        n = r.u32()
        if n != count or n < 0:
            raise StubError("Indicate: lObjectCount does not match the array", ("Indicate",))
        ptrs = [r.ptr() for _ in range(n)]
        return IndicateRequest(orpc, tuple(decode_objref(read_mip(r)) for p in ptrs if p))
    return decode_with("IWbemObjectSink::Indicate", stub, go)


def build_set_status_request(
    hresult: int, flags: int = 0, param: str | None = None, obj: bytes | ObjRef | None = None,
    orpcthis: OrpcThis | None = None,
) -> bytes:
    """SetStatus(lFlags, hResult, strParam, pObjParam). MS-WMI 3.1.4.2.2: lFlags
    WBEM_STATUS_COMPLETE (0) ends the call."""
    w = NdrWriter()
    write_orpcthis(w, orpcthis or OrpcThis())
    w.i32(flags)
    w.u32(hresult)
    _write_bstr(w, param)
    write_unique_mip(w, None if obj is None else _as_objref(obj))
    return w.getvalue()


def parse_set_status(stub: bytes) -> SetStatusRequest:
    def go(r: NdrReader) -> SetStatusRequest:
        orpc = read_orpcthis(r)
        flags = r.i32()
        hr = r.u32()
        param = _read_bstr(r)
        return SetStatusRequest(orpc, flags, hr, param, read_unique_objref(r))
    return decode_with("IWbemObjectSink::SetStatus", stub, go)


def parse_hresult_reply(stub: bytes) -> int:
    """Client role: HRESULT of an ORPCTHAT + HRESULT reply (Indicate, SetStatus, ...)."""
    def go(r: NdrReader) -> int:
        read_orpcthat(r)
        return r.u32()
    return decode_with("reply", stub, go)
