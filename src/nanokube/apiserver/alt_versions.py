"""Built-in resources served in a second version, stored in their storage version: autoscaling/v1
HorizontalPodAutoscaler (what `kubectl autoscale` posts), kept as autoscaling/v2.

Writes through the other version are converted to the storage version before the registry sees them; reads
are converted back (pkg/apis/autoscaling/v1/conversion.go: the CPU target becomes the v2 metric, the rest of v2
travels in the `autoscaling.alpha.kubernetes.io/*` annotations).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from nanokube.api.meta import Obj
from nanokube.api.served_resources import Resource, by_kind

METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"


@dataclass(frozen=True)
class AltResource(Resource):
    storage: Resource | None = field(default=None, compare=False, hash=False)
    to_storage: Callable[[Obj], Obj] | None = field(default=None, compare=False, hash=False, repr=False)
    from_storage: Callable[[Obj], Obj] | None = field(default=None, compare=False, hash=False, repr=False)
    rewrites: bool = True

    def present(self, raw: bytes) -> bytes:
        assert self.from_storage is not None
        return orjson.dumps(self.from_storage(orjson.loads(raw)))


def _is_cpu_utilization(metric: Obj) -> bool:
    resource = metric.get("resource") or {}
    return (metric.get("type") == "Resource" and resource.get("name") == "cpu"
            and (resource.get("target") or {}).get("type") == "Utilization")


def hpa_v2_to_v1(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v1"
    spec, status = out.get("spec") or {}, out.get("status") or {}
    annotations = dict((out.get("metadata") or {}).get("annotations") or {})
    new_spec: Obj = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec}
    others = []
    for metric in spec.get("metrics") or []:
        if _is_cpu_utilization(metric) and "targetCPUUtilizationPercentage" not in new_spec:
            new_spec["targetCPUUtilizationPercentage"] = metric["resource"]["target"].get("averageUtilization")
        else:
            others.append(metric)
    if others:
        annotations[METRICS] = orjson.dumps(others).decode()
    if spec.get("behavior"):
        annotations[BEHAVIOR] = orjson.dumps(spec["behavior"]).decode()
    new_status: Obj = {k: status[k] for k in ("observedGeneration", "lastScaleTime", "currentReplicas",
                                              "desiredReplicas") if k in status}
    if "status" in out:
        new_status.setdefault("currentReplicas", 0)
        new_status.setdefault("desiredReplicas", 0)
    current_others = []
    for metric in status.get("currentMetrics") or []:
        current = ((metric.get("resource") or {}).get("current") or {})
        if metric.get("type") == "Resource" and (metric.get("resource") or {}).get("name") == "cpu" \
                and current.get("averageUtilization") is not None:
            new_status["currentCPUUtilizationPercentage"] = current["averageUtilization"]
        else:
            current_others.append(metric)
    if current_others:
        annotations[CURRENT_METRICS] = orjson.dumps(current_others).decode()
    if status.get("conditions"):
        annotations[CONDITIONS] = orjson.dumps(status["conditions"]).decode()
    out["spec"] = new_spec
    if "status" in out:
        out["status"] = new_status
    if annotations:
        out.setdefault("metadata", {})["annotations"] = annotations
    return out


def hpa_v1_to_v2(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v2"
    md = out.get("metadata") if isinstance(out.get("metadata"), dict) else {}
    annotations = dict(md.get("annotations") or {})
    spec = out.get("spec") if isinstance(out.get("spec"), dict) else {}
    new_spec: Obj = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec}
    metrics: list[Obj] = []
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": spec["targetCPUUtilizationPercentage"]}}})
    metrics.extend(_annotation_list(annotations.pop(METRICS, None)))
    if metrics:
        new_spec["metrics"] = metrics
    behavior = annotations.pop(BEHAVIOR, None)
    if behavior:
        try:
            new_spec["behavior"] = orjson.loads(behavior)
        except orjson.JSONDecodeError:
            pass
    out["spec"] = new_spec
    status = out.get("status")
    if isinstance(status, dict):
        new_status: Obj = {k: status[k] for k in ("observedGeneration", "lastScaleTime", "currentReplicas",
                                                  "desiredReplicas") if k in status}
        current: list[Obj] = []
        if status.get("currentCPUUtilizationPercentage") is not None:
            current.append({"type": "Resource", "resource": {"name": "cpu", "current": {
                "averageUtilization": status["currentCPUUtilizationPercentage"]}}})
        current.extend(_annotation_list(annotations.pop(CURRENT_METRICS, None)))
        if current:
            new_status["currentMetrics"] = current
        conditions = _annotation_list(annotations.pop(CONDITIONS, None))
        if conditions:
            new_status["conditions"] = conditions
        out["status"] = new_status
    else:
        annotations.pop(CURRENT_METRICS, None)
        annotations.pop(CONDITIONS, None)
    if md:
        if annotations:
            md["annotations"] = annotations
        else:
            md.pop("annotations", None)
    return out


def _annotation_list(text: str | None) -> list[Obj]:
    if not text:
        return []
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    return value if isinstance(value, list) else []


_HPA_V2 = by_kind("autoscaling", "HorizontalPodAutoscaler")
ALT_RESOURCES: tuple[AltResource, ...] = (
    AltResource("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",),
                ("status",), ("all",), storage=_HPA_V2, to_storage=hpa_v1_to_v2, from_storage=hpa_v2_to_v1),
)
BY_GROUP_VERSION_PLURAL = {(r.group, r.version, r.plural): r for r in ALT_RESOURCES}


def lookup(group: str, version: str, plural: str) -> AltResource | None:
    return BY_GROUP_VERSION_PLURAL.get((group, version, plural))


def to_storage(res: Resource, obj: Any) -> tuple[Resource, Any]:
    """The resource to write through and the body converted to its version (unchanged for other resources)."""
    convert = getattr(res, "to_storage", None)
    storage = getattr(res, "storage", None)
    if convert is None or storage is None or not isinstance(obj, dict):
        return res, obj
    return storage, convert(obj)


def groups() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in ALT_RESOURCES:
        out.setdefault(r.group, []).append(r.version)
    return out
