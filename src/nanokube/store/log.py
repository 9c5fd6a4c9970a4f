"""The store semantics shared by every log backend (kine's "logstructured" layer).

`LogStore` turns get/list/create/update/delete/txn/watch/compact into reads and appends on an append-only
log of `Row`s whose id is the revision. A backend (`MemoryStore`, `SqliteStore`) only stores rows:
`_latest`, `_append`, `_range`, `_events_after`, `_compact_window`, `_save_compact_revision`.
Backends are synchronous and run inside the event loop: every commit is short, and doing the read-plan-append
of a write without an await in between is what makes this process the single, serialized writer.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from nanokube.store.base import (
    Compacted,
    Event,
    KeyExists,
    KeyNotFound,
    KeyValue,
    Op,
    RevisionConflict,
    StoreError,
    TxnWrites,
)
from nanokube.store.broadcast import DEFAULT_SUBSCRIBER_LIMIT, Broadcaster, Subscription, SubscriptionStream

RECENT_EVENTS = 10_000  # committed events kept in memory so most watches replay without reading the log
REPLAY_PAGE = 1_000
KEY_MAX = "\U0010ffff"  # sorts after any character: prefix + KEY_MAX bounds the keys under prefix


class FutureRevision(StoreError):
    """list() at a revision the store has not reached yet."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"requested revision {requested} is newer than the current revision {current}")
        self.requested = requested
        self.current = current


@dataclass(frozen=True, slots=True)
class Row:
    """One log entry. A tombstone (deleted) carries the last live value restamped with its own revision."""

    revision: int
    key: str
    created: bool
    deleted: bool
    create_revision: int
    prev_revision: int  # revision of this key's previous row, 0 for the first
    value: bytes

    def key_value(self) -> KeyValue:
        return KeyValue(self.key, self.value, self.revision, self.create_revision)


def event_of(row: Row, prev_value: bytes | None) -> Event:
    if row.created:
        return Event("ADDED", row.key, row.value, row.revision)
    return Event("DELETED" if row.deleted else "MODIFIED", row.key, row.value, row.revision, prev_value)


def stamp(obj: dict[str, Any], revision: int) -> bytes:
    """The object's JSON with metadata.resourceVersion = revision (the caller's dict is left untouched)."""
    metadata = obj.get("metadata") or {}
    return orjson.dumps({**obj, "metadata": {**metadata, "resourceVersion": str(revision)}})


def restamp(value: bytes, revision: int) -> bytes:
    return stamp(orjson.loads(value), revision)


def key_range(prefix: str, start_key: str | None) -> tuple[str, str, bool]:
    """(low, high, low_inclusive) bounds of the keys under prefix after start_key."""
    high = prefix + KEY_MAX
    if start_key is not None and start_key >= prefix:
        return start_key, high, False
    return prefix, high, True


