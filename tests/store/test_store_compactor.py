from __future__ import annotations

import asyncio
from collections import deque

from nanokube.store import MemoryStore, run_compactor
from nanokube.store.compactor import compaction_target


def test_target_keeps_both_the_revision_and_the_time_window() -> None:
    marks = deque([(0.0, 100), (60.0, 5_000), (120.0, 30_000), (180.0, 40_000)])
    # At t=400 with keep 300 s: marks at <= 100 s qualify, the newest of them is revision 5,000.
    assert compaction_target(marks, 400.0, 40_000, 10_000, 300.0) == 5_000
    # The revision window is the tighter one here.
    marks = deque([(0.0, 100), (60.0, 5_000)])
    assert compaction_target(marks, 400.0, 12_000, 10_000, 300.0) == 2_000
    # Nothing old enough yet.
    assert compaction_target(deque([(350.0, 9)]), 400.0, 50_000, 10_000, 300.0) == 0


async def test_run_compactor_compacts_in_the_background() -> None:
    store = MemoryStore()
    await store.start()
    for i in range(30):
        await store.create(f"/cm/{i}", {"metadata": {"name": str(i)}})
    task = asyncio.create_task(run_compactor(store, keep_revisions=10, keep_seconds=0, interval=0.01))
    try:
        async with asyncio.timeout(5):
            while store.compact_revision != 20:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await store.close()
