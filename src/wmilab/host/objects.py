"""The object exporter's tables: one OXID, OIDs, IPIDs and the objects behind them.

MS-DCOM 3.1.1.1: an object exporter keeps an IPID table (IPID -> interface, object, public
references) and an OID table; 3.1.1.3: it has an IPID for its IRemUnknown. Objects here are
plain Python values (a logged-in IWbemServices, an enumerator, ...); the exporter module
gives them behaviour.
"""

from __future__ import annotations

import itertools
import os
import struct
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from wmilab.model.identity import Token
from wmilab.wire import ids
from wmilab.wire.dcom import DualStringArray, ObjRefStandard, StdObjRef

__all__ = [
    "EncodedObject", "Entry", "Enumerator", "FetchSmartEnum", "Level1Login", "ObjectTable",
    "RemUnknown", "Services", "WcoSmartEnum",
]


@dataclass
class RemUnknown:
    """The exporter's own IRemUnknown (MS-DCOM 3.1.1.5.6)."""


@dataclass
class Level1Login:
    """An activated WbemLevel1Login object (MS-WMI 3.1.4.1)."""

    token: Token


@dataclass
class Services:
    """IWbemServices bound to a namespace by NTLMLogin (MS-WMI 3.1.4.3)."""

    namespace: str
    token: Token


@dataclass(frozen=True)
class EncodedObject:
    class_name: str
    encoded: bytes  # MS-WMIO EncodingUnit


@dataclass
class Enumerator:
    """IEnumWbemClassObject over a query result (MS-WMI 3.1.4.4)."""

    namespace: str
    objects: list[EncodedObject]
    forward_only: bool = False
    position: int = 0
    class_ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def take(self, count: int) -> list[EncodedObject]:
        out = self.objects[self.position:self.position + count]
        self.position += len(out)
        return out

    def class_id(self, name: str) -> uuid.UUID:
        # MS-WMI 2.2.14.3: a class's classID stays the same for one enumeration.
        key = name.lower()
        if key not in self.class_ids:
            self.class_ids[key] = uuid.uuid4()
        return self.class_ids[key]


@dataclass
class FetchSmartEnum:
    """IWbemFetchSmartEnum on an enumerator (MS-WMI 3.1.4.6)."""

    enum: Enumerator


@dataclass
class WcoSmartEnum:
    """IWbemWCOSmartEnum sharing its enumerator's position (MS-WMI 3.1.4.7)."""

    enum: Enumerator


ExportedObject = RemUnknown | Level1Login | Services | Enumerator | FetchSmartEnum | WcoSmartEnum

# Which interfaces each kind of object answers RemQueryInterface for (MS-DCOM 3.1.1.5.6.1.1).
SUPPORTED: dict[type, tuple[uuid.UUID, ...]] = {
    RemUnknown: (ids.IID_IREMUNKNOWN, ids.IID_IUNKNOWN),
    Level1Login: (ids.IID_IWBEMLEVEL1LOGIN, ids.IID_IUNKNOWN),
    Services: (ids.IID_IWBEMSERVICES, ids.IID_IUNKNOWN),
    Enumerator: (ids.IID_IENUMWBEMCLASSOBJECT, ids.IID_IWBEMFETCHSMARTENUM, ids.IID_IUNKNOWN),
    FetchSmartEnum: (ids.IID_IWBEMFETCHSMARTENUM, ids.IID_IUNKNOWN),
    WcoSmartEnum: (ids.IID_IWBEMWCOSMARTENUM, ids.IID_IUNKNOWN),
}


@dataclass
class Entry:
    """One IPID table entry."""

    ipid: uuid.UUID
    iid: uuid.UUID
    oid: int
    obj: ExportedObject
    public_refs: int


