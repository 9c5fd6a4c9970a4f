"""What a DaemonSet wants, as pure functions (pkg/controller/daemon/daemon_controller.go, update.go,
util/daemonset_util.go): which nodes should run its pod, the pod for one node (pinned by a metadata.name
node-affinity term, left for the scheduler to bind), the pods to create and delete, rolling updates bounded by
maxUnavailable/maxSurge, and the status."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nanokube.api.meta import Obj, is_pod_ready
from nanokube.controllers.statefulset_logic import REVISION_LABEL, is_available, owner_ref

TEMPLATE_GENERATION_LABEL = "pod-template-generation"
DEFAULT_TOLERATIONS = [
    ("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"), ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule"),
]


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        op = tol.get("operator") or "Equal"
        if op == "Exists" and (not tol.get("key") or tol["key"] == taint.get("key")):
            return True
        if op == "Equal" and tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value")
                                                                                              or ""):
            return True
    return False


def _expression(expr: Obj, values: dict[str, str]) -> bool:
    key, op, wanted = expr.get("key"), expr.get("operator"), expr.get("values") or []
    if op == "In":
        return values.get(key) in wanted
    if op == "NotIn":
        return values.get(key) not in wanted
    if op == "Exists":
        return key in values
    if op == "DoesNotExist":
        return key not in values
    if op in ("Gt", "Lt"):
        try:
            value, bound = int(values[key]), int(wanted[0])
        except (KeyError, ValueError, IndexError):
            return False
        return value > bound if op == "Gt" else value < bound
    return False


def pod_tolerations(ds: Obj) -> list[Obj]:
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    tolerations = list(spec.get("tolerations") or [])
    wanted = list(DEFAULT_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    for key, effect in wanted:
        if not any(t.get("key") == key and t.get("effect") == effect and t.get("operator") == "Exists"
                   for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    return tolerations


def should_run(ds: Obj, node: Obj) -> tuple[bool, bool]:
    """(should run a new pod there, should keep a running one) — NodeShouldRunDaemonPod."""
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    name = node["metadata"]["name"]
    if spec.get("nodeName") and spec["nodeName"] != name:
        return False, False
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False, False
    terms = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
              .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
    if terms and not any(all(_expression(e, labels) for e in t.get("matchExpressions") or []) and
                         all(_expression(e, {"metadata.name": name}) for e in t.get("matchFields") or [])
                         for t in terms):
        return False, False
    tolerations = pod_tolerations(ds)
    taints = list((node.get("spec") or {}).get("taints") or [])
    if (node.get("spec") or {}).get("unschedulable"):
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    untolerated = [t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, t)]
    if not untolerated:
        return True, True
    return False, all(t.get("effect") == "NoSchedule" for t in untolerated)


def new_pod(ds: Obj, node_name: str, revision: str) -> Obj:
    md = ds["metadata"]
    template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
    tmd = template.get("metadata") or {}
    labels = dict(tmd.get("labels") or {})
    labels[REVISION_LABEL] = revision
    generation = (md.get("annotations") or {}).get("deprecated.daemonset.template.generation")
    if generation:
        labels[TEMPLATE_GENERATION_LABEL] = generation
    pod_md: Obj = {"generateName": f"{md['name']}-", "namespace": md["namespace"], "labels": labels,
                   "ownerReferences": [owner_ref(ds, "DaemonSet", "apps/v1")]}
    if tmd.get("annotations"):
        pod_md["annotations"] = dict(tmd["annotations"])
    spec = template.get("spec") or {}
    spec["tolerations"] = pod_tolerations(ds)
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_md, "spec": spec}


def target_node(pod: Obj) -> str | None:
    """The node a daemon pod is for: its binding, else its metadata.name affinity term."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for expr in term.get("matchFields") or []:
            if expr.get("key") == "metadata.name" and expr.get("operator") == "In" and len(expr.get("values") or []) == 1:
                return str(expr["values"][0])
    return None


