"""The `kubernetes` Service's endpoints when several API servers share one store: kube-apiserver's lease
endpoint reconciler (pkg/controlplane/reconcilers/lease.go) on coordination.k8s.io Leases.

Each server keeps a Lease `kube-system/apiserver-<hash of its identity>` (label
apiserver.kubernetes.io/identity=kube-apiserver, as kube-apiserver's identity leases) renewed every 2/3 of its
duration, holding its advertised address and port. After each renewal it rewrites the `kubernetes` Endpoints
and EndpointSlices to exactly the servers whose Lease is live: renewed less than leaseDurationSeconds ago by
this server's clock (kube-apiserver's master leases expire by etcd TTL instead). An empty set never erases
the endpoints. On a clean stop a server deletes its Lease and reconciles once, so it leaves at once; a killed
one leaves when its Lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
from typing import Any

import orjson

from nanokube.api.errors import ApiError
from nanokube.api.served_resources import by_kind
from nanokube.apiserver.bootstrap import SKIP_MIRROR
from nanokube.apiserver.registry import Registry
from nanokube.store.base import StoreError

log = logging.getLogger(__name__)

LEASES = by_kind("coordination.k8s.io", "Lease")
ENDPOINTS = by_kind("", "Endpoints")
SLICES = by_kind("discovery.k8s.io", "EndpointSlice")
IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
ENDPOINT_ANNOTATION = "nanokube.io/apiserver-endpoint"  # "address:port" this server serves the API on
MANAGED_BY = "nanokube-apiserver"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _micro(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def live_endpoints(leases: list[dict[str, Any]], now: datetime.datetime) -> list[tuple[str, int]]:
    """(address, port) of every API server whose Lease is live at `now`, sorted."""
    out: set[tuple[str, int]] = set()
    for lease in leases:
        spec = lease.get("spec") or {}
        renewed = _parse_time(spec.get("renewTime"))
        endpoint = (lease["metadata"].get("annotations") or {}).get(ENDPOINT_ANNOTATION, "")
        address, _, port = endpoint.rpartition(":")
        if renewed is None or not address or not port.isdigit():
            continue
        if renewed + datetime.timedelta(seconds=float(spec.get("leaseDurationSeconds") or 0)) > now:
            out.add((address, int(port)))
    return sorted(out)


def desired_objects(endpoints: list[tuple[str, int]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The `kubernetes` Endpoints (one subset per port) and EndpointSlices (one per port: `kubernetes` for the
    lowest port, `kubernetes-<port>` for others; several ports only occur with servers on one host)."""
    by_port: dict[int, list[str]] = {}
    for address, port in endpoints:
        by_port.setdefault(port, []).append(address)
    subsets = [{"addresses": [{"ip": a} for a in sorted(addrs)], "ports": [{"name": "https", "port": port,
                                                                           "protocol": "TCP"}]}
               for port, addrs in sorted(by_port.items())]
    ep = {"apiVersion": "v1", "kind": "Endpoints",
          "metadata": {"name": "kubernetes", "namespace": "default", "labels": dict(SKIP_MIRROR)},
          "subsets": subsets}
    slices = []
    for index, (port, addrs) in enumerate(sorted(by_port.items())):
        slices.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes" if index == 0 else f"kubernetes-{port}", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes",
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], "conditions": {"ready": True, "serving": True, "terminating": False}}
                          for a in sorted(addrs)],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})
    return ep, slices


class ApiServerLease:
    def __init__(self, registry: Registry, identity: str, address: str, port: int, duration: float) -> None:
        self.registry = registry
        self.identity = identity
        self.endpoint = f"{address}:{port}"
        self.duration = duration
        self.name = "apiserver-" + hashlib.sha256(identity.encode()).hexdigest()[:16]

    async def renew(self) -> None:
        now = _micro(_now())
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.duration)),
                "renewTime": now}
        md = {"name": self.name, "namespace": "kube-system", "labels": {IDENTITY_LABEL: "kube-apiserver"},
              "annotations": {ENDPOINT_ANNOTATION: self.endpoint}}
        try:
            current = await self.registry.get(LEASES, "kube-system", self.name)
        except ApiError as err:
            if err.code != 404:
                raise
            await self.registry.create(LEASES, "kube-system", {"apiVersion": "coordination.k8s.io/v1",
                                                               "kind": "Lease", "metadata": md,
                                                               "spec": {**spec, "acquireTime": now}})
            return
        current["metadata"].update({"labels": md["labels"], "annotations": md["annotations"]})
        current["spec"] = {**(current.get("spec") or {}), **spec}
        await self.registry.update(LEASES, "kube-system", self.name, current)

    async def reconcile(self) -> None:
        raw, _, _, _ = await self.registry.list(LEASES, "kube-system",
                                                label_selector=f"{IDENTITY_LABEL}=kube-apiserver")
        endpoints = live_endpoints([orjson.loads(item) for item in raw], _now())
        if not endpoints:
            return  # never erase every endpoint (the lease reconciler's rule)
        ep, slices = desired_objects(endpoints)
        await self._put(ENDPOINTS, ep)
        for obj in slices:
            await self._put(SLICES, obj)
        wanted = {s["metadata"]["name"] for s in slices}
        raw, _, _, _ = await self.registry.list(SLICES, "default", label_selector=(
            f"kubernetes.io/service-name=kubernetes,endpointslice.kubernetes.io/managed-by={MANAGED_BY}"))
        for item in raw:
            name = orjson.loads(item)["metadata"]["name"]
            if name not in wanted:
                with contextlib.suppress(ApiError):
                    await self.registry.delete(SLICES, "default", name)

    async def _put(self, res: Any, obj: dict[str, Any]) -> None:
        md = obj["metadata"]
        try:
            current = await self.registry.get(res, md["namespace"], md["name"])
        except ApiError as err:
            if err.code != 404:
                raise
            with contextlib.suppress(ApiError):  # AlreadyExists: another server was faster
                await self.registry.create(res, md["namespace"], obj)
            return
        body = {**current, **{k: v for k, v in obj.items() if k != "metadata"}}
        body["metadata"] = {**current["metadata"], "labels": md["labels"]}
        if body != current:
            with contextlib.suppress(ApiError):  # Conflict: another server reconciled meanwhile; next round
                await self.registry.update(res, md["namespace"], md["name"], body)

    async def run(self) -> None:
        """Renew and reconcile every 2/3 of the lease duration until cancelled; then leave."""
        try:
            while True:
                try:
                    await self.renew()
                    await self.reconcile()
                except ApiError as exc:
                    log.warning("apiserver lease %s: %s", self.name, exc.message)
                await asyncio.sleep(self.duration * 2 / 3)
        finally:
            with contextlib.suppress(ApiError, StoreError):
                await asyncio.shield(self._leave())

    async def _leave(self) -> None:
        with contextlib.suppress(ApiError):
            await self.registry.delete(LEASES, "kube-system", self.name)
        await self.reconcile()
