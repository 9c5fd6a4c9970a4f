"""The registry's write path alone, in process, on the in-memory store: CPU time per create, update and delete.

    PYTHONPATH=src python bench/registry_bench.py [--services 2000] [--rounds 5]

No HTTP, no client, no disk: what is left is defaulting, validation, allocation and the store transaction, so
two versions of the registry can be compared on a loaded machine (process CPU time, best of the rounds).
Works with the registry before issue 12 (Service hooks) and after it (Service strategy with an allocator).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from nanokube.api.served_resources import by_kind
from nanokube.apiserver.registry import Registry
from nanokube.store.memory import MemoryStore

SERVICES = by_kind("", "Service")
CONFIGMAPS = by_kind("", "ConfigMap")
NAMESPACES = by_kind("", "Namespace")


def make_registry() -> Registry:
    store = MemoryStore()
    try:
        from nanokube.apiserver import strategies
        from nanokube.apiserver.allocators import ServiceAllocator

        return Registry(store, strategies.table(ServiceAllocator("10.96.0.0/12", "30000-32767")))
    except (ImportError, AttributeError):  # the registry before issue 12
        from nanokube.apiserver.services import ServiceHooks

        return Registry(store, {"services": ServiceHooks("10.96.0.0/12", "30000-32767")})  # type: ignore[dict-item]


def service(i: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": f"a{i}"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    if i % 4 == 0:
        spec["type"] = "NodePort"
    return {"metadata": {"name": f"svc-{i}", "labels": {"app": f"a{i}"}}, "spec": spec}


def configmap(i: int) -> dict[str, Any]:
    return {"metadata": {"name": f"cm-{i}"}, "data": {"key": "value" * 10}}


async def timed(n: int, op: Callable[[int], Coroutine[Any, Any, Any]]) -> float:
    start = time.process_time()
    for i in range(n):
        await op(i)
    return (time.process_time() - start) / n * 1e6


async def one_round(n: int) -> dict[str, float]:
    registry = make_registry()
    await registry.create(NAMESPACES, None, {"metadata": {"name": "default"}})

    async def update(i: int) -> None:
        svc = await registry.get(SERVICES, "default", f"svc-{i}")
        svc["metadata"]["labels"]["round"] = "2"
        await registry.update(SERVICES, "default", f"svc-{i}", svc)

    return {
        "create Service": await timed(n, lambda i: registry.create(SERVICES, "default", service(i))),
        "create ConfigMap": await timed(n, lambda i: registry.create(CONFIGMAPS, "default", configmap(i))),
        "update Service": await timed(n, update),
        "delete Service": await timed(n, lambda i: registry.delete(SERVICES, "default", f"svc-{i}")),
        "delete ConfigMap": await timed(n, lambda i: registry.delete(CONFIGMAPS, "default", f"cm-{i}")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for phase, us in asyncio.run(one_round(args.services)).items():
            best[phase] = min(us, best.get(phase, float("inf")))
    for phase, us in best.items():
        print(f"{phase:18s}: {us:7.1f} us CPU per write (best of {args.rounds} rounds of {args.services})")


if __name__ == "__main__":
    main()
