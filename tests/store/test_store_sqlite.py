"""SqliteStore specifics: durability across reopen and kill -9, the single-writer lock."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from nanokube.store import Op, RevisionConflict, SqliteStore, StoreError


async def open_store(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    await store.start()
    return store


async def test_reopen_sees_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = await open_store(path)
    a = await store.create("/cm/a", {"metadata": {"name": "a"}})
    await store.create("/cm/b", {"metadata": {"name": "b"}})
    await store.update("/cm/a", {"metadata": {"name": "a"}, "data": {"v": "2"}}, a.revision)
    await store.txn([Op("delete", "/cm/b"), Op("create", "/cm/c", {"metadata": {"name": "c"}})])
    before, at = await store.list("/")
    await store.close()

    store = await open_store(path)
    try:
        assert store.current_revision == at == 5
        after, _ = await store.list("/")
        assert after == before
        assert [(i.key, i.revision) for i in after] == [("/cm/a", 3), ("/cm/c", 5)]
        assert (await store.list("/", revision=2))[0][1].key == "/cm/b"
        stream = store.watch("/cm/", 0)  # history is replayed from the file
        replayed = []
        async with asyncio.timeout(5):
            async for event in stream:
                replayed.append((event.type, event.revision))
                if len(replayed) == 5:
                    break
        assert replayed == [("ADDED", 1), ("ADDED", 2), ("MODIFIED", 3), ("DELETED", 4), ("ADDED", 5)]
        stream.close()
        assert (await store.create("/cm/d", {"metadata": {"name": "d"}})).revision == 6
    finally:
        await store.close()


async def test_compaction_survives_reopen_and_revisions_never_go_back(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = await open_store(path)
    await store.create("/cm/a", {"metadata": {"name": "a"}})
    await store.create("/cm/b", {"metadata": {"name": "b"}})
    await store.delete("/cm/b")  # revision 3 is the newest row, a tombstone
    await store.compact(3)  # ...which compaction removes
    await store.close()

    store = await open_store(path)
    try:
        assert store.compact_revision == 3
        assert store.current_revision == 3
        assert store.db.execute("SELECT MAX(id) FROM log").fetchone()[0] == 1
        assert (await store.create("/cm/b", {"metadata": {"name": "b"}})).revision == 4
    finally:
        await store.close()


async def test_second_writer_on_the_same_file_is_refused(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "state.db")
    try:
        with pytest.raises(StoreError, match="in use"):
            await open_store(tmp_path / "state.db")
    finally:
        await store.close()
    again = await open_store(tmp_path / "state.db")  # free again once closed
    await again.close()


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from nanokube.store import Op, SqliteStore

    async def main(path):
        store = SqliteStore(path)
        await store.start()
        i = 0
        while True:
            i += 1
            if i % 3:
                await store.create(f"/k/{i:07d}", {"metadata": {"name": str(i)}, "data": {"x": "y" * 200}})
            else:
                await store.txn([Op("create", f"/k/{i:07d}", {"metadata": {"name": str(i)}}),
                                 Op("update", f"/k/{i - 1:07d}", {"metadata": {"name": str(i - 1)}, "n": i})])
            print(i, flush=True)  # acknowledged: the commit has returned

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_kill_9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    writer = await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, str(path), stdout=subprocess.PIPE)
    acknowledged = []
    try:
        async with asyncio.timeout(30):
            while len(acknowledged) < 3000:
                line = await writer.stdout.readline()
                assert line, "the writer died on its own"
                acknowledged.append(int(line))
    finally:
        # Exactly one kill: a second one could reap the process behind asyncio's back (returncode 255).
        writer.kill()
        # Whatever it printed before it died was acknowledged too.
        acknowledged += [int(line) for line in (await writer.stdout.read()).split()]
        await writer.wait()
    assert writer.returncode == -signal.SIGKILL

    store = await open_store(path)
    try:
        items, at = await store.list("/k/")
        keys = {item.key for item in items}
        missing = [i for i in acknowledged if f"/k/{i:07d}" not in keys]
        assert not missing, f"lost acknowledged writes: {missing[:10]}"
        last = acknowledged[-1]
        if last % 3 == 0:  # the final txn's update is there too
            updated = await store.get(f"/k/{last - 1:07d}")
            assert orjson.loads(updated.value)["n"] == last
        # Revisions continue after the newest surviving row.
        assert store.current_revision == at >= len(acknowledged)
        assert (await store.create("/k/after", {"metadata": {"name": "after"}})).revision == at + 1
    finally:
        await store.close()


async def test_newest_row_cache_agrees_with_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads and write planning come from the in-memory newest-row cache; with a tiny cache (constant eviction)
    and compaction in between, every answer must still be the one the file gives after a reopen."""
    from nanokube.store import sqlite

    monkeypatch.setattr(sqlite, "LATEST_CACHE", 10)
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await store.start()
    for i in range(40):
        await store.create(f"/k/{i}", {"metadata": {"name": str(i)}, "v": 0})
    for i in range(0, 40, 2):
        kv = await store.get(f"/k/{i}")
        assert kv is not None
        await store.update(f"/k/{i}", {"metadata": {"name": str(i)}, "v": 1}, kv.revision)
    for i in range(0, 40, 4):
        await store.delete(f"/k/{i}")
    await store.compact(store.current_revision)
    for i in range(0, 40, 8):  # re-created after their tombstones were compacted away
        await store.create(f"/k/{i}", {"metadata": {"name": str(i)}, "v": 2})
    with pytest.raises(RevisionConflict):
        await store.update("/k/1", {"v": 9}, 1)
    seen = {i: await store.get(f"/k/{i}") for i in range(40)}
    await store.close()
    again = SqliteStore(path)
    await again.start()
    try:
        for i, kv in seen.items():
            fresh = await again.get(f"/k/{i}")
            assert (kv and (kv.value, kv.revision)) == (fresh and (fresh.value, fresh.revision)), i
        assert [orjson.loads(kv.value)["v"] for kv in (await again.list("/k/"))[0]].count(2) == 5
    finally:
        await again.close()
