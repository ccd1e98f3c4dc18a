"""Brings up topologies; the embedded default puts each host on a loopback address."""

from wmilab.lab.loopback import LoopbackLab, LoopbackMap

__all__ = ["LoopbackLab", "LoopbackMap"]
