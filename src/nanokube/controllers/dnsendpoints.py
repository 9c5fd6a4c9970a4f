"""The kube-dns endpoints follow the readiness of their node.

No pods back kube-dns: each DNS server writes its own endpoint (dns/publish.py, managed-by `nanokube-dns`). In
Kubernetes, when a node stops renewing its Lease the node lifecycle controller marks the node's pods NotReady and
the EndpointSlice controller turns their endpoints `ready: false` (and `serving: false`), so kube-proxy stops
sending traffic there. This controller is that chain for the endpoints without pods: an endpoint whose `nodeName`
names a Node that is not Ready (Ready=Unknown after the Lease expired, or False) gets ready/serving false in the
nanokube-dns EndpointSlices and moves to `notReadyAddresses` in the kube-dns Endpoints; when the Node is Ready
again both are turned back. An endpoint without a nodeName, or whose Node does not exist (a server run with
--no-agent), is left as its DNS server wrote it.
"""

from __future__ import annotations

import copy
from typing import Any

from nanokube.api.kube_dns import KUBE_DNS_MANAGED_BY, KUBE_DNS_SERVICE, KUBE_SYSTEM
from nanokube.api.meta import Obj
from nanokube.client import object_key
from nanokube.controllers import scheduler
from nanokube.controllers.endpointslice_reconciler import LABEL_MANAGED_BY
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.resources import ENDPOINTS, ENDPOINTSLICES, NODES

KUBE_DNS_KEY = f"{KUBE_SYSTEM}/{KUBE_DNS_SERVICE}"


def node_ready(node: Obj | None) -> bool | None:
    """The Node's readiness as the scheduler reads it; None when there is no such Node."""
    return None if node is None else scheduler.node_ready(node)


def slice_with_readiness(eps: Obj, ready_of: Any) -> Obj | None:
    """The slice with each endpoint's ready/serving as its node's readiness; None if nothing changes."""
    body = copy.deepcopy(eps)
    changed = False
    for ep in body.get("endpoints") or []:
        ready = ready_of(ep.get("nodeName") or "")
        if ready is None:
            continue
        conditions = ep.setdefault("conditions", {})
        if conditions.get("ready", True) is not ready or conditions.get("serving", True) is not ready:
            conditions.update(ready=ready, serving=ready, terminating=False)
            changed = True
    return body if changed else None


def endpoints_with_readiness(endpoints: Obj, ready_of: Any) -> Obj | None:
    """The Endpoints with each address under `addresses` or `notReadyAddresses` by its node's readiness."""
    subsets = []
    changed = False
    for subset in endpoints.get("subsets") or []:
        ready_list, not_ready_list = [], []
        for was_ready, key in ((True, "addresses"), (False, "notReadyAddresses")):
            for address in subset.get(key) or []:
                ready = ready_of(address.get("nodeName") or "")
                is_ready = was_ready if ready is None else ready
                changed = changed or is_ready != was_ready
                (ready_list if is_ready else not_ready_list).append(address)
        out = {k: v for k, v in subset.items() if k not in ("addresses", "notReadyAddresses")}
        if ready_list:
            out["addresses"] = ready_list
        if not_ready_list:
            out["notReadyAddresses"] = not_ready_list
        subsets.append(out)
    if not changed:
        return None
    return {**endpoints, "subsets": subsets}


class DnsEndpointsReadinessController(Controller):
    name = "dns-endpoints-readiness-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.nodes = ctx.informer(NODES)
        self.slices = ctx.informer(ENDPOINTSLICES)
        self.endpoints = ctx.informer(ENDPOINTS)
        self.ours: set[str] = set()  # keys of the nanokube-dns EndpointSlices
        self.nodes.add_handler(on_add=self._node, on_update=lambda _o, n: self._node(n), on_delete=self._node)
        self.slices.add_handler(on_add=self._slice, on_update=lambda _o, n: self._slice(n),
                                on_delete=lambda s: self.ours.discard(object_key(s)))
        self.endpoints.add_handler(on_add=self._endpoints, on_update=lambda _o, n: self._endpoints(n))

    def _slice(self, eps: Obj) -> None:
        key = object_key(eps)
        if ((eps.get("metadata") or {}).get("labels") or {}).get(LABEL_MANAGED_BY) == KUBE_DNS_MANAGED_BY:
            self.ours.add(key)
            self.queue.add(("slice", key))
        else:
            self.ours.discard(key)

    def _endpoints(self, endpoints: Obj) -> None:
        if object_key(endpoints) == KUBE_DNS_KEY:
            self.queue.add(("endpoints", KUBE_DNS_KEY))

    def _node(self, _node: Obj) -> None:
        for key in self.ours:
            self.queue.add(("slice", key))
        self.queue.add(("endpoints", KUBE_DNS_KEY))

    def ready_of(self, node_name: str) -> bool | None:
        return node_ready(self.nodes.cache.get(node_name)) if node_name else None

    async def sync(self, key: tuple[str, str]) -> float | None:
        kind, obj_key = key
        if kind == "slice":
            eps = self.slices.cache.get(obj_key)
            if eps is not None and obj_key in self.ours:
                body = slice_with_readiness(eps, self.ready_of)
                if body is not None:
                    await self.client.update(ENDPOINTSLICES, body)
            return None
        endpoints = self.endpoints.cache.get(obj_key)
        if endpoints is not None:
            body = endpoints_with_readiness(endpoints, self.ready_of)
            if body is not None:
                await self.client.update(ENDPOINTS, body)
        return None
