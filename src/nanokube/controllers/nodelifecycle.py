"""Node lifecycle: a node whose Lease (or Ready heartbeat) is older than the grace period turns
Ready=Unknown, gets the unreachable taints, and its pods' Ready condition turns False so they leave
endpoints. The node agent brings both back when it posts again.
"""

from __future__ import annotations

import copy
from datetime import datetime

from nanokube.api.meta import Obj, is_pod_ready, now, parse_time, rfc3339
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.resources import LEASES, NODES, PODS

LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
_NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def last_heartbeat(node: Obj, lease: Obj | None) -> datetime | None:
    stamps = []
    if lease is not None:
        stamps.append(parse_time((lease.get("spec") or {}).get("renewTime")))
    for cond in node.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            stamps.append(parse_time(cond.get("lastHeartbeatTime")))
    stamps.append(parse_time(node.get("metadata", {}).get("creationTimestamp")))
    known = [s for s in stamps if s is not None]
    return max(known) if known else None


def mark_unknown(node: Obj, at: datetime) -> Obj | None:
    """The node with Unknown conditions and unreachable taints, or None if already so."""
    body = copy.deepcopy(node)
    changed = False
    conditions = body.setdefault("status", {}).setdefault("conditions", [])
    types = {c.get("type") for c in conditions}
    if "Ready" not in types:
        conditions.append({"type": "Ready"})
    for cond in conditions:
        if cond.get("type") in _NODE_CONDITIONS and cond.get("status") != "Unknown":
            cond.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                        lastTransitionTime=rfc3339(at))
            cond.setdefault("lastHeartbeatTime", None)
            changed = True
    taints = body.setdefault("spec", {}).setdefault("taints", [])
    for effect in ("NoSchedule", "NoExecute"):
        if not any(t.get("key") == UNREACHABLE and t.get("effect") == effect for t in taints):
            taint = {"key": UNREACHABLE, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = rfc3339(at)
            taints.append(taint)
            changed = True
    return body if changed else None


class NodeLifecycleController(Controller):
    name = "node-lifecycle-controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.grace = ctx.settings.node_monitor_grace_period
        self.nodes = ctx.informer(NODES)
        self.leases = ctx.informer(LEASES, LEASE_NAMESPACE)
        self.pods = ctx.informer(PODS)
        self.nodes.add_handler(on_add=self._node, on_update=lambda _o, n: self._node(n))
        self.leases.add_handler(on_add=self._lease, on_update=lambda _o, n: self._lease(n))
        self.pods.add_handler(on_add=self._pod, on_update=lambda _o, n: self._pod(n))

    def _node(self, node: Obj) -> None:
        self.queue.add(node["metadata"]["name"])

    def _lease(self, lease: Obj) -> None:
        self.queue.add(lease["metadata"]["name"])

    def _pod(self, pod: Obj) -> None:
        node = pod.get("spec", {}).get("nodeName")
        if node and is_pod_ready(pod):
            cached = self.nodes.cache.get(node)
            if cached is not None and self._unknown(cached):
                self.queue.add(node)

    @staticmethod
    def _unknown(node: Obj) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "Unknown"
                   for c in node.get("status", {}).get("conditions") or [])

    async def start(self) -> None:
        for node in self.nodes.list():
            self.queue.add(node["metadata"]["name"])

    async def sync(self, name: str) -> float | None:
        node = self.nodes.cache.get(name)
        if node is None:
            return None
        at = now()
        beat = last_heartbeat(node, self.leases.cache.get(f"{LEASE_NAMESPACE}/{name}"))
        age = (at - beat).total_seconds() if beat is not None else self.grace + 1
        if age <= self.grace:
            taints = node.get("spec", {}).get("taints") or []
            if not self._unknown(node) and any(t.get("key") == UNREACHABLE for t in taints):
                fresh = await self.client.get(NODES, name)
                fresh["spec"]["taints"] = [t for t in fresh["spec"].get("taints") or [] if t.get("key") != UNREACHABLE]
                await self.client.update(NODES, fresh)
            return self.grace - age + 0.05
        updated = mark_unknown(node, at)
        if updated is not None:
            await self.client.update(NODES, updated, subresource="status")
            taints = updated["spec"]["taints"]
            if taints != (node.get("spec", {}).get("taints") or []):
                fresh = await self.client.get(NODES, name)
                fresh.setdefault("spec", {})["taints"] = taints
                await self.client.update(NODES, fresh)
        await self._pods_not_ready(name, at)
        return None

    async def _pods_not_ready(self, node: str, at: datetime) -> None:
        for pod in list(self.pods.cache.values()):
            if pod.get("spec", {}).get("nodeName") != node or not is_pod_ready(pod):
                continue
            status = copy.deepcopy(pod.get("status") or {})
            for cond in status.get("conditions") or []:
                if cond.get("type") == "Ready":
                    cond["status"] = "False"
                    cond["lastTransitionTime"] = rfc3339(at)
            await self.client.patch(PODS, pod["metadata"]["name"], {"status": {"conditions": status["conditions"]}},
                                    pod["metadata"]["namespace"], subresource="status")
