"""Service allocation keys on start: make the `/registry/ranges/...` keys and the in-memory allocator agree with
the stored Services (Kubernetes' repair controllers, run once before the API serves).

Each allocated address or port is a key of its own, created and deleted in the same transaction as its
Service (allocators.Allocation.ops), so the keys only disagree with the Services after a manual edit of the
store or a crash of an older version.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from nanokube.api.served_resources import by_kind
from nanokube.api.service import held_ips, held_ports
from nanokube.apiserver.allocators import (
    IP_KEY_PREFIX,
    PORT_KEY_PREFIX,
    ServiceAllocator,
    ip_key,
    owner_record,
    port_key,
)
from nanokube.store.base import Op, Store, StoreError

log = logging.getLogger(__name__)

SERVICES = by_kind("", "Service")


async def repair_allocations(store: Store, allocator: ServiceAllocator) -> int:
    """Create the keys of held values that have none, delete keys nothing holds, then load the allocator.
    Services and keys are read at one revision and written with compares, in bounded txns (etcd takes 128 ops
    per txn), so another API server writing meanwhile on a shared store makes a round retry instead of losing
    its keys. Returns the revision the allocator is loaded at."""
    for attempt in range(5):
        services, at = await store.list(SERVICES.key_prefix())
        wanted: dict[str, dict[str, Any]] = {}
        ips: list[str] = []
        ports: list[int] = []
        for kv in services:
            svc = orjson.loads(kv.value)
            for ip in held_ips(svc):
                wanted[ip_key(ip)] = svc
                ips.append(ip)
            for port in held_ports(svc):
                wanted[port_key(port)] = svc
                ports.append(port)
        existing = {kv.key: kv.revision for prefix in (IP_KEY_PREFIX, PORT_KEY_PREFIX)
                    for kv in (await store.list(prefix, revision=at))[0]}
        ops = [Op("delete", key, None, existing[key]) for key in sorted(set(existing) - set(wanted))]
        ops += [Op("create", key, owner_record(wanted[key])) for key in sorted(set(wanted) - set(existing))]
        if ops:
            log.warning("repairing %d service allocation records", len(ops))
        try:
            for start in range(0, len(ops), 100):
                await store.txn(ops[start:start + 100])
            break
        except StoreError:
            if attempt == 4:
                raise
    allocator.load(ips, ports)
    return at
