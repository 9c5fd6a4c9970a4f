"""PodDisruptionBudget status, as kube-controller-manager's disruption controller keeps it: how many of the
selected pods are healthy (ready), how many must stay so (minAvailable / maxUnavailable, percentages rounded
up), and how many may be disrupted now. The eviction subresource reads and spends `disruptionsAllowed`."""

from __future__ import annotations

import math
from typing import Any

from nanokube.api.meta import Obj, is_pod_ready, rfc3339
from nanokube.api.selectors import matches_labels, selector_from_label_selector
from nanokube.api.served_resources import by_kind
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.resources import PODS

PDBS = by_kind("policy", "PodDisruptionBudget")


def _scaled(value: Any, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value or 0)


class DisruptionController(Controller):
    name = "disruption-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.budgets = ctx.informer(PDBS)
        self.pods = ctx.informer(PODS)
        self.budgets.add_handler(on_add=self._budget, on_update=lambda _o, n: self._budget(n))
        self.pods.add_handler(on_add=self._pod, on_update=lambda _o, n: self._pod(n), on_delete=self._pod)

    def _budget(self, pdb: Obj) -> None:
        self.queue.add((pdb["metadata"].get("namespace"), pdb["metadata"]["name"]))

    def _pod(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace")
        for pdb in self.budgets.list():
            if pdb["metadata"].get("namespace") == ns:
                self._budget(pdb)

    async def sync(self, key: tuple[str, str]) -> float | None:
        ns, name = key
        pdb = self.budgets.get(ns, name)
        if pdb is None:
            return None
        spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
        reqs = selector_from_label_selector(spec.get("selector"))
        pods = [p for p in self.pods.list() if p["metadata"].get("namespace") == ns and reqs is not None
                and matches_labels(reqs, p["metadata"].get("labels")) and not p["metadata"].get("deletionTimestamp")]
        expected = len(pods)
        healthy = sum(1 for p in pods if is_pod_ready(p))
        if "minAvailable" in spec:
            desired = _scaled(spec["minAvailable"], expected)
        elif "maxUnavailable" in spec:
            desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
        else:
            desired = expected
        names = {p["metadata"]["name"] for p in pods}
        disrupted = {k: v for k, v in (status.get("disruptedPods") or {}).items() if k in names}
        allowed = max(0, healthy - desired - len(disrupted))
        condition = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
                     "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
                     "observedGeneration": pdb["metadata"].get("generation", 1)}
        old_condition = next((c for c in status.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), {})
        condition["lastTransitionTime"] = old_condition.get("lastTransitionTime") \
            if old_condition.get("status") == condition["status"] else rfc3339()
        new = {"observedGeneration": pdb["metadata"].get("generation", 1), "disruptionsAllowed": allowed,
               "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
               "conditions": [condition]}
        if disrupted:
            new["disruptedPods"] = disrupted
        if new != status:
            await self.client.update(PDBS, {**pdb, "status": new}, subresource="status")
        return None
