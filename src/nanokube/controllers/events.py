"""core/v1 Events for what users look for in `kubectl describe`, posted off the sync path.

Repeats of the same (object, type, reason, message) bump `count` and `lastTimestamp` on the existing
Event instead of creating a new one, as client-go's event correlator does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, rfc3339
from nanokube.client import ApiClient
from nanokube.controllers.resources import EVENTS

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
_MAX_REMEMBERED = 4096


class EventRecorder:
    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._pending: asyncio.Queue[tuple[Obj, str, str, str, str]] = asyncio.Queue(maxsize=2000)
        self._seen: OrderedDict[tuple[str, ...], tuple[str, str, int]] = OrderedDict()

    def event(self, obj: Obj, event_type: str, reason: str, message: str, *, component: str) -> None:
        """Record an event about `obj`; never blocks, drops when the poster is far behind."""
        try:
            self._pending.put_nowait((obj, event_type, reason, message, component))
        except asyncio.QueueFull:
            log.debug("event dropped: %s %s", reason, message)

    async def run(self) -> None:
        while True:
            obj, event_type, reason, message, component = await self._pending.get()
            try:
                await self._post(obj, event_type, reason, message, component)
            except (ApiError, OSError) as err:
                log.debug("posting event %s failed: %s", reason, err)

    async def _post(self, obj: Obj, event_type: str, reason: str, message: str, component: str) -> None:
        md = obj.get("metadata", {})
        namespace = md.get("namespace") or "default"
        key = (md.get("uid") or f"{namespace}/{md.get('name')}", event_type, reason, message, component)
        now = rfc3339()
        seen = self._seen.get(key)
        if seen is not None:
            name, ns, count = seen
            try:
                await self._client.patch(EVENTS, name, {"count": count + 1, "lastTimestamp": now}, ns)
                self._remember(key, (name, ns, count + 1))
                return
            except ApiError as err:
                if err.code != 404:
                    raise
        involved = {"kind": obj.get("kind", ""), "namespace": md.get("namespace"), "name": md.get("name", ""),
                    "uid": md.get("uid"), "apiVersion": obj.get("apiVersion", ""),
                    "resourceVersion": md.get("resourceVersion")}
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{md.get('name', 'unknown')}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": {k: v for k, v in involved.items() if v},
            "reason": reason, "message": message, "type": event_type,
            "source": {"component": component},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component, "reportingInstance": "",
        }
        created = await self._client.create(EVENTS, body, namespace)
        self._remember(key, (created["metadata"]["name"], namespace, 1))

    def _remember(self, key: tuple[str, ...], value: tuple[str, str, int]) -> None:
        self._seen[key] = value
        self._seen.move_to_end(key)
        while len(self._seen) > _MAX_REMEMBERED:
            self._seen.popitem(last=False)
