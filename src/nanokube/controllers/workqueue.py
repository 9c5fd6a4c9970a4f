"""A keyed, de-duplicating work queue with delayed and rate-limited re-adds (client-go's workqueue).

A key is never handed to two workers at once: a key added while it is being processed is marked dirty
and handed out again once the worker calls `done`. Adding a key that is already waiting is a no-op, so
a burst of events for one object costs one sync.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 30.0) -> None:
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._debounced: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}  # key -> (first add, timer)
        self._wakeup = asyncio.Event()
        self._base_delay = base_delay
        self._max_delay = max_delay

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: Hashable) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._wakeup.set()

    def add_after(self, key: Hashable, delay: float) -> None:
        """Add `key` after `delay` seconds; an earlier pending timer for the key wins."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def add_debounced(self, key: Hashable, quiet: float, max_wait: float) -> None:
        """Add `key` once no further add came for `quiet` seconds, but at most `max_wait` after the first."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        pending = self._debounced.get(key)
        first = now if pending is None else pending[0]
        if pending is not None:
            pending[1].cancel()
        when = min(now + quiet, first + max_wait)
        self._debounced[key] = (first, loop.call_at(when, self._fire_debounced, key))

    def _fire_debounced(self, key: Hashable) -> None:
        self._debounced.pop(key, None)
        self.add(key)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: Hashable) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(self._base_delay * (2 ** failures), self._max_delay))

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> Hashable:
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wakeup.set()

    def shutdown(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for _, timer in self._debounced.values():
            timer.cancel()
        self._debounced.clear()
