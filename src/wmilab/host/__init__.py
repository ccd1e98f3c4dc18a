"""The asyncio runtime of an emulated Windows host (RPCSS, OXID resolver, WMI exporter).

Every access decision is the model's: see gate.py (firewall), auth.py (logon),
rpcss.py (activation), exporter.py (DCOM access, WMI namespace security) and docs/host.md.
"""

from wmilab.host.server import HostBindError, HostServer, Limits

__all__ = ["HostBindError", "HostServer", "Limits"]
