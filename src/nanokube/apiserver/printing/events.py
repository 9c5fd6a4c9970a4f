"""Events, core/v1 and events.k8s.io/v1 alike (printEvent): LAST SEEN TYPE REASON OBJECT MESSAGE.

Both API groups store the same internal Event, so both print the same way; an events.k8s.io/v1 object is
first mapped onto the core/v1 field names the printer reads.
"""

from __future__ import annotations

from datetime import datetime

from nanokube.apiserver.printing.base import (
    Cell,
    Column,
    Obj,
    Printer,
    as_int,
    doc,
    name_of,
    wide,
)
from nanokube.apiserver.printing.duration import since


def core_view(event: Obj) -> Obj:
    """The core/v1 field names of an events.k8s.io/v1 Event (Convert_v1_Event_To_core_Event)."""
    return {
        "metadata": event.get("metadata") or {},
        "involvedObject": event.get("regarding") or {},
        "message": event.get("note") or "",
        "reason": event.get("reason") or "",
        "type": event.get("type") or "",
        "source": event.get("deprecatedSource") or {},
        "firstTimestamp": event.get("deprecatedFirstTimestamp"),
        "lastTimestamp": event.get("deprecatedLastTimestamp"),
        "count": event.get("deprecatedCount") or 0,
        "eventTime": event.get("eventTime"),
        "series": event.get("series"),
        "reportingComponent": event.get("reportingController") or "",
        "reportingInstance": event.get("reportingInstance") or "",
    }


def _source(event: Obj) -> str:
    """formatEventSource: component (or reporting controller), then `, host` (or reporting instance)."""
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    return f"{component}, {instance}" if instance else component


def _event_row(event: Obj, now: datetime) -> list[Cell]:
    first_seen = since(event.get("firstTimestamp"), now)
    if not event.get("firstTimestamp"):
        first_seen = since(event.get("eventTime"), now)
    last_seen = since(event.get("lastTimestamp"), now) if event.get("lastTimestamp") else first_seen
    count = as_int(event.get("count"))
    series = event.get("series")
    if series is not None:
        last_seen = since(series.get("lastObservedTime"), now)
        count = as_int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    involved = event.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    return [
        last_seen,
        event.get("type") or "",
        event.get("reason") or "",
        target,
        involved.get("fieldPath") or "",
        _source(event),
        (event.get("message") or "").strip(),
        first_seen,
        count,
        name_of(event),
    ]


EVENT_COLUMNS = (
    Column("Last Seen", description=doc("Event.lastTimestamp")),
    Column("Type", description=doc("Event.type")),
    Column("Reason", description=doc("Event.reason")),
    Column("Object", description=doc("Event.involvedObject")),
    wide("Subobject", doc("ObjectReference.fieldPath")),
    wide("Source", doc("Event.source")),
    Column("Message", description=doc("Event.message")),
    wide("First Seen", doc("Event.firstTimestamp")),
    wide("Count", doc("Event.count")),
    Column("Name", description=doc("ObjectMeta.name"), priority=1, format="name"),
)

EVENTS = Printer(EVENT_COLUMNS, _event_row)
EVENTS_K8S_IO = Printer(EVENT_COLUMNS, lambda event, now: _event_row(core_view(event), now))
