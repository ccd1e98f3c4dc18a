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
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from wmilab.model.identity import Token
from wmilab.repository import EncodedRow
from wmilab.wire import ids
from wmilab.wire.dcom import (
    FLAGS_OBJREF_STANDARD,
    OBJREF_SIGNATURE,
    DualStringArray,
    ObjRefStandard,
    StdObjRef,
)

__all__ = [
    "CallResult", "ClassFactory", "EncodedObject", "Entry", "Enumerator", "EventEnumerator", "FetchSmartEnum",
    "Level1Login", "ObjectTable",
    "RemUnknown", "Services", "WcoSmartEnum",
]


# Choice (docs/choices.md): IPIDs and enumeration class ids are unique GUIDs counted up from
# a random 128-bit start, not version-4 GUIDs: MS-DCOM 2.2.18.2 asks an IPID only to be
# unique within its exporter (Windows' own IPIDs hold a counter too), and counting costs
# half of uuid4 on a path taken five times per query.
_GUIDS = itertools.count(int.from_bytes(os.urandom(16), "little") >> 1)


_UUID = uuid.UUID
_SAFE_UNKNOWN = uuid.SafeUUID.unknown
_set_slot = object.__setattr__


def fresh_guid() -> uuid.UUID:
    """A GUID never handed out before by this process.

    Made as uuid.UUID(int=...) makes it (its two slots set), without UUID.__init__'s checks
    of arguments that are known here to be one int in range."""
    guid = object.__new__(_UUID)
    _set_slot(guid, "int", next(_GUIDS) & (2**128 - 1))
    _set_slot(guid, "is_safe", _SAFE_UNKNOWN)
    return guid


# OBJREF (MS-DCOM 2.2.18.1: signature, flags, iid) and its OBJREF_STANDARD's STDOBJREF
# (2.2.18.2: flags, cPublicRefs, oxid, oid, ipid), before the resolver's DUALSTRINGARRAY.
_OBJREF_HEAD = struct.Struct("<II16sIIQQ16s")
_IID_LE: dict[int, bytes] = {}


def _le(iid: uuid.UUID) -> bytes:
    """``iid.bytes_le``, kept: an exporter hands out a handful of interface ids."""
    le = _IID_LE.get(iid.int)
    if le is None:
        if len(_IID_LE) >= 256:
            _IID_LE.clear()
        le = _IID_LE[iid.int] = iid.bytes_le
    return le


@dataclass
class RemUnknown:
    """The exporter's own IRemUnknown (MS-DCOM 3.1.1.5.6)."""


@dataclass
class Level1Login:
    """An activated WbemLevel1Login object (MS-WMI 3.1.4.1)."""

    token: Token
    client_machine: str | None = None  # IWbemLoginClientID::SetClientInfo (MS-WMI 3.1.4.8.1)
    client_process: int | None = None


@dataclass
class ClassFactory:
    """WbemLevel1Login's class object, from RemoteGetClassObject (MS-DCOM 3.1.2.5.2.3.2);
    IClassFactory::CreateInstance makes a Level1Login."""

    token: Token


@dataclass
class Services:
    """IWbemServices bound to a namespace by NTLMLogin (MS-WMI 3.1.4.3)."""

    namespace: str
    token: Token


# One object an enumerator serves: (class name, MS-WMIO EncodingUnit). Query results are
# shared, unchanged, between enumerators (Repository.query_encoded keeps them).
EncodedObject = EncodedRow


@dataclass
class Enumerator:
    """IEnumWbemClassObject over a query result (MS-WMI 3.1.4.4)."""

    namespace: str
    objects: Sequence[EncodedObject]  # never mutated: a cached result may be shared
    forward_only: bool = False
    position: int = 0
    class_ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def take(self, count: int) -> Sequence[EncodedObject]:
        out = self.objects[self.position:self.position + count]
        self.position += len(out)
        return out

    def class_id(self, name: str) -> uuid.UUID:
        # MS-WMI 2.2.14.3: a class's classID stays the same for one enumeration.
        key = name.lower()
        if key not in self.class_ids:
            self.class_ids[key] = fresh_guid()
        return self.class_ids[key]


@dataclass
class FetchSmartEnum:
    """IWbemFetchSmartEnum on an enumerator (MS-WMI 3.1.4.6)."""

    enum: Enumerator


@dataclass
class WcoSmartEnum:
    """IWbemWCOSmartEnum sharing its enumerator's position (MS-WMI 3.1.4.7)."""

    enum: Enumerator


@dataclass
class CallResult:
    """IWbemCallResult of a call the client asked one for (MS-WMI 3.1.4.5): the final status
    and what the call produced (an object, a string such as a new instance's path, or an
    IWbemServices)."""

    status: int
    encoded: bytes | None = None
    text: str | None = None
    services: Services | None = None


@dataclass
class EventEnumerator:
    """IEnumWbemClassObject of ExecNotificationQuery: events queue here as they happen
    (MS-WMI 3.1.4.3.20); bounded, the oldest goes first when full."""

    namespace: str
    queue: list[EncodedObject] = field(default_factory=list)
    forward_only: bool = True
    class_ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def take(self, count: int) -> list[EncodedObject]:
        out, self.queue = self.queue[:count], self.queue[count:]
        return out


