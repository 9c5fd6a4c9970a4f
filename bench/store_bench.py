"""Store benchmark: creates/s with p50/p99 latency, list of 10,000 keys, watch fan-out.

    python bench/store_bench.py [--full] [--no-uvloop]

Each case uses a fresh SQLite file in a temporary directory (WAL, synchronous=NORMAL unless --full also
runs the synchronous=FULL case). Objects are ~1 KiB Pod-like JSON documents.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nanokube.store import MemoryStore, SqliteStore, Store

PREFIX = "/registry/pods/default/"


def pod(i: int) -> dict[str, Any]:
    name = f"web-{i:06d}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"5f0c5a52-0000-4000-8000-{i:012d}",
            "labels": {"app": "web", "pod-template-hash": "6d4cf56db6"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": f"VAR_{k}", "value": "x" * 24} for k in range(12)],
                }
            ],
            "nodeName": "node-1",
            "restartPolicy": "Always",
        },
        "status": {"phase": "Running", "podIP": f"10.42.{i // 250 % 250}.{i % 250 + 2}"},
    }


def prepared(count: int) -> list[dict[str, Any]]:
    """The objects to write, frozen out of the garbage collector: its passes over the benchmark's own
    input would otherwise show up as 10-30 ms store latencies."""
    objects = [pod(i) for i in range(count)]
    gc.collect()
    gc.freeze()
    return objects


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(label: str, count: int, elapsed: float, latencies: list[float]) -> None:
    print(
        f"{label:<44} {count / elapsed:>9.0f} ops/s   p50 {percentile(latencies, 0.5) * 1e6:>7.0f} us"
        f"   p99 {percentile(latencies, 0.99) * 1e6:>7.0f} us   max {max(latencies) * 1e6:>7.0f} us"
    )


async def with_store(kind: str, run: Callable[[Store], Awaitable[None]], **options: Any) -> None:
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="nanokube-bench-") as tmp:
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(os.path.join(tmp, "state.db"), **options)
        await store.start()
        try:
            await run(store)
        finally:
            await store.close()


async def sequential_creates(store: Store, count: int, label: str) -> None:
    objects = prepared(count)
    latencies = []
    started = time.perf_counter()
    for i, obj in enumerate(objects):
        t0 = time.perf_counter()
        await store.create(f"{PREFIX}web-{i:06d}", obj)
        latencies.append(time.perf_counter() - t0)
    report(label, count, time.perf_counter() - started, latencies)


async def concurrent_creates(store: Store, count: int, writers: int, label: str) -> None:
    objects = prepared(count)
    latencies: list[float] = []

    async def writer(first: int) -> None:
        for i in range(first, count, writers):
            t0 = time.perf_counter()
            await store.create(f"{PREFIX}web-{i:06d}", objects[i])
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0)  # a request handler yields on its socket I/O; without it one writer hogs the loop

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    report(label, count, time.perf_counter() - started, latencies)


async def lists(store: Store, count: int, label: str) -> None:
    for i in range(count):
        await store.create(f"{PREFIX}web-{i:06d}", pod(i))
    for i in range(0, count, 10):  # some history, as in a live cluster
        obj = pod(i)
        obj["status"]["phase"] = "Succeeded"
        await store.update(f"{PREFIX}web-{i:06d}", obj, None)
    full = []
    for _ in range(5):
        t0 = time.perf_counter()
        items, _ = await store.list(PREFIX)
        full.append(time.perf_counter() - t0)
        assert len(items) == count
    print(f"{label + f' list {count} (all)':<44} median {statistics.median(full) * 1e3:>7.1f} ms")
    paged = []
    for _ in range(3):
        t0 = time.perf_counter()
        items, at = await store.list(PREFIX, limit=500)
        seen = len(items)
        while len(items) == 500:
            items, _ = await store.list(PREFIX, start_key=items[-1].key, limit=500, revision=at)
            seen += len(items)
        paged.append(time.perf_counter() - t0)
        assert seen == count
    print(f"{label + f' list {count} (pages of 500)':<44} median {statistics.median(paged) * 1e3:>7.1f} ms")
    t0 = time.perf_counter()
    items, _ = await store.list(PREFIX, limit=500)
    print(f"{label + ' first page of 500':<44} {(time.perf_counter() - t0) * 1e3:>14.2f} ms")


async def fan_out(store: Store, watchers: int, events: int, label: str) -> None:
    streams = [store.watch(PREFIX, store.current_revision) for _ in range(watchers)]
    done = asyncio.Event()
    remaining = [watchers]

    async def consume(stream: Any) -> None:
        received = 0
        async for _event in stream:
            received += 1
            if received == events:
                break
        remaining[0] -= 1
        if not remaining[0]:
            done.set()

    tasks = [asyncio.create_task(consume(s)) for s in streams]
    await asyncio.sleep(0)
    objects = prepared(events)
    started = time.perf_counter()
    for i, obj in enumerate(objects):
        await store.create(f"{PREFIX}web-{i:06d}", obj)
    await done.wait()
    elapsed = time.perf_counter() - started
    await asyncio.gather(*tasks)
    print(f"{label:<44} {events / elapsed:>9.0f} writes/s with {watchers} watchers ({watchers * events / elapsed:,.0f} deliveries/s)")


async def main(full: bool) -> None:
    for count in (1_000, 10_000):
        await with_store("sqlite", lambda s, c=count: sequential_creates(s, c, f"sqlite NORMAL: {c} sequential creates"))
    await with_store("sqlite", lambda s: concurrent_creates(s, 10_000, 50, "sqlite NORMAL: 10000 creates, 50 writers"))
    if full:
        await with_store(
            "sqlite", lambda s: sequential_creates(s, 1_000, "sqlite FULL: 1000 sequential creates"), synchronous="FULL"
        )
    await with_store("memory", lambda s: sequential_creates(s, 10_000, "memory: 10000 sequential creates"))
    await with_store("sqlite", lambda s: lists(s, 10_000, "sqlite:"))
    await with_store("memory", lambda s: lists(s, 10_000, "memory:"))
    await with_store("sqlite", lambda s: fan_out(s, 100, 10_000, "sqlite: 10000 creates -> watchers"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also measure synchronous=FULL (fsync per commit)")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    if not args.no_uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(main(args.full))
