"""Taint-based eviction (kube-controller-manager's taint-eviction-controller): pods on a node with a NoExecute
taint are deleted once they no longer tolerate it.

A pod that tolerates the taint without `tolerationSeconds` stays; with it, it is deleted that long after the
taint's `timeAdded`; one with no matching toleration is deleted at once, except for `not-ready`/`unreachable`,
which it tolerates for `default_toleration_seconds` (300 s): what the DefaultTolerationSeconds admission
(`api/pod_admission.py`) writes into every pod anyway, kept here for pods that bypassed it.
"""

from __future__ import annotations

import contextlib

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, now, parse_time
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.resources import NODES, PODS

DEFAULTED_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")


def _matches(tol: Obj, taint: Obj) -> bool:
    if tol.get("effect") and tol["effect"] != taint.get("effect"):
        return False
    if (tol.get("operator") or "Equal") == "Exists":
        return not tol.get("key") or tol["key"] == taint.get("key")
    return tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or "")


def seconds_tolerated(pod: Obj, taint: Obj, default: float) -> float | None:
    """How long the pod tolerates the taint (None: forever; 0: not at all)."""
    matching = [t for t in pod.get("spec", {}).get("tolerations") or [] if _matches(t, taint)]
    if not matching:
        return default if taint.get("key") in DEFAULTED_TAINTS else 0.0
    if any(t.get("tolerationSeconds") is None for t in matching):
        return None
    return max(0.0, float(min(t["tolerationSeconds"] for t in matching)))


class TaintEvictionController(Controller):
    name = "taint-eviction-controller"
    workers = 1

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.default_seconds = ctx.settings.default_toleration_seconds
        self.nodes = ctx.informer(NODES)
        self.pods = ctx.informer(PODS)
        self.nodes.add_handler(on_add=self._node, on_update=lambda _o, n: self._node(n))
        self.pods.add_handler(on_add=self._pod, on_update=lambda _o, n: self._pod(n))

    def _node(self, node: Obj) -> None:
        if any(t.get("effect") == "NoExecute" for t in node.get("spec", {}).get("taints") or []):
            self.queue.add(node["metadata"]["name"])

    def _pod(self, pod: Obj) -> None:
        node = self.nodes.cache.get(pod.get("spec", {}).get("nodeName") or "")
        if node is not None:
            self._node(node)

    async def sync(self, name: str) -> float | None:
        node = self.nodes.cache.get(name)
        if node is None:
            return None
        taints = [t for t in node.get("spec", {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        if not taints:
            return None
        at = now()
        wait: float | None = None
        for pod in list(self.pods.cache.values()):
            if pod.get("spec", {}).get("nodeName") != name or pod["metadata"].get("deletionTimestamp"):
                continue
            left = [seconds - (at - (parse_time(taint.get("timeAdded")) or at)).total_seconds()
                    for taint in taints
                    if (seconds := seconds_tolerated(pod, taint, self.default_seconds)) is not None]
            if not left:
                continue
            due = min(left)
            if due <= 0:
                with contextlib.suppress(ApiError):  # gone already, or being deleted
                    await self.client.delete(PODS, pod["metadata"]["name"], pod["metadata"]["namespace"])
            else:
                wait = due if wait is None else min(wait, due)
        return None if wait is None else wait + 0.05
