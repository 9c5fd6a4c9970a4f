"""ReplicaSet controller: keeps `spec.replicas` pods, adopts/releases pods by selector, writes status.

Duplicates are prevented with expectations: after creating or deleting pods, a ReplicaSet is not resized
again until the informer has seen those pods appear/disappear (or a timeout passed), exactly the reason
client-go's ControllerExpectations exist.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, is_pod_ready, now, parse_time, rfc3339
from nanokube.api.selectors import matches_labels, selector_from_label_selector
from nanokube.client import object_key
from nanokube.controllers.events import NORMAL, WARNING
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.podports import is_terminal
from nanokube.controllers.resources import PODS, REPLICASETS

BURST = 500
EXPECTATION_TIMEOUT = 60.0
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


@dataclass
class Expectation:
    adds: set[str] = field(default_factory=set)
    deletes: set[str] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)


def is_active(pod: Obj) -> bool:
    return not is_terminal(pod) and not pod.get("metadata", {}).get("deletionTimestamp")


def ready_since(pod: Obj) -> datetime | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def is_available(pod: Obj, min_ready_seconds: int, at: datetime) -> bool:
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and (at - since).total_seconds() >= min_ready_seconds


def deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods to delete first come first (controller.ActivePodsWithRanks): unscheduled, pending, not ready,
    cheaper, more crowded node, ready for less time, more restarts, newer."""
    per_node: dict[str, int] = {}
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName") or ""
        per_node[node] = per_node.get(node, 0) + 1
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}

    def key(pod: Obj) -> tuple[Any, ...]:
        spec, status, md = pod.get("spec", {}), pod.get("status", {}), pod.get("metadata", {})
        node = spec.get("nodeName") or ""
        ready = is_pod_ready(pod)
        try:
            cost = int((md.get("annotations") or {}).get(DELETION_COST, "0"))
        except ValueError:
            cost = 0
        since = ready_since(pod) if ready else None
        restarts = max((c.get("restartCount") or 0 for c in status.get("containerStatuses") or []), default=0)
        created = parse_time(md.get("creationTimestamp"))
        return (bool(node), phase_rank.get(status.get("phase") or "Pending", 0), ready, cost,
                -per_node[node] if node else 0, -(since.timestamp() if since else 0), -restarts,
                -(created.timestamp() if created else float("inf")))

    return sorted(pods, key=key)