ExportedObject = (RemUnknown | Level1Login | Services | Enumerator | FetchSmartEnum | WcoSmartEnum
                  | CallResult | EventEnumerator | ClassFactory)

# Which interfaces each kind of object answers RemQueryInterface for (MS-DCOM 3.1.1.5.6.1.1).
SUPPORTED: dict[type, tuple[uuid.UUID, ...]] = {
    RemUnknown: (ids.IID_IREMUNKNOWN, ids.IID_IUNKNOWN),
    # MS-WMI 3.1.4.1: the Level1Login object also implements IWbemLoginClientID (3.1.4.8);
    # Choice: IWbemLoginHelper, which clients SHOULD NOT use (MS-WMI 3.2.3), is not offered.
    Level1Login: (ids.IID_IWBEMLEVEL1LOGIN, ids.IID_IWBEMLOGINCLIENTID, ids.IID_IUNKNOWN),
    Services: (ids.IID_IWBEMSERVICES, ids.IID_IUNKNOWN),
    Enumerator: (ids.IID_IENUMWBEMCLASSOBJECT, ids.IID_IWBEMFETCHSMARTENUM, ids.IID_IUNKNOWN),
    FetchSmartEnum: (ids.IID_IWBEMFETCHSMARTENUM, ids.IID_IUNKNOWN),
    WcoSmartEnum: (ids.IID_IWBEMWCOSMARTENUM, ids.IID_IUNKNOWN),
    CallResult: (ids.IID_IWBEMCALLRESULT, ids.IID_IUNKNOWN),
    EventEnumerator: (ids.IID_IENUMWBEMCLASSOBJECT, ids.IID_IUNKNOWN),
    ClassFactory: (ids.IID_ICLASSFACTORY, ids.IID_IUNKNOWN),
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
    """IPIDs and OIDs of one object exporter, with what garbage collection needs.

    Objects live by references (RemAddRef / RemRelease) and by pinging: an OID held by a live
    ping set (host/pinging.py) is never reclaimed; any other OID is reclaimed once nothing
    (export, ORPC call) has touched it for the ping timeout (MS-DCOM 3.1.1.6.2 reclamation:
    "an ORPC request has arrived in the last ping period" keeps the object; docs/choices.md
    for OIDs no client ever pinged). ``max_entries`` is a last-resort bound: when full, the
    least recently used IPID of an OID that no ping set holds goes first.
    """

    def __init__(self, *, max_entries: int = 65_536, oxid: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.oxid = oxid if oxid is not None else struct.unpack("<Q", os.urandom(8))[0]
        self.max_entries = max_entries
        self.clock = clock
        # Keyed by the GUIDs' ``int``: uuid.UUID hashes and compares in Python code, and an
        # exporter looks IPIDs up on every call (docs/benchmarks.md).
        self._entries: OrderedDict[int, Entry] = OrderedDict()  # ipid.int -> entry
        self._oids = itertools.count(struct.unpack("<I", os.urandom(4))[0] << 16)
        self._by_object: dict[int, dict[int, int]] = {}  # id(obj) -> iid.int -> ipid.int
        self._oid_ipids: dict[int, set[int]] = {}  # OID -> ipid.int
        self.activity: dict[int, float] = {}  # OID -> last export or ORPC call
        self.pinned: dict[int, int] = {}  # OID -> number of live ping sets holding it
        self.reclaimed = 0  # OIDs collected so far (for logs and tests)
        # MS-DCOM 3.1.1.3: each object exporter creates an IPID entry for its IRemUnknown.
        self.rem_unknown = self.export(RemUnknown(), ids.IID_IREMUNKNOWN)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def oid_count(self) -> int:
        return len(self._oid_ipids)

    def has_oid(self, oid: int) -> bool:
        return oid in self._oid_ipids

    def export(self, obj: ExportedObject, iid: uuid.UUID, *, oid: int | None = None,
               refs: int = 5) -> Entry:
        """A new IPID for ``obj`` (or the existing one for the same object and IID)."""
        per = self._by_object.get(id(obj))
        known = per.get(iid.int) if per is not None else None
        if known is not None and known in self._entries:
            entry = self._entries[known]
            entry.public_refs += refs
            self.touch(entry.oid)
            return entry
        while len(self._entries) >= self.max_entries:
            # Choice (docs/choices.md): a last-resort bound; an object some client pings is
            # never the one to go.
            victim = next((k for k, e in self._entries.items()
                           if not isinstance(e.obj, RemUnknown) and not self.pinned.get(e.oid)),
                          None)
            if victim is None:
                break
            self._drop(victim)
            per = self._by_object.get(id(obj))
        ipid = fresh_guid()
        if oid is None:
            oid = next(self._oids)
        entry = Entry(ipid, iid, oid, obj, refs)
        key = ipid.int
        self._entries[key] = entry
        if per is None:
            self._by_object[id(obj)] = {iid.int: key}
        else:
            per[iid.int] = key
        ipids = self._oid_ipids.get(oid)
        if ipids is None:
            self._oid_ipids[oid] = {key}
        else:
            ipids.add(key)
        self.activity[oid] = self.clock()  # touch
        return entry

    def touch(self, oid: int) -> None:
        """An export of or an ORPC call on ``oid`` happened now."""
        self.activity[oid] = self.clock()

    def is_live(self, obj: ExportedObject) -> bool:
        """Is ``obj`` still exported under some IPID (not released or collected)?"""
        return any(ipid in self._entries for ipid in self._by_object.get(id(obj), {}).values())

    def lookup(self, ipid: uuid.UUID | None) -> Entry | None:
        if ipid is None:
            return None
        key = ipid.int
        entry = self._entries.get(key)
        if entry is not None:
            # Least recently used goes first if the last-resort bound is reached.
            self._entries.move_to_end(key)
        return entry

    def reclaim(self, oid: int, period: float) -> bool:
        """The object resolver asks to reclaim ``oid`` (MS-DCOM 3.1.1.6.2): unless an ORPC
        request arrived in the last ping period, every IPID of the OID goes. True if gone."""
        if oid not in self._oid_ipids or self.pinned.get(oid):
            return False
        if self.clock() - self.activity.get(oid, 0.0) < period:
            return False
        for key in list(self._oid_ipids.get(oid, ())):
            entry = self._entries.get(key)
            if entry is not None and isinstance(entry.obj, RemUnknown):
                return False
            self._drop(key)
        self.reclaimed += 1
        return True

    def idle_oids(self, timeout: float) -> list[int]:
        """OIDs no ping set holds and nothing touched for ``timeout`` seconds."""
        now = self.clock()
        return [oid for oid in list(self._oid_ipids)
                if not self.pinned.get(oid) and now - self.activity.get(oid, now) >= timeout
                and oid != self.rem_unknown.oid]

    def query_interface(self, entry: Entry, iid: uuid.UUID, refs: int) -> Entry | None:
        """An IPID for another interface of the same object, or None (E_NOINTERFACE)."""
        if iid not in SUPPORTED.get(type(entry.obj), ()):
            return None
        if iid == ids.IID_IWBEMFETCHSMARTENUM and isinstance(entry.obj, Enumerator):
            # The smart-enum fetcher is its own object sharing the enumerator (MS-WMI 3.1.4.6).
            fetch = self._by_object.get(id(entry.obj), {}).get(iid.int)
            if fetch is not None and fetch in self._entries:
                self._entries[fetch].public_refs += max(refs, 1)
                return self._entries[fetch]
            new = self.export(FetchSmartEnum(entry.obj), iid, oid=entry.oid, refs=max(refs, 1))
            self._by_object.setdefault(id(entry.obj), {})[iid.int] = new.ipid.int
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
        entry = self._entries.get(ipid.int)
        if entry is None:
            return False
        entry.public_refs += max(refs, 0)
        return True

    def release_refs(self, ipid: uuid.UUID, refs: int) -> None:
        """RemRelease: drop references; the entry goes at zero (MS-DCOM 3.1.1.5.6.1.3).

        Releasing an unknown IPID is not an error (wire-notes: impacket releases twice).
        """
        key = ipid.int
        entry = self._entries.get(key)
        if entry is None or isinstance(entry.obj, RemUnknown):
            return
        entry.public_refs -= max(refs, 0)
        if entry.public_refs <= 0:
            self._drop(key)

    def _drop(self, key: int) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        ipids = self._oid_ipids.get(entry.oid)
        if ipids is not None:
            ipids.discard(key)
            if not ipids:
                del self._oid_ipids[entry.oid]
                self.activity.pop(entry.oid, None)
        per = self._by_object.get(id(entry.obj))
        if per is not None:
            for iid, known in list(per.items()):
                if known == key:
                    del per[iid]
            if not per:
                del self._by_object[id(entry.obj)]

    def objref_octets(self, entry: Entry, resolver: bytes, refs: int = 5) -> bytes:
        """``encode_objref(self.objref(entry, ...))`` made at once; ``resolver`` is the
        bindings' packed octets (encode_dsa_packed)."""
        if refs <= 0:
            raise ValueError("an OBJREF_STANDARD needs public_refs > 0")
        return b"".join((_OBJREF_HEAD.pack(OBJREF_SIGNATURE, FLAGS_OBJREF_STANDARD,
                                           _le(entry.iid), 0, refs, self.oxid, entry.oid,
                                           entry.ipid.bytes_le), resolver))

    def objref(self, entry: Entry, resolver: DualStringArray, refs: int = 5) -> ObjRefStandard:
        """OBJREF_STANDARD for an entry; ``resolver`` is the OXID resolver's bindings."""
        # MS-DCOM 2.2.18.2: STDOBJREF flags 0, cPublicRefs > 0 (aiowmi asserts it).
        return ObjRefStandard(entry.iid, StdObjRef(self.oxid, entry.oid, entry.ipid, refs),
                              resolver)
