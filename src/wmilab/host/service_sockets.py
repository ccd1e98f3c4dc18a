"""The emulated services' own outgoing connections, told apart from a client's.

A's firewall filters the connections a program on A makes (model/wfas.py ``outbound``). The
lab's client is "the calling program on A", which the scenario does not name; B's callback
to A is B's WMI service (svchost.exe, service winmgmt), which asks B's outbound rules itself
before it connects (host/callback.py). So that the labs do not ask the client's question of
the callback too, the callback connects on a socket made here: the in-process gate of the
loopback lab recognises its (address, port) (host/gate.py), and the netns lab's nftables
output chain recognises its mark (lab/nft.py).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

__all__ = ["SERVICE_MARK", "is_service_socket", "service_socket"]

# The fwmark (SO_MARK) of an emulated service's outgoing sockets: "WM".
SERVICE_MARK = 0x574D

_OPEN: set[tuple[str, int]] = set()  # (address, port) of the open service sockets


@contextlib.contextmanager
def service_socket(local: str) -> Iterator[socket.socket]:
    """A non-blocking TCP socket bound to ``local`` (an ephemeral port), known as an
    emulated service's while the block runs; the caller connects it and closes it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    key: tuple[str, int] | None = None
    try:
        with contextlib.suppress(OSError, AttributeError):
            # Needs CAP_NET_ADMIN (the netns lab runs as root); the loopback lab's gate
            # goes by the address and port instead.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, SERVICE_MARK)
        sock.setblocking(False)
        sock.bind((local, 0))
        name = sock.getsockname()
        key = (str(name[0]), int(name[1]))
        _OPEN.add(key)
        yield sock
    except BaseException:
        sock.close()
        raise
    finally:
        if key is not None:
            _OPEN.discard(key)


def is_service_socket(address: str, port: int) -> bool:
    """Whether a peer (address, port) is an emulated service's open outgoing socket."""
    return (address, port) in _OPEN
