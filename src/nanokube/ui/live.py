"""The UI's view of the cluster: informers over the API (like every component), started on first use.

Every change wakes the open streams; each builds its namespace's map from the caches and sends it if it changed.
"""

from __future__ import annotations

import asyncio
import logging

from nanokube.api.meta import Obj
from nanokube.api.served_resources import Resource, by_kind
from nanokube.client import ApiClient
from nanokube.client.informer import Informer

log = logging.getLogger(__name__)

WATCHED: dict[str, Resource] = {
    "namespaces": by_kind("", "Namespace"), "services": by_kind("", "Service"),
    "slices": by_kind("discovery.k8s.io", "EndpointSlice"), "pods": by_kind("", "Pod"),
    "nodes": by_kind("", "Node"), "events": by_kind("", "Event"),
}


def _slim_event(obj: Obj) -> Obj:
    # the verdicts read only these; events are the bulkiest kind watched
    keep = ("metadata", "involvedObject", "reason", "message", "type", "count", "lastTimestamp", "eventTime")
    return {k: obj[k] for k in keep if k in obj}


class ClusterCache:
    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.informers: dict[str, Informer] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: set[asyncio.Event] = set()
        self._started = False

    async def start(self) -> None:
        if not self._started:
            self._started = True
            for key, res in WATCHED.items():
                inf = Informer(self.client, res, transform=_slim_event if key == "events" else None)
                inf.add_handler(on_add=self._changed_one, on_update=self._changed_two, on_delete=self._changed_one)
                self.informers[key] = inf
                self._tasks.append(asyncio.create_task(inf.run(), name=f"ui informer {key}"))
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self.informers.values())), 30)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _changed_one(self, _obj: Obj) -> None:
        for event in self._listeners:
            event.set()

    def _changed_two(self, _old: Obj, _new: Obj) -> None:
        self._changed_one(_new)

    def listen(self) -> asyncio.Event:
        event = asyncio.Event()
        self._listeners.add(event)
        return event

    def unlisten(self, event: asyncio.Event) -> None:
        self._listeners.discard(event)

    def in_namespace(self, key: str, namespace: str) -> list[Obj]:
        return [o for o in self.informers[key].cache.values()
                if (o.get("metadata") or {}).get("namespace") == namespace]

    def all(self, key: str) -> list[Obj]:
        return list(self.informers[key].cache.values())
