"""Network I/O below both the emulated hosts and the client: asyncio drivers of wire/.

``rpc_client``: :class:`RpcClient`, one ncacn_ip_tcp connection, and :class:`RpcCallError`.
This package may import wire/, model/ and the error base, never host/, lab/, client/ or
the CLI (tests/test_layers.py).
"""

from __future__ import annotations

from wmilab.transport.rpc_client import RpcCallError, RpcClient

__all__ = ["RpcCallError", "RpcClient"]
