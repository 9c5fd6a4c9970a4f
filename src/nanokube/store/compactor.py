"""Background compaction: keep a window of history for watchers, forget the rest."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from nanokube.store.base import Store

log = logging.getLogger(__name__)


def compaction_target(
    marks: deque[tuple[float, int]], now: float, current: int, keep_revisions: int, keep_seconds: float
) -> int:
    """The newest revision that is both `keep_revisions` behind `current` and was already current
    `keep_seconds` ago (per the (time, revision) marks, oldest first), so both windows are kept; 0 if none."""
    aged = 0
    while marks and marks[0][0] <= now - keep_seconds:
        aged = marks.popleft()[1]
    if aged:
        marks.appendleft((now - keep_seconds, aged))  # still the best old-enough mark next time
    return max(0, min(aged, current - keep_revisions))


async def run_compactor(
    store: Store, *, keep_revisions: int = 10_000, keep_seconds: float = 300.0, interval: float = 60.0
) -> None:
    """Compact `store` every `interval` seconds until cancelled, keeping at least the last `keep_revisions`
    revisions and at least the last `keep_seconds` of history."""
    marks: deque[tuple[float, int]] = deque()
    while True:
        now = time.monotonic()
        marks.append((now, store.current_revision))
        target = compaction_target(marks, now, store.current_revision, keep_revisions, keep_seconds)
        if target > store.compact_revision:
            started = time.monotonic()
            await store.compact(target)
            log.info("compacted store to revision %d in %.3fs", target, time.monotonic() - started)
        await asyncio.sleep(interval)