class LogStore(TxnWrites):
    def __init__(self, *, subscriber_limit: int = DEFAULT_SUBSCRIBER_LIMIT, recent_events: int = RECENT_EVENTS) -> None:
        self._revision = 0
        self._compact_revision = 0
        self._write_lock = asyncio.Lock()
        self._queued: list[tuple[list[Op], asyncio.Future[list[KeyValue] | Exception]]] = []
        self._flushes: set[asyncio.Future[None]] = set()
        self._broadcaster = Broadcaster(subscriber_limit)
        # Recent events, contiguous by revision: _recent[i].revision == _recent_base + 1 + i.
        self._recent: list[Event] = []
        self._recent_base = 0
        self._recent_max = recent_events
        self._closed = False

    # --- backend hooks -------------------------------------------------------------------------------------

    def _latest(self, key: str) -> Row | None:
        """The key's newest row, tombstone or not."""
        raise NotImplementedError

    def _append(self, rows: list[Row]) -> None:
        """Durably append the rows, all or none; returns only once they are committed."""
        raise NotImplementedError

    def _range(self, low: str, high: str, low_inclusive: bool, limit: int, revision: int) -> list[KeyValue]:
        """Live values as of revision of the keys in (low, high) (low included if asked), sorted, <= limit."""
        raise NotImplementedError

    def _events_after(self, prefix: str, revision: int, limit: int) -> list[Event]:
        """Events of keys under prefix with revision > `revision`, in order, at most `limit` of them."""
        raise NotImplementedError

    def _save_compact_revision(self, revision: int) -> None:
        raise NotImplementedError

    def _compact_window(self, low: int, high: int) -> int:
        """Delete the rows that rows in revisions (low, high] supersede, and tombstones in (low, high].
        Windows are compacted in ascending order, so a tombstone goes in the same commit as its predecessor.
        Returns how many rows went."""
        raise NotImplementedError

    async def _after_write(self) -> None:
        """Backend housekeeping after a commit, still holding the write lock (the commit is already visible)."""

    # --- Store protocol ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._recent_base = self._revision

    async def close(self) -> None:
        self._closed = True
        while self._flushes:  # queued writes finish first
            await asyncio.gather(*self._flushes)
        async with self._write_lock:  # and whatever holds the lock (a checkpoint, a compaction step)
            self._broadcaster.close()

    @property
    def current_revision(self) -> int:
        return self._revision

    @property
    def compact_revision(self) -> int:
        return self._compact_revision

    @property
    def watcher_count(self) -> int:
        return self._broadcaster.subscriber_count

    async def get(self, key: str) -> KeyValue | None:
        row = self._latest(key)
        if row is None or row.deleted:
            return None
        return row.key_value()

    async def list(
        self, prefix: str, *, start_key: str | None = None, limit: int = 0, revision: int = 0
    ) -> tuple[list[KeyValue], int]:
        at = self._check_revision(revision)
        low, high, inclusive = key_range(prefix, start_key)
        return self._range(low, high, inclusive, limit, at), at

    async def txn(self, ops: builtins.list[Op]) -> builtins.list[KeyValue]:
        if self._closed:
            raise StoreError("store is closed")
        if not ops:
            return []
        if not self._queued and not self._write_lock.locked():
            async with self._write_lock:  # free: commit right away, without a trip through the event loop
                [result] = self._commit([ops])
                await self._after_write()
        else:
            # Group commit: while a commit (or a checkpoint, or a compaction step) holds the lock, writes
            # queue up, and the next holder commits all of them in one transaction.
            future: asyncio.Future[builtins.list[KeyValue] | Exception] = asyncio.get_running_loop().create_future()
            self._queued.append((ops, future))
            if len(self._queued) == 1:
                self._flushes.add(task := asyncio.ensure_future(self._flush()))
                task.add_done_callback(self._flushes.discard)
            result = await future
        if isinstance(result, Exception):
            raise result
        return result

    async def _flush(self) -> None:
        async with self._write_lock:
            batch, self._queued = self._queued, []
            try:
                results = self._commit([ops for ops, _ in batch])
            except Exception as error:  # the append failed: nothing of the batch was written
                results = [error] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # done: the caller was cancelled; its write (if any) stands
                    future.set_result(result)
            await self._after_write()

    def _commit(self, batch: builtins.list[builtins.list[Op]]) -> builtins.list[builtins.list[KeyValue] | Exception]:
        """Append, in one commit, the writes of every txn in batch that applies; the others get their error."""
        revision = self._revision
        planned: dict[str, Row] = {}  # the newest rows of the txns accepted so far
        rows: builtins.list[Row] = []
        events: builtins.list[Event] = []
        results: builtins.list[builtins.list[KeyValue] | Exception] = []
        for ops in batch:
            try:
                txn_rows, txn_events = self._plan(ops, revision, planned)
            except (StoreError, ValueError) as error:
                results.append(error)
                continue
            for row in txn_rows:
                planned[row.key] = row
            rows += txn_rows
            events += txn_events
            revision = txn_rows[-1].revision
            results.append([row.key_value() for row in txn_rows])
        if rows:
            self._append(rows)
            self._revision = revision
            published = tuple(events)
            self._remember(published)
            self._broadcaster.publish(published)
        return results

    def watch(self, prefix: str, start_revision: int) -> WatchStream:
        """Subscribes now (so nothing committed after this call is missed) and replays lazily on iteration."""
        if self._closed:
            raise StoreError("store is closed")
        if start_revision < self._compact_revision:
            raise Compacted(start_revision, self._compact_revision)
        return WatchStream(self, prefix, start_revision, self._broadcaster.subscribe(prefix))

    async def compact(self, revision: int, *, window: int = 250) -> None:
        """Forget history at or below `revision` (clamped to the current revision). Runs in short commits of
        `window` revisions, yielding to the event loop between them."""
        revision = min(revision, self._revision)
        if revision <= self._compact_revision:
            return
        async with self._write_lock:
            start = self._compact_revision
            # Recorded first: from now on nobody may rely on rows at or below it, so deleting them is safe.
            self._save_compact_revision(revision)
            self._compact_revision = revision
        low = start
        while low < revision and not self._closed:
            high = min(low + window, revision)
            async with self._write_lock:
                self._compact_window(low, high)
                await self._after_write()
            low = high
            await asyncio.sleep(0)

    # --- internals -----------------------------------------------------------------------------------------

    def _check_revision(self, revision: int) -> int:
        if revision == 0:
            return self._revision
        if revision < self._compact_revision:
            raise Compacted(revision, self._compact_revision)
        if revision > self._revision:
            raise FutureRevision(revision, self._revision)
        return revision

    def _plan(self, ops: builtins.list[Op], revision: int, planned: dict[str, Row]) -> tuple[builtins.list[Row], builtins.list[Event]]:
        """The rows and events of ops (one revision each, after `revision`), or the first failing op's error.
        `planned` holds rows not yet in the log that win over it."""
        newest: dict[str, Row | None] = {}  # rows planned by earlier ops of this txn win over both
        rows: builtins.list[Row] = []
        events: builtins.list[Event] = []
        for op in ops:
            revision += 1
            key = op.key
            current = newest[key] if key in newest else planned[key] if key in planned else self._latest(key)
            live = current if current is not None and not current.deleted else None
            if op.kind == "create":
                if live is not None:
                    raise KeyExists(key)
                row = Row(revision, key, True, False, revision, current.revision if current else 0, _obj(op, revision))
                prev_value = None
            else:
                if live is None:
                    raise KeyNotFound(key)
                if op.expected_revision is not None and op.expected_revision != live.revision:
                    raise RevisionConflict(key, live.revision)
                if op.kind == "update":
                    row = Row(revision, key, False, False, live.create_revision, live.revision, _obj(op, revision))
                elif op.kind == "delete":
                    row = Row(revision, key, False, True, live.create_revision, live.revision, restamp(live.value, revision))
                else:
                    raise ValueError(f"unknown op kind {op.kind!r}")
                prev_value = live.value
            newest[key] = row
            rows.append(row)
            events.append(event_of(row, prev_value))
        return rows, events

    def _remember(self, events: Iterable[Event]) -> None:
        recent = self._recent
        recent.extend(events)
        excess = len(recent) - self._recent_max
        if excess > self._recent_max // 4:  # trim in chunks so appends stay amortized O(1)
            del recent[:excess]
            self._recent_base += excess

    def _replay_page(self, prefix: str, after: int) -> tuple[builtins.list[Event], int]:
        """Events under prefix after revision `after`: (events, the revision the page reaches).
        Raises Compacted if the history after `after` is (being) compacted away."""
        if after >= self._revision:
            return [], after
        if after >= self._recent_base:  # in memory: compaction does not touch it
            start = after - self._recent_base
            page = self._recent[start : start + REPLAY_PAGE]
            reached = page[-1].revision
            return [e for e in page if e.key.startswith(prefix)], reached
        if after < self._compact_revision:
            raise Compacted(after, self._compact_revision)
        events = self._events_after(prefix, after, REPLAY_PAGE)
        if len(events) < REPLAY_PAGE:
            return events, self._revision  # the log holds nothing more under prefix right now
        return events, events[-1].revision


