"""The kube-dns Service's endpoints, written by the DNS server that answers there.

No pods back kube-dns (the DNS is a component of `nanokube server`, not a CoreDNS Deployment), so no
controller computes its endpoints: like kube-apiserver for the `kubernetes` Service, the owner writes them.
The Endpoints carry `endpointslice.kubernetes.io/skip-mirror` (the mirroring controller leaves them alone) and
the EndpointSlice `endpointslice.kubernetes.io/managed-by: nanokube-dns` (the EndpointSlice controller only
touches slices of its own managed-by value, and kube-dns has no selector anyway).

On start the server points the endpoints at itself (the last DNS server to start serves the cluster, as the
bootstrap did before); afterwards it only takes them over when they are gone, empty, or left with no ready
endpoint that is not its own (the node of the one there stopped: controllers/dnsendpoints.py marked it not
ready), so two DNS servers on one store do not take turns rewriting them, and a live one replaces a lost one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from nanokube.api.errors import ApiError
from nanokube.api.kube_dns import KUBE_DNS_MANAGED_BY, KUBE_DNS_SERVICE, KUBE_SYSTEM
from nanokube.api.served_resources import by_kind

if TYPE_CHECKING:
    from nanokube.client import ApiClient

log = logging.getLogger(__name__)

ENDPOINTS = by_kind("", "Endpoints")
SLICES = by_kind("discovery.k8s.io", "EndpointSlice")
SKIP_MIRROR = {"endpointslice.kubernetes.io/skip-mirror": "true"}
RECHECK_SECONDS = 10.0


def desired_objects(address: str, port: int, node_name: str,
                    metrics_port: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The kube-dns Endpoints and EndpointSlice for one DNS server at address:port (ports named as the
    Service's: `dns` UDP, `dns-tcp` TCP, and `metrics` TCP when it serves /metrics there)."""
    ports = [{"name": "dns", "port": port, "protocol": "UDP"}, {"name": "dns-tcp", "port": port, "protocol": "TCP"}]
    if metrics_port is not None:
        ports.append({"name": "metrics", "port": metrics_port, "protocol": "TCP"})
    endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": KUBE_DNS_SERVICE, "namespace": KUBE_SYSTEM, "labels": dict(SKIP_MIRROR)},
                 "subsets": [{"addresses": [{"ip": address, **({"nodeName": node_name} if node_name else {})}],
                              "ports": ports}]}
    endpoint: dict[str, Any] = {"addresses": [address],
                                "conditions": {"ready": True, "serving": True, "terminating": False}}
    if node_name:
        endpoint["nodeName"] = node_name
    eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": KUBE_DNS_SERVICE, "namespace": KUBE_SYSTEM,
                        "labels": {"kubernetes.io/service-name": KUBE_DNS_SERVICE,
                                   "endpointslice.kubernetes.io/managed-by": KUBE_DNS_MANAGED_BY}},
           "addressType": "IPv4", "endpoints": [endpoint], "ports": ports}
    return endpoints, eps


def _entries(obj: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(address, nodeName, ready) of every endpoint in an EndpointSlice or Endpoints."""
    if obj.get("kind") == "EndpointSlice":
        return [(address, ep.get("nodeName") or "", (ep.get("conditions") or {}).get("ready") is not False)
                for ep in obj.get("endpoints") or [] for address in ep.get("addresses") or []]
    return [(a.get("ip") or "", a.get("nodeName") or "", key == "addresses")
            for s in obj.get("subsets") or [] for key in ("addresses", "notReadyAddresses") for a in s.get(key) or []]


def needs_taking_over(obj: dict[str, Any], address: str, node_name: str) -> bool:
    """Whether a DNS server at `address` on `node_name` should point the endpoints at itself: none is ready, and
    none is its own (its own not-ready endpoint is its node's NotReady state, which it must not paper over)."""
    entries = _entries(obj)
    if any(ready for _, _, ready in entries):
        return False
    return not any(a == address and n == node_name for a, n, _ in entries)


class KubeDnsEndpoints:
    def __init__(self, client: ApiClient, address: str, port: int, node_name: str = "",
                 metrics_port: int | None = None) -> None:
        self.client = client
        self.address, self.node_name = address, node_name
        self.objects = desired_objects(address, port, node_name, metrics_port)

    async def _put(self, resource: Any, obj: dict[str, Any], *, replace: bool) -> None:
        md = obj["metadata"]
        try:
            current = await self.client.get(resource, md["name"], md["namespace"])
        except ApiError as err:
            if err.code != 404:
                raise
            try:
                await self.client.create(resource, obj)
            except ApiError as err:
                if err.code != 409:  # AlreadyExists: another DNS server was faster
                    raise
            return
        if not replace and not needs_taking_over(current, self.address, self.node_name):
            return
        body = {**{k: v for k, v in current.items() if k not in ("subsets", "endpoints", "ports", "addressType")},
                **{k: v for k, v in obj.items() if k != "metadata"}}
        body["metadata"] = {**current["metadata"], "labels": md["labels"]}
        if body != current:
            try:
                await self.client.update(resource, body)
            except ApiError as err:
                if err.code != 409:  # Conflict: written meanwhile; the next round looks again
                    raise

    async def publish(self, *, replace: bool) -> None:
        endpoints, eps = self.objects
        await self._put(ENDPOINTS, endpoints, replace=replace)
        await self._put(SLICES, eps, replace=replace)

    async def run(self, wake: asyncio.Event | None = None) -> None:
        """Point the endpoints here, then take them over whenever they disappear or have no ready endpoint
        (looked at when `wake` is set: the DNS's EndpointSlice informer saw the slice deleted or left without
        a ready endpoint; and every RECHECK_SECONDS, for the Endpoints), until cancelled."""
        wake = wake or asyncio.Event()
        replace = True
        while True:
            wake.clear()
            try:
                await self.publish(replace=replace)
                replace = False
            except ApiError as exc:
                log.warning("dns: cannot publish the kube-dns endpoints: %s", exc.message)
            try:
                await asyncio.wait_for(wake.wait(), RECHECK_SECONDS)
            except TimeoutError:
                pass


def lost_slice_waker(wake: asyncio.Event) -> tuple[Any, Any]:
    """(on_update, on_delete) handlers for an EndpointSlice informer of trimmed records (namespace, name,
    ready, not_ready): set `wake` when the kube-dns slice is deleted or left without a ready endpoint."""
    def mine(rec: Any) -> bool:
        return (rec.namespace, rec.name) == (KUBE_SYSTEM, KUBE_DNS_SERVICE)

    def on_update(_old: Any, new: Any) -> None:
        if mine(new) and not new.ready:
            wake.set()

    def on_delete(rec: Any) -> None:
        if mine(rec):
            wake.set()

    return on_update, on_delete
