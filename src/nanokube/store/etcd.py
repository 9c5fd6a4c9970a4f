"""The store on etcd v3, as kube-apiserver uses it (apiserver/pkg/storage/etcd3/store.go, watcher.go).

- resourceVersion = the key's mod_revision. Values are the object's JSON *without* resourceVersion, metadata
  first, so the revision is spliced into the bytes on read without parsing them (`stamp_stored`).
- create / update / delete are one etcd txn each, compared on mod_revision (0 = absent); a txn of several ops
  commits them all at one etcd revision. A failed compare reads the keys in the same round trip (the Else
  branch) to name the error: KeyExists, KeyNotFound or RevisionConflict.
- Watches: one etcd watch per store over every key under the root, feeding the same in-process fan-out as the
  log stores, with the recent events kept for resuming watchers; a watch from before those opens its own etcd
  watch. A compacted start revision raises Compacted (HTTP 410), as etcd tells it.
- Compaction: kube-apiserver's compactor CAS (compact.go): every server may try, one wins per round by
  bumping the version of `compact_rev_key`; etcd's own --auto-compaction works as well.
- `current_revision` is the newest revision the store watch has published (as for the log stores: every event
  at or below it went out to the watchers, so a bookmark never skips one). A write returns, and a read
  answers, only once the store watch has published the revision they saw (bounded by VISIBLE_WAIT; as
  kube-apiserver's consistent reads from its watch cache wait for it): whatever a client reads from this
  server, the server's own watch-fed state (CRD routes, allocators, watchers) has seen too.
- Several API servers share one etcd: they see each other's writes through the store watch.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
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
from nanokube.store.etcd_gateway import (
    EtcdCompacted,
    EtcdError,
    EtcdFutureRevision,
    EtcdGateway,
    EtcdUnreachable,
    Kv,
    b64,
    kv_of,
    prefix_end,
)
from nanokube.store.log import FutureRevision

log = logging.getLogger(__name__)

COMPACT_REV_KEY = b"compact_rev_key"  # outside the key prefix, as kube-apiserver's compactor keeps it
RECENT_EVENTS = 10_000
RESUME_PAUSE = 0.2
VISIBLE_WAIT = 2.0  # a write waits at most this long for its events to come back through the store watch
_MD = b'{"metadata":{'


def encode(obj: dict[str, Any]) -> bytes:
    """The stored bytes: metadata first, without resourceVersion (etcd's mod_revision is the version)."""
    metadata = obj.get("metadata")
    md = {k: v for k, v in metadata.items() if k != "resourceVersion"} if isinstance(metadata, dict) else {}
    return orjson.dumps({"metadata": md, **{k: v for k, v in obj.items() if k != "metadata"}})


def stamp_stored(value: bytes, revision: int) -> bytes:
    """The stored bytes with metadata.resourceVersion = revision."""
    if value.startswith(_MD):
        rv = b'"resourceVersion":"%d"' % revision
        rest = value[len(_MD):]
        return _MD + rv + (rest if rest[:1] == b"}" else b"," + rest)
    # written by someone else (etcdctl): parse it
    obj = orjson.loads(value)
    md = obj.get("metadata") if isinstance(obj, dict) else None
    return orjson.dumps({**obj, "metadata": {**(md or {}), "resourceVersion": str(revision)}})


class EtcdStore(TxnWrites):
    def __init__(self, gateway: EtcdGateway, *, root: str = "", subscriber_limit: int = DEFAULT_SUBSCRIBER_LIMIT,
                 recent_events: int = RECENT_EVENTS) -> None:
        self.gateway = gateway
        self._root = root.encode()
        self._revision = 0
        self._compact_revision = 0
        self._compact_version = 0  # version of compact_rev_key last seen (the compactor's CAS)
        self._broadcaster = Broadcaster(subscriber_limit)
        # Events the store watch delivered, sorted by revision; all of a revision's events or none of them.
        self._recent: list[Event] = []
        self._recent_revisions: list[int] = []
        self._recent_base = 0  # the watch delivered every revision after this one
        self._recent_max = recent_events
        self._watched = 0  # newest revision the store watch has delivered (or started after)
        self._watch_task: asyncio.Task[None] | None = None
        self._visible_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closed = False

    # --- keys -----------------------------------------------------------------------------------------------

    def _key(self, key: str) -> bytes:
        return self._root + key.encode()

    def _unkey(self, key: bytes) -> str:
        return key[len(self._root):].decode()

    def _range_of(self, prefix: str) -> tuple[bytes, bytes]:
        low = self._key(prefix)
        return low, prefix_end(low) if low else b"\x00"

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        kvs, revision, _ = await self.gateway.range(COMPACT_REV_KEY)
        self._seen(revision)
        if kvs:
            self._compact_version = kvs[0].version
            with contextlib.suppress(ValueError):
                self._compact_revision = int(kvs[0].value or 0)
        self._recent_base = self._watched = revision
        self._watch_task = asyncio.create_task(self._follow(), name="etcd-store-watch")

    async def close(self) -> None:
        self._closed = True
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        self._broadcaster.close()
        self._set_watched(self._watched, wake_all=True)
        await self.gateway.close()

    @property
    def current_revision(self) -> int:
        return self._watched

    @property
    def compact_revision(self) -> int:
        return self._compact_revision

    @property
    def watcher_count(self) -> int:
        return self._broadcaster.subscriber_count

    def _seen(self, revision: int) -> None:
        if revision > self._revision:
            self._revision = revision

    # --- reads ----------------------------------------------------------------------------------------------

    def _key_value(self, kv: Kv) -> KeyValue:
        return KeyValue(self._unkey(kv.key), stamp_stored(kv.value, kv.mod_revision), kv.mod_revision,
                        kv.create_revision)

    async def get(self, key: str) -> KeyValue | None:
        kvs, revision, _ = await self._read(self._key(key))
        self._seen(revision)
        await self._visible(revision)
        return self._key_value(kvs[0]) if kvs else None

    async def list(self, prefix: str, *, start_key: str | None = None, limit: int = 0,
                   revision: int = 0) -> tuple[list[KeyValue], int]:
        low, high = self._range_of(prefix)
        if start_key is not None and start_key >= prefix:
            low = self._key(start_key) + b"\x00"  # exclusive
        kvs, at, _ = await self._read(low, high, limit=limit, revision=revision)
        self._seen(at)
        if not revision:
            await self._visible(at)
        return [self._key_value(kv) for kv in kvs], revision or at

    async def _read(self, key: bytes, range_end: bytes | None = None, *, limit: int = 0,
                    revision: int = 0) -> tuple[builtins.list[Kv], int, bool]:
        try:
            return await self.gateway.range(key, range_end, limit=limit, revision=revision)
        except EtcdCompacted as exc:
            self._compact_revision = max(self._compact_revision, exc.compact_revision, revision + 1)
            raise Compacted(revision, self._compact_revision) from exc
        except EtcdFutureRevision as exc:
            raise FutureRevision(revision, self._revision) from exc
        except EtcdError as exc:
            raise StoreError(str(exc)) from exc

    # --- writes ---------------------------------------------------------------------------------------------

    async def txn(self, ops: builtins.list[Op]) -> builtins.list[KeyValue]:
        """All ops at one etcd revision, or none. Each key may appear once (etcd refuses duplicates)."""
        if self._closed:
            raise StoreError("store is closed")
        if not ops:
            return []
        compare: builtins.list[dict[str, Any]] = []
        success: builtins.list[dict[str, Any]] = []
        failure: builtins.list[dict[str, Any]] = []
        values: builtins.list[bytes | None] = []
        for op in ops:
            key = b64(self._key(op.key))
            if op.kind == "create":
                compare.append({"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": "0"})
            elif op.expected_revision is not None:
                compare.append({"key": key, "target": "MOD", "result": "EQUAL",
                                "mod_revision": str(op.expected_revision)})
            else:
                compare.append({"key": key, "target": "VERSION", "result": "GREATER", "version": "0"})
            if op.kind == "delete":
                values.append(None)
                success.append({"request_delete_range": {"key": key, "prev_kv": True}})
            elif op.kind in ("create", "update"):
                if op.obj is None:
                    raise ValueError(f"{op.kind} of {op.key} needs an object")
                value = encode(op.obj)
                values.append(value)
                put: dict[str, Any] = {"key": key, "value": b64(value)}
                if op.kind == "update":
                    put["prev_kv"] = True  # for the create_revision
                success.append({"request_put": put})
            else:
                raise ValueError(f"unknown op kind {op.kind!r}")
            failure.append({"request_range": {"key": key}})
        try:
            succeeded, revision, responses = await self.gateway.txn(compare, success, failure)
        except EtcdError as exc:
            raise StoreError(str(exc)) from exc
        self._seen(revision)
        if not succeeded:
            raise self._failure(ops, responses)
        await self._visible(revision)
        out: builtins.list[KeyValue] = []
        for op, stored, response in zip(ops, values, responses, strict=True):
            if stored is None:
                old = kv_of((response.get("response_delete_range", {}).get("prev_kvs") or [{}])[0])
                out.append(KeyValue(op.key, stamp_stored(old.value, revision), revision, old.create_revision))
            elif op.kind == "create":
                out.append(KeyValue(op.key, stamp_stored(stored, revision), revision, revision))
            else:
                old = kv_of(response.get("response_put", {}).get("prev_kv") or {})
                out.append(KeyValue(op.key, stamp_stored(stored, revision), revision, old.create_revision))
        return out

    def _failure(self, ops: builtins.list[Op], responses: builtins.list[dict[str, Any]]) -> StoreError:
        for op, response in zip(ops, responses, strict=True):
            kvs = response.get("response_range", {}).get("kvs") or []
            current = kv_of(kvs[0]) if kvs else None
            if op.kind == "create":
                if current is not None:
                    return KeyExists(op.key)
            elif current is None:
                return KeyNotFound(op.key)
            elif op.expected_revision is not None and op.expected_revision != current.mod_revision:
                return RevisionConflict(op.key, current.mod_revision)
        return RevisionConflict(ops[0].key, 0)  # changed between the compare and the read: treat as a conflict

    # --- watch ----------------------------------------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[Event]:
        if self._closed:
            raise StoreError("store is closed")
        if start_revision < self._compact_revision:
            raise Compacted(start_revision, self._compact_revision)
        if start_revision >= self._recent_base:
            return EtcdWatchStream(self, prefix, start_revision, self._broadcaster.subscribe(prefix))
        return _DirectWatch(self, prefix, start_revision)

    def _events_of(self, result: dict[str, Any], under: bytes = b"") -> builtins.list[Event]:
        """The store events of a watch response, for keys starting with `under`."""
        events: builtins.list[Event] = []
        for raw in result.get("events", ()):
            kv = kv_of(raw["kv"])
            if not kv.key.startswith(under):
                continue
            prev = kv_of(raw["prev_kv"]) if raw.get("prev_kv") else None
            key = self._unkey(kv.key)
            if raw.get("type") == "DELETE":
                if prev is None:
                    continue  # its value was compacted: nothing to show (kube ends the watch here)
                events.append(Event("DELETED", key, stamp_stored(prev.value, kv.mod_revision), kv.mod_revision,
                                    stamp_stored(prev.value, prev.mod_revision)))
            elif kv.create_revision == kv.mod_revision:
                events.append(Event("ADDED", key, stamp_stored(kv.value, kv.mod_revision), kv.mod_revision))
            else:
                events.append(Event("MODIFIED", key, stamp_stored(kv.value, kv.mod_revision), kv.mod_revision,
                                    stamp_stored(prev.value, prev.mod_revision) if prev is not None else None))
        return events

    async def _follow(self) -> None:
        """The store watch: every change under the root, published to the subscribers, forever. It watches
        every key of etcd (and publishes those under the root), so it passes every revision etcd has, even
        those of writes elsewhere (compact_rev_key, another cluster's prefix): a read can then wait for it to
        reach the revision the read saw."""
        under = self._key("/")
        while not self._closed:
            try:
                async for result in self.gateway.watch(b"\x00", b"\x00", self._watched + 1):
                    revision = int(result.get("header", {}).get("revision", 0))
                    events = self._events_of(result, under)
                    if events:
                        published = tuple(events)
                        self._remember(published)
                        self._broadcaster.publish(published)
                    raw = result.get("events")
                    if raw:
                        self._set_watched(int(raw[-1]["kv"].get("mod_revision", 0)))
                    self._seen(revision)
            except EtcdCompacted as exc:
                # Missed history: every watcher re-lists (their streams end), then follow from now on.
                log.warning("etcd store watch fell behind compaction (%s); watchers restart", exc)
                self._compact_revision = max(self._compact_revision, exc.compact_revision)
                _, revision, _ = await self.gateway.range(COMPACT_REV_KEY)
                self._broadcaster.close()
                self._broadcaster = Broadcaster(self._broadcaster._limit)
                self._recent.clear()
                self._recent_revisions.clear()
                self._recent_base = revision
                self._set_watched(revision)
            except (EtcdUnreachable, EtcdError) as exc:
                log.warning("etcd store watch broke (%s); resuming from revision %d", exc, self._watched + 1)
                await asyncio.sleep(RESUME_PAUSE)

    def _set_watched(self, revision: int, *, wake_all: bool = False) -> None:
        self._watched = max(self._watched, revision)
        if not self._visible_waiters:
            return
        keep = []
        for wanted, future in self._visible_waiters:
            if wake_all or wanted <= self._watched:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((wanted, future))
        self._visible_waiters = keep

    async def _visible(self, revision: int) -> None:
        """Wait until the store watch has published `revision` (not forever: a broken watch is resuming)."""
        if self._watched >= revision or self._closed:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._visible_waiters.append((revision, future))
        try:
            await asyncio.wait_for(future, VISIBLE_WAIT)
        except TimeoutError:
            log.warning("etcd store watch has not delivered revision %d after %.0fs", revision, VISIBLE_WAIT)

    def _remember(self, events: tuple[Event, ...]) -> None:
        self._recent.extend(events)
        self._recent_revisions.extend(e.revision for e in events)
        excess = len(self._recent) - self._recent_max
        if excess > self._recent_max // 4:
            cut = bisect.bisect_right(self._recent_revisions, self._recent_revisions[excess - 1])
            self._recent_base = self._recent_revisions[cut - 1]
            del self._recent[:cut]
            del self._recent_revisions[:cut]

    def _replay(self, prefix: str, after: int) -> builtins.list[Event]:
        """Remembered events under prefix after revision `after`."""
        if after < self._recent_base:
            raise Compacted(after, self._recent_base)  # forgotten: the watcher re-lists (rare)
        start = bisect.bisect_right(self._recent_revisions, after)
        return [e for e in self._recent[start:] if e.key.startswith(prefix)]

    async def compact(self, revision: int, *, window: int = 0) -> None:
        """Compact etcd to `revision` if this server wins the round (kube-apiserver's compactor CAS).
        (`window` is the log stores' step size; etcd compacts in its own batches.)"""
        revision = min(revision, self._watched)
        if revision <= self._compact_revision:
            return
        key = b64(COMPACT_REV_KEY)
        succeeded, _, responses = await self.gateway.txn(
            [{"key": key, "target": "VERSION", "result": "EQUAL", "version": str(self._compact_version)}],
            [{"request_put": {"key": key, "value": b64(str(revision).encode())}}],
            [{"request_range": {"key": key}}])
        if not succeeded:  # another server compacted this round: adopt its state
            kvs = responses[0].get("response_range", {}).get("kvs") or []
            if kvs:
                current = kv_of(kvs[0])
                self._compact_version = current.version
                with contextlib.suppress(ValueError):
                    self._compact_revision = max(self._compact_revision, int(current.value))
            return
        self._compact_version += 1
        try:
            await self.gateway.compact(revision)
        except EtcdCompacted:
            pass  # etcd's own auto-compaction went further already
        self._compact_revision = revision


class EtcdWatchStream(SubscriptionStream):
    """Events under a prefix after a revision: remembered ones first, then live ones, each once, in order."""

    def __init__(self, store: EtcdStore, prefix: str, start_revision: int, subscription: Subscription) -> None:
        self._store = store
        self._prefix = prefix
        super().__init__(subscription)
        self._cursor = start_revision  # every event at or below it was delivered (or is not wanted)
        self._replaying = True
        self._batch: Sequence[Event] = ()
        self._index = 0

    async def __anext__(self) -> Event:
        while True:
            while self._index < len(self._batch):
                event = self._batch[self._index]
                self._index += 1
                if event.revision > self._cursor:
                    if self._index == len(self._batch) or self._batch[self._index].revision != event.revision:
                        self._cursor = event.revision  # a revision's events come in one batch
                    return event
            if self._replaying:
                self._replaying = False
                if self._subscription.closed:
                    raise StopAsyncIteration
                events = self._store._replay(self._prefix, self._cursor)
                self._batch, self._index = events, 0
                continue
            live = await self._subscription.next_batch()
            if live is None:
                raise StopAsyncIteration
            self._batch, self._index = live, 0


class _DirectWatch(AsyncIterator[Event]):
    """A watch from before the remembered events: its own etcd watch (one HTTP stream) from that revision."""

    def __init__(self, store: EtcdStore, prefix: str, start_revision: int) -> None:
        self._store = store
        low, high = store._range_of(prefix)
        self._stream = store.gateway.watch(low, high, start_revision + 1)
        self._start = start_revision
        self._pending: list[Event] = []
        self._closing: asyncio.Task[None] | None = None
        self.cut_off = False

    def __aiter__(self) -> _DirectWatch:
        return self

    async def __anext__(self) -> Event:
        while not self._pending:
            try:
                result = await self._stream.__anext__()
            except EtcdCompacted as exc:
                raise Compacted(self._start, exc.compact_revision) from exc
            except EtcdError:
                self.cut_off = True  # the stream broke: the watcher re-lists
                raise StopAsyncIteration from None
            self._pending = self._store._events_of(result)
        return self._pending.pop(0)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._stream.aclose()  # type: ignore[attr-defined]

    def close(self) -> None:
        self._closing = asyncio.ensure_future(self.aclose())
