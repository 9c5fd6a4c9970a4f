"""Storage keys of data dirs written before nanokube laid its keys out as kube-apiserver does
(`/registry/<group or core>/<plural>/...` then, `/registry/<plural>/...` with kube-apiserver's exceptions now):
moved once, on start, to where `Resource.key()` expects them. Each object keeps its value; its
resourceVersion becomes the move's revision (clients re-list, as after any restart)."""

from __future__ import annotations

import logging

import orjson

from nanokube.api.served_resources import RESOURCES
from nanokube.store.base import Op, Store

log = logging.getLogger(__name__)
BATCH = 100  # ops per txn (etcd takes 128)


def legacy_prefix(group: str, plural: str) -> str:
    return f"/registry/{group or 'core'}/{plural}/"


async def migrate_legacy_keys(store: Store) -> int:
    """Move every object found under a legacy prefix; returns how many moved."""
    moved = 0
    for res in RESOURCES:
        old, new = legacy_prefix(res.group, res.plural), res.key_prefix()
        if old == new:
            continue
        items, _ = await store.list(old)
        ops: list[Op] = []
        for kv in items:
            ops += [Op("create", new + kv.key[len(old):], orjson.loads(kv.value)), Op("delete", kv.key, None,
                                                                                     kv.revision)]
        for start in range(0, len(ops), BATCH):
            await store.txn(ops[start:start + BATCH])
        moved += len(items)
    if moved:
        log.warning("moved %d objects to kube-apiserver's storage key layout", moved)
    return moved
