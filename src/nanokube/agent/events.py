"""Pod events as the kubelet posts them (source component "kubelet", involvedObject.fieldPath naming the
container): Pulled, Created, Started, Killing, BackOff, Unhealthy, Failed (image), FailedMount, OOMKilled.

Posting happens off the pod workers' path through one queue; a repeat of the same (pod, reason, message)
bumps count and lastTimestamp of the Event already posted, as client-go's correlator does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, rfc3339
from nanokube.api.served_resources import by_kind
from nanokube.client import ApiClient

log = logging.getLogger(__name__)
EVENTS = by_kind("", "Event")
NORMAL, WARNING = "Normal", "Warning"
REMEMBERED = 2048


def container_path(pod: Obj, container: str) -> str:
    spec = pod.get("spec") or {}
    for key in ("initContainers", "containers", "ephemeralContainers"):
        if any(c.get("name") == container for c in spec.get(key) or []):
            return f"spec.{key}{{{container}}}"
    return f"spec.containers{{{container}}}"


class PodEvents:
    def __init__(self, client: ApiClient, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        self.queue: asyncio.Queue[tuple[Obj, str, str, str, str | None]] = asyncio.Queue(maxsize=4000)
        self.posted: OrderedDict[tuple[str, ...], tuple[str, str, int]] = OrderedDict()

    def record(self, pod: Obj, event_type: str, reason: str, message: str, container: str | None = None) -> None:
        try:
            self.queue.put_nowait((pod, event_type, reason, message, container))
        except asyncio.QueueFull:
            log.debug("event dropped: %s %s", reason, message)

    async def run(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                await self._post(*item)
            except (ApiError, OSError) as err:
                log.debug("posting event %s failed: %s", item[2], err)

    async def _post(self, pod: Obj, event_type: str, reason: str, message: str, container: str | None) -> None:
        md = pod["metadata"]
        ns = md.get("namespace") or "default"
        key = (md.get("uid", ""), event_type, reason, message, container or "")
        now = rfc3339()
        known = self.posted.get(key)
        if known is not None:
            name, _, count = known
            try:
                await self.client.patch(EVENTS, name, {"count": count + 1, "lastTimestamp": now}, ns)
                self._remember(key, (name, ns, count + 1))
                return
            except ApiError as err:
                if err.code != 404:
                    raise
        involved = {"kind": "Pod", "namespace": ns, "name": md["name"], "uid": md.get("uid"), "apiVersion": "v1",
                    "resourceVersion": md.get("resourceVersion")}
        if container:
            involved["fieldPath"] = container_path(pod, container)
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{md['name']}.{time.time_ns():x}", "namespace": ns},
                "involvedObject": {k: v for k, v in involved.items() if v},
                "reason": reason, "message": message, "type": event_type,
                "source": {"component": "kubelet", "host": self.node_name},
                "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                "reportingComponent": "kubelet", "reportingInstance": self.node_name}
        created = await self.client.create(EVENTS, body, ns)
        self._remember(key, (created["metadata"]["name"], ns, 1))

    def _remember(self, key: tuple[str, ...], value: tuple[str, str, int]) -> None:
        self.posted[key] = value
        self.posted.move_to_end(key)
        while len(self.posted) > REMEMBERED:
            self.posted.popitem(last=False)
