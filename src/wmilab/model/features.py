"""Optional Windows features a scenario host may have installed (host field ``features``).

Only features that change what remote WMI meets are listed. Each is named as
``Install-WindowsFeature`` names it (Learn windowsserver/servermanager install-windowsfeature),
compared case-insensitively, and exists on the OSes given here; the namespace catalogue
(model/namespaces.py) lists the namespaces a feature brings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wmilab.errors import ConfigError
from wmilab.model import oses

__all__ = ["CATALOGUE", "FAILOVER_CLUSTERING", "FeatureSpec", "check"]

FAILOVER_CLUSTERING = "Failover-Clustering"


@dataclass(frozen=True)
class FeatureSpec:
    name: str  # as Install-WindowsFeature names it
    title: str  # as Server Manager shows it
    oses: frozenset[str]
    source: str
    absent_why: str  # why an OS outside ``oses`` cannot have it


# Failover Clustering is a Windows Server feature from Server 2008 on ("Failover Clustering
# ... Windows Server 2008", Learn failover-clustering/failover-clustering-overview, and the
# cluswmi class pages, Requirements "Minimum supported server Windows Server 2008"); client
# editions do not have it. Server 2003's "Cluster service" (Enterprise edition) had a
# root\MSCluster without RequiresEncryption (KB 2590230 concerns 2008 and later); wmilab does
# not model it (docs/choices.md).
_SERVERS_FROM_2008 = frozenset(n for n, s in oses.CATALOGUE.items() if s.modern and s.server)

CATALOGUE: dict[str, FeatureSpec] = {f.name.lower(): f for f in (
    FeatureSpec(FAILOVER_CLUSTERING, "Failover Clustering", _SERVERS_FROM_2008,
                "Learn failover-clustering/failover-clustering-overview; KB 2590230",
                "Failover-Clustering is a feature of Windows Server 2008 and later"),
)}


def check(os: str, names: Sequence[object]) -> tuple[str, ...]:
    """The features ``names`` as Windows spells them, for a host running ``os``.

    ConfigError (with the index of the bad entry as its path) for a name that is not a
    string, an unknown feature, or one ``os`` cannot have."""
    spec = oses.get(os)
    out: list[str] = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ConfigError(f"expected a feature name (a string), got {name!r}", (i,))
        found = CATALOGUE.get(name.strip().lower())
        if found is None:
            raise ConfigError(f"unknown feature {name!r}; wmilab knows: "
                              + ", ".join(f.name for f in CATALOGUE.values()), (i,))
        if os not in found.oses:
            raise ConfigError(f"{found.absent_why}; {spec.title} does not have it", (i,))
        if found.name not in out:
            out.append(found.name)
    return tuple(out)
