"""How the client opens ncacn_ip_tcp connections, and what a failure was on the wire.

The RPC connection itself (:class:`RpcClient` from ``wmilab.transport``, a sans-IO
``ClientConnection`` over an asyncio stream) is shared with the emulated hosts' callbacks.
This module adds what the doctor needs to tell failures apart: whether a TCP connect got no
answer, was refused (reset), or the peer closed or broke the protocol later
(:class:`CallFailed` and its kind).
"""

from __future__ import annotations

import errno
from typing import TypeVar

from wmilab import hresult as hr
from wmilab.transport import RpcCallError, RpcClient
from wmilab.wire.rpc_conn import ClientCredentials

__all__ = [
    "KIND_CALLBACK", "KIND_FAULT", "KIND_HRESULT", "KIND_PROTOCOL", "KIND_REFUSED", "KIND_TIMEOUT",
    "RPC_S_CALL_FAILED", "RPC_S_SERVER_UNAVAILABLE", "CallFailed", "RpcCallError", "RpcClient",
    "classify", "open_as", "open_rpc",
]

RPC_S_SERVER_UNAVAILABLE = hr.RPC_S_SERVER_UNAVAILABLE.code
RPC_S_CALL_FAILED = hr.RPC_S_CALL_FAILED.code
R = TypeVar("R", bound=RpcClient)

# What went wrong, as the doctor names it (docs/doctor.md).
KIND_TIMEOUT = "no answer"  # a SYN or a request without reply: a firewall that drops
KIND_REFUSED = "refused"  # a reset: nothing listens, or a firewall that rejects
KIND_FAULT = "rpc fault"  # an RPC fault PDU (MS-RPCE 2.2.2.4) or a bind_nak
KIND_HRESULT = "hresult"  # a DCOM or WMI call that returned a failure HRESULT
KIND_PROTOCOL = "protocol error"  # bytes that are not what the protocol allows
KIND_CALLBACK = "no callback"  # Connection 2 never came back


class CallFailed(Exception):
    """A step of a WMI call failed: ``hresult`` as a client sees it, ``kind`` as above."""

    def __init__(self, hresult: int, kind: str, detail: str) -> None:
        super().__init__(f"0x{hresult:08X}: {detail}")
        self.hresult = hresult & 0xFFFFFFFF
        self.kind = kind
        self.detail = detail


def classify(e: RpcCallError) -> CallFailed:
    """The kind of an :class:`RpcCallError` raised by :class:`RpcClient`."""
    reason = e.reason
    if reason.startswith("no answer"):
        kind = KIND_TIMEOUT
    elif reason.startswith(("connection lost", "connection closed", "cannot connect")):
        kind = KIND_REFUSED
    elif reason.startswith("protocol violation"):
        kind = KIND_PROTOCOL
    elif reason.startswith(("fault", "bind")):
        kind = KIND_FAULT
        known = hr.BY_CODE.get(e.hresult & 0xFFFFFFFF)
        if known is not None:
            reason = f"{reason} ({known.symbol}: {known.meaning})"
    else:
        kind = KIND_HRESULT
    return CallFailed(e.hresult, kind, reason)


async def open_rpc(host: str, port: int, *, local_address: str | None,
                   credentials: ClientCredentials | None, auth_level: int,
                   timeout: float) -> RpcClient:
    """A TCP connection to ``host:port`` with an :class:`RpcClient` on it (see :func:`open_as`)."""
    return await open_as(RpcClient, host, port, local_address=local_address,
                         credentials=credentials, auth_level=auth_level, timeout=timeout)


async def open_as(cls: type[R], host: str, port: int, *, local_address: str | None,
                  credentials: ClientCredentials | None, auth_level: int,
                  timeout: float) -> R:
    """A TCP connection to ``host:port`` with an RPC client of class ``cls`` on it.

    A connect that gets no answer in ``timeout`` seconds and one that is refused both give
    RPC_S_SERVER_UNAVAILABLE, as Windows clients report them (seed: 0x800706ba), but with
    different kinds.
    """
    try:
        return await cls.open(host, port, local_address=local_address, credentials=credentials,
                              auth_level=auth_level, connect_timeout=timeout,
                              call_timeout=timeout)
    except TimeoutError:
        raise CallFailed(RPC_S_SERVER_UNAVAILABLE, KIND_TIMEOUT,
                         f"no answer from {host}:{port} in {timeout:g} s") from None
    except OSError as e:
        kind = KIND_REFUSED if e.errno in (errno.ECONNREFUSED, errno.ECONNRESET) \
            else KIND_TIMEOUT if e.errno in (errno.ETIMEDOUT, errno.EHOSTUNREACH,
                                             errno.ENETUNREACH) else KIND_REFUSED
        raise CallFailed(RPC_S_SERVER_UNAVAILABLE, kind,
                         f"cannot connect to {host}:{port}: {e.strerror or e}") from None