def _scaled(value: Any, total: int) -> int:
    """An int-or-percent against the number of nodes, rounding up (the DaemonSet rule)."""
    if value is None:
        return 0
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def rolling_params(ds: Obj, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable); both zero becomes maxUnavailable 1."""
    ru = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    surge = _scaled(ru.get("maxSurge", 0), desired)
    unavailable = _scaled(ru.get("maxUnavailable", 1), desired)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass
class Plan:
    create: list[str] = field(default_factory=list)  # node names
    delete: list[Obj] = field(default_factory=list)


def _oldest_first(pods: list[Obj]) -> list[Obj]:
    return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))


def plan(ds: Obj, nodes: list[Obj], pods_by_node: dict[str, list[Obj]], revision: str, at: datetime) -> Plan:
    out = Plan()
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    node_names = {n["metadata"]["name"] for n in nodes}
    strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    eligible: dict[str, list[Obj]] = {}
    for node in nodes:
        name = node["metadata"]["name"]
        run, keep = should_run(ds, node)
        pods = [p for p in pods_by_node.get(name, []) if not p["metadata"].get("deletionTimestamp")]
        terminal = [p for p in pods if (p.get("status") or {}).get("phase") in ("Failed", "Succeeded")]
        out.delete += terminal
        live = _oldest_first([p for p in pods if p not in terminal])
        if run and not live and not terminal:
            out.create.append(name)
        elif run and live:
            eligible[name] = live
        elif keep and live:
            eligible[name] = live
        elif live:
            out.delete += live
    for name, pods in pods_by_node.items():  # pods for nodes that are gone
        if name not in node_names:
            out.delete += [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    surge, max_unavailable = rolling_params(ds, len(eligible) + len(out.create))
    for live in eligible.values():
        new = [p for p in live if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision]
        old = [p for p in live if p not in new]
        if surge > 0 and strategy == "RollingUpdate" and new and old:
            if any(is_available(p, min_ready, at) for p in new):
                out.delete += old  # the new pod is up: the old ones go
            out.delete += new[1:]
        elif len(live) > 1:
            out.delete += live[1:]  # keep only the oldest
    if strategy != "RollingUpdate":
        return out
    unavailable = len(out.create)
    outdated_available: list[tuple[str, Obj]] = []
    doomed = {p["metadata"]["uid"] for p in out.delete}
    for name, live in eligible.items():
        kept = [p for p in live if p["metadata"]["uid"] not in doomed]
        if not kept:
            continue
        pod = kept[0]
        current = (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision
        has_new = any((p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision for p in kept)
        available = is_available(pod, min_ready, at)
        if not available:
            unavailable += 1
        if current or has_new:
            continue
        if not available and surge == 0:
            out.delete.append(pod)  # outdated and unavailable: replace freely
        else:
            outdated_available.append((name, pod))
    if surge > 0:
        in_flight = sum(1 for live in eligible.values() if len({(p["metadata"].get("labels") or {}).get(
            REVISION_LABEL) for p in live}) > 1)
        for name, _pod in outdated_available[:max(0, surge - in_flight)]:
            out.create.append(name)
        return out
    outdated_available.sort(key=lambda item: (item[1]["metadata"].get("creationTimestamp") or "", item[0]))
    for _name, pod in outdated_available[:max(0, max_unavailable - unavailable)]:
        out.delete.append(pod)
    return out


def compute_status(ds: Obj, nodes: list[Obj], pods_by_node: dict[str, list[Obj]], revision: str,
                   at: datetime) -> Obj:
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        pods = _oldest_first([p for p in pods_by_node.get(node["metadata"]["name"], [])
                              if not p["metadata"].get("deletionTimestamp")
                              and (p.get("status") or {}).get("phase") not in ("Failed", "Succeeded")])
        run, _keep = should_run(ds, node)
        if not run:
            misscheduled += 1 if pods else 0
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = pods[0]
        if is_pod_ready(pod):
            ready += 1
            if is_available(pod, min_ready, at):
                available += 1
        if any((p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision for p in pods):
            updated += 1
    return {"desiredNumberScheduled": desired, "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled, "numberReady": ready, "numberAvailable": available,
            "updatedNumberScheduled": updated, "numberUnavailable": desired - available,
            "observedGeneration": ds["metadata"].get("generation", 0)}
