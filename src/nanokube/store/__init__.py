"""Revisioned key-value store (kine's model) behind the apiserver."""

from nanokube.store.base import (
    Compacted,
    Event,
    EventType,
    KeyExists,
    KeyNotFound,
    KeyValue,
    Op,
    RevisionConflict,
    Store,
    StoreError,
)
from nanokube.store.compactor import run_compactor
from nanokube.store.log import FutureRevision, WatchStream
from nanokube.store.memory import MemoryStore
from nanokube.store.sqlite import SqliteStore

__all__ = [
    "Compacted",
    "Event",
    "EventType",
    "FutureRevision",
    "KeyExists",
    "KeyNotFound",
    "KeyValue",
    "MemoryStore",
    "Op",
    "RevisionConflict",
    "SqliteStore",
    "Store",
    "StoreError",
    "WatchStream",
    "run_compactor",
]
