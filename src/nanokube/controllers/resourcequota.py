"""ResourceQuota controller (pkg/controller/resourcequota): keeps status.hard = spec.hard and status.used =
what the namespace's pods and Services use of each tracked resource, recomputed whenever one of them changes.
Admission (apiserver/admission_quota.py) enforces the limits; this only reports them."""

from __future__ import annotations

from decimal import Decimal

from nanokube.api import quota
from nanokube.api.meta import Obj
from nanokube.api.quantity import format_quantity
from nanokube.client import object_key
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.resources import PODS, RESOURCEQUOTAS, SERVICES


class ResourceQuotaController(Controller):
    name = "resourcequota-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.quotas = ctx.informer(RESOURCEQUOTAS)
        self.pods = ctx.informer(PODS)
        self.services = ctx.informer(SERVICES)
        self.quotas.add_handler(on_add=self._quota, on_update=lambda _o, n: self._quota(n))
        for informer in (self.pods, self.services):
            informer.add_handler(on_add=self._member, on_update=lambda _o, n: self._member(n),
                                 on_delete=self._member)

    def _quota(self, rq: Obj) -> None:
        self.queue.add(object_key(rq))

    def _member(self, obj: Obj) -> None:
        ns = obj["metadata"].get("namespace")
        for key, rq in self.quotas.cache.items():
            if rq["metadata"].get("namespace") == ns:
                self.queue.add(key)

    async def sync(self, key: str) -> float | None:
        rq = self.quotas.cache.get(key)
        if rq is None:
            return None
        ns = rq["metadata"]["namespace"]
        hard = (rq.get("spec") or {}).get("hard") or {}
        used: dict[str, Decimal] = {}
        if any(name in quota.POD_RESOURCES for name in hard):
            for pod in self.pods.cache.values():
                if pod["metadata"].get("namespace") == ns and quota.matches_scopes(rq, pod):
                    quota.add(used, quota.pod_usage(pod))
        if any(name in quota.SERVICE_RESOURCES for name in hard):
            for svc in self.services.cache.values():
                if svc["metadata"].get("namespace") == ns:
                    quota.add(used, quota.service_usage(svc))
        status = {"hard": dict(hard),
                  "used": {name: format_quantity(name, used.get(name, Decimal(0))) for name in hard
                           if name in quota.POD_RESOURCES or name in quota.SERVICE_RESOURCES}}
        if (rq.get("status") or {}) != status:
            await self.client.update(RESOURCEQUOTAS, {**rq, "status": status}, subresource="status")
        return None
