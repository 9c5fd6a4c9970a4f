"""The /scale subresource: an autoscaling/v1 Scale read from, and written into, its owner object.

Built-in kinds keep replicas at spec.replicas / status.replicas with a label selector (a map for
ReplicationControllers); a custom resource names its own paths (CRD subresources.scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nanokube.api.meta import Obj
from nanokube.api.selectors import selector_string
from nanokube.api.served_resources import Resource


@dataclass(frozen=True)
class ScalePaths:
    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = None  # a custom resource's path to a selector string


def paths_of(res: Resource) -> ScalePaths:
    custom: ScalePaths | None = getattr(res, "scale_paths", None)
    return custom or ScalePaths()


def _parts(path: str) -> list[str]:
    return [p for p in path.lstrip(".").split(".") if p]


def read_path(obj: Any, path: str) -> Any:
    for part in _parts(path):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def write_path(obj: Obj, path: str, value: Any) -> None:
    parts = _parts(path)
    for part in parts[:-1]:
        child = obj.get(part)
        if not isinstance(child, dict):
            child = obj[part] = {}
        obj = child
    obj[parts[-1]] = value


def _selector(res: Resource, obj: Obj, paths: ScalePaths) -> str:
    if paths.label_selector is not None:
        value = read_path(obj, paths.label_selector)
        return value if isinstance(value, str) else ""
    selector = (obj.get("spec") or {}).get("selector")
    if res.plural == "replicationcontrollers":
        return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))
    text = selector_string(selector)
    return "" if text == "<none>" else text


def to_scale(res: Resource, obj: Obj) -> Obj:
    paths = paths_of(res)
    md = obj["metadata"]
    spec_replicas = read_path(obj, paths.spec_replicas)
    status_replicas = read_path(obj, paths.status_replicas)
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in md},
            "spec": {"replicas": spec_replicas if isinstance(spec_replicas, int) else 0},
            "status": {"replicas": status_replicas if isinstance(status_replicas, int) else 0,
                       "selector": _selector(res, obj, paths)}}


def set_replicas(res: Resource, obj: Obj, replicas: int) -> None:
    write_path(obj, paths_of(res).spec_replicas, replicas)
