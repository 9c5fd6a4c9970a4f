"""The Service write path of the registry over the in-memory store: one Allocation per write, whose keys are
written in the Service's transaction, so the `/registry/ranges` keys, the allocator and the stored Services
always agree, and a failed write gives back what it reserved."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from nanokube.api.errors import ApiError
from nanokube.api.served_resources import by_kind
from nanokube.api.service import held_ips, held_ports
from nanokube.apiserver import strategies
from nanokube.apiserver.allocators import IP_KEY_PREFIX, PORT_KEY_PREFIX, ServiceAllocator
from nanokube.apiserver.registry import Registry
from nanokube.apiserver.services import repair_allocations
from nanokube.store.base import Op
from nanokube.store.memory import MemoryStore

SERVICES = by_kind("", "Service")
ENDPOINTS = by_kind("", "Endpoints")
NAMESPACES = by_kind("", "Namespace")


def manifest(name: str = "web", **spec: Any) -> dict[str, Any]:
    spec.setdefault("selector", {"app": "web"})
    spec.setdefault("ports", [{"port": 80}])
    return {"metadata": {"name": name}, "spec": spec}


async def cluster() -> tuple[Registry, ServiceAllocator]:
    allocator = ServiceAllocator("10.96.0.0/24", "30000-30099", rng=random.Random(3))
    registry = Registry(MemoryStore(), strategies.table(allocator))
    await registry.create(NAMESPACES, None, {"metadata": {"name": "default"}})
    return registry, allocator


async def assert_consistent(registry: Registry, allocator: ServiceAllocator) -> None:
    """Keys, allocator and stored Services name the same held values."""
    services = [orjson.loads(raw) for raw in (await registry.list(SERVICES, None))[0]]
    ips = sorted(ip for svc in services for ip in held_ips(svc))
    ports = sorted(p for svc in services for p in held_ports(svc))
    ip_keys = sorted(kv.key[len(IP_KEY_PREFIX):] for kv in (await registry.store.list(IP_KEY_PREFIX))[0])
    port_keys = sorted(int(kv.key[len(PORT_KEY_PREFIX):]) for kv in (await registry.store.list(PORT_KEY_PREFIX))[0])
    assert (ip_keys, port_keys) == (ips, ports)
    assert (allocator.ips.used(), allocator.ports.used()) == (ips, ports)


def test_held_values_follow_kubernetes_release_rules() -> None:
    # releaseClusterIPs: an ExternalName or headless Service holds no IP, whatever its spec still says.
    assert held_ips({"spec": {"type": "ExternalName", "clusterIPs": ["10.96.0.5"]}}) == []
    assert held_ips({"spec": {"type": "ClusterIP", "clusterIPs": ["None"]}}) == []
    assert held_ips({"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.5"}}) == ["10.96.0.5"]
    # releaseAllocatedResources: every nodePort; the health-check port only while the Service needs one.
    ports = [{"port": 80, "nodePort": 30001}, {"port": 80, "protocol": "UDP", "nodePort": 30001}]
    assert held_ports({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
                                "healthCheckNodePort": 30002, "ports": ports}}) == [30001]
    assert held_ports({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                                "healthCheckNodePort": 30002, "ports": ports}}) == [30001, 30002]


async def test_keys_follow_every_write() -> None:
    registry, allocator = await cluster()
    await registry.create(SERVICES, "default", manifest(type="LoadBalancer", externalTrafficPolicy="Local"))
    svc = await registry.get(SERVICES, "default", "web")
    assert svc["spec"]["healthCheckNodePort"] and svc["status"] == {"loadBalancer": {}}
    assert len(allocator.ports.used()) == 2
    await assert_consistent(registry, allocator)
    for spec in ({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster"},  # frees the health-check port
                 {"type": "ExternalName", "externalName": "db.example.com"},  # frees the IP and node port
                 {"type": "NodePort"}):
        current = await registry.get(SERVICES, "default", "web")
        current["spec"] = {k: v for k, v in current["spec"].items()
                           if k in ("selector", "ports", "clusterIP", "clusterIPs")} | spec
        if spec["type"] == "ExternalName":
            for key in ("clusterIP", "clusterIPs"):
                current["spec"].pop(key)
            current["spec"]["ports"] = [{"port": 80}]
        await registry.update(SERVICES, "default", "web", current)
        await assert_consistent(registry, allocator)
    assert len(allocator.ips.used()) == 1 and len(allocator.ports.used()) == 1
    await registry.create(ENDPOINTS, "default", {"metadata": {"name": "web"}})
    await registry.delete(SERVICES, "default", "web")
    await assert_consistent(registry, allocator)
    assert allocator.ips.used() == [] and allocator.ports.used() == []
    with pytest.raises(ApiError) as caught:  # the Endpoints went with the Service
        await registry.get(ENDPOINTS, "default", "web")
    assert caught.value.code == 404


async def test_failed_write_gives_back_its_reservations() -> None:
    registry, allocator = await cluster()
    await registry.create(SERVICES, "default", manifest(type="NodePort"))
    held = (allocator.ips.used(), allocator.ports.used())
    with pytest.raises(ApiError) as caught:  # allocated, then the store refuses the duplicate name
        await registry.create(SERVICES, "default", manifest(type="NodePort"))
    assert caught.value.code == 409
    with pytest.raises(ApiError) as caught:  # allocated, then validation refuses it
        await registry.create(SERVICES, "default", manifest("other", type="NodePort", sessionAffinity="Sticky"))
    assert caught.value.code == 422
    assert (allocator.ips.used(), allocator.ports.used()) == held
    await registry.create(SERVICES, "default", manifest("dry", type="NodePort"), dry_run=True)
    assert (allocator.ips.used(), allocator.ports.used()) == held
    await assert_consistent(registry, allocator)


async def test_repair_rebuilds_keys_and_allocator() -> None:
    registry, _ = await cluster()
    await registry.create(SERVICES, "default", manifest(type="LoadBalancer", externalTrafficPolicy="Local"))
    keys = [kv.key for prefix in (IP_KEY_PREFIX, PORT_KEY_PREFIX) for kv in (await registry.store.list(prefix))[0]]
    # A key lost and a stray one, as after a manual edit of the store.
    await registry.store.txn([Op("delete", keys[0]), Op("create", IP_KEY_PREFIX + "10.96.0.99", {"owner": {}})])
    fresh = ServiceAllocator("10.96.0.0/24", "30000-30099")
    await repair_allocations(registry.store, fresh)
    await assert_consistent(registry, fresh)