class ObjectTable:
    """IPIDs of one object exporter, bounded: the least recently used entry goes when full."""

    def __init__(self, *, max_entries: int = 4096, oxid: int | None = None) -> None:
        self.oxid = oxid if oxid is not None else struct.unpack("<Q", os.urandom(8))[0]
        self.max_entries = max_entries
        self._entries: OrderedDict[uuid.UUID, Entry] = OrderedDict()
        self._oids = itertools.count(struct.unpack("<I", os.urandom(4))[0] << 16)
        self._by_object: dict[int, dict[uuid.UUID, uuid.UUID]] = {}
        # MS-DCOM 3.1.1.3: each object exporter creates an IPID entry for its IRemUnknown.
        self.rem_unknown = self.export(RemUnknown(), ids.IID_IREMUNKNOWN)

    def __len__(self) -> int:
        return len(self._entries)

    def export(self, obj: ExportedObject, iid: uuid.UUID, *, oid: int | None = None,
               refs: int = 5) -> Entry:
        """A new IPID for ``obj`` (or the existing one for the same object and IID)."""
        known = self._by_object.get(id(obj), {}).get(iid)
        if known is not None and known in self._entries:
            entry = self._entries[known]
            entry.public_refs += refs
            return entry
        while len(self._entries) >= self.max_entries:
            # Choice: the least recently used object goes, as if its client had stopped pinging
            # (MS-DCOM 3.1.2.6 garbage collection), so memory stays bounded.
            victim = next((k for k, e in self._entries.items()
                           if not isinstance(e.obj, RemUnknown)), None)
            if victim is None:
                break
            self._drop(victim)
        entry = Entry(uuid.uuid4(), iid, oid if oid is not None else next(self._oids), obj, refs)
        self._entries[entry.ipid] = entry
        self._by_object.setdefault(id(obj), {})[iid] = entry.ipid
        return entry

    def lookup(self, ipid: uuid.UUID | None) -> Entry | None:
        entry = None if ipid is None else self._entries.get(ipid)
        if entry is not None:
            # Least recently used goes first when the table is full: a client's
            # IWbemServices in steady use is never evicted by its own enumerators.
            self._entries.move_to_end(entry.ipid)
        return entry

    def query_interface(self, entry: Entry, iid: uuid.UUID, refs: int) -> Entry | None:
        """An IPID for another interface of the same object, or None (E_NOINTERFACE)."""
        if iid not in SUPPORTED.get(type(entry.obj), ()):
            return None
        if iid == ids.IID_IWBEMFETCHSMARTENUM and isinstance(entry.obj, Enumerator):
            # The smart-enum fetcher is its own object sharing the enumerator (MS-WMI 3.1.4.6).
            fetch = self._by_object.get(id(entry.obj), {}).get(iid)
            if fetch is not None and fetch in self._entries:
                self._entries[fetch].public_refs += max(refs, 1)
                return self._entries[fetch]
            new = self.export(FetchSmartEnum(entry.obj), iid, oid=entry.oid, refs=max(refs, 1))
            self._by_object.setdefault(id(entry.obj), {})[iid] = new.ipid
            return new
        return self.export(entry.obj, iid, oid=entry.oid, refs=max(refs, 1))

    def query_interfaces(self, ipid: uuid.UUID, iids: Sequence[uuid.UUID],
                         refs: int) -> list[tuple[int, uuid.UUID] | None] | None:
        """RemQueryInterface (host/remunknown.py): per IID the (OID, IPID) or None."""
        target = self.lookup(ipid)
        if target is None:
            return None
        found: list[tuple[int, uuid.UUID] | None] = []
        for iid in iids:
            got = self.query_interface(target, iid, refs)
            found.append(None if got is None else (got.oid, got.ipid))
        return found

    def add_ref(self, ipid: uuid.UUID, refs: int) -> bool:
        entry = self._entries.get(ipid)
        if entry is None:
            return False
        entry.public_refs += max(refs, 0)
        return True

    def release_refs(self, ipid: uuid.UUID, refs: int) -> None:
        """RemRelease: drop references; the entry goes at zero (MS-DCOM 3.1.1.5.6.1.3).

        Releasing an unknown IPID is not an error (wire-notes: impacket releases twice).
        """
        entry = self._entries.get(ipid)
        if entry is None or isinstance(entry.obj, RemUnknown):
            return
        entry.public_refs -= max(refs, 0)
        if entry.public_refs <= 0:
            self._drop(ipid)

    def _drop(self, ipid: uuid.UUID) -> None:
        entry = self._entries.pop(ipid, None)
        if entry is None:
            return
        per = self._by_object.get(id(entry.obj))
        if per is not None:
            for iid, known in list(per.items()):
                if known == ipid:
                    del per[iid]
            if not per:
                del self._by_object[id(entry.obj)]

    def objref(self, entry: Entry, resolver: DualStringArray, refs: int = 5) -> ObjRefStandard:
        """OBJREF_STANDARD for an entry; ``resolver`` is the OXID resolver's bindings."""
        # MS-DCOM 2.2.18.2: STDOBJREF flags 0, cPublicRefs > 0 (aiowmi asserts it).
        return ObjRefStandard(entry.iid, StdObjRef(self.oxid, entry.oid, entry.ipid, refs),
                              resolver)
