"""The durable store: kine's one-table log on SQLite.

Durability: WAL with synchronous=NORMAL. A commit returns once its frames are written to the WAL file, i.e.
handed to the kernel, so killing the process (kill -9, OOM, crash) loses no acknowledged write; the next open
replays the WAL. Only an OS crash or power loss may drop the last few commits (never corrupts the file).
Pass synchronous="FULL" to fsync every commit and survive power loss too, at a large cost per write.

Checkpoints (copying the WAL into the database file, with fsyncs) would otherwise run inside a commit now
and then and stall the whole event loop for milliseconds; they run in a worker thread on a second connection
instead, every CHECKPOINT_EVERY written rows, after the commit that crosses the mark (whose caller waits for it,
like the other writers; readers and watchers do not).

This process is the only writer (an flock on `<path>-lock` enforces it), so the next revision lives in
memory and rows are inserted with explicit ids. The UNIQUE(key, prev_revision) index still guarantees that
two writes from the same previous revision can never both land.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from typing import Any

from nanokube.store.base import Event, KeyValue, StoreError
from nanokube.store.broadcast import DEFAULT_SUBSCRIBER_LIMIT
from nanokube.store.log import KEY_MAX, RECENT_EVENTS, LogStore, Row, event_of

CHECKPOINT_EVERY = 1000
# Newest row per key kept in memory (write planning and get() read it for every request); bounded.
LATEST_CACHE = 20_000
_ABSENT = None

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY,  -- the revision
    key TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS log_key_prev ON log (key, prev_revision);
CREATE INDEX IF NOT EXISTS log_key_id ON log (key, id);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

ROW_COLUMNS = "id, key, created, deleted, create_revision, prev_revision, value"
SELECT_LATEST = f"SELECT {ROW_COLUMNS} FROM log WHERE key = ? ORDER BY id DESC LIMIT 1"
INSERT_ROW = f"INSERT INTO log ({ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
# SQLite takes the bare columns (value, create_revision, deleted) from the row holding MAX(id).
SELECT_RANGE = """
SELECT key, value, MAX(id), create_revision, deleted FROM log
WHERE key {low_op} ? AND key < ? AND id <= ?
GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT ?
"""
SELECT_RANGE_INCLUSIVE = SELECT_RANGE.format(low_op=">=")
SELECT_RANGE_EXCLUSIVE = SELECT_RANGE.format(low_op=">")
SELECT_AFTER = """
SELECT r.id, r.key, r.created, r.deleted, r.create_revision, r.prev_revision, r.value, p.value, p.deleted
FROM log AS r LEFT JOIN log AS p ON p.id = r.prev_revision
WHERE r.id > ? AND r.key >= ? AND r.key < ? ORDER BY r.id LIMIT ?
"""
DELETE_SUPERSEDED = "DELETE FROM log WHERE id IN (SELECT prev_revision FROM log WHERE id > ? AND id <= ?)"
DELETE_TOMBSTONES = "DELETE FROM log WHERE id > ? AND id <= ? AND deleted = 1"
SAVE_META = "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"


class SqliteStore(LogStore):
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        subscriber_limit: int = DEFAULT_SUBSCRIBER_LIMIT,
        recent_events: int = RECENT_EVENTS,
    ) -> None:
        super().__init__(subscriber_limit=subscriber_limit, recent_events=recent_events)
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = os.fspath(path)
        self._synchronous = synchronous.upper()
        self._db: sqlite3.Connection | None = None
        self._checkpoint_db: sqlite3.Connection | None = None
        self._uncheckpointed = 0
        self._lock_fd: int | None = None
        # key -> newest row (None: the key has no row). Only this process writes, so it is exact; it is
        # filled on reads and updated on every commit, and dropped after each compaction step.
        self._newest: dict[str, Row | None] = {}
        # Every key the log holds a row for (a superset after compaction): a create of a new name needs no query.
        self._known: set[str] = set()

    async def start(self) -> None:
        self._lock_fd = _lock_exclusively(self.path + "-lock")
        _owner_only(self.path)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{self.path}: SQLite would not use WAL (journal_mode={mode})")
            db.execute(f"PRAGMA synchronous = {self._synchronous}")
            db.execute("PRAGMA cache_size = -32768")  # 32 MiB
            db.execute("PRAGMA wal_autocheckpoint = 0")  # see the module docstring
            db.execute("PRAGMA journal_size_limit = 67108864")
            db.executescript(SCHEMA)
            max_id = db.execute("SELECT MAX(id) FROM log").fetchone()[0] or 0
            compacted = db.execute("SELECT value FROM meta WHERE name = 'compact_revision'").fetchone()
            self._known = {key for (key,) in db.execute("SELECT DISTINCT key FROM log")}
        except BaseException:
            db.close()
            self._unlock()
            raise
        self._db = db
        self._checkpoint_db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._checkpoint_db.execute(f"PRAGMA synchronous = {self._synchronous}")
        self._compact_revision = compacted[0] if compacted else 0
        # Compaction may have deleted the newest rows (tombstones), never anything above compact_revision.
        self._revision = max(max_id, self._compact_revision)
        await super().start()

    async def close(self) -> None:
        await super().close()
        if self._checkpoint_db is not None:
            self._checkpoint_db.close()
            self._checkpoint_db = None
        if self._db is not None:
            self._db.close()
            self._db = None
        self._unlock()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    def _latest(self, key: str) -> Row | None:
        try:
            return self._newest[key]
        except KeyError:
            pass
        if key not in self._known:
            return _ABSENT
        found = self.db.execute(SELECT_LATEST, (key,)).fetchone()
        row = _row(found) if found else _ABSENT
        self._remember_newest(key, row)
        return row

    def _remember_newest(self, key: str, row: Row | None) -> None:
        newest = self._newest
        newest[key] = row
        if len(newest) > LATEST_CACHE:  # forget the oldest-inserted tenth (dicts keep insertion order)
            for stale in list(newest)[: LATEST_CACHE // 10]:
                del newest[stale]

    def _append(self, rows: list[Row]) -> None:
        self._write(INSERT_ROW, [_params(row) for row in rows])
        for row in rows:
            self._known.add(row.key)
            self._newest.pop(row.key, None)
            self._remember_newest(row.key, row)

    def _range(self, low: str, high: str, low_inclusive: bool, limit: int, revision: int) -> list[KeyValue]:
        query = SELECT_RANGE_INCLUSIVE if low_inclusive else SELECT_RANGE_EXCLUSIVE
        found = self.db.execute(query, (low, high, revision, limit if limit > 0 else -1)).fetchall()
        return [KeyValue(key, value, rev, create_revision) for key, value, rev, create_revision, _ in found]

    def _events_after(self, prefix: str, revision: int, limit: int) -> list[Event]:
        found = self.db.execute(SELECT_AFTER, (revision, prefix, prefix + KEY_MAX, limit)).fetchall()
        return [event_of(_row(r), r[7] if r[7] is not None and not r[8] else None) for r in found]

    def _save_compact_revision(self, revision: int) -> None:
        self._write(SAVE_META, [("compact_revision", revision)])

    def _compact_window(self, low: int, high: int) -> int:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = db.execute(DELETE_SUPERSEDED, (low, high)).rowcount
            removed += db.execute(DELETE_TOMBSTONES, (low, high)).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            self._newest.clear()  # tombstones may be gone from the log now
        self._written(removed)
        return removed

    def _write(self, statement: str, params: list[tuple[Any, ...]]) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(statement, params)
            db.execute("COMMIT")
            self._written(len(params))
        except sqlite3.IntegrityError as error:
            db.execute("ROLLBACK")
            raise StoreError(f"{self.path}: conflicting write from outside this store: {error}") from error
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _written(self, rows: int) -> None:
        self._uncheckpointed += rows

    async def _after_write(self) -> None:
        # Runs with the write lock held: a checkpoint racing with commits never catches up with the WAL's
        # end, and only a fully checkpointed WAL is rewound, so the file would grow without bound.
        if self._uncheckpointed >= CHECKPOINT_EVERY and self._checkpoint_db is not None:
            self._uncheckpointed = 0
            await asyncio.to_thread(self._checkpoint_db.execute, "PRAGMA wal_checkpoint(PASSIVE)")

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _owner_only(path: str) -> None:
    """The database (it holds Secrets) readable by its owner only, like the token. SQLite gives the WAL and
    shared-memory files the database file's mode, so they follow; existing ones (older versions made them
    0644) are tightened too."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    for name in (path, path + "-wal", path + "-shm", path + "-lock"):
        try:
            os.chmod(name, 0o600)
        except FileNotFoundError:
            pass


def _lock_exclusively(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"{path}: the store is in use by another process") from None
    return fd


def _row(found: tuple[Any, ...]) -> Row:
    return Row(found[0], found[1], bool(found[2]), bool(found[3]), found[4], found[5], found[6])


def _params(row: Row) -> tuple[Any, ...]:
    return (row.revision, row.key, row.created, row.deleted, row.create_revision, row.prev_revision, row.value)
