"""What both connection roles share: misuse errors and the outbox of octets to send."""

from __future__ import annotations


class RpcStateError(RuntimeError):
    """The caller used the connection wrongly (for example replied to an unknown call)."""



class _Outbox:
    """Octets a connection produced by itself and the caller still has to send."""

    _out: bytearray

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out
