"""EndpointSlice controller: keeps each selector Service's slices equal to its pods (see endpointslice_reconciler.py)."""

from __future__ import annotations

from typing import Any

from nanokube.api.endpointslices import slice_service_key
from nanokube.api.errors import NAMESPACE_TERMINATING, ApiError
from nanokube.api.meta import Obj
from nanokube.client import object_key
from nanokube.controllers import endpointslice_reconciler as es
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.overlay import Overlay
from nanokube.controllers.resources import ENDPOINTSLICES, NODES, SERVICES
from nanokube.controllers.serviceindex import ServicePodIndex, service_selector


class SliceIndex:
    """Slices managed by one controller, by the Service they belong to, with read-your-writes."""

    def __init__(self, ctx: Context, managed_by: str, on_change: Any) -> None:
        self.informer = ctx.informer(ENDPOINTSLICES)
        self.overlay = Overlay(self.informer)
        self.managed_by = managed_by
        self._by_service: dict[str, set[str]] = {}
        self._on_change = on_change
        self.informer.add_handler(on_add=self._seen, on_update=lambda _o, n: self._seen(n),
                                  on_delete=self._gone)

    def _mine(self, slice_: Obj) -> bool:
        return (slice_.get("metadata", {}).get("labels") or {}).get(es.LABEL_MANAGED_BY) == self.managed_by

    def _add(self, slice_: Obj) -> str | None:
        svc = slice_service_key(slice_)
        if svc is not None:
            self._by_service.setdefault(svc, set()).add(object_key(slice_))
        return svc

    def _seen(self, slice_: Obj) -> None:
        if not self._mine(slice_):
            return
        svc = self._add(slice_)
        if not self.overlay.observe(slice_) and svc:
            self._on_change(svc)

    def _gone(self, slice_: Obj) -> None:
        svc = slice_service_key(slice_)
        if svc is None or not self._mine(slice_):
            return
        self._on_change(svc)

    def wrote(self, slice_: Obj) -> None:
        svc = self._add(slice_)
        if self.overlay.wrote(slice_) and svc:
            self._on_change(svc)

    def slices_of(self, service_key: str) -> list[Obj]:
        keys = self._by_service.get(service_key)
        if not keys:
            return []
        out = []
        for key in list(keys):
            obj = self.overlay.view(key, self.informer.cache.get(key))
            if obj is None or slice_service_key(obj) != service_key or not self._mine(obj):
                if key not in self.informer.cache:
                    keys.discard(key)
                continue
            out.append(obj)
        if not keys:
            self._by_service.pop(service_key, None)
        return out


class EndpointSliceController(Controller):
    name = "endpointslice-controller"
    workers = 8

    def __init__(self, ctx: Context, index: ServicePodIndex) -> None:
        super().__init__(ctx)
        self.index = index
        self.services = ctx.informer(SERVICES)
        self.nodes = ctx.informer(NODES)
        self.slices = SliceIndex(ctx, es.CONTROLLER_NAME, self.queue.add)
        self._waiting_for_nodes: set[str] = set()
        self._memos: dict[str, es.EndpointMemo] = {}
        index.listen(self._services_changed)
        self.nodes.add_handler(on_add=self._node_changed, on_delete=self._node_changed,
                               on_update=self._node_updated)

    def _services_changed(self, keys: Any) -> None:
        for key in keys:
            self.queue.add(key)

    def _node_changed(self, _node: Obj) -> None:
        for key in self._waiting_for_nodes:
            self.queue.add(key)
        self._waiting_for_nodes = set()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        old_zone = (old["metadata"].get("labels") or {}).get(es.ZONE_LABEL)
        if (new["metadata"].get("labels") or {}).get(es.ZONE_LABEL) != old_zone:
            for pod in self.index.pods.list():
                if pod.get("spec", {}).get("nodeName") == new["metadata"]["name"]:
                    for key in self.index.services_of(object_key(pod)):
                        self.queue.add(key)

    async def start(self) -> None:
        for service in self.services.list():
            self.queue.add(object_key(service))

    async def sync(self, key: str) -> float | None:
        service = self.services.cache.get(key)
        if service is None or service_selector(service) is None:
            self._memos.pop(key, None)
            return None
        pods = self.index.pods_of(key)
        existing = self.slices.slices_of(key)
        memo = self._memos.get(key)
        if memo is None or not memo.fits(service, len(pods), len(existing)):
            memo = self._memos[key] = es.EndpointMemo(service)
        plan = es.reconcile(service, existing, pods, self.nodes.cache.get,
                            self.ctx.settings.max_endpoints_per_slice, memo)
        namespace = service["metadata"]["namespace"]
        if not service["metadata"].get("deletionTimestamp"):
            for body in plan.create:
                try:
                    self.slices.wrote(await self.client.create(ENDPOINTSLICES, body, namespace))
                except ApiError as err:
                    if err.has_cause(NAMESPACE_TERMINATING):
                        return None  # namespace terminating: creates keep failing, drop the key
                    raise
        for body in plan.update:
            self.slices.overlay.begin(object_key(body))
            try:
                written = await self.client.update(ENDPOINTSLICES, body)
            except BaseException:
                if self.slices.overlay.abandon(object_key(body)):
                    self.queue.add(key)
                raise
            self.slices.wrote(written)
        for body in plan.delete:
            try:
                await self.client.delete(ENDPOINTSLICES, body["metadata"]["name"], namespace)
            except ApiError as err:
                if err.code != 404:
                    raise
            self.slices.overlay.deleted(body)
        if plan.node_missing:
            self._waiting_for_nodes.add(key)
            return 5.0
        return None
