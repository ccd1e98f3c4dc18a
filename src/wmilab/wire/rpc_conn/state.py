"""What both connection roles share: the explicit states, misuse errors and the one outbox.

As in h11, a connection is in exactly one named state and every method checks it; the
octets a connection wants sent (replies it makes by itself and those the caller asked
for) all go to one outbox, read with ``data_to_send()``, in the order they were made.
"""

from __future__ import annotations

import enum

from wmilab.wire.rpc_conn.events import Event


class RpcStateError(RuntimeError):
    """The caller used the connection wrongly (for example replied to an unknown call)."""


class ConnState(enum.Enum):
    """Where one ncacn_ip_tcp connection is (C706 12.6.4: the association's life)."""

    IDLE = "idle"  # connected, no bind yet
    BINDING = "binding"  # client only: bind sent, its bind_ack/bind_nak not yet in
    BOUND = "bound"  # bind answered with a bind_ack: calls may flow
    CLOSED = "closed"  # a protocol violation: nothing more is read; send the outbox, close


class AuthState(enum.Enum):
    """Where one NTLM security context of a server connection is (MS-RPCE 3.3.1.5.2)."""

    CHALLENGED = "challenged"  # CHALLENGE sent, AUTHENTICATE not yet in
    ESTABLISHED = "established"  # logon accepted: calls on this context may run
    FAILED = "failed"  # logon refused: calls on this context are denied


# The members as module constants: on CPython 3.11 reading a member from its Enum class goes
# through EnumType.__getattr__'s slow attribute hook, and these are read on every PDU.
_IDLE, _BOUND, _CLOSED = ConnState.IDLE, ConnState.BOUND, ConnState.CLOSED


class Connection:
    """State, receive buffer and outbox of one connection, either role."""

    def __init__(self) -> None:
        self.state = _IDLE
        self._buf = bytearray()
        self._out: list[bytes] = []

    def receive_data(self, data: bytes) -> list[Event]:
        """Buffer ``data`` and handle every whole fragment in it; the events, in order.

        Partial fragments wait for more octets; once CLOSED nothing more is read.
        """
        events: list[Event] = []
        if self.state is _CLOSED:
            return events
        self._buf += data
        # An empty buffer holds no fragment: no call to find that out after each PDU.
        while self.state is not _CLOSED and self._buf and self._read_fragment(events):
            pass
        return events

    def _read_fragment(self, events: list[Event]) -> bool:
        """Handle the fragment at the head of the buffer; False when it is not all in yet."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        return self.state is _CLOSED

    @property
    def bound(self) -> bool:
        return self.state is _BOUND

    def _queue(self, data: bytes) -> None:
        self._out.append(data)

    def data_to_send(self) -> bytes:
        """Every octet queued since the last call, in order; empties the outbox."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)
