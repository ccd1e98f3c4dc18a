"""Event subscriptions of the WMI service: ExecNotificationQuery and ExecNotificationQueryAsync.

A subscription holds a parsed intrinsic event query (repository/events.py) and where its
events go: the queue of a semisynchronous enumerator (MS-WMI 3.1.4.3.20), or the client's
sink over Connection 2 (MS-WMI 3.1.4.3.21: Indicate per event; SetStatus only when the call
ends, e.g. WBEM_E_CALL_CANCELLED after CancelAsyncCall, MS-WMI 3.1.4.3.2). Events come from
the host's repository: every ``Change`` (Win32_Process.Create and Terminate, PutInstance,
DeleteInstance, or a test calling ``Repository.start_process``) is matched at once.

Choice (docs/choices.md): an event is delivered as soon as the change happens; WITHIN n is
accepted and only bounds how late Windows may be, so immediate delivery honours it.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wmilab import hresult as hr
from wmilab.host.objects import EncodedObject, EventEnumerator
from wmilab.host.runtime import HostRuntime
from wmilab.repository import Change, WmiError
from wmilab.repository.cim import normalize_namespace
from wmilab.repository.events import EventQuery, event_instance, matches, parse_event_query
from wmilab.wire import wmi

if TYPE_CHECKING:
    from wmilab.host.callback import CallbackRunner

__all__ = ["EventHub", "Subscription"]

log = logging.getLogger("wmilab.host")

MAX_SUBSCRIPTIONS = 256  # Choice: per host (bounded work per change)
MAX_QUEUED = 1024  # Choice: events kept per enumerator; the oldest goes when full
OPERATION = "IWbemServices::EXEC_NOTIFICATION_QUERY_ASYNC"
# The event object's class is the change's own (an __InstanceOperationEvent query receives
# the three; MSDocs WmiSdk/--instanceoperationevent).
EVENT_CLASS = {"creation": "__InstanceCreationEvent", "deletion": "__InstanceDeletionEvent",
               "modification": "__InstanceModificationEvent"}


@dataclass
class Subscription:
    id: int
    namespace: str
    query: EventQuery
    enumerator: EventEnumerator | None = None
    sink: wmi.SinkRef | None = None


class EventHub:
    """The subscriptions of one host, fed by its repository's changes."""

    def __init__(self, runtime: HostRuntime, callbacks: CallbackRunner | None) -> None:
        self.rt = runtime
        self.callbacks = callbacks
        self.subscriptions: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        runtime.on_change(self.on_change)

    def _check_room(self) -> None:
        self._prune()
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise WmiError(hr.WBEM_E_OUT_OF_MEMORY, "too many event subscriptions")

    def _parse(self, namespace: str, query: str, language: str) -> EventQuery:
        if language.upper() != "WQL":
            # MS-WMI 3.1.4.3.20: strQueryLanguage MUST be "WQL".
            raise WmiError(hr.WBEM_E_INVALID_QUERY_TYPE, f"query language {language}")
        self.rt.repository.namespace(namespace)
        return parse_event_query(query)

    def subscribe_enumerator(self, namespace: str, query: str, language: str) -> EventEnumerator:
        """ExecNotificationQuery: MS-WMI 3.1.4.3.20 requires WBEM_FLAG_RETURN_IMMEDIATELY |
        WBEM_FLAG_FORWARD_ONLY (checked by the caller); events queue on the enumerator."""
        parsed = self._parse(namespace, query, language)
        self._check_room()
        enum = EventEnumerator(namespace)
        sub = Subscription(next(self._ids), normalize_namespace(namespace), parsed, enum)
        self.subscriptions[sub.id] = sub
        return enum

    def subscribe_sink(self, namespace: str, query: str, language: str,
                       sink: wmi.SinkRef) -> None:
        parsed = self._parse(namespace, query, language)
        self._check_room()
        sub = Subscription(next(self._ids), normalize_namespace(namespace), parsed, sink=sink)
        self.subscriptions[sub.id] = sub

    def cancel(self, sink_ipid: uuid.UUID) -> bool:
        """CancelAsyncCall: end the sink's subscriptions; SetStatus(WBEM_E_CALL_CANCELLED)
        (MSDocs WmiSdk/iwbemservices-cancelasynccall). False when the sink has none."""
        found = [s for s in self.subscriptions.values()
                 if s.sink is not None and s.sink.ipid == sink_ipid]
        for sub in found:
            del self.subscriptions[sub.id]
        if found and self.callbacks is not None and found[0].sink is not None:
            self.callbacks.start(OPERATION, found[0].sink, [], hr.WBEM_E_CALL_CANCELLED.code,
                                 found[0].namespace)
        return bool(found)

    def _prune(self) -> None:
        """Subscriptions whose enumerator the client released (or that was collected) end."""
        for sid, sub in list(self.subscriptions.items()):
            if sub.enumerator is not None and not self.rt.table.is_live(sub.enumerator):
                del self.subscriptions[sid]

    def on_change(self, change: Change) -> None:
        if not self.subscriptions:
            return
        self._prune()
        ns = normalize_namespace(change.namespace).lower()
        repo = self.rt.repository
        for sub in list(self.subscriptions.values()):
            if sub.namespace.lower() != ns:
                continue
            if not matches(sub.query, change.kind, change.target, change.previous):
                continue
            try:
                cls = repo.get_class(sub.namespace, EVENT_CLASS[change.kind])
            except WmiError:
                continue
            event = event_instance(cls, change.kind, change.target, change.previous)
            encoded = repo.encode(event, sub.namespace)
            if sub.enumerator is not None:
                queue = sub.enumerator.queue
                queue.append(EncodedObject(cls.name, encoded))
                del queue[:-MAX_QUEUED]
            elif sub.sink is not None and self.callbacks is not None:
                self.callbacks.start(OPERATION, sub.sink, [encoded], None, sub.namespace)
            log.info("%s event %s of %s for subscription %d", self.rt.name, cls.name,
                     change.target.relpath, sub.id)
