"""The store kept in memory: the same log semantics as SqliteStore, nothing durable (for unit tests)."""

from __future__ import annotations

import bisect

from nanokube.store.base import Event, KeyValue
from nanokube.store.broadcast import DEFAULT_SUBSCRIBER_LIMIT
from nanokube.store.log import RECENT_EVENTS, LogStore, Row, event_of


class MemoryStore(LogStore):
    def __init__(self, *, subscriber_limit: int = DEFAULT_SUBSCRIBER_LIMIT, recent_events: int = RECENT_EVENTS) -> None:
        super().__init__(subscriber_limit=subscriber_limit, recent_events=recent_events)
        self._log: dict[int, Row] = {}  # by revision, in revision order
        self._history: dict[str, list[Row]] = {}  # each key's rows, oldest first
        self._keys: list[str] = []  # sorted keys that have rows

    def _latest(self, key: str) -> Row | None:
        rows = self._history.get(key)
        return rows[-1] if rows else None

    def _append(self, rows: list[Row]) -> None:
        for row in rows:
            self._log[row.revision] = row
            history = self._history.get(row.key)
            if history is None:
                history = self._history[row.key] = []
                bisect.insort(self._keys, row.key)
            history.append(row)

    def _range(self, low: str, high: str, low_inclusive: bool, limit: int, revision: int) -> list[KeyValue]:
        keys = self._keys
        index = bisect.bisect_left(keys, low) if low_inclusive else bisect.bisect_right(keys, low)
        items: list[KeyValue] = []
        while index < len(keys) and keys[index] < high and (limit <= 0 or len(items) < limit):
            row = _newest_at(self._history[keys[index]], revision)
            if row is not None and not row.deleted:
                items.append(row.key_value())
            index += 1
        return items

    def _events_after(self, prefix: str, revision: int, limit: int) -> list[Event]:
        events: list[Event] = []
        for rev in range(revision + 1, self._revision + 1):
            row = self._log.get(rev)
            if row is None or not row.key.startswith(prefix):
                continue
            prev = self._log.get(row.prev_revision)
            events.append(event_of(row, prev.value if prev is not None and not prev.deleted else None))
            if len(events) >= limit:
                break
        return events

    def _save_compact_revision(self, revision: int) -> None:
        pass

    def _compact_window(self, low: int, high: int) -> int:
        doomed: dict[int, Row] = {}
        for rev in range(low + 1, high + 1):
            row = self._log.get(rev)
            if row is None:
                continue
            prev = self._log.get(row.prev_revision)
            if prev is not None:
                doomed[prev.revision] = prev
            if row.deleted:
                doomed[rev] = row
        for row in doomed.values():
            del self._log[row.revision]
            history = self._history[row.key]
            history.remove(row)
            if not history:
                del self._history[row.key]
                del self._keys[bisect.bisect_left(self._keys, row.key)]
        return len(doomed)


def _newest_at(history: list[Row], revision: int) -> Row | None:
    for row in reversed(history):
        if row.revision <= revision:
            return row
    return None
