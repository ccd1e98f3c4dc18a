"""Intrinsic event queries: parse them, and match a repository change against one.

``SELECT * FROM __InstanceCreationEvent WITHIN 5 WHERE TargetInstance ISA 'Win32_Process'``
(MSDocs WmiSdk/receiving-event-notifications, WmiSdk/within-clause,
WmiSdk/--instancecreationevent, --instancedeletionevent, --instancemodificationevent).
A change of the emulated host (repository ``Change``) becomes the event object, an instance
of the event class whose ``TargetInstance`` (and ``PreviousInstance``) embeds the instance.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from ..hresult import WBEM_E_INVALID_CLASS, WBEM_E_INVALID_QUERY, HResult
from ..wire.wmio import Value
from . import wql
from .cim import CimClass, CimInstance, WmiError

__all__ = ["EVENT_KINDS", "EventQuery", "event_instance", "matches", "parse_event_query"]

# The intrinsic instance events and the change each reports (MSDocs
# WmiSdk/determining-the-type-of-event-to-receive). __InstanceOperationEvent is all three.
EVENT_KINDS: dict[str, frozenset[str]] = {
    "__instancecreationevent": frozenset({"creation"}),
    "__instancedeletionevent": frozenset({"deletion"}),
    "__instancemodificationevent": frozenset({"modification"}),
    "__instanceoperationevent": frozenset({"creation", "deletion", "modification"}),
}

# MSDocs WmiSdk/within-clause: an intrinsic event query on a class without an event provider
# needs WITHIN; without it WMI refuses the registration with WBEMESS_E_REGISTRATION_TOO_PRECISE.
WBEMESS_E_REGISTRATION_TOO_PRECISE = HResult(
    0x80042002, "WBEMESS_E_REGISTRATION_TOO_PRECISE",
    "A WITHIN clause is needed for this event query.")

_WITHIN = re.compile(r"\s+within\s+([0-9]+(?:\.[0-9]*)?)\s*(?=where\b|$)", re.I)
_DOTTED = re.compile(r"\b(TargetInstance|PreviousInstance)\.([A-Za-z_][A-Za-z0-9_]*)\b", re.I)
_SEP = "__dot__"


@dataclass(frozen=True)
class EventQuery:
    event_class: str  # as written
    kinds: frozenset[str]
    within: float | None
    select: wql.SelectQuery


def _outside_strings(text: str, fn: re.Pattern[str], repl: str) -> str:
    parts = re.split(r"('(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")", text)
    return "".join(p if i % 2 else fn.sub(repl, p) for i, p in enumerate(parts))


def parse_event_query(text: str) -> EventQuery:
    """An intrinsic event query; WmiError for anything else.

    Choice: only the intrinsic instance events are served (no extrinsic events, GROUP WITHIN
    or HAVING); other event classes get WBEM_E_INVALID_CLASS (docs/choices.md).
    """
    body = text.strip()
    within: float | None = None
    m = _WITHIN.search(body)
    if m:
        within = float(m.group(1))
        body = body[:m.start()] + " " + body[m.end():]
    body = _outside_strings(body, _DOTTED, rf"\1{_SEP}\2")
    parsed = wql.parse_wql(body)
    if not isinstance(parsed, wql.SelectQuery):
        raise WmiError(WBEM_E_INVALID_QUERY, "an event query is a SELECT")
    kinds = EVENT_KINDS.get(parsed.class_name.lower())
    if kinds is None:
        raise WmiError(WBEM_E_INVALID_CLASS, f"{parsed.class_name} is not an intrinsic event "
                       "class the emulated host raises")
    if within is None:
        raise WmiError(WBEMESS_E_REGISTRATION_TOO_PRECISE, "WITHIN is needed")
    return EventQuery(parsed.class_name, kinds, within, parsed)


def event_instance(event_cls: CimClass, kind: str, target: CimInstance,
                   previous: CimInstance | None = None, now: float | None = None) -> CimInstance:
    """The event object: TIME_CREATED (100 ns since 1601, MSDocs WmiSdk/--event) and the
    embedded TargetInstance / PreviousInstance."""
    when = time.time() if now is None else now
    values: dict[str, Value] = {
        "TIME_CREATED": int((when + 11_644_473_600) * 10_000_000),
        "TargetInstance": target.to_wire(),
    }
    if kind == "modification" and previous is not None:
        values["PreviousInstance"] = previous.to_wire()
    return CimInstance(event_cls, values)


def matches(query: EventQuery, kind: str, target: CimInstance,
            previous: CimInstance | None = None) -> bool:
    """Does a change of ``kind`` on ``target`` satisfy the query's WHERE clause?"""
    if kind not in query.kinds:
        return False
    where = query.select.where
    if where is None:
        return True

    def embedded(name: str) -> CimInstance | None:
        low = name.lower()
        if low == "targetinstance":
            return target
        if low == "previousinstance":
            return previous
        return None

    def get(name: str) -> Value:
        low = name.lower()
        if _SEP in low:
            head, _, prop = low.partition(_SEP)
            inst = embedded(head)
            return None if inst is None else inst.get(prop)
        inst = embedded(name)
        return None if inst is None else inst.to_wire()

    def isa(prop: str, class_name: str) -> bool | None:
        inst = embedded(prop)
        if inst is None:
            return None
        return inst.cls.is_a(class_name)

    return wql.evaluate(where, get, isa) is True
