"""ResourceQuota usage of pods and Services and LimitRange container defaults, shared by the API server's
admission (apiserver/admission_quota.py) and the quota controller that writes status.used
(pkg/quota/v1/evaluator/core/{pods,services}.go, plugin/pkg/admission/limitranger)."""

from __future__ import annotations

from decimal import Decimal

from nanokube.api.meta import Obj
from nanokube.api.quantity import parse_quantity

COMPUTE = ("cpu", "memory", "ephemeral-storage")
POD_RESOURCES = ("pods", "count/pods", "cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu",
                 "limits.memory", "requests.ephemeral-storage", "limits.ephemeral-storage", "ephemeral-storage")
SERVICE_RESOURCES = ("services", "count/services", "services.nodeports", "services.loadbalancers")


def _containers_total(pod: Obj, kind: str, resource: str) -> Decimal:
    """max(sum over containers, any init container), as the scheduler and quota count a pod."""
    spec = pod.get("spec") or {}

    def of(c: Obj) -> Decimal:
        value = ((c.get("resources") or {}).get(kind) or {}).get(resource)
        return parse_quantity(value) if value is not None else Decimal(0)

    total = sum((of(c) for c in spec.get("containers") or []), Decimal(0))
    for init in spec.get("initContainers") or []:
        total = max(total, of(init))
    overhead = (spec.get("overhead") or {}).get(resource)
    return total + (parse_quantity(overhead) if overhead is not None else 0)


def pod_counts(pod: Obj) -> bool:
    """Terminal pods stop counting against the quota."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def pod_usage(pod: Obj) -> dict[str, Decimal]:
    if not pod_counts(pod):
        return {}
    usage = {"pods": Decimal(1), "count/pods": Decimal(1)}
    for resource in COMPUTE:
        requests = _containers_total(pod, "requests", resource)
        limits = _containers_total(pod, "limits", resource)
        usage[f"requests.{resource}"] = requests
        usage[f"limits.{resource}"] = limits
        usage[resource] = requests
    return usage


def service_usage(service: Obj) -> dict[str, Decimal]:
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    usage = {"services": Decimal(1), "count/services": Decimal(1), "services.loadbalancers": Decimal(0),
             "services.nodeports": Decimal(0)}
    if kind == "LoadBalancer":
        usage["services.loadbalancers"] = Decimal(1)
    if kind == "NodePort" or (kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False):
        usage["services.nodeports"] = Decimal(len(spec.get("ports") or []))
    return usage


def usage_of(kind: str, obj: Obj) -> dict[str, Decimal]:
    return pod_usage(obj) if kind == "Pod" else service_usage(obj) if kind == "Service" else {}


def add(total: dict[str, Decimal], more: dict[str, Decimal]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, Decimal(0)) + value


def hard_of(quota: Obj) -> dict[str, Decimal]:
    return {name: parse_quantity(value) for name, value in ((quota.get("spec") or {}).get("hard") or {}).items()}


def matches_scopes(quota: Obj, pod: Obj) -> bool:
    """The pod scopes that need no other object: Terminating/NotTerminating, BestEffort/NotBestEffort."""
    spec = pod.get("spec") or {}
    best_effort = all(not (c.get("resources") or {}).get("requests") and not (c.get("resources") or {}).get("limits")
                      for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])])
    for scope in (quota.get("spec") or {}).get("scopes") or []:
        if scope == "Terminating" and spec.get("activeDeadlineSeconds") is None:
            return False
        if scope == "NotTerminating" and spec.get("activeDeadlineSeconds") is not None:
            return False
        if scope == "BestEffort" and not best_effort:
            return False
        if scope == "NotBestEffort" and best_effort:
            return False
    return True


def apply_limit_range_defaults(pod: Obj, limit_ranges: list[Obj]) -> None:
    """Container defaults of every LimitRange of type Container: `default` fills limits, `defaultRequest`
    (or `default` when absent) fills requests, only for resources a container does not set."""
    for lr in limit_ranges:
        for item in (lr.get("spec") or {}).get("limits") or []:
            if item.get("type") != "Container":
                continue
            default_limits = item.get("default") or {}
            default_requests = {**default_limits, **(item.get("defaultRequest") or {})}
            spec = pod.get("spec") or {}
            for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
                resources = c.setdefault("resources", {})
                for kind, defaults in (("limits", default_limits), ("requests", default_requests)):
                    for name, value in defaults.items():
                        if name not in (resources.get(kind) or {}):
                            resources.setdefault(kind, {})[name] = value


def limit_range_violation(pod: Obj, limit_ranges: list[Obj]) -> str | None:
    """min/max of type Container, in the limitranger's words."""
    for lr in limit_ranges:
        for item in (lr.get("spec") or {}).get("limits") or []:
            if item.get("type") != "Container":
                continue
            for c in (pod.get("spec") or {}).get("containers") or []:
                resources = c.get("resources") or {}
                for name, bound in (item.get("min") or {}).items():
                    request = (resources.get("requests") or {}).get(name)
                    if request is None:
                        return f"minimum {name} usage per Container is {bound}.  No request is specified"
                    if parse_quantity(request) < parse_quantity(bound):
                        return f"minimum {name} usage per Container is {bound}, but request is {request}"
                for name, bound in (item.get("max") or {}).items():
                    limit = (resources.get("limits") or {}).get(name)
                    if limit is None:
                        return f"maximum {name} usage per Container is {bound}.  No limit is specified"
                    if parse_quantity(limit) > parse_quantity(bound):
                        return f"maximum {name} usage per Container is {bound}, but limit is {limit}"
    return None
