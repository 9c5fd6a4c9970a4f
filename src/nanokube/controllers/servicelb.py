"""ServiceLB: gives every type LoadBalancer Service an address from the pool, in status.loadBalancer.

The allocation lives only in the Services' status: on start it is rebuilt from there, so addresses are
stable across restarts. A Service that cannot get an address stays pending with a Warning event and is
served as soon as an address frees.
"""

from __future__ import annotations

import logging

from nanokube.api.meta import Obj
from nanokube.client import object_key
from nanokube.controllers.events import NORMAL, WARNING
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.lbpool import Pool, service_ports
from nanokube.controllers.resources import SERVICES

log = logging.getLogger(__name__)

LB_IP_ANNOTATION = "nanokube.io/lb-ip"


def ingress_ips(service: Obj) -> list[str]:
    ingress = (service.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
    return [entry["ip"] for entry in ingress if entry.get("ip")]


def requested_ip(service: Obj) -> str | None:
    annotations = service.get("metadata", {}).get("annotations") or {}
    return annotations.get(LB_IP_ANNOTATION) or service.get("spec", {}).get("loadBalancerIP") or None


class ServiceLBController(Controller):
    name = "service-lb-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.pool = Pool(ctx.settings.lb_pool)
        self.services = ctx.informer(SERVICES)
        self._pending: set[str] = set()
        self._last_failure: dict[str, str] = {}
        self.services.add_handler(on_add=self._changed, on_update=lambda _o, n: self._changed(n),
                                  on_delete=self._changed)

    def _changed(self, service: Obj) -> None:
        self.queue.add(object_key(service))

    def ours(self, service: Obj) -> bool:
        cls = service.get("spec", {}).get("loadBalancerClass")
        return cls is None or (self.ctx.settings.lb_class is not None and cls == self.ctx.settings.lb_class)

    def wants_address(self, service: Obj | None) -> bool:
        return bool(service) and service.get("spec", {}).get("type") == "LoadBalancer" and self.ours(service)

    async def start(self) -> None:
        services = sorted(self.services.list(), key=lambda s: (s["metadata"].get("creationTimestamp") or "",
                                                               object_key(s)))
        for service in services:
            if self.wants_address(service):
                for ip in ingress_ips(service)[:1]:
                    if not self.pool.assign(object_key(service), ip, service_ports(service)):
                        log.warning("service %s: address %s cannot be kept", object_key(service), ip)
        for service in services:
            self.queue.add(object_key(service))

    def _freed(self) -> None:
        for key in self._pending:
            self.queue.add(key)

    async def sync(self, key: str) -> float | None:
        service = self.services.cache.get(key)
        if not self.wants_address(service):
            self._pending.discard(key)
            self._last_failure.pop(key, None)
            if self.pool.release(key) is not None:
                self._freed()
            if service is not None and self.ours(service) and any(ip in self.pool for ip in ingress_ips(service)):
                await self._write_ingress(service, [])
                self.event(service, NORMAL, "DeletedLoadBalancer", "Deleted load balancer")
            return None
        assert service is not None
        previous = self.pool.address_of(key)
        address, reason = self.pool.allocate(key, service_ports(service), requested_ip(service))
        if previous is not None and previous != address:
            self._freed()
        if address is None:
            self._pending.add(key)
            message = f"Failed to allocate IP for \"{key}\": {reason}"
            if self._last_failure.get(key) != message:
                self._last_failure[key] = message
                self.event(service, WARNING, "AllocationFailed", message)
            if ingress_ips(service):
                await self._write_ingress(service, [])
            return None
        self._pending.discard(key)
        self._last_failure.pop(key, None)
        wanted = [{"ip": address, "ipMode": "VIP"}]
        if (service.get("status", {}).get("loadBalancer") or {}).get("ingress") != wanted:
            self.event(service, NORMAL, "EnsuringLoadBalancer", "Ensuring load balancer")
            await self._write_ingress(service, wanted)
            self.event(service, NORMAL, "EnsuredLoadBalancer", "Ensured load balancer")
        return None

    async def _write_ingress(self, service: Obj, ingress: list[Obj]) -> None:
        body = dict(service)
        status = dict(service.get("status") or {})
        status["loadBalancer"] = {"ingress": ingress} if ingress else {}
        body["status"] = status
        await self.client.update(SERVICES, body, subresource="status")
