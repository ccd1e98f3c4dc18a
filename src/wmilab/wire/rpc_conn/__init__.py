"""MS-RPCE connection-oriented state machines for both roles (sans-IO, h11 style).

Feed received octets to ``receive_data`` and get a list of events back; octets to send
come from ``data_to_send()`` (replies the machine produces by itself: bind_ack,
alter_context_resp, bind_nak, faults for protocol violations, AUTH3) or are returned by
the call that produced them (``send_response``, ``send_fault``, ``request``, ``bind``).

``events`` (what ``receive_data`` returns), ``server`` and ``client`` (the two roles),
``framing`` (fragment sizes, signing and sealing), ``state`` (the states, receive buffer
and outbox both roles share).
Nothing here opens sockets, reads clocks or starts threads. Fault codes and the reasons
behind them are listed in docs/wire-rpc.md.
"""

from __future__ import annotations

from wmilab.wire.rpc_conn.client import ClientConnection, ClientCredentials
from wmilab.wire.rpc_conn.events import (
    Authenticated,
    BindAcked,
    BindNakReceived,
    Bound,
    CallOrphaned,
    CallReceived,
    Event,
    FaultReceived,
    LogonFailed,
    ProtocolViolation,
    ResponseReceived,
    ShutdownReceived,
)
from wmilab.wire.rpc_conn.framing import MAX_REQUEST_SIZE, MUST_RECV_FRAG_SIZE, REQUEST_TOO_LARGE_STATUS
from wmilab.wire.rpc_conn.server import ServerConnection
from wmilab.wire.rpc_conn.state import AuthState, ConnState, RpcStateError

__all__ = [
    "MAX_REQUEST_SIZE",
    "MUST_RECV_FRAG_SIZE",
    "REQUEST_TOO_LARGE_STATUS",
    "AuthState",
    "Authenticated",
    "BindAcked",
    "BindNakReceived",
    "Bound",
    "CallOrphaned",
    "CallReceived",
    "ClientConnection",
    "ClientCredentials",
    "ConnState",
    "Event",
    "FaultReceived",
    "LogonFailed",
    "ProtocolViolation",
    "ResponseReceived",
    "RpcStateError",
    "ServerConnection",
    "ShutdownReceived",
]