def pod_from_template(rs: Obj, kind: str = "ReplicaSet", api_version: str = "apps/v1") -> Obj:
    md = rs["metadata"]
    template = rs.get("spec", {}).get("template") or {}
    tmd = template.get("metadata") or {}
    pod_md: Obj = {"generateName": f"{md['name']}-", "namespace": md.get("namespace"),
                   "labels": dict(tmd.get("labels") or {}),
                   "ownerReferences": [{"apiVersion": api_version, "kind": kind, "name": md["name"],
                                        "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}]}
    if tmd.get("annotations"):
        pod_md["annotations"] = dict(tmd["annotations"])
    if tmd.get("finalizers"):
        pod_md["finalizers"] = list(tmd["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_md, "spec": template.get("spec") or {}}


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    workers = 4
    resource = REPLICASETS
    kind = "ReplicaSet"
    api_version = "apps/v1"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.rss = ctx.informer(self.resource)
        self.pods = ctx.informer(PODS)
        self._expectations: dict[str, Expectation] = {}
        self._uid_to_key: dict[str, str] = {}
        self._owned: dict[str, set[str]] = {}  # rs uid -> pod keys
        self._orphans: dict[str, set[str]] = {}  # namespace -> pod keys without a controller
        self._failures: dict[str, str] = {}  # rs key -> last pod creation error, for the ReplicaFailure condition
        self.rss.add_handler(on_add=self._rs_changed, on_update=lambda _o, n: self._rs_changed(n),
                             on_delete=self._rs_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    # -- indexes ---------------------------------------------------------------------------------------
    def _rs_changed(self, rs: Obj) -> None:
        self._uid_to_key[rs["metadata"]["uid"]] = object_key(rs)
        self.queue.add(object_key(rs))

    def _rs_deleted(self, rs: Obj) -> None:
        self._uid_to_key.pop(rs["metadata"]["uid"], None)
        self._expectations.pop(object_key(rs), None)
        self.queue.add(object_key(rs))

    def _controller_uid(self, pod: Obj) -> str | None:
        for ref in pod.get("metadata", {}).get("ownerReferences") or []:
            if ref.get("controller"):
                return ref.get("uid") if ref.get("kind") == self.kind else ""
        return None

    def _index(self, pod: Obj, present: bool) -> None:
        key = object_key(pod)
        uid = self._controller_uid(pod)
        ns = pod["metadata"].get("namespace", "")
        if uid:
            owned = self._owned.setdefault(uid, set())
            owned.add(key) if present else owned.discard(key)
            if not owned:
                self._owned.pop(uid, None)
        elif uid is None:
            orphans = self._orphans.setdefault(ns, set())
            orphans.add(key) if present else orphans.discard(key)

    def _enqueue_for(self, pod: Obj) -> None:
        uid = self._controller_uid(pod)
        if uid:
            key = self._uid_to_key.get(uid)
            if key:
                self.queue.add(key)
        elif uid is None and is_active(pod):
            labels = pod["metadata"].get("labels") or {}
            ns = pod["metadata"].get("namespace")
            for rs in self.rss.cache.values():
                if rs["metadata"].get("namespace") == ns and self._selects(rs, labels):
                    self.queue.add(object_key(rs))

    @staticmethod
    def label_selector(rs: Obj) -> Obj | None:
        return rs.get("spec", {}).get("selector")

    def _selects(self, rs: Obj, labels: dict[str, str]) -> bool:
        reqs = selector_from_label_selector(self.label_selector(rs))
        return bool(reqs) and matches_labels(reqs, labels)  # type: ignore[arg-type]

    def _pod_added(self, pod: Obj) -> None:
        self._index(pod, True)
        self._enqueue_for(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("ownerReferences") != new["metadata"].get("ownerReferences"):
            self._index(old, False)
            self._enqueue_for(old)
        self._index(new, True)
        self._enqueue_for(new)

    def _pod_deleted(self, pod: Obj) -> None:
        self._index(pod, False)
        self._enqueue_for(pod)

    # -- expectations ----------------------------------------------------------------------------------
    def _satisfied(self, key: str) -> bool:
        exp = self._expectations.get(key)
        if exp is None:
            return True
        exp.adds = {k for k in exp.adds if k not in self.pods.cache}
        exp.deletes = {k for k in exp.deletes if k in self.pods.cache and
                       not self.pods.cache[k]["metadata"].get("deletionTimestamp")}
        if (not exp.adds and not exp.deletes) or time.monotonic() - exp.since > EXPECTATION_TIMEOUT:
            del self._expectations[key]
            return True
        return False

    # -- sync ------------------------------------------------------------------------------------------
    async def sync(self, key: str) -> float | None:
        rs = self.rss.cache.get(key)
        if rs is None:
            return None
        ns = rs["metadata"]["namespace"]
        uid = rs["metadata"]["uid"]
        owned = [p for k in self._owned.get(uid, ()) if (p := self.pods.cache.get(k)) is not None]
        pods = await self._claim(rs, owned, ns)
        active = [p for p in pods if is_active(p)]
        if self._satisfied(key) and not rs["metadata"].get("deletionTimestamp"):
            await self._manage(rs, active, key)
        return await self._update_status(rs, active)

    async def _claim(self, rs: Obj, owned: list[Obj], ns: str) -> list[Obj]:
        """Adopt matching orphans and release owned pods that stopped matching (ControllerRefManager)."""
        result = []
        for pod in owned:
            if self._selects(rs, pod["metadata"].get("labels") or {}):
                result.append(pod)
            elif not pod["metadata"].get("deletionTimestamp"):
                await self._set_owner(pod, None)
        if rs["metadata"].get("deletionTimestamp"):
            return result
        orphans = [p for k in self._orphans.get(ns, ()) if (p := self.pods.cache.get(k)) is not None
                   and is_active(p) and self._selects(rs, p["metadata"].get("labels") or {})]
        if orphans:
            fresh = await self.client.get(self.resource, rs["metadata"]["name"], ns)
            if fresh["metadata"]["uid"] != rs["metadata"]["uid"] or fresh["metadata"].get("deletionTimestamp"):
                return result
            for pod in orphans:
                adopted = await self._set_owner(pod, rs)
                if adopted is not None:
                    result.append(adopted)
        return result

    async def _set_owner(self, pod: Obj, rs: Obj | None) -> Obj | None:
        body = dict(pod)
        body["metadata"] = dict(pod["metadata"])
        refs = [r for r in pod["metadata"].get("ownerReferences") or [] if not r.get("controller")]
        if rs is not None:
            refs.append({"apiVersion": self.api_version, "kind": self.kind, "name": rs["metadata"]["name"],
                         "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True})
        body["metadata"]["ownerReferences"] = refs
        try:
            return await self.client.update(PODS, body)
        except ApiError as err:
            if err.code in (404, 409):
                return None
            raise

    async def _manage(self, rs: Obj, active: list[Obj], key: str) -> None:
        want = int(rs.get("spec", {}).get("replicas", 1))
        diff = len(active) - want
        if diff < 0:
            await self._create(rs, min(-diff, BURST), key)
        elif diff > 0:
            await self._delete(rs, deletion_order(active)[:min(diff, BURST)], key)

    async def _create(self, rs: Obj, count: int, key: str) -> None:
        exp = self._expectations.setdefault(key, Expectation())
        exp.since = time.monotonic()
        body = pod_from_template(rs, self.kind, self.api_version)
        ns = rs["metadata"]["namespace"]
        batch, remaining = 1, count
        while remaining > 0:
            size = min(batch, remaining)
            results = await asyncio.gather(*(self.client.create(PODS, body, ns) for _ in range(size)),
                                           return_exceptions=True)
            failed = None
            for result in results:
                if isinstance(result, BaseException):
                    failed = result
                    continue
                name = result["metadata"]["name"]
                exp.adds.add(f"{ns}/{name}")
                self.event(rs, NORMAL, "SuccessfulCreate", f"Created pod: {name}")
            remaining -= size
            if failed is not None:
                if not isinstance(failed, ApiError):
                    raise failed
                self.event(rs, WARNING, "FailedCreate", f"Error creating: {failed.message}")
                self._failures[key] = failed.message
                raise failed
            batch *= 2

    async def _delete(self, rs: Obj, victims: list[Obj], key: str) -> None:
        exp = self._expectations.setdefault(key, Expectation())
        exp.since = time.monotonic()
        ns = rs["metadata"]["namespace"]

        async def one(pod: Obj) -> None:
            name = pod["metadata"]["name"]
            try:
                await self.client.delete(PODS, name, ns, preconditions={"uid": pod["metadata"]["uid"]})
            except ApiError as err:
                if err.code not in (404, 409):
                    self.event(rs, WARNING, "FailedDelete", f"Error deleting: {err.message}")
                    raise
                return
            exp.deletes.add(f"{ns}/{name}")
            self.event(rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {name}")

        await asyncio.gather(*(one(p) for p in victims))

    async def _update_status(self, rs: Obj, active: list[Obj]) -> float | None:
        at = now()
        min_ready = int(rs.get("spec", {}).get("minReadySeconds") or 0)
        template_labels = ((rs.get("spec", {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        ready = [p for p in active if is_pod_ready(p)]
        available = [p for p in ready if is_available(p, min_ready, at)]
        status: Obj = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(1 for p in active if all(
                (p["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items())),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "observedGeneration": rs["metadata"].get("generation", 0),
        }
        conditions = [c for c in rs.get("status", {}).get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        failure = self._failures.pop(object_key(rs), None)
        if failure is not None:
            conditions.append({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                               "message": failure, "lastTransitionTime": rfc3339(at)})
        if conditions:
            status["conditions"] = conditions
        current = rs.get("status") or {}
        if any(current.get(k, 0) != v for k, v in status.items() if k != "conditions") or \
                (current.get("conditions") or []) != conditions:
            body = dict(rs)
            body["status"] = status
            await self.client.update(self.resource, body, subresource="status")
        if min_ready > 0 and len(ready) > len(available):
            return float(min_ready)
        return None
