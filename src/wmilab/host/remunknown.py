"""IRemUnknown (MS-DCOM 3.1.1.5.6), served the same way by every object exporter of a host.

The WMI service's exporter (host/exporter.py) and the client's sink exporter (host/sink.py)
both answer RemQueryInterface, RemAddRef and RemRelease through :func:`handle`; each only
says what its IPID table holds (:class:`IpidTable`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from wmilab import hresult as hr
from wmilab.host.runtime import OP_RANGE, RPC_E_DISCONNECTED, Reply
from wmilab.wire import dcom, ids
from wmilab.wire.rpc import guid_bytes_le

__all__ = ["E_INVALIDARG", "IpidTable", "handle"]

# Choice: RemAddRef of an IPID that is not in the table is E_INVALIDARG (MS-ERREF 2.1).
E_INVALIDARG = hr.E_INVALIDARG.code  # from the status-code catalogue

# The opnums as ints: an IntEnum member read from its class runs EnumType's slow attribute
# hook, and RemRelease comes twice in every aiowmi query (docs/benchmarks.md).
_REM_QUERY_INTERFACE = int(ids.RemUnknownOp.REM_QUERY_INTERFACE)
_REM_ADD_REF = int(ids.RemUnknownOp.REM_ADD_REF)
_REM_RELEASE = int(ids.RemUnknownOp.REM_RELEASE)


class IpidTable(Protocol):
    """The IPIDs one object exporter holds, as IRemUnknown sees them."""

    oxid: int

    def query_interfaces(self, ipid: uuid.UUID, iids: Sequence[uuid.UUID],
                         refs: int) -> Sequence[tuple[int, uuid.UUID] | None] | None:
        """Per IID, the (OID, IPID) of that interface on the object behind ``ipid``, or None
        when the object does not have it; None when ``ipid`` is not in the table."""
        ...

    def add_ref(self, ipid: uuid.UUID, refs: int) -> bool:
        """Add public references; False when ``ipid`` is not in the table."""
        ...

    def release_refs(self, ipid: uuid.UUID, refs: int) -> None:
        """Drop public references (an unknown IPID is not an error)."""
        ...


def handle(table: IpidTable, opnum: int, stub: bytes) -> Reply:
    """The reply to one IRemUnknown call on ``table``'s exporter; StubError if malformed."""
    if opnum == _REM_RELEASE:
        refs = dcom.parse_rem_refs(stub, "RemRelease")
        for r in refs.refs:
            table.release_refs(r.ipid, r.public_refs)
        # wire-notes: releasing an unknown IPID is S_OK (impacket releases twice).
        return _RELEASED
    if opnum == _REM_QUERY_INTERFACE:
        req = dcom.parse_rem_query_interface(stub)
        found = table.query_interfaces(req.ipid, req.iids, req.refs)
        if found is None:
            # Choice: an IPID that is not in the table answers each IID with
            # RPC_E_DISCONNECTED, as a call on that IPID would get.
            return dcom.build_rem_query_interface_reply(
                [dcom.QiResult(RPC_E_DISCONNECTED) for _ in req.iids])
        # MS-DCOM 3.1.1.5.6.1.1: per IID an HRESULT and, on success, a STDOBJREF with at least
        # one public reference. aiowmi falls back to IEnumWbemClassObject::Next on
        # E_NOINTERFACE.
        # Packed from (OID, IPID) pairs: the octets of one QiResult and StdObjRef (flags 0)
        # per IID (tests/test_wire_fastpaths.py).
        return dcom.build_rem_query_interface_reply_packed(
            table.oxid, [None if got is None else (got[0], guid_bytes_le(got[1]))
                         for got in found], max(req.refs, 1))
    if opnum == _REM_ADD_REF:
        refs = dcom.parse_rem_refs(stub, "RemAddRef")
        return dcom.build_rem_add_ref_reply(
            [dcom.S_OK if table.add_ref(r.ipid, r.public_refs) else E_INVALIDARG
             for r in refs.refs])
    return OP_RANGE


_RELEASED = dcom.build_rem_release_reply(dcom.S_OK)  # the same octets every time
