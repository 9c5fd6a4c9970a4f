"""The Service write path of the registry without a store: the Service strategy's defaulting, allocation,
preparation and validation, in the order Registry.create / Registry.update run them."""

from __future__ import annotations

from typing import Any

from nanokube.api.served_resources import by_kind
from nanokube.apiserver import strategies
from nanokube.apiserver.allocators import Allocation, ServiceAllocator
from nanokube.apiserver.registry import carry_system_metadata

SERVICES = by_kind("", "Service")


def prepare_create(allocator: ServiceAllocator, svc: dict[str, Any], dry_run: bool = False) -> Allocation:
    """Default, allocate and validate a Service being created (mutates svc); raises ApiError."""
    strategy = strategies.table(allocator)["services"]
    assert strategy.default is not None
    strategy.default(svc)
    return strategy.before_create(SERVICES, svc, dry_run)


def prepare_update(allocator: ServiceAllocator, old: dict[str, Any], new: dict[str, Any],
                   dry_run: bool = False) -> Allocation:
    """Default, carry over allocated values, allocate and validate an update (mutates new); raises ApiError."""
    strategy = strategies.table(allocator)["services"]
    assert strategy.default is not None
    strategy.default(new)
    new.setdefault("metadata", {})
    carry_system_metadata(strategy, old, new)
    return strategy.before_update(SERVICES, old, new, dry_run)
