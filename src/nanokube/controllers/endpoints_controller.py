"""Endpoints controller: the legacy v1 Endpoints object of every selector Service (see endpoints_desired.py)."""

from __future__ import annotations

from typing import Any

from nanokube.api.errors import NAMESPACE_TERMINATING, ApiError
from nanokube.api.meta import Obj
from nanokube.client import object_key
from nanokube.controllers.endpoints_desired import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    AddressMemo,
    desired_endpoints,
    endpoints_differ,
)
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.overlay import Overlay
from nanokube.controllers.resources import ENDPOINTS, SERVICES
from nanokube.controllers.serviceindex import ServicePodIndex, service_selector

QUIET_PERIOD = 0.05
MAX_DELAY_PER_ADDRESS = 0.001


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
        # Batched like kube-controller-manager's --endpoint-updates-batch-period: written once pod changes
        # pause for 50 ms, and under steady churn at most every 50 ms + 1 ms per address. A PUT of a
        # 1,000-address Endpoints costs the apiserver ~15 ms of the one event loop everything shares; the
        # data path (proxy, DNS) reads EndpointSlices, which are written at once.
        for key in keys:
            current = self.overlay.get(*key.split("/", 1))
            addresses = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or [])
                            for s in (current or {}).get("subsets") or [])
            self.queue.add_debounced(key, QUIET_PERIOD, QUIET_PERIOD + addresses * MAX_DELAY_PER_ADDRESS)

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
                self.overlay.wrote(await self.client.create(ENDPOINTS, desired, namespace))
            except ApiError as err:
                if err.code == 409:  # exists but not in our cache yet: look again shortly
                    return 0.1
                if err.has_cause(NAMESPACE_TERMINATING):
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
            written = await self.client.update(ENDPOINTS, body)
        except BaseException:
            if self.overlay.abandon(key):
                self.queue.add(key)
            raise
        if self.overlay.wrote(written):
            self.queue.add(key)
        return None
