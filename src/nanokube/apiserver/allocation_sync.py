"""Service allocations made by other API servers on the same store, mirrored into this server's allocator.

Each server allocates ClusterIPs and NodePorts from its own in-memory bitmaps; the per-value keys written in
the Service's transaction are what makes a value unique across servers (a second create of the same key
fails, and the registry retries with another value). Following those keys keeps the bitmaps close to the
truth, so such retries stay rare: a value another server took is marked used, one it released is freed.
"""

from __future__ import annotations

import asyncio
import logging

from nanokube.apiserver.allocators import IP_KEY_PREFIX, PORT_KEY_PREFIX, ServiceAllocator
from nanokube.store.base import Compacted, Store

log = logging.getLogger(__name__)

RANGES = "/registry/ranges/"


def mark(allocator: ServiceAllocator, key: str, held: bool) -> None:
    """Mark the value of an allocation key used (held) or free in this server's allocator."""
    if key.startswith(IP_KEY_PREFIX):
        ip = key[len(IP_KEY_PREFIX):]
        if held:
            allocator.ips.load([ip])
        else:
            allocator.ips.release(ip)
    elif key.startswith(PORT_KEY_PREFIX) and key[len(PORT_KEY_PREFIX):].isdigit():
        port = int(key[len(PORT_KEY_PREFIX):])
        if held:
            allocator.ports.load([port])
        else:
            allocator.ports.release(port)


async def follow_allocations(store: Store, allocator: ServiceAllocator, start_revision: int) -> None:
    """Until cancelled: apply every change of an allocation key after start_revision (re-listing when the
    watch ends or its history is gone)."""
    revision = start_revision
    while True:
        try:
            stream = store.watch(RANGES, revision)
            try:
                async for event in stream:
                    mark(allocator, event.key, event.type != "DELETED")
                    revision = event.revision
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        except Compacted:
            pass
        items, revision = await store.list(RANGES)
        live = {kv.key for kv in items}
        for key in live:
            mark(allocator, key, True)
        await asyncio.sleep(0.5)
