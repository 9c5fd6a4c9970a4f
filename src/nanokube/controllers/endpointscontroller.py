"""Endpoints controller: the legacy v1 Endpoints object of every selector Service (see endpoints.py)."""

from __future__ import annotations

from typing import Any

from nanokube.api.errors import ApiError
from nanokube.client import object_key
from nanokube.controllers.endpoints import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    AddressMemo,
    desired_endpoints,
    endpoints_differ,
)
from nanokube.controllers.overlay import Overlay
from nanokube.controllers.resources import ENDPOINTS, SERVICES
from nanokube.controllers.runtime import Context, Controller, trusted_create, trusted_update
from nanokube.controllers.serviceindex import ServicePodIndex, service_selector

Obj = dict[str, Any]
BATCH_PERIOD = 0.05


class EndpointsController(Controller):
    name = "endpoint-controller"
    workers = 4

    def __init__(self, ctx: Context, index: ServicePodIndex) -> None:
        super().__init__(ctx)
        self.index = index
        self.services = ctx.informer(SERVICES)
        self.endpoints = ctx.informer(ENDPOINTS)
        self.overlay = Overlay(self.endpoints)
        self._memos: dict[str, AddressMemo] = {}
        index.listen(self._services_changed)
        self.endpoints.add_handler(on_update=lambda _o, n: self._endpoints_changed(n),
                                   on_delete=self._endpoints_changed)

    def _services_changed(self, keys: Any) -> None:
        # A short batch period (kube-controller-manager's --endpoint-updates-batch-period): bursts of pod
        # changes cost one write of the (possibly large) Endpoints object, and EndpointSlices go first.
        for key in keys:
            self.queue.add_after(key, BATCH_PERIOD)

    def _endpoints_changed(self, ep: Obj) -> None:
        if not self.overlay.observe(ep):
            self.queue.add(object_key(ep))

    async def start(self) -> None:
        for service in self.services.list():
            self.queue.add(object_key(service))
        for ep in self.endpoints.list():  # Endpoints left behind by Services deleted while we were down
            if object_key(ep) not in self.services.cache:
                self.queue.add(object_key(ep))

    async def sync(self, key: str) -> float | None:
        namespace, name = key.split("/", 1)
        service = self.services.cache.get(key)
        current = self.overlay.view(key, self.endpoints.cache.get(key))
        if service is None or service_selector(service) is None:
            self._memos.pop(key, None)
        if service is None:
            if current is not None and (current["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY:
                try:
                    await self.client.delete(ENDPOINTS, name, namespace)
                except ApiError as err:
                    if err.code != 404:
                        raise
                self.overlay.deleted(current)
            return None
        if service_selector(service) is None or service["metadata"].get("deletionTimestamp"):
            return None
        pods = self.index.pods_of(key)
        memo = self._memos.get(key)
        if memo is None or not memo.fits(service, len(pods)):
            memo = self._memos[key] = AddressMemo(service)
        desired = desired_endpoints(service, pods, memo)
        if current is None:
            try:
                self.overlay.wrote(await trusted_create(self.client, ENDPOINTS, desired, namespace))
            except ApiError as err:
                if err.code == 409:  # exists but not in our cache yet: look again shortly
                    return 0.1
                if err.code == 403 or "being terminated" in err.message:
                    return None
                raise
            return None
        if not endpoints_differ(current, desired):
            return None
        body = dict(current)
        body["metadata"] = dict(current["metadata"])
        body["metadata"]["labels"] = desired["metadata"]["labels"]
        annotations = {k: v for k, v in (current["metadata"].get("annotations") or {}).items()
                       if k != "endpoints.kubernetes.io/over-capacity"}
        annotations.update(desired["metadata"].get("annotations") or {})
        if annotations:
            body["metadata"]["annotations"] = annotations
        else:
            body["metadata"].pop("annotations", None)
        if desired.get("subsets"):
            body["subsets"] = desired["subsets"]
        else:
            body.pop("subsets", None)
        self.overlay.begin(key)
        try:
            written = await trusted_update(self.client, ENDPOINTS, body)
        except BaseException:
            if self.overlay.abandon(key):
                self.queue.add(key)
            raise
        if self.overlay.wrote(written):
            self.queue.add(key)
        return None
