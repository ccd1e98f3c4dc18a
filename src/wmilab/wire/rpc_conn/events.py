"""Events the connection state machines return from ``receive_data`` (plain frozen classes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import NamedTuple

from wmilab.wire import rpc
from wmilab.wire.rpc import ContextResult, SyntaxId


@dataclass(frozen=True)
class Bound:
    """A presentation context was accepted (bind or alter_context)."""

    context_id: int
    interface: SyntaxId
    transfer_syntax: SyntaxId


@dataclass(frozen=True)
class Authenticated:
    """An NTLM security context finished and the host's Authenticator accepted it."""

    auth_context_id: int
    auth_level: int
    identity: object
    user: str
    domain: str
    anonymous: bool


@dataclass(frozen=True)
class LogonFailed:
    """An AUTHENTICATE was refused; later calls on this context get access denied."""

    auth_context_id: int
    user: str
    domain: str
    workstation: str
    reason: str


class CallReceived(NamedTuple):
    """A whole (reassembled, verified, decrypted) request.

    A NamedTuple, not a frozen dataclass like the other events: one is made for every
    request, and a frozen dataclass sets each of its nine fields through
    ``object.__setattr__`` (docs/benchmarks.md, "Emulator CPU per query").
    """

    call_id: int
    context_id: int
    opnum: int
    object_uuid: uuid.UUID | None
    stub: bytes
    interface: SyntaxId
    auth_level: int
    auth_context_id: int | None
    identity: object | None


@dataclass(frozen=True)
class CallOrphaned:
    """The client abandoned a call (orphaned PDU, C706 12.6.4.8)."""

    call_id: int


@dataclass(frozen=True)
class ProtocolViolation:
    """The peer broke the protocol; a fault/bind_nak is queued and the connection is done
    when ``close`` is set."""

    reason: str
    close: bool = True


@dataclass(frozen=True)
class BindAcked:
    """Client side: a bind_ack or alter_context_resp arrived."""

    call_id: int
    results: tuple[ContextResult, ...]
    max_xmit_frag: int
    max_recv_frag: int
    assoc_group_id: int

    @property
    def accepted(self) -> bool:
        return any(r.result == rpc.RESULT_ACCEPTANCE for r in self.results)


@dataclass(frozen=True)
class BindNakReceived:
    call_id: int
    reject_reason: int


@dataclass(frozen=True)
class ResponseReceived:
    call_id: int
    stub: bytes


@dataclass(frozen=True)
class FaultReceived:
    call_id: int
    status: int


@dataclass(frozen=True)
class ShutdownReceived:
    pass


Event = (
    Bound | Authenticated | LogonFailed | CallReceived | CallOrphaned | ProtocolViolation
    | BindAcked | BindNakReceived | ResponseReceived | FaultReceived | ShutdownReceived
)
