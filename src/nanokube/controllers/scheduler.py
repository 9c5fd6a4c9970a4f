"""Scheduler: binds pending pods to a Ready, schedulable node (nodeSelector, required node affinity, taints),
spreading by pod count. A pod that fits nowhere gets PodScheduled=False and a FailedScheduling event, and is
tried again whenever a node changes.
"""

from __future__ import annotations

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, condition, rfc3339
from nanokube.client import object_key
from nanokube.controllers.events import NORMAL, WARNING
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.podports import is_terminal
from nanokube.controllers.resources import NODES, PODS

SCHEDULER_NAME = "default-scheduler"


def node_ready(node: Obj) -> bool:
    cond = condition(node, "Ready")
    return bool(cond and cond.get("status") == "True")


def tolerates(pod: Obj, taint: Obj) -> bool:
    for tol in pod.get("spec", {}).get("tolerations") or []:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        op = tol.get("operator") or "Equal"
        if op == "Exists" and (not tol.get("key") or tol["key"] == taint.get("key")):
            return True
        if op == "Equal" and tol.get("key") == taint.get("key") and (tol.get("value") or "") == (
                taint.get("value") or ""):
            return True
    return False


def _expression_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt"):
        try:
            value, bound = int(labels[key]), int(values[0])
        except (KeyError, ValueError, IndexError):
            return False
        return value > bound if op == "Gt" else value < bound
    return False


def affinity_matches(pod: Obj, node: Obj) -> bool:
    labels = node.get("metadata", {}).get("labels") or {}
    selector = pod.get("spec", {}).get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = (((pod.get("spec", {}).get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    fields = {"metadata.name": node.get("metadata", {}).get("name", "")}
    return any(all(_expression_matches(e, labels) for e in term.get("matchExpressions") or []) and
               all(_expression_matches(e, fields) for e in term.get("matchFields") or []) for term in terms)


def filter_reason(pod: Obj, node: Obj, pods_on_node: int) -> str | None:
    """Why `pod` cannot go to `node` (scheduler plugin wording), or None when it fits."""
    if node.get("spec", {}).get("unschedulable") and not tolerates(
            pod, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
        return "node(s) were unschedulable"
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod, taint):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
    if not node_ready(node):
        return "node(s) were not ready"
    if not affinity_matches(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    capacity = (node.get("status", {}).get("allocatable") or {}).get("pods")
    if capacity is not None and str(capacity).isdigit() and pods_on_node >= int(capacity):
        return "Too many pods"
    return None


def choose_node(pod: Obj, nodes: list[Obj], load: dict[str, int]) -> tuple[str | None, str]:
    """(node name, "") or (None, the FailedScheduling message)."""
    if not nodes:
        return None, "no nodes available to schedule pods"
    fits, reasons = [], {}
    for node in nodes:
        name = node["metadata"]["name"]
        reason = filter_reason(pod, node, load.get(name, 0))
        if reason is None:
            fits.append(name)
        else:
            reasons[reason] = reasons.get(reason, 0) + 1
    if fits:
        return min(fits, key=lambda n: (load.get(n, 0), n)), ""
    detail = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
    return None, f"0/{len(nodes)} nodes are available: {detail}."


def wants_scheduling(pod: Obj) -> bool:
    spec = pod.get("spec", {})
    return (not spec.get("nodeName") and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
            and not pod.get("metadata", {}).get("deletionTimestamp") and not is_terminal(pod))


class Scheduler(Controller):
    name = "default-scheduler"
    workers = 4

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.pods = ctx.informer(PODS)
        self.nodes = ctx.informer(NODES)
        self._load: dict[str, int] = {}
        self._placed: dict[str, str] = {}  # pod key -> node, for bound pods and binds in flight
        self._unschedulable: set[str] = set()
        self.pods.add_handler(on_add=self._pod_seen, on_update=lambda _o, n: self._pod_seen(n),
                              on_delete=self._pod_gone)
        self.nodes.add_handler(on_add=self._node_changed, on_update=self._node_updated,
                               on_delete=self._node_changed)

    def _count(self, key: str, node: str | None) -> None:
        previous = self._placed.pop(key, None)
        if previous is not None:
            self._load[previous] -= 1
        if node is not None:
            self._placed[key] = node
            self._load[node] = self._load.get(node, 0) + 1

    def _pod_seen(self, pod: Obj) -> None:
        key = object_key(pod)
        node = pod.get("spec", {}).get("nodeName")
        if node:
            if not is_terminal(pod):
                self._count(key, node)
            else:
                self._count(key, None)
            self._unschedulable.discard(key)
        elif wants_scheduling(pod):
            self.queue.add(key)

    def _pod_gone(self, pod: Obj) -> None:
        key = object_key(pod)
        self._count(key, None)
        if self._unschedulable:
            self._unschedulable.discard(key)
            self._retry_unschedulable()

    def _retry_unschedulable(self) -> None:
        for key in self._unschedulable:
            self.queue.add(key)

    def _node_changed(self, _node: Obj) -> None:
        self._retry_unschedulable()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if node_ready(old) != node_ready(new) or old.get("spec") != new.get("spec") or \
                old["metadata"].get("labels") != new["metadata"].get("labels"):
            self._retry_unschedulable()

    async def sync(self, key: str) -> float | None:
        pod = self.pods.cache.get(key)
        if pod is None or not wants_scheduling(pod) or key in self._placed:
            return None
        node, message = choose_node(pod, self.nodes.list(), self._load)
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if node is None:
            self._unschedulable.add(key)
            await self._mark_unschedulable(pod, message)
            return 30.0
        self._count(key, node)
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns,
                                                                       "uid": pod["metadata"].get("uid")},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            await self.client.create(PODS, binding, ns, subresource="binding", name=name)
        except ApiError as err:
            self._count(key, None)
            if err.code in (404, 409):
                return None
            raise
        self._unschedulable.discard(key)
        self.event(pod, NORMAL, "Scheduled", f"Successfully assigned {ns}/{name} to {node}")
        return None

    async def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        cond = condition(pod, "PodScheduled")
        if cond is None or cond.get("status") != "False" or cond.get("message") != message:
            self.event(pod, WARNING, "FailedScheduling", message)
            status = dict(pod.get("status") or {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                               "message": message, "lastProbeTime": None, "lastTransitionTime": rfc3339()})
            status["conditions"] = conditions
            status.setdefault("phase", "Pending")
            await self.client.patch(PODS, pod["metadata"]["name"], {"status": status}, pod["metadata"]["namespace"],
                                    subresource="status")
