"""Behaviour every Store implementation shares (run against MemoryStore, SqliteStore and EtcdStore).

Revisions are counted from `b`, the store's revision when the test starts (etcd starts at 1, and one etcd
serves the whole session)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from nanokube.store import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    Op,
    RevisionConflict,
    Store,
    log,
)


def obj(name: str, **fields: object) -> dict:
    return {"kind": "ConfigMap", "metadata": {"name": name}, **fields}


def rv(value: bytes) -> str:
    return orjson.loads(value)["metadata"]["resourceVersion"]


async def take(stream, count: int) -> list[Event]:
    events = []
    async with asyncio.timeout(5):
        async for event in stream:
            events.append(event)
            if len(events) == count:
                break
    return events


async def settled(store: Store) -> None:
    """Wait until the store's own watch has seen every write so far (etcd: it follows etcd's watch)."""
    async with asyncio.timeout(10):
        while getattr(store, "_watched", store.current_revision) < store.current_revision:
            await asyncio.sleep(0.01)


async def test_create_get_stamps_resource_version(store: Store) -> None:
    b = store.current_revision
    original = obj("a", data={"k": "v"})
    created = await store.create("/cm/a", original)
    assert created.revision == store.current_revision == b + 1
    assert created.create_revision == b + 1
    assert rv(created.value) == str(b + 1)
    assert "resourceVersion" not in original["metadata"]  # the caller's dict is not modified
    got = await store.get("/cm/a")
    assert got == created
    assert orjson.loads(got.value)["data"] == {"k": "v"}
    assert await store.get("/cm/missing") is None


async def test_create_existing_key_fails(store: Store) -> None:
    b = store.current_revision
    await store.create("/cm/a", obj("a"))
    with pytest.raises(KeyExists):
        await store.create("/cm/a", obj("a"))
    assert store.current_revision == b + 1


async def test_update_checks_revision(store: Store) -> None:
    b = store.current_revision
    first = await store.create("/cm/a", obj("a"))
    second = await store.update("/cm/a", obj("a", data={"n": "2"}), first.revision)
    assert second.revision == b + 2 and second.create_revision == b + 1 and rv(second.value) == str(b + 2)
    with pytest.raises(RevisionConflict) as conflict:
        await store.update("/cm/a", obj("a", data={"n": "stale"}), first.revision)
    assert conflict.value.current == b + 2
    third = await store.update("/cm/a", obj("a", data={"n": "3"}), None)  # unconditional
    assert third.revision == b + 3
    assert (await store.get("/cm/a")) == third
    with pytest.raises(KeyNotFound):
        await store.update("/cm/missing", obj("missing"), None)


async def test_delete_then_recreate(store: Store) -> None:
    b = store.current_revision
    created = await store.create("/cm/a", obj("a", data={"x": "1"}))
    with pytest.raises(RevisionConflict):
        await store.delete("/cm/a", created.revision + 7)
    deleted = await store.delete("/cm/a", created.revision)
    assert deleted.revision == b + 2 and rv(deleted.value) == str(b + 2)
    assert orjson.loads(deleted.value)["data"] == {"x": "1"}
    assert await store.get("/cm/a") is None
    with pytest.raises(KeyNotFound):
        await store.delete("/cm/a")
    with pytest.raises(KeyNotFound):
        await store.update("/cm/a", obj("a"), None)
    again = await store.create("/cm/a", obj("a"))
    assert again.revision == again.create_revision == b + 3


async def test_txn_commits_all_ops_together(store: Store) -> None:
    old = await store.create("/alloc/ip/10.0.0.9", obj("old"))
    results = await store.txn([
        Op("create", "/svc/default/web", obj("web")),
        Op("create", "/alloc/ip/10.0.0.10", obj("ip")),
        Op("delete", "/alloc/ip/10.0.0.9", expected_revision=old.revision),
    ])
    assert results[-1].revision == store.current_revision
    assert [r.key for r in results] == ["/svc/default/web", "/alloc/ip/10.0.0.10", "/alloc/ip/10.0.0.9"]
    assert orjson.loads(results[2].value)["metadata"]["name"] == "old"  # a delete returns the last value
    assert (await store.get("/svc/default/web")) == results[0]
    assert await store.get("/alloc/ip/10.0.0.9") is None


async def test_txn_commits_all_ops_with_one_revision_each(log_store: Store) -> None:
    store = log_store
    await store.create("/alloc/ip/10.0.0.9", obj("old"))
    results = await store.txn(
        [
            Op("create", "/svc/default/web", obj("web")),
            Op("create", "/alloc/ip/10.0.0.10", obj("ip")),
            Op("update", "/svc/default/web", obj("web", spec={"x": 1}), 2),  # sees the create above
            Op("delete", "/alloc/ip/10.0.0.9", expected_revision=1),
        ]
    )
    assert [r.revision for r in results] == [2, 3, 4, 5]
    assert store.current_revision == 5
    assert (await store.get("/svc/default/web")).revision == 4
    assert await store.get("/alloc/ip/10.0.0.9") is None


async def test_txn_failure_leaves_nothing(store: Store) -> None:
    b = store.current_revision
    await store.create("/alloc/ip/10.0.0.10", obj("taken"))
    stream = store.watch("/", store.current_revision)
    with pytest.raises(KeyExists):
        await store.txn(
            [
                Op("create", "/svc/default/web", obj("web")),
                Op("create", "/alloc/ip/10.0.0.10", obj("ip")),
            ]
        )
    with pytest.raises(RevisionConflict):
        await store.txn([Op("create", "/svc/default/web", obj("web")), Op("delete", "/alloc/ip/10.0.0.10", None, 99)])
    assert store.current_revision == b + 1
    assert await store.get("/svc/default/web") is None
    # No event was published for the failed txns: the next one seen is the next commit.
    await store.create("/svc/default/other", obj("other"))
    assert [(e.key, e.revision) for e in await take(stream, 1)] == [("/svc/default/other", b + 2)]
    stream.close()


async def test_list_prefix_limit_start_key(store: Store) -> None:
    b = store.current_revision
    for name in ["b", "a", "c", "d"]:
        await store.create(f"/cm/default/{name}", obj(name))
    await store.create("/cm/defaultx/z", obj("z"))
    await store.create("/cm/other/e", obj("e"))
    await store.delete("/cm/default/c")

    items, at = await store.list("/cm/default/")
    assert [i.key for i in items] == ["/cm/default/a", "/cm/default/b", "/cm/default/d"]
    assert at == store.current_revision == b + 7

    page, at = await store.list("/cm/", limit=2)
    assert [i.key for i in page] == ["/cm/default/a", "/cm/default/b"]
    page, _ = await store.list("/cm/", start_key=page[-1].key, limit=2, revision=at)
    assert [i.key for i in page] == ["/cm/default/d", "/cm/defaultx/z"]
    page, _ = await store.list("/cm/", start_key=page[-1].key, limit=2, revision=at)
    assert [i.key for i in page] == ["/cm/other/e"]
    everything, _ = await store.list("")
    assert len(everything) == 5


async def test_list_at_revision_is_consistent(store: Store) -> None:
    b = store.current_revision
    a = await store.create("/cm/a", obj("a", data={"v": "1"}))
    await store.create("/cm/b", obj("b"))
    page, at = await store.list("/cm/", limit=1)
    assert at == b + 2
    await store.update("/cm/a", obj("a", data={"v": "2"}), a.revision)
    await store.delete("/cm/b")
    await store.create("/cm/c", obj("c"))
    # A second page at the first page's revision still sees b and not c.
    rest, at2 = await store.list("/cm/", start_key=page[-1].key, revision=at)
    assert at2 == b + 2
    assert [(i.key, i.revision) for i in rest] == [("/cm/b", b + 2)]
    old, _ = await store.list("/cm/", revision=b + 1)
    assert [(i.key, rv(i.value)) for i in old] == [("/cm/a", str(b + 1))]
    now, _ = await store.list("/cm/")
    assert [(i.key, i.revision) for i in now] == [("/cm/a", b + 3), ("/cm/c", b + 5)]
    with pytest.raises(FutureRevision):
        await store.list("/cm/", revision=store.current_revision + 1)


async def test_watch_replays_then_streams_live(store: Store) -> None:
    b = store.current_revision
    a = await store.create("/cm/a", obj("a"))
    await store.create("/other/x", obj("x"))
    await store.update("/cm/a", obj("a", data={"v": "2"}), a.revision)
    stream = store.watch("/cm/", b)
    replayed = await take(stream, 2)
    assert [(e.type, e.key, e.revision) for e in replayed] == [("ADDED", "/cm/a", b + 1), ("MODIFIED", "/cm/a", b + 3)]
    assert replayed[1].prev_value == a.value

    await store.create("/other/y", obj("y"))
    await store.delete("/cm/a")
    await store.create("/cm/b", obj("b"))
    await store.create("/cm/c", obj("c"))
    live = await take(stream, 3)
    assert [(e.type, e.key, e.revision) for e in live] == [
        ("DELETED", "/cm/a", b + 5), ("ADDED", "/cm/b", b + 6), ("ADDED", "/cm/c", b + 7)]
    deleted = live[0]
    assert rv(deleted.value) == str(b + 5) and orjson.loads(deleted.value)["data"] == {"v": "2"}
    assert rv(deleted.prev_value) == str(b + 3)
    stream.close()
    assert store.watcher_count == 0


async def test_watch_from_a_revision_has_no_gaps_or_duplicates(store: Store) -> None:
    b = store.current_revision
    for i in range(20):
        await store.create(f"/cm/{i:02d}", obj(str(i)))
    stream = store.watch("/cm/", b + 10)
    # Commits between the watch call and its first read arrive once, in order.
    for i in range(20, 25):
        await store.create(f"/cm/{i:02d}", obj(str(i)))
    events = await take(stream, 15)
    assert [e.revision for e in events] == list(range(b + 11, b + 26))
    stream.close()


async def test_watch_same_event_object_for_every_watcher(store: Store) -> None:
    b = store.current_revision
    first, second = store.watch("/cm/", b), store.watch("/cm/a", b)
    await store.create("/cm/a", obj("a"))
    [one], [two] = await take(first, 1), await take(second, 1)
    assert one is two
    first.close()
    second.close()


async def test_slow_watcher_is_cut_off(store: Store) -> None:
    store._broadcaster._limit = 5  # small buffer to make the point quickly
    slow = store.watch("/cm/", store.current_revision)
    fine = store.watch("/cm/", store.current_revision)
    first = await store.create("/cm/a", obj("a"))
    assert [e.revision for e in await take(fine, 1)] == [first.revision]
    assert [e.revision for e in await take(slow, 1)] == [first.revision]
    for i in range(10):
        await store.create(f"/cm/{i}", obj(str(i)))
        await take(fine, 1)
    assert [e async for e in slow] == []  # its stream simply ends; the watcher re-lists
    assert slow.cut_off
    fine.close()


async def test_watch_ends_when_store_closes(store: Store) -> None:
    stream = store.watch("/cm/", store.current_revision)
    await store.create("/cm/a", obj("a"))
    assert len(await take(stream, 1)) == 1
    waiting = asyncio.create_task(take(stream, 1))
    await asyncio.sleep(0)
    await store.close()
    assert await waiting == []
    assert not stream.cut_off


async def test_compaction(store: Store) -> None:
    b = store.current_revision
    a = await store.create("/cm/a", obj("a", data={"v": "1"}))  # 1
    await store.create("/cm/b", obj("b"))  # 2
    await store.update("/cm/a", obj("a", data={"v": "2"}), a.revision)  # 3
    await store.delete("/cm/b")  # 4
    await store.create("/cm/c", obj("c"))  # 5
    await store.update("/cm/c", obj("c", data={"v": "2"}), b + 5)  # 6
    await settled(store)

    await store.compact(b + 4)
    assert store.compact_revision == b + 4
    now, _ = await store.list("/cm/")
    assert [(i.key, i.revision) for i in now] == [("/cm/a", b + 3), ("/cm/c", b + 6)]
    at4, _ = await store.list("/cm/", revision=b + 4)
    assert [(i.key, i.revision) for i in at4] == [("/cm/a", b + 3)]
    with pytest.raises(Compacted):
        await store.list("/cm/", revision=b + 3)
    with pytest.raises(Compacted) as gone:
        store.watch("/cm/", b + 3)
    assert gone.value.compact_revision == b + 4
    stream = store.watch("/cm/", b + 4)
    events = await take(stream, 2)
    assert [(e.type, e.revision) for e in events] == [("ADDED", b + 5), ("MODIFIED", b + 6)]
    assert events[1].prev_value is not None
    stream.close()

    await store.compact(b + 2)  # older than the compaction point: nothing to do
    assert store.compact_revision == b + 4
    await store.compact(10**9)  # clamped to the current revision
    # (etcd: the compactor's own CAS write on compact_rev_key takes a revision too)
    assert b + 6 <= store.compact_revision <= store.current_revision
    assert [i.key for i in (await store.list("/cm/"))[0]] == ["/cm/a", "/cm/c"]
    # Recreating a key whose whole history was compacted away works, and revisions keep counting.
    recreated = await store.create("/cm/b", obj("b"))
    assert recreated.revision == store.current_revision > store.compact_revision


async def test_compaction_removes_superseded_rows(store: Store) -> None:
    for i in range(50):
        await store.create(f"/cm/{i:02d}", obj(str(i)))
    for round_ in range(3):
        for i in range(50):
            await store.update(f"/cm/{i:02d}", obj(str(i), data={"r": str(round_)}), None)
    for i in range(0, 50, 2):
        await store.delete(f"/cm/{i:02d}")
    before, _ = await store.list("/cm/")
    await store.compact(store.current_revision, window=7)  # many small windows
    after, _ = await store.list("/cm/")
    assert after == before and len(after) == 25
    # Only the live rows are left: a replay from the compaction point has nothing to send.
    stream = store.watch("/", store.compact_revision)
    await store.create("/cm/new", obj("new"))
    assert [e.key for e in await take(stream, 1)] == ["/cm/new"]
    stream.close()
    if hasattr(store, "db"):
        assert store.db.execute("SELECT COUNT(*) FROM log").fetchone()[0] == 26
    elif hasattr(store, "_log"):
        assert len(store._log) == 26


async def test_watch_replay_served_from_the_log_beyond_recent_events(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log, "REPLAY_PAGE", 4)  # several pages
    b = store.current_revision
    store._recent_max = 4  # forces replay through the backend rather than the in-memory recent events
    for i in range(30):
        await store.create(f"/cm/{i:02d}", obj(str(i)))
        await store.create(f"/x/{i:02d}", obj(str(i)))
    await settled(store)
    assert store._recent_base > b
    stream = store.watch("/cm/", b)
    events = await take(stream, 30)
    assert [e.revision for e in events] == list(range(b + 1, b + 61, 2))
    stream.close()


async def test_queued_writes_commit_together_each_with_its_own_outcome(log_store: Store) -> None:
    store = log_store
    await store.create("/cm/taken", obj("taken"))
    stream = store.watch("/cm/", store.current_revision)
    async with store._write_lock:  # as during a checkpoint or compaction step: writers queue up
        writes = [
            asyncio.create_task(store.create("/cm/a", obj("a"))),
            asyncio.create_task(store.create("/cm/taken", obj("again"))),  # fails alone
            asyncio.create_task(store.txn([Op("create", "/cm/b", obj("b")), Op("update", "/cm/a", obj("a", n=2), 2)])),
            asyncio.create_task(store.create("/cm/a", obj("a"))),  # sees the first write of the batch
            asyncio.create_task(store.delete("/cm/taken", expected_revision=1)),
        ]
        await asyncio.sleep(0)
        assert store.current_revision == 1
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert results[0].revision == 2
    assert isinstance(results[1], KeyExists)
    assert [kv.revision for kv in results[2]] == [3, 4]
    assert isinstance(results[3], KeyExists)
    assert results[4].revision == 5
    events = await take(stream, 4)
    assert [(e.type, e.key, e.revision) for e in events] == [
        ("ADDED", "/cm/a", 2),
        ("ADDED", "/cm/b", 3),
        ("MODIFIED", "/cm/a", 4),
        ("DELETED", "/cm/taken", 5),
    ]
    assert events[2].prev_value == results[0].value
    stream.close()
    assert (await store.get("/cm/a")).revision == 4
