"""Fan-out of committed events to watchers.

Each commit publishes one tuple of Event objects. Subscribers are grouped by key prefix, so a batch is
filtered once per distinct prefix and the very same tuple (and Event objects) is handed to every subscriber
of that prefix. A subscriber buffers at most `limit` events; one that falls further behind is cut off: its
stream ends and the watcher re-lists, as a Kubernetes watch client does after its watch closes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from nanokube.store.base import Event

DEFAULT_SUBSCRIBER_LIMIT = 10_000


class Subscription:
    """One watcher's buffer of not yet consumed event batches."""

    __slots__ = ("_batches", "_broadcaster", "_limit", "_pending", "_waiter", "closed", "cut_off", "prefix")

    def __init__(self, broadcaster: Broadcaster, prefix: str, limit: int) -> None:
        self._broadcaster = broadcaster
        self._batches: deque[tuple[Event, ...]] = deque()
        self._pending = 0
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self.prefix = prefix
        self.closed = False
        self.cut_off = False  # closed because the watcher fell behind (as opposed to store shutdown)

    def _offer(self, batch: tuple[Event, ...]) -> bool:
        """Queue a batch; returns False if this subscriber had to be cut off instead."""
        if self._pending + len(batch) > self._limit:
            self.cut_off = True
            self._finish()
            return False
        self._batches.append(batch)
        self._pending += len(batch)
        self._wake()
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self) -> None:
        self.closed = True
        self._batches.clear()
        self._pending = 0
        self._wake()

    async def next_batch(self) -> tuple[Event, ...] | None:
        """The oldest buffered batch, waiting for one; None once the subscription is closed."""
        while not self._batches:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch = self._batches.popleft()
        self._pending -= len(batch)
        return batch

    def close(self) -> None:
        if not self.closed:
            self._broadcaster._remove(self)
            self._finish()


class Broadcaster:
    def __init__(self, limit: int = DEFAULT_SUBSCRIBER_LIMIT) -> None:
        self._limit = limit
        self._by_prefix: dict[str, set[Subscription]] = {}

    @property
    def subscriber_count(self) -> int:
        return sum(len(subs) for subs in self._by_prefix.values())

    def subscribe(self, prefix: str, limit: int | None = None) -> Subscription:
        sub = Subscription(self, prefix, limit or self._limit)
        self._by_prefix.setdefault(prefix, set()).add(sub)
        return sub

    def publish(self, events: tuple[Event, ...]) -> None:
        for prefix, subs in list(self._by_prefix.items()):
            if prefix:
                batch = tuple(e for e in events if e.key.startswith(prefix))
                if not batch:
                    continue
                if len(batch) == len(events):
                    batch = events
            else:
                batch = events
            cut = [sub for sub in subs if not sub._offer(batch)]
            for sub in cut:
                self._remove(sub)

    def close(self) -> None:
        """End every subscription (store shutdown)."""
        subs = [sub for group in self._by_prefix.values() for sub in group]
        self._by_prefix.clear()
        for sub in subs:
            sub._finish()

    def _remove(self, sub: Subscription) -> None:
        group = self._by_prefix.get(sub.prefix)
        if group is not None:
            group.discard(sub)
            if not group:
                del self._by_prefix[sub.prefix]


class SubscriptionStream(AsyncIterator[Event]):
    """The shell of a store's watch iterator over one Subscription: closing it closes the subscription, and
    `cut_off` tells a watcher that fell behind (it re-lists) from a store that shut down."""

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    @property
    def cut_off(self) -> bool:
        return self._subscription.cut_off

    def __aiter__(self) -> SubscriptionStream:
        return self

    async def aclose(self) -> None:
        self._subscription.close()

    def close(self) -> None:
        self._subscription.close()
