"""Change trackers: what changed per Service since the last sync, as (previous, current) pairs.

`previous` is the state before the first unsynced change and `current` the latest one; when they become
equal again the entry disappears (no-op collapse). Updates are synchronous (no await), so they are atomic
with respect to the sync coroutine, which takes everything at once with `checkout()`.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from nanokube.api.endpointslices import slice_service_key
from nanokube.api.meta import Obj
from nanokube.proxy.model import (
    ServicePortInfo,
    ServicePortName,
    SliceEndpoints,
    merge_slices,
    service_key,
    service_ports,
    slice_endpoints,
)

T = TypeVar("T")


class _PendingChanges(Generic[T]):
    def __init__(self) -> None:
        self._items: dict[str, tuple[T, T]] = {}

    def record(self, key: str, previous: T, current: T) -> bool:
        if key in self._items:
            previous = self._items[key][0]
        if previous == current:
            self._items.pop(key, None)
        else:
            self._items[key] = (previous, current)
        return bool(self._items)

    def checkout(self) -> dict[str, tuple[T, T]]:
        items, self._items = self._items, {}
        return items

    def __len__(self) -> int:
        return len(self._items)


ServicePorts = dict[ServicePortName, ServicePortInfo]


class ServiceChangeTracker:
    def __init__(self) -> None:
        self._pending: _PendingChanges[ServicePorts] = _PendingChanges()

    def update(self, old: Obj | None, new: Obj | None) -> bool:
        """Record a Service add (old None), update or delete (new None); True if anything is pending."""
        obj = new or old
        if obj is None:
            return bool(self._pending)
        return self._pending.record(service_key(obj), service_ports(old), service_ports(new))

    def checkout(self) -> dict[str, tuple[ServicePorts, ServicePorts]]:
        return self._pending.checkout()

    def __len__(self) -> int:
        return len(self._pending)


class EndpointsChangeTracker:
    """Keeps every Service's EndpointSlices (parsed) and records merged-endpoint changes per Service."""

    def __init__(self) -> None:
        self._slices: dict[str, dict[str, SliceEndpoints]] = {}
        self._pending: _PendingChanges[SliceEndpoints] = _PendingChanges()

    def update(self, old: Obj | None, new: Obj | None) -> bool:
        obj = new or old
        if obj is None:
            return bool(self._pending)
        svc = slice_service_key(obj)
        if svc is None:
            return bool(self._pending)
        name = obj["metadata"]["name"]
        slices = self._slices.setdefault(svc, {})
        previous = merge_slices(slices)
        old_svc = slice_service_key(old) if old else None
        if old_svc and old_svc != svc:  # label moved: treat as delete from the old Service
            self.update(old, None)
        if new is None:
            slices.pop(name, None)
        else:
            slices[name] = slice_endpoints(new)
        if not slices:
            del self._slices[svc]
        return self._pending.record(svc, previous, merge_slices(slices))

    def checkout(self) -> dict[str, tuple[SliceEndpoints, SliceEndpoints]]:
        return self._pending.checkout()

    def __len__(self) -> int:
        return len(self._pending)
