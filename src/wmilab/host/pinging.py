"""DCOM garbage collection of an emulated host: the OXID resolver's ping sets and the sweep.

MS-DCOM 3.1.2.2: the ping period is at most (and SHOULD be exactly) 2 minutes; a ping set's
timer is three ping periods. ComplexPing (3.1.2.5.1.3) creates a set (SetId 0) or changes
one and resets its timer; SimplePing (3.1.2.5.1.2) resets it, OR_INVALID_SET for an unknown
set. When a set's timer expires (3.1.2.6) each OID's set reference drops; an OID no set
holds any more is handed to the exporter to reclaim (3.1.1.6.2), which keeps it if an ORPC
call arrived in the last ping period.

Choice (docs/choices.md, "clients that never ping"): an OID that no ping set holds (a client
such as aiowmi that never pings, or one that dropped it from its set) is reclaimed once no
export or ORPC call has touched it for the ping-set timeout, three ping periods; the OID is
treated as if in a set that each call on it pings.

The periods come from :class:`GcSettings` (tests compress them); the clock is the object
table's, so a test can drive simulated time.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field

from wmilab.host.objects import ObjectTable
from wmilab.wire import dcom

__all__ = ["GcSettings", "PingSet", "PingSets"]

log = logging.getLogger("wmilab.host")


@dataclass(frozen=True)
class GcSettings:
    ping_period: float = 120.0  # MS-DCOM 3.1.2.2: SHOULD be exactly 2 minutes
    periods: int = 3  # MS-DCOM 3.1.2.2: the set timer SHOULD be three ping periods
    max_sets: int = 4096  # Choice: bounded SETID table; the set closest to expiry goes
    max_oids_per_set: int = 65_536  # Choice: bounded set size

    @property
    def timeout(self) -> float:
        return self.ping_period * self.periods


@dataclass
class PingSet:
    set_id: int
    sequence: int
    deadline: float
    oids: set[int] = field(default_factory=set)


class PingSets:
    """The SETID table of the OXID resolver, for the OIDs of one object exporter."""

    def __init__(self, table: ObjectTable, settings: GcSettings | None = None) -> None:
        self.table = table
        self.settings = settings or GcSettings()
        self.sets: dict[int, PingSet] = {}

    def __contains__(self, set_id: int) -> bool:
        return set_id in self.sets

    def _deadline(self) -> float:
        return self.table.clock() + self.settings.timeout

    def simple_ping(self, set_id: int) -> int:
        """SimplePing: 0, or OR_INVALID_SET for an unknown set (MS-DCOM 3.1.2.5.1.2)."""
        found = self.sets.get(set_id)
        if found is None:
            return dcom.OR_INVALID_SET
        found.deadline = self._deadline()
        return 0

    def complex_ping(self, set_id: int, sequence: int, add: tuple[int, ...],
                     delete: tuple[int, ...]) -> tuple[int, int]:
        """ComplexPing: (SETID, status)."""
        if set_id == 0:
            # MS-DCOM 3.1.2.5.1.3: SetId 0 asks for a new ping set holding AddToSet.
            if len(self.sets) >= self.settings.max_sets:
                oldest = min(self.sets.values(), key=lambda s: s.deadline)
                self._expire(oldest)
            set_id = struct.unpack("<Q", os.urandom(8))[0] or 1
            self.sets[set_id] = PingSet(set_id, sequence, self._deadline())
        found = self.sets.get(set_id)
        if found is None:
            return set_id, dcom.OR_INVALID_SET
        found.sequence = sequence
        found.deadline = self._deadline()
        for oid in add:
            # Choice: an OID this exporter does not have is ignored (it cannot be kept alive).
            if (oid not in found.oids and self.table.has_oid(oid)
                    and len(found.oids) < self.settings.max_oids_per_set):
                found.oids.add(oid)
                self.table.pinned[oid] = self.table.pinned.get(oid, 0) + 1
        for oid in delete:
            if oid in found.oids:
                found.oids.discard(oid)
                self._unpin(oid)
        return set_id, 0

    def _unpin(self, oid: int) -> None:
        left = self.table.pinned.get(oid, 0) - 1
        if left > 0:
            self.table.pinned[oid] = left
        else:
            self.table.pinned.pop(oid, None)
            # Its timeout now runs from the last activity (see the module's choice).

    def _expire(self, ping_set: PingSet) -> None:
        # MS-DCOM 3.1.2.6: the client is dead or unreachable; drop the set's references.
        self.sets.pop(ping_set.set_id, None)
        for oid in ping_set.oids:
            self._unpin(oid)
            if not self.table.pinned.get(oid):
                self.table.reclaim(oid, self.settings.ping_period)

    def collect(self) -> int:
        """One sweep: expire ping sets whose timer ran out and reclaim idle OIDs no set
        holds. Returns how many OIDs were reclaimed."""
        before = self.table.reclaimed
        now = self.table.clock()
        for ping_set in [s for s in self.sets.values() if s.deadline <= now]:
            self._expire(ping_set)
        for oid in self.table.idle_oids(self.settings.timeout):
            self.table.reclaim(oid, self.settings.ping_period)
        # Sets whose every OID is gone keep pinging harmlessly until they expire.
        gone = self.table.reclaimed - before
        if gone:
            log.info("DCOM garbage collection reclaimed %d objects (%d IPIDs left)", gone,
                     len(self.table))
        return gone
