"""Admission of new pods and Services against the namespace's LimitRanges and ResourceQuotas
(plugin/pkg/admission/limitranger, plugin/pkg/admission/resourcequota): container defaults are filled in,
min/max are enforced, and a create that would take any tracked resource above a quota's hard limit is
refused with kube-apiserver's Forbidden message. Usage is counted from the store at admission time, so it is
exact without reservations; the quota controller writes the same numbers into status.used.
"""

from __future__ import annotations

from decimal import Decimal

import orjson

from nanokube.api import quota
from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.api.quantity import format_quantity
from nanokube.api.served_resources import Resource, by_kind
from nanokube.store.base import Store

RESOURCE_QUOTAS = by_kind("", "ResourceQuota")
LIMIT_RANGES = by_kind("", "LimitRange")
ADMITTED_KINDS = ("Pod", "Service")


async def _objects(store: Store, res: Resource, ns: str) -> list[Obj]:
    items, _rev = await store.list(res.key_prefix(ns))
    return [orjson.loads(kv.value) for kv in items]


def forbidden(res: Resource, name: str, message: str) -> ApiError:
    return ApiError(403, "Forbidden", f'{res.plural} "{name}" is forbidden: {message}',
                    {"name": name, "kind": res.plural})


def _pretty(values: dict[str, Decimal], names: list[str]) -> str:
    return ",".join(f"{n}={format_quantity(n, values.get(n, Decimal(0)))}" for n in sorted(names))


async def admit_create(store: Store, res: Resource, obj: Obj) -> None:
    """Raises Forbidden, or returns with LimitRange defaults applied to `obj` (a pod)."""
    if res.group or res.kind not in ADMITTED_KINDS:
        return
    md = obj["metadata"]
    ns, name = md.get("namespace") or "default", md.get("name", "")
    if res.kind == "Pod":
        ranges = await _objects(store, LIMIT_RANGES, ns)
        if ranges:
            quota.apply_limit_range_defaults(obj, ranges)
            violation = quota.limit_range_violation(obj, ranges)
            if violation:
                raise forbidden(res, name, violation)
    quotas = sorted(await _objects(store, RESOURCE_QUOTAS, ns), key=lambda q: q["metadata"]["name"])
    if not quotas:
        return
    requested = quota.usage_of(res.kind, obj)
    existing = [o for o in await _objects(store, res, ns) if o["metadata"].get("name") != name]
    for rq in quotas:
        hard = quota.hard_of(rq)
        if res.kind == "Pod" and not quota.matches_scopes(rq, obj):
            continue
        tracked = [n for n, v in requested.items() if n in hard and v != 0]
        if not tracked:
            continue
        used: dict[str, Decimal] = {}
        for other in existing:
            if res.kind != "Pod" or quota.matches_scopes(rq, other):
                quota.add(used, quota.usage_of(res.kind, other))
        exceeded = [n for n in tracked if used.get(n, Decimal(0)) + requested[n] > hard[n]]
        if exceeded:
            raise forbidden(res, name, f"exceeded quota: {rq['metadata']['name']}, requested: "
                                       f"{_pretty(requested, exceeded)}, used: {_pretty(used, exceeded)}, "
                                       f"limited: {_pretty(hard, exceeded)}")
