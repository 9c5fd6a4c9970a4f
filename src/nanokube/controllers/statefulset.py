"""StatefulSet controller: pods `<set>-<ordinal>` with stable hostnames and their own claims, created in order
(OrderedReady) or all at once (Parallel), rolled by ControllerRevision with a partition, status written back.

Each sync takes one step of `statefulset_logic.plan`; the pods' watch events bring the next sync, so in
OrderedReady mode `-1` is created only once the informer shows `-0` Running and Ready.
"""

from __future__ import annotations

import asyncio
import logging

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, now
from nanokube.api.selectors import matches_labels, selector_from_label_selector
from nanokube.client import object_key
from nanokube.controllers import statefulset_logic as logic
from nanokube.controllers.events import NORMAL, WARNING
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.owned import OwnedIndex
from nanokube.controllers.resources import PODS, PVCS, STATEFULSETS
from nanokube.controllers.revisions import RevisionHistory

log = logging.getLogger(__name__)
KIND = "StatefulSet"


def selects(sts: Obj, labels: dict[str, str]) -> bool:
    reqs = selector_from_label_selector((sts.get("spec") or {}).get("selector"))
    return bool(reqs) and matches_labels(reqs, labels)  # type: ignore[arg-type]


class StatefulSetController(Controller):
    name = "statefulset-controller"
    workers = 4

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.sets = ctx.informer(STATEFULSETS)
        self.pvcs = ctx.informer(PVCS)
        self._uid_to_key: dict[str, str] = {}
        self.sets.add_handler(on_add=self._set_changed, on_update=lambda _o, n: self._set_changed(n),
                              on_delete=self._set_deleted)
        self.pods = OwnedIndex(ctx.informer(PODS), KIND, self._enqueue_uid, self._orphan_pod)
        self.history = RevisionHistory(ctx, KIND, self._enqueue_uid)
        self.pvcs.add_handler(on_update=lambda _o, n: self._claim_changed(n), on_delete=self._claim_changed)

    # -- events ----------------------------------------------------------------------------------------
    def _set_changed(self, sts: Obj) -> None:
        self._uid_to_key[sts["metadata"]["uid"]] = object_key(sts)
        self.queue.add(object_key(sts))

    def _set_deleted(self, sts: Obj) -> None:
        self._uid_to_key.pop(sts["metadata"]["uid"], None)

    def _enqueue_uid(self, uid: str) -> None:
        key = self._uid_to_key.get(uid)
        if key:
            self.queue.add(key)

    def _orphan_pod(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            return
        ns, labels = pod["metadata"].get("namespace"), pod["metadata"].get("labels") or {}
        for sts in self.sets.cache.values():
            if sts["metadata"].get("namespace") == ns and selects(sts, labels):
                self.queue.add(object_key(sts))

    def _claim_changed(self, pvc: Obj) -> None:
        """A claim being deleted holds its pod back (stale claim); its removal lets the pod be recreated."""
        parsed = logic.parent_and_ordinal(pvc["metadata"]["name"])
        if parsed is None:
            return
        ns = pvc["metadata"].get("namespace")
        for sts in self.sets.cache.values():
            if sts["metadata"].get("namespace") == ns and parsed[0].endswith(f"-{sts['metadata']['name']}"):
                self.queue.add(object_key(sts))

    # -- sync ------------------------------------------------------------------------------------------
    async def sync(self, key: str) -> float | None:
        sts = self.sets.cache.get(key)
        if sts is None:
            return None
        pods = await self._claim_pods(sts)
        current, update, collisions = await self.history.sync(sts)
        at = now()
        if sts["metadata"].get("deletionTimestamp"):
            await self._write_status(sts, logic.compute_status(sts, pods, current["metadata"]["name"],
                                                               update["metadata"]["name"], collisions, at))
            return None
        missing, stale = self._claim_states(sts, pods)
        step = logic.plan(sts, pods, update["metadata"]["name"], missing, stale, at)
        await self._execute(sts, step, current, update)
        await self._write_status(sts, logic.compute_status(sts, pods, current["metadata"]["name"],
                                                           update["metadata"]["name"], collisions, at))
        await self.history.truncate(sts, pods, current, update)
        return step.wait_seconds

    async def _claim_pods(self, sts: Obj) -> list[Obj]:
        """Owned pods, plus adopted orphans that match the selector and carry the set's name (isMemberOf)."""
        pods = self.pods.of(sts["metadata"]["uid"])
        if sts["metadata"].get("deletionTimestamp"):
            return pods
        for pod in self.pods.orphans_in(sts["metadata"]["namespace"]):
            parsed = logic.parent_and_ordinal(pod["metadata"]["name"])
            if parsed is None or parsed[0] != sts["metadata"]["name"] or pod["metadata"].get("deletionTimestamp") \
                    or not selects(sts, pod["metadata"].get("labels") or {}):
                continue
            body = {**pod, "metadata": {**pod["metadata"], "ownerReferences": [
                *(pod["metadata"].get("ownerReferences") or []), logic.owner_ref(sts, KIND, "apps/v1")]}}
            try:
                pods.append(await self.client.update(PODS, body))
            except ApiError as err:
                if err.code not in (404, 409):
                    raise
        return pods

    def _claim_states(self, sts: Obj, pods: list[Obj]) -> tuple[set[int], set[int]]:
        missing: set[int] = set()
        stale: set[int] = set()
        templates = logic.claim_templates(sts)
        if not templates:
            return missing, stale
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        start = logic.start_ordinal(sts)
        for ordinal in range(start, start + logic.spec_replicas(sts)):
            for template in templates:
                claim = self.pvcs.cache.get(f"{ns}/{logic.claim_name(template, name, ordinal)}")
                if claim is None:
                    missing.add(ordinal)
                elif claim["metadata"].get("deletionTimestamp"):
                    stale.add(ordinal)
        return missing, stale

    # -- actions ---------------------------------------------------------------------------------------
    async def _execute(self, sts: Obj, step: logic.Plan, current: Obj, update: Obj) -> None:
        kind, partition = logic.update_strategy(sts)
        start = logic.start_ordinal(sts)

        async def create(ordinal: int) -> None:
            use_current = kind == "RollingUpdate" and ordinal < start + partition
            revision = current if use_current else update
            pod = logic.new_pod(sts, logic.template_of(revision), revision["metadata"]["name"], ordinal)
            await self._create_claims(sts, ordinal, pod["metadata"]["name"])
            try:
                await self.client.create(PODS, pod, sts["metadata"]["namespace"])
            except ApiError as err:
                if err.code == 409:
                    return
                self.event(sts, WARNING, "FailedCreate", f"create Pod {pod['metadata']['name']} in StatefulSet "
                                                         f"{sts['metadata']['name']} failed error: {err.message}")
                raise
            self.event(sts, NORMAL, "SuccessfulCreate",
                       f"create Pod {pod['metadata']['name']} in StatefulSet {sts['metadata']['name']} successful")

        async def delete(pod: Obj) -> None:
            name = pod["metadata"]["name"]
            try:
                await self.client.delete(PODS, name, sts["metadata"]["namespace"],
                                         preconditions={"uid": pod["metadata"]["uid"]})
            except ApiError as err:
                if err.code in (404, 409):
                    return
                self.event(sts, WARNING, "FailedDelete", f"delete Pod {name} in StatefulSet "
                                                         f"{sts['metadata']['name']} failed error: {err.message}")
                raise
            self.event(sts, NORMAL, "SuccessfulDelete",
                       f"delete Pod {name} in StatefulSet {sts['metadata']['name']} successful")

        for ordinal in step.claims_for:
            await self._create_claims(sts, ordinal, f"{sts['metadata']['name']}-{ordinal}")
        if logic.retention(sts)[1] == "Delete":
            for pod in step.release_claims:
                await self._hand_claims_to_pod(sts, pod)
        batch = 1
        creates = list(step.create)
        while creates:  # slow start, like the Kubernetes controllers' batches 1, 2, 4, ...
            now_ = creates[:batch]
            creates = creates[batch:]
            await self._gather(create(o) for o in now_)
            batch *= 2
        await self._gather(delete(p) for p in step.delete)

    @staticmethod
    async def _gather(coros: object) -> None:
        results = await asyncio.gather(*coros, return_exceptions=True)  # type: ignore[misc]
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _create_claims(self, sts: Obj, ordinal: int, pod_name: str) -> None:
        ns = sts["metadata"]["namespace"]
        for template in logic.claim_templates(sts):
            claim = logic.new_claim(sts, template, ordinal)
            if f"{ns}/{claim['metadata']['name']}" in self.pvcs.cache:
                continue
            try:
                await self.client.create(PVCS, claim, ns)
            except ApiError as err:
                if err.code == 409:
                    continue
                self.event(sts, WARNING, "FailedCreate",
                           f"create Claim {claim['metadata']['name']} for Pod {pod_name} in StatefulSet "
                           f"{sts['metadata']['name']} failed error: {err.message}")
                raise
            self.event(sts, NORMAL, "SuccessfulCreate", f"create Claim {claim['metadata']['name']} Pod "
                                                        f"{pod_name} in StatefulSet {sts['metadata']['name']} success")

    async def _hand_claims_to_pod(self, sts: Obj, pod: Obj) -> None:
        """whenScaled=Delete: a scaled-down pod's claims get the pod as controller, so GC deletes them with it."""
        ns = sts["metadata"]["namespace"]
        parsed = logic.parent_and_ordinal(pod["metadata"]["name"])
        if parsed is None:
            return
        for template in logic.claim_templates(sts):
            claim = self.pvcs.cache.get(f"{ns}/{logic.claim_name(template, sts['metadata']['name'], parsed[1])}")
            if claim is None:
                continue
            refs = [r for r in claim["metadata"].get("ownerReferences") or []
                    if r.get("uid") not in (sts["metadata"]["uid"], pod["metadata"]["uid"])]
            if any(r.get("controller") for r in refs):
                continue  # another controller's claim: leave it alone
            refs.append(logic.owner_ref(pod, "Pod", "v1"))
            try:
                await self.client.update(PVCS, {**claim, "metadata": {**claim["metadata"], "ownerReferences": refs}})
            except ApiError as err:
                if err.code not in (404, 409):
                    raise

    async def _write_status(self, sts: Obj, status: Obj) -> None:
        old = sts.get("status") or {}
        if all(old.get(k, 0 if isinstance(v, int) else None) == v for k, v in status.items()):
            return
        merged = {k: v for k, v in old.items() if k not in status}
        merged.update(status)
        await self.client.update(STATEFULSETS, {**sts, "status": merged}, subresource="status")
