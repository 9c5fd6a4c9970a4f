"""DaemonSet controller: one pod per eligible node (nodeSelector, node affinity, taints and tolerations, the
default daemon tolerations), following nodes as they join, change and leave; rolling updates by
ControllerRevision within maxUnavailable/maxSurge, or OnDelete; status written back. Pods are created unbound
with a metadata.name node-affinity term and bound by the scheduler, as in Kubernetes."""

from __future__ import annotations

import asyncio
import logging
import time

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, now
from nanokube.api.selectors import matches_labels, selector_from_label_selector
from nanokube.client import object_key
from nanokube.controllers import daemonset_logic as logic
from nanokube.controllers.events import NORMAL, WARNING
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.owned import OwnedIndex
from nanokube.controllers.resources import DAEMONSETS, NODES, PODS
from nanokube.controllers.revisions import RevisionHistory

log = logging.getLogger(__name__)
KIND = "DaemonSet"
EXPECTATION_TIMEOUT = 30.0


class DaemonSetController(Controller):
    name = "daemonset-controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.sets = ctx.informer(DAEMONSETS)
        self.nodes = ctx.informer(NODES)
        self._uid_to_key: dict[str, str] = {}
        self._pending: dict[str, tuple[float, set[str]]] = {}  # ds key -> (since, keys of pods it created)
        self.sets.add_handler(on_add=self._changed, on_update=lambda _o, n: self._changed(n),
                              on_delete=lambda ds: self._uid_to_key.pop(ds["metadata"]["uid"], None))
        self.pods = OwnedIndex(ctx.informer(PODS), KIND, self._enqueue_uid)
        self.history = RevisionHistory(ctx, KIND, self._enqueue_uid)
        self.nodes.add_handler(on_add=lambda _n: self._all(), on_update=self._node_updated,
                               on_delete=lambda _n: self._all())

    def _changed(self, ds: Obj) -> None:
        self._uid_to_key[ds["metadata"]["uid"]] = object_key(ds)
        self.queue.add(object_key(ds))

    def _enqueue_uid(self, uid: str) -> None:
        key = self._uid_to_key.get(uid)
        if key:
            self.queue.add(key)

    def _all(self) -> None:
        for key in self.sets.cache:
            self.queue.add(key)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("labels") != new["metadata"].get("labels") or old.get("spec") != new.get("spec"):
            self._all()

    async def sync(self, key: str) -> float | None:
        ds = self.sets.cache.get(key)
        if ds is None:
            self._pending.pop(key, None)
            return None
        selector = (ds.get("spec") or {}).get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            self.event(ds, WARNING, "SelectingAll", "This daemon set is selecting all pods. A non-empty selector is "
                                                    "required.")
            return None
        if ds["metadata"].get("deletionTimestamp"):
            return None
        reqs = selector_from_label_selector(selector)
        pods = [p for p in self.pods.of(ds["metadata"]["uid"])
                if matches_labels(reqs, p["metadata"].get("labels") or {})]  # type: ignore[arg-type]
        by_node: dict[str, list[Obj]] = {}
        for pod in pods:
            node = logic.target_node(pod)
            if node:
                by_node.setdefault(node, []).append(pod)
        current, update, _collisions = await self.history.sync(ds)
        revision = update["metadata"]["name"]
        nodes = self.nodes.list()
        at = now()
        if self._expectations_met(key):
            step = logic.plan(ds, nodes, by_node, revision, at)
            await self._execute(ds, key, step, revision)
        status = logic.compute_status(ds, nodes, by_node, revision, at)
        old = ds.get("status") or {}
        if any(old.get(k, 0) != v for k, v in status.items()):
            await self.client.update(DAEMONSETS, {**ds, "status": {**old, **status}}, subresource="status")
        await self.history.truncate(ds, pods, current, update)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        return float(min_ready) if min_ready and status["numberReady"] != status["numberAvailable"] else None

    def _expectations_met(self, key: str) -> bool:
        """Created pods not yet in the informer would be created twice; wait for them (or a timeout)."""
        pending = self._pending.get(key)
        if pending is None:
            return True
        since, expected = pending
        if all(k in self.pods.informer.cache for k in expected) or time.monotonic() - since > EXPECTATION_TIMEOUT:
            del self._pending[key]
            return True
        return False

    async def _execute(self, ds: Obj, key: str, step: logic.Plan, revision: str) -> None:
        ns = ds["metadata"]["namespace"]
        created: set[str] = set()

        async def create(node: str) -> None:
            try:
                pod = await self.client.create(PODS, logic.new_pod(ds, node, revision), ns)
            except ApiError as err:
                self.event(ds, WARNING, "FailedCreate", f"Error creating: {err.message}")
                raise
            created.add(f"{ns}/{pod['metadata']['name']}")
            self.event(ds, NORMAL, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

        async def delete(pod: Obj) -> None:
            name = pod["metadata"]["name"]
            if (pod.get("status") or {}).get("phase") == "Failed":
                self.event(ds, WARNING, "FailedDaemonPod", f"Found failed daemon pod {ns}/{name} on node "
                                                           f"{logic.target_node(pod)}, will try to kill it")
            try:
                await self.client.delete(PODS, name, ns, preconditions={"uid": pod["metadata"]["uid"]})
            except ApiError as err:
                if err.code in (404, 409):
                    return
                self.event(ds, WARNING, "FailedDelete", f"Error deleting: {err.message}")
                raise
            self.event(ds, NORMAL, "SuccessfulDelete", f"Deleted pod: {name}")

        results = await asyncio.gather(*(create(n) for n in step.create), *(delete(p) for p in step.delete),
                                       return_exceptions=True)
        if created:
            self._pending[key] = (time.monotonic(), created)
        for result in results:
            if isinstance(result, BaseException):
                raise result
