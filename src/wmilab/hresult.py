"""The one catalogue of status codes: every HRESULT and RPC fault status wmilab names.

Every layer (wire, model, repository, host, client) takes its codes from here, so a code's
value, symbol and meaning are written once. The module imports nothing of wmilab, so the
sans-IO wire core may use it (tests/test_layers.py allows it beside the error base).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class HResult:
    code: int
    symbol: str
    meaning: str

    @cached_property
    def hex(self) -> str:
        return f"0x{self.code:08X}"

    def __str__(self) -> str:
        return f"{self.hex} {self.symbol}"


def _h(code: int, symbol: str, meaning: str) -> HResult:
    return HResult(code, symbol, meaning)


# Win32 errors as HRESULTs: HRESULT_FROM_WIN32 (MS-ERREF 2.1, 2.2).
S_OK = _h(0x00000000, "S_OK", "The call succeeded.")
RPC_S_SERVER_UNAVAILABLE = _h(
    0x800706BA, "RPC_S_SERVER_UNAVAILABLE",
    "The RPC server is unavailable: a connection on the path was blocked or refused.")
E_ACCESSDENIED = _h(
    0x80070005, "E_ACCESSDENIED",
    "Access is denied: a logon or a DCOM permission check failed.")
E_OUTOFMEMORY = _h(
    0x8007000E, "E_OUTOFMEMORY",
    "Not enough storage: seen when an anonymous callback to the sink is refused.")
# ERROR_SERVICE_DISABLED (1058) as an HRESULT (MS-ERREF 2.2): what an activation that has to
# start a disabled service fails with (Choice, docs/choices.md).
ERROR_SERVICE_DISABLED = _h(
    0x80070422, "ERROR_SERVICE_DISABLED",
    "The service cannot be started, either because it is disabled or because it has no "
    "enabled devices associated with it.")
RPC_S_CALL_FAILED = _h(0x800706BE, "RPC_S_CALL_FAILED", "The remote procedure call failed.")
OR_INVALID_OXID = _h(0x80070776, "OR_INVALID_OXID", "The object exporter specified was not found.")
RPC_E_INVALID_HEADER = _h(0x80010111, "RPC_E_INVALID_HEADER", "OLE received a packet with an invalid header.")
E_NOINTERFACE = _h(0x80004002, "E_NOINTERFACE", "No such interface supported.")
E_NOTIMPL = _h(0x80004001, "E_NOTIMPL", "Not implemented.")
E_FAIL = _h(0x80004005, "E_FAIL", "Unspecified failure.")
E_INVALIDARG = _h(0x80070057, "E_INVALIDARG", "One or more arguments are not valid.")
# MS-ERREF 2.1 (COM/OLE errors).
REGDB_E_CLASSNOTREG = _h(0x80040154, "REGDB_E_CLASSNOTREG", "Class not registered.")
RPC_E_DISCONNECTED = _h(0x80010108, "RPC_E_DISCONNECTED",
                        "The object invoked has disconnected from its clients.")
RPC_E_SERVERFAULT = _h(0x80010105, "RPC_E_SERVERFAULT",
                       "The server threw an exception.")
# WMI errors (MS-WMI 2.2.11 WBEMSTATUS).
WBEM_S_FALSE = _h(0x00000001, "WBEM_S_FALSE", "No more objects.")
WBEM_E_FAILED = _h(0x80041001, "WBEM_E_FAILED", "Generic failure.")
WBEM_E_NOT_FOUND = _h(0x80041002, "WBEM_E_NOT_FOUND", "Object cannot be found.")
WBEM_E_ACCESS_DENIED = _h(
    0x80041003, "WBEM_E_ACCESS_DENIED",
    "The namespace denies access: the account lacks Enable Account or Remote Enable, or "
    "the namespace requires an encrypted (packet privacy) connection.")
WBEM_E_INVALID_PARAMETER = _h(0x80041008, "WBEM_E_INVALID_PARAMETER", "A parameter was not valid.")
WBEM_E_INVALID_NAMESPACE = _h(0x8004100E, "WBEM_E_INVALID_NAMESPACE", "The namespace does not exist.")
WBEM_E_INVALID_CLASS = _h(0x80041010, "WBEM_E_INVALID_CLASS", "The class does not exist.")
WBEM_E_INVALID_QUERY = _h(0x80041017, "WBEM_E_INVALID_QUERY", "The query was not syntactically valid.")
WBEM_E_INVALID_QUERY_TYPE = _h(0x80041018, "WBEM_E_INVALID_QUERY_TYPE", "The query language is not supported.")
WBEM_E_NOT_SUPPORTED = _h(0x8004100C, "WBEM_E_NOT_SUPPORTED", "The feature or operation is not supported.")
WBEM_E_INVALID_METHOD = _h(0x8004102E, "WBEM_E_INVALID_METHOD", "The method does not exist.")
WBEM_E_INVALID_METHOD_PARAMETERS = _h(
    0x8004102F, "WBEM_E_INVALID_METHOD_PARAMETERS", "The method parameters are not valid.")
WBEM_E_INVALID_OBJECT_PATH = _h(0x8004103A, "WBEM_E_INVALID_OBJECT_PATH", "The object path is not valid.")
WBEM_E_OUT_OF_MEMORY = _h(0x80041006, "WBEM_E_OUT_OF_MEMORY", "Not enough memory for the operation.")
WBEM_E_INVALID_OPERATION = _h(0x80041016, "WBEM_E_INVALID_OPERATION",
                              "The requested operation is not valid.")
WBEM_E_INVALID_SUPERCLASS = _h(0x8004100D, "WBEM_E_INVALID_SUPERCLASS", "The superclass does not exist.")
WBEM_E_ALREADY_EXISTS = _h(0x80041019, "WBEM_E_ALREADY_EXISTS", "The object already exists.")
WBEM_E_PROVIDER_NOT_CAPABLE = _h(
    0x80041024, "WBEM_E_PROVIDER_NOT_CAPABLE", "The provider does not support this operation.")
WBEM_E_CLASS_HAS_CHILDREN = _h(0x80041025, "WBEM_E_CLASS_HAS_CHILDREN", "The class has subclasses.")
WBEM_E_CLASS_HAS_INSTANCES = _h(0x80041026, "WBEM_E_CLASS_HAS_INSTANCES", "The class has instances.")
WBEM_E_ILLEGAL_NULL = _h(0x80041028, "WBEM_E_ILLEGAL_NULL", "A key property is NULL.")
WBEM_E_CALL_CANCELLED = _h(0x80041032, "WBEM_E_CALL_CANCELLED", "The call was cancelled.")

ALL: tuple[HResult, ...] = (
    S_OK, RPC_S_SERVER_UNAVAILABLE, E_ACCESSDENIED, E_OUTOFMEMORY, ERROR_SERVICE_DISABLED,
    RPC_S_CALL_FAILED,
    OR_INVALID_OXID, RPC_E_INVALID_HEADER, E_NOINTERFACE, WBEM_S_FALSE, WBEM_E_FAILED,
    WBEM_E_NOT_FOUND, WBEM_E_ACCESS_DENIED, WBEM_E_INVALID_PARAMETER, WBEM_E_INVALID_NAMESPACE,
    WBEM_E_INVALID_CLASS, WBEM_E_INVALID_QUERY, WBEM_E_INVALID_QUERY_TYPE, WBEM_E_NOT_SUPPORTED,
    WBEM_E_INVALID_METHOD, WBEM_E_INVALID_METHOD_PARAMETERS, WBEM_E_INVALID_OBJECT_PATH,
    E_NOTIMPL, E_FAIL, E_INVALIDARG, REGDB_E_CLASSNOTREG, RPC_E_DISCONNECTED, RPC_E_SERVERFAULT,
    WBEM_E_OUT_OF_MEMORY, WBEM_E_INVALID_OPERATION, WBEM_E_INVALID_SUPERCLASS,
    WBEM_E_ALREADY_EXISTS, WBEM_E_PROVIDER_NOT_CAPABLE, WBEM_E_CLASS_HAS_CHILDREN,
    WBEM_E_CLASS_HAS_INSTANCES, WBEM_E_ILLEGAL_NULL, WBEM_E_CALL_CANCELLED,
)
BY_CODE: dict[int, HResult] = {h.code: h for h in ALL}


def from_win32(code: int) -> int:
    """HRESULT_FROM_WIN32 (MS-ERREF 2.1.2) for Win32 codes; other values unchanged."""
    code &= 0xFFFFFFFF
    if 0 < code < 0x10000:
        return 0x80070000 | code
    return code


def lookup(code: int) -> HResult:
    """The known HResult for ``code``, or an anonymous one."""
    return BY_CODE.get(code) or HResult(code, "UNKNOWN", "No description known to wmilab.")


def parse(text: str) -> HResult:
    """Parse ``0x800706BA`` (any case) or a known symbol; ValueError otherwise."""
    t = text.strip()
    for h in ALL:
        if t.upper() == h.symbol:
            return h
    try:
        code = int(t, 16) if t.lower().startswith("0x") else int(t)
    except ValueError:
        raise ValueError(f"{text!r} is not an HRESULT (write it as 0x800706BA)") from None
    if not 0 <= code <= 0xFFFFFFFF:
        raise ValueError(f"{text!r} is out of range for an HRESULT")
    return lookup(code)


# RPC fault statuses: the status field of a fault PDU, not HRESULTs.
# rpc_s_* (MS-RPCE 3.2.3.5.1; MS-ERREF 2.2) and nca_s_* (C706 appendix E).
RPC_S_ACCESS_DENIED = 0x00000005  # rpc_s_access_denied
RPC_S_SEC_PKG_ERROR = 0x00000721  # RPC_S_SEC_PKG_ERROR
RPC_X_BAD_STUB_DATA = 0x000006F7  # MS-RPCE: unmarshaling failures MUST use 0x6F7
NCA_S_OP_RNG_ERROR = 0x1C010002
NCA_S_UNK_IF = 0x1C010003
NCA_S_PROTO_ERROR = 0x1C01000B
NCA_S_FAULT_REMOTE_NO_MEMORY = 0x1C00001B
NCA_S_INVALID_PRES_CONTEXT_ID = 0x1C00001C
NCA_S_UNSUPPORTED_AUTHN_LEVEL = 0x1C00001D
