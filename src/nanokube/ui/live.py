"""The UI's view of the cluster: informers over the API (like every component), started on first use, feeding
the indexes (ui/index.py) and the live feed of every namespace that has an open stream (ui/feed.py).

Traffic counters, which move without any object changing, are read once a second for all streams and sent as
the same `event: traffic` bytes to each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from nanokube.api.meta import Obj
from nanokube.api.served_resources import Resource, by_kind
from nanokube.client import ApiClient
from nanokube.client.informer import Informer
from nanokube.ui.feed import NamespaceFeed, Subscriber
from nanokube.ui.index import ClusterIndex

log = logging.getLogger(__name__)

WATCHED: dict[str, Resource] = {
    "namespaces": by_kind("", "Namespace"), "services": by_kind("", "Service"),
    "slices": by_kind("discovery.k8s.io", "EndpointSlice"), "pods": by_kind("", "Pod"),
    "nodes": by_kind("", "Node"), "events": by_kind("", "Event"),
}
TRAFFIC_SECONDS = 1.0
IDLE_FEED_SECONDS = 30.0  # a namespace's feed outlives its last stream this long (a reload reuses it)
TrafficSource = Callable[[], Awaitable[dict[str, Any]]]


def _slim_event(obj: Obj) -> Obj:
    # the verdicts read only these; events are the bulkiest kind watched
    keep = ("metadata", "involvedObject", "reason", "message", "type", "count", "lastTimestamp", "eventTime")
    return {k: obj[k] for k in keep if k in obj}


class ClusterCache:
    def __init__(self, client: ApiClient, *, domain: str = "cluster.local",
                 traffic: TrafficSource | None = None) -> None:
        self.client = client
        self.domain = domain
        self.traffic = traffic
        self.informers: dict[str, Informer] = {}
        self.index = ClusterIndex()
        self.feeds: dict[str, NamespaceFeed] = {}
        self._idle: dict[str, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._traffic_task: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        if not self._started:
            self._started = True
            for key, res in WATCHED.items():
                inf = Informer(self.client, res, transform=_slim_event if key == "events" else None)
                inf.add_handler(on_add=lambda new, k=key: self._changed(k, None, new),
                                on_update=lambda old, new, k=key: self._changed(k, old, new),
                                on_delete=lambda old, k=key: self._changed(k, old, None))
                self.informers[key] = inf
                self._tasks.append(asyncio.create_task(inf.run(), name=f"ui informer {key}"))
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self.informers.values())), 30)

    async def stop(self) -> None:
        for handle in self._idle.values():
            handle.cancel()
        for feed in self.feeds.values():
            feed.close()
        tasks = self._tasks + ([self._traffic_task] if self._traffic_task else [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _changed(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        touched = self.index.update(kind, old, new)
        if touched.namespace is None:
            for feed in self.feeds.values():
                feed.touch(touched)
        elif (feed := self.feeds.get(touched.namespace)) is not None:
            feed.touch(touched)

    async def subscribe(self, namespace: str) -> Subscriber:
        """A new stream on a namespace's feed, its snapshot already queued."""
        await self.start()
        if (handle := self._idle.pop(namespace, None)) is not None:
            handle.cancel()
        feed = self.feeds.get(namespace)
        if feed is None:
            feed = self.feeds[namespace] = NamespaceFeed(namespace, self.index, self.domain)
        sub = Subscriber(feed)
        feed.subscribers.add(sub)
        sub.push(feed.snapshot())
        if self.traffic is not None and self._traffic_task is None:
            self._traffic_task = asyncio.create_task(self._send_traffic(), name="ui traffic")
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        feed = sub.feed
        feed.subscribers.discard(sub)
        if not feed.subscribers and self.feeds.get(feed.namespace) is feed:
            self._idle[feed.namespace] = asyncio.get_running_loop().call_later(
                IDLE_FEED_SECONDS, self._drop_feed, feed)

    def _drop_feed(self, feed: NamespaceFeed) -> None:
        self._idle.pop(feed.namespace, None)
        if not feed.subscribers and self.feeds.get(feed.namespace) is feed:
            feed.close()
            del self.feeds[feed.namespace]

    async def _send_traffic(self) -> None:
        assert self.traffic is not None
        while True:
            await asyncio.sleep(TRAFFIC_SECONDS)
            subs = [sub for feed in self.feeds.values() for sub in feed.subscribers]
            if not subs:
                continue
            try:
                chunk = b"event: traffic\ndata: " + orjson.dumps(await self.traffic()) + b"\n\n"
            except Exception:  # the counters are a bonus: the map goes on without them
                log.exception("reading the proxy's counters failed")
                continue
            for sub in subs:
                sub.push(chunk)

    def all(self, key: str) -> list[Obj]:
        return list(self.informers[key].cache.values())