def _obj(op: Op, revision: int) -> bytes:
    if op.obj is None:
        raise ValueError(f"{op.kind} of {op.key} needs an object")
    return stamp(op.obj, revision)


class WatchStream(SubscriptionStream):
    """Events under a prefix after a revision: first replayed from the log, then live, each revision once,
    in order. Ends when the watcher falls too far behind or the store closes (`cut_off` tells which);
    raises Compacted if its history is compacted before it is replayed."""

    def __init__(self, store: LogStore, prefix: str, start_revision: int, subscription: Subscription) -> None:
        self._store = store
        self._prefix = prefix
        super().__init__(subscription)
        self._cursor = start_revision  # newest revision delivered or known to hold nothing under prefix
        self._replaying = True
        self._batch: Sequence[Event] = ()
        self._batch_reached = 0  # a replay page covers every revision up to here, even filtered-out ones
        self._index = 0

    async def __anext__(self) -> Event:
        while True:
            if self._index < len(self._batch):
                event = self._batch[self._index]
                self._index += 1
                if event.revision > self._cursor:
                    self._cursor = event.revision
                    return event
                continue
            if self._batch_reached > self._cursor:
                self._cursor = self._batch_reached
            if self._replaying:
                if self._subscription.closed:
                    raise StopAsyncIteration
                events, reached = self._store._replay_page(self._prefix, self._cursor)
                if reached <= self._cursor:
                    self._replaying = False  # caught up: everything newer comes through the subscription
                self._batch, self._index, self._batch_reached = events, 0, reached
                continue
            live = await self._subscription.next_batch()
            if live is None:
                raise StopAsyncIteration
            self._batch, self._index, self._batch_reached = live, 0, 0
