"""Service storage hooks: ClusterIP / NodePort allocation written in the same transaction as the Service.

Each allocated address or port is also a key of its own (`/registry/ranges/...`), created with the
Service and deleted with it, so a crash can never leave an address held twice: two Services racing
for one value cannot both create its key. A repair pass on start reconciles keys and Services.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from nanokube.api.errors import ApiError
from nanokube.api.served_resources import Resource, by_kind
from nanokube.apiserver.allocators import ServiceAllocator
from nanokube.store.base import Op, Store

log = logging.getLogger(__name__)

IP_PREFIX = "/registry/ranges/serviceips/"
PORT_PREFIX = "/registry/ranges/servicenodeports/"
SERVICES = by_kind("", "Service")
ENDPOINTS = by_kind("", "Endpoints")

Obj = dict[str, Any]


def held_ips(svc: Obj) -> set[str]:
    spec = svc.get("spec", {})
    ips = set(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    ips.discard("None")
    ips.discard("")
    return ips


def held_ports(svc: Obj) -> set[int]:
    spec = svc.get("spec", {})
    ports = {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        ports.add(int(spec["healthCheckNodePort"]))
    return ports


def _owner(svc: Obj) -> Obj:
    md = svc["metadata"]
    return {"metadata": {"name": ""}, "owner": {"namespace": md.get("namespace"), "name": md["name"],
                                                "uid": md.get("uid")}}


class _KeyedAllocation:
    """Store ops for what a write adds and releases, wrapped around the allocator's own undo/finish."""

    def __init__(self, svc: Obj, inner: Any, old: Obj | None) -> None:
        self.svc = svc
        self.inner = inner
        self.old = old

    def ops(self) -> list[Op]:
        new_ips, new_ports = held_ips(self.svc), held_ports(self.svc)
        old_ips = held_ips(self.old) if self.old else set()
        old_ports = held_ports(self.old) if self.old else set()
        owner = _owner(self.svc)
        out = [Op("create", IP_PREFIX + ip, owner) for ip in sorted(new_ips - old_ips)]
        out += [Op("create", f"{PORT_PREFIX}{p}", owner) for p in sorted(new_ports - old_ports)]
        out += [Op("delete", IP_PREFIX + ip) for ip in sorted(old_ips - new_ips)]
        out += [Op("delete", f"{PORT_PREFIX}{p}") for p in sorted(old_ports - new_ports)]
        return out

    def revert(self) -> None:
        if self.inner is not None:
            self.inner.revert()

    def commit(self) -> None:
        if self.inner is not None:
            self.inner.commit()


class _DeleteAllocation:
    def __init__(self, svc: Obj, allocator: ServiceAllocator) -> None:
        self.svc = svc
        self.allocator = allocator

    def ops(self) -> list[Op]:
        return ([Op("delete", IP_PREFIX + ip) for ip in sorted(held_ips(self.svc))]
                + [Op("delete", f"{PORT_PREFIX}{p}") for p in sorted(held_ports(self.svc))])

    def revert(self) -> None:
        pass

    def commit(self) -> None:
        self.allocator.release_service(self.svc)


class ServiceHooks:
    def __init__(self, service_cidr: str, node_port_range: str) -> None:
        self.allocator = ServiceAllocator(service_cidr, node_port_range)

    def before_create(self, obj: Obj, dry_run: bool) -> _KeyedAllocation:
        inner = self.allocator.prepare_create(obj, dry_run)
        return _KeyedAllocation(obj, inner, None)

    def before_update(self, old: Obj, new: Obj, dry_run: bool) -> _KeyedAllocation:
        inner = self.allocator.prepare_update(old, new, dry_run)
        return _KeyedAllocation(new, inner, old)

    def on_delete(self, obj: Obj) -> _DeleteAllocation:
        return _DeleteAllocation(obj, self.allocator)

    async def repair(self, store: Store) -> None:
        """Make the allocation keys and the in-memory allocator agree with the stored Services."""
        services, _ = await store.list(SERVICES.key_prefix())
        wanted: dict[str, Obj] = {}
        for kv in services:
            svc = orjson.loads(kv.value)
            for ip in held_ips(svc):
                wanted[IP_PREFIX + ip] = svc
            for port in held_ports(svc):
                wanted[f"{PORT_PREFIX}{port}"] = svc
        existing = {kv.key for prefix in (IP_PREFIX, PORT_PREFIX) for kv in (await store.list(prefix))[0]}
        ops = [Op("delete", key) for key in sorted(existing - set(wanted))]
        ops += [Op("create", key, _owner(wanted[key])) for key in sorted(set(wanted) - existing)]
        if ops:
            log.warning("repairing %d service allocation records", len(ops))
            await store.txn(ops)
        self.allocator.load([k[len(IP_PREFIX):] for k in wanted if k.startswith(IP_PREFIX)],
                            [int(k[len(PORT_PREFIX):]) for k in wanted if k.startswith(PORT_PREFIX)])


async def delete_service_endpoints(registry: Any, res: Resource, obj: Obj) -> None:
    """kube-apiserver deletes a Service's Endpoints object together with the Service."""
    if res.plural != "services":
        return
    md = obj["metadata"]
    try:
        await registry.delete(ENDPOINTS, md.get("namespace"), md["name"])
    except ApiError as err:
        if err.code != 404:
            raise
