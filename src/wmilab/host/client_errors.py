"""What HRESULT a real client's failure stands for (impacket, aiowmi, plain sockets).

Used by tests and the lab to compare what a client gets on the wire with what ``flow``
predicts. The mapping (docs/host.md, "Client errors"):

- A connection that is reset, refused or times out: RPC_S_SERVER_UNAVAILABLE 0x800706BA
  (seed: a blocked path shows as "RPC Server Unavailable - 0x800706ba").
- An RPC fault or error_status_t that is a Win32 code (below 0x10000): HRESULT_FROM_WIN32,
  0x80070000 | code (MS-ERREF 2.1.2), so fault 5 rpc_s_access_denied is 0x80070005.
- An HRESULT (top bit set) or a WBEM status: itself.
- impacket prints ``rpc_s_access_denied`` or ``code: 0x80041003 - ...``; aiowmi puts the
  code in parentheses, ``WBEM_E_ACCESS_DENIED (2147749891)``.
- aiowmi reads only the first 24 bytes of a fault PDU, so every fault reaches it as
  RPC_S_SEC_PKG_ERROR (1825, 0x80070721) whatever its status: a client limitation.
"""

from __future__ import annotations

import errno
import re
import traceback

from wmilab import hresult as hr
from wmilab.hresult import from_win32

__all__ = ["RPC_S_SERVER_UNAVAILABLE", "from_exception", "from_impacket_output"]

RPC_S_SERVER_UNAVAILABLE = hr.RPC_S_SERVER_UNAVAILABLE.code  # from the status-code catalogue

_UNREACHABLE = ("connection reset", "connection refused", "timed out", "errno 104",
                "errno 111", "could not connect", "broken pipe", "connect call failed",
                "errno 113", "no route to host")
_IMPACKET_NAMES = {"rpc_s_access_denied": 0x80070005, "e_accessdenied": 0x80070005}


def from_exception(exc: BaseException) -> int | None:
    """The HRESULT an exception of impacket, aiowmi or the socket layer stands for."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return RPC_S_SERVER_UNAVAILABLE
    if isinstance(exc, OSError) and exc.errno == errno.EHOSTUNREACH:
        # The caller's own firewall refused the connection (the netns lab's output chain).
        return RPC_S_SERVER_UNAVAILABLE
    if (isinstance(exc, AttributeError) and "'NoneType' object has no attribute 'write'" in str(exc)
            and any("aiowmi" in (f.filename or "") for f in _frames(exc))):
        # aiowmi 1.1.3 writes to its transport without checking it: when the host resets
        # the connection at once (a firewall drop), it fails with this AttributeError
        # instead of a ConnectionResetError. Same cause: the server is unreachable.
        return RPC_S_SERVER_UNAVAILABLE
    code = getattr(exc, "error_code", None)  # impacket DCERPCException / DCERPCSessionError
    if isinstance(code, int):
        return from_win32(code)
    text = str(exc)
    module = type(exc).__module__ or ""
    if module.startswith("aiowmi"):
        m = re.search(r"\((\d+)\)\s*$", text)
        if m:
            return from_win32(int(m.group(1)))
    return from_impacket_output(text)


def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(exc.__traceback__))


def from_impacket_output(text: str) -> int | None:
    """The HRESULT in the error line an impacket example script prints, or None."""
    low = text.lower()
    m = re.search(r"code:\s*0x([0-9a-f]{1,8})", low)
    if m:
        return from_win32(int(m.group(1), 16))
    for name, value in _IMPACKET_NAMES.items():
        if name in low:
            return value
    if any(word in low for word in _UNREACHABLE):
        return RPC_S_SERVER_UNAVAILABLE
    return None
