"""The store interface: a revisioned key-value log in the shape of kine/etcd.

Every write appends one row per key; the row id is the revision, and the revision of the newest row of
a key is that object's resourceVersion. Values are the object's JSON bytes *with*
`metadata.resourceVersion` already set to the row's revision (the store writes it), so a reader and a
watcher can ship the bytes as they are.

Implementations: `sqlite.SqliteStore` (durable, WAL, acknowledged after commit),
`memory.MemoryStore` (unit tests) and `etcd.EtcdStore` (etcd v3; revisions are etcd's, and all ops of one
txn share one revision there, each key at most once per txn).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class StoreError(Exception):
    """Base for store failures the apiserver maps to Status errors."""


class KeyExists(StoreError):
    """create() of a key that has a live value."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class KeyNotFound(StoreError):
    """update()/delete() of a key with no live value."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class RevisionConflict(StoreError):
    """update()/delete() whose expected revision is not the key's current revision."""

    def __init__(self, key: str, current: int) -> None:
        super().__init__(key)
        self.key = key
        self.current = current


class Compacted(StoreError):
    """watch()/list() at a revision older than the compaction point (HTTP 410 Gone)."""

    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(f"requested revision {requested} is compacted (oldest {compact_revision})")
        self.requested = requested
        self.compact_revision = compact_revision


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes  # JSON with metadata.resourceVersion == str(revision)
    revision: int  # revision of this key's newest row (its resourceVersion)
    create_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    """One committed change. For DELETED, `value` is the last live value with resourceVersion set to
    the deletion revision (as the Kubernetes watch shows it), `prev_value` is the value before."""

    type: EventType
    key: str
    value: bytes
    revision: int
    prev_value: bytes | None = None


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of an atomic transaction.

    kind "create": fails with KeyExists if the key is live.
    kind "update": `expected_revision` None means unconditional; fails with KeyNotFound / RevisionConflict.
    kind "delete": same conditions as update.
    `obj` is the object (a JSON-able dict) to write for create/update; the store sets its
    metadata.resourceVersion to the new revision (one revision per op, in order).
    """

    kind: Literal["create", "update", "delete"]
    key: str
    obj: dict[str, Any] | None = None
    expected_revision: int | None = None


class TxnWrites:
    """create/update/delete as one-op transactions, for a store whose every write goes through `txn`."""

    async def txn(self, ops: builtins.list[Op]) -> builtins.list[KeyValue]:
        raise NotImplementedError

    async def create(self, key: str, obj: dict[str, Any]) -> KeyValue:
        return (await self.txn([Op("create", key, obj)]))[0]

    async def update(self, key: str, obj: dict[str, Any], expected_revision: int | None) -> KeyValue:
        return (await self.txn([Op("update", key, obj, expected_revision)]))[0]

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        return (await self.txn([Op("delete", key, None, expected_revision)]))[0]


class Store(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def current_revision(self) -> int: ...

    @property
    def compact_revision(self) -> int: ...

    async def get(self, key: str) -> KeyValue | None: ...

    async def list(
        self, prefix: str, *, start_key: str | None = None, limit: int = 0, revision: int = 0
    ) -> tuple[list[KeyValue], int]:
        """Live keys under `prefix` with key > start_key (exclusive), sorted by key, at most `limit`
        (0 = all), as of `revision` (0 = now; older than compact_revision raises Compacted).
        Returns (items, the revision the list is consistent at)."""
        ...

    async def create(self, key: str, obj: dict[str, Any]) -> KeyValue: ...

    async def update(self, key: str, obj: dict[str, Any], expected_revision: int | None) -> KeyValue: ...

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        """Returns the deleted value (resourceVersion = the deletion's revision)."""
        ...

    async def txn(self, ops: builtins.list[Op]) -> builtins.list[KeyValue]:
        """All ops commit together or none does (first failing op's error is raised)."""
        ...

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[Event]:
        """Events for keys under prefix with revision > start_revision, in revision order, then live
        ones as they commit. Raises Compacted when start_revision < compact_revision. A consumer that
        falls too far behind gets its iterator ended (it re-lists, like a Kubernetes watch)."""
        ...

    async def compact(self, revision: int) -> None: ...
