"""Where each program of the seed's picture listens, and which program it is."""

from __future__ import annotations

# RPCSS's endpoint mapper and OXID resolver listen on TCP 135 (MS-RPCE 2.2.1.1.7; MS-DCOM 2.1).
RPC_ENDPOINT_MAPPER = 135
# Choice: pre-Vista RPC hands out dynamic ports from 1025-5000 (KB 154596, "Windows Server 2003
# and earlier"); the model and the emulator both use the first ones, so they agree on the port.
WMI_DYNAMIC_PORT = 1025
SINK_DYNAMIC_PORT = 1026
DYNAMIC_RANGE = range(1025, 5001)
