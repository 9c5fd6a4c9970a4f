"""List-then-watch informers with a local cache, as client-go's shared informers behave.

Handlers are plain synchronous callbacks: they record what changed and wake a runner. They run in the
informer's task, so an update is atomic with respect to other asyncio code (no await inside).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.api.served_resources import Resource
from nanokube.client.rest import ApiClient

log = logging.getLogger(__name__)


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


@dataclass
class _Handler:
    on_add: Callable[[Obj], None] | None
    on_update: Callable[[Obj, Obj], None] | None
    on_delete: Callable[[Obj], None] | None
    on_synced: Callable[[], None] | None


class Informer:
    def __init__(self, client: ApiClient, resource: Resource, namespace: str | None = None, *,
                 label_selector: str | None = None, field_selector: str | None = None,
                 transform: Callable[[Obj], Obj] | None = None) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.transform = transform
        self.cache: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self.resource_version = ""
        self._handlers: list[_Handler] = []

    def add_handler(self, *, on_add: Callable[[Obj], None] | None = None,
                    on_update: Callable[[Obj, Obj], None] | None = None,
                    on_delete: Callable[[Obj], None] | None = None,
                    on_synced: Callable[[], None] | None = None) -> None:
        handler = _Handler(on_add, on_update, on_delete, on_synced)
        self._handlers.append(handler)
        if self.synced.is_set():  # late joiner: replay the cache
            for obj in list(self.cache.values()):
                if on_add:
                    on_add(obj)
            if on_synced:
                on_synced()

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self.cache.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[Obj]:
        return list(self.cache.values())

    # -- dispatch -------------------------------------------------------------------------------------
    def _added(self, obj: Obj) -> None:
        key = object_key(obj)
        old = self.cache.get(key)
        self.cache[key] = obj
        for h in self._handlers:
            if old is None:
                if h.on_add:
                    h.on_add(obj)
            elif h.on_update:
                h.on_update(old, obj)

    def _deleted(self, obj: Obj) -> None:
        key = object_key(obj)
        old = self.cache.pop(key, None)
        for h in self._handlers:
            if h.on_delete:
                h.on_delete(old if old is not None else obj)

    async def _list(self) -> None:
        data = await self.client.list(self.resource, self.namespace, label_selector=self.label_selector,
                                      field_selector=self.field_selector)
        items = data.get("items") or []
        kind, api_version = self.resource.kind, self.resource.api_version
        fresh: dict[str, Obj] = {}
        for item in items:
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
            if self.transform:
                item = self.transform(item)
            fresh[object_key(item)] = item
        for key in [k for k in self.cache if k not in fresh]:
            self._deleted(self.cache[key])
        for key, obj in fresh.items():
            old = self.cache.get(key)
            if old is None or old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._added(obj)
        self.resource_version = data.get("metadata", {}).get("resourceVersion", "")
        if not self.synced.is_set():
            self.synced.set()
            for h in self._handlers:
                if h.on_synced:
                    h.on_synced()

    async def run(self) -> None:
        backoff = 0.05
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                async for etype, obj in self.client.watch(
                        self.resource, self.namespace, resource_version=self.resource_version,
                        label_selector=self.label_selector, field_selector=self.field_selector,
                        timeout_seconds=300):
                    rv = obj.get("metadata", {}).get("resourceVersion")
                    if rv:
                        self.resource_version = rv
                    if etype == "BOOKMARK":
                        continue
                    if self.transform:
                        obj = self.transform(obj)
                    if etype == "DELETED":
                        self._deleted(obj)
                    else:
                        self._added(obj)
                backoff = 0.05
            except ApiError as err:
                if err.code == 410:
                    need_list = True
                    continue
                log.warning("watch %s failed: %s", self.resource.plural, err)
                need_list = True
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                log.debug("watch %s interrupted: %s", self.resource.plural, err)
                need_list = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
