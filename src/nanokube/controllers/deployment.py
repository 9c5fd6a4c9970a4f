"""Deployment controller: ReplicaSets per pod template, rolling/recreate rollouts, revisions, status.

The decisions come from rollout.py (pure); this module reads the caches, applies them through the API
and records events. ReplicaSet writes are PUTs carrying the resourceVersion we based them on, so a
decision made on a stale copy fails with 409 and is recomputed.
"""

from __future__ import annotations

import copy

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, now
from nanokube.api.selectors import matches_labels, selector_from_label_selector
from nanokube.client import object_key
from nanokube.controllers import rollout as ro
from nanokube.controllers.events import NORMAL
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.overlay import Overlay
from nanokube.controllers.podports import is_terminal
from nanokube.controllers.resources import DEPLOYMENTS, PODS, REPLICASETS


def _selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    reqs = selector_from_label_selector(selector)
    return bool(reqs) and matches_labels(reqs, labels)  # type: ignore[arg-type]


def _controller_uid(obj: Obj) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def _owner_ref(d: Obj) -> Obj:
    md = d["metadata"]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": md["name"], "uid": md["uid"],
            "controller": True, "blockOwnerDeletion": True}


class DeploymentController(Controller):
    name = "deployment-controller"
    workers = 4

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.deployments = ctx.informer(DEPLOYMENTS)
        self.rss = ctx.informer(REPLICASETS)
        self.pods = ctx.informer(PODS)
        self.rs_overlay = Overlay(self.rss)
        self._uid_to_key: dict[str, str] = {}
        self._rs_by_owner: dict[str, set[str]] = {}
        self.deployments.add_handler(on_add=self._d_changed, on_update=lambda _o, n: self._d_changed(n),
                                     on_delete=self._d_deleted)
        self.rss.add_handler(on_add=self._rs_changed, on_update=self._rs_updated, on_delete=self._rs_deleted)
        self.pods.add_handler(on_delete=self._pod_deleted)

    # -- event routing ---------------------------------------------------------------------------------
    def _d_changed(self, d: Obj) -> None:
        self._uid_to_key[d["metadata"]["uid"]] = object_key(d)
        self.queue.add(object_key(d))

    def _d_deleted(self, d: Obj) -> None:
        self._uid_to_key.pop(d["metadata"]["uid"], None)
        self.queue.add(object_key(d))

    def _route_rs(self, rs: Obj) -> None:
        uid = _controller_uid(rs)
        if uid is not None:
            key = self._uid_to_key.get(uid)
            if key:
                self.queue.add(key)
            return
        ns, labels = rs["metadata"].get("namespace"), rs["metadata"].get("labels") or {}
        for d in self.deployments.cache.values():
            if d["metadata"].get("namespace") == ns and _selects(d.get("spec", {}).get("selector"), labels):
                self.queue.add(object_key(d))

    def _index_rs(self, rs: Obj, present: bool) -> None:
        uid = _controller_uid(rs)
        if uid:
            keys = self._rs_by_owner.setdefault(uid, set())
            keys.add(object_key(rs)) if present else keys.discard(object_key(rs))

    def _rs_changed(self, rs: Obj) -> None:
        self._index_rs(rs, True)
        self.rs_overlay.observe(rs)
        self._route_rs(rs)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if _controller_uid(old) != _controller_uid(new):
            self._index_rs(old, False)
            self._route_rs(old)
        self._rs_changed(new)

    def _rs_deleted(self, rs: Obj) -> None:
        self._index_rs(rs, False)
        self._route_rs(rs)

    def _pod_deleted(self, pod: Obj) -> None:
        uid = _controller_uid(pod)
        for key in self._rs_by_owner_key(uid):
            self.queue.add(key)

    def _rs_by_owner_key(self, rs_uid: str | None) -> list[str]:
        if not rs_uid:
            return []
        for rs in self.rss.cache.values():
            if rs["metadata"]["uid"] == rs_uid:
                owner = self._uid_to_key.get(_controller_uid(rs) or "")
                return [owner] if owner else []
        return []

    # -- reading ---------------------------------------------------------------------------------------
    async def _claim_rss(self, d: Obj) -> list[Obj]:
        md = d["metadata"]
        selector = d.get("spec", {}).get("selector")
        out: list[Obj] = []
        for key in list(self._rs_by_owner.get(md["uid"], ())):
            rs = self.rs_overlay.view(key, self.rss.cache.get(key))
            if rs is None:
                continue
            if _selects(selector, rs["metadata"].get("labels") or {}):
                out.append(rs)
            elif not rs["metadata"].get("deletionTimestamp"):
                await self._set_rs_owner(rs, None)
        if md.get("deletionTimestamp"):
            return out
        for rs in list(self.rss.cache.values()):
            rmd = rs["metadata"]
            if rmd.get("namespace") != md["namespace"] or _controller_uid(rs) is not None or \
                    rmd.get("deletionTimestamp") or not _selects(selector, rmd.get("labels") or {}):
                continue
            adopted = await self._set_rs_owner(rs, d)
            if adopted is not None:
                out.append(adopted)
        return out

    async def _set_rs_owner(self, rs: Obj, d: Obj | None) -> Obj | None:
        body = copy.deepcopy(rs)
        refs = [r for r in body["metadata"].get("ownerReferences") or [] if not r.get("controller")]
        if d is not None:
            refs.append(_owner_ref(d))
        body["metadata"]["ownerReferences"] = refs
        try:
            updated = await self.client.update(REPLICASETS, body)
        except ApiError as err:
            if err.code in (404, 409):
                return None
            raise
        self.rs_overlay.wrote(updated)
        return updated

    # -- writing ---------------------------------------------------------------------------------------
    async def _scale(self, rs: Obj, size: int, d: Obj) -> Obj:
        want, top = ro.replicas(d), ro.replicas(d) + ro.max_surge(d)
        old_size = ro.replicas(rs)
        body = copy.deepcopy(rs)
        annotations_changed = ro.set_replicas_annotations(body, want, top)
        if old_size == size and not annotations_changed:
            return rs
        body["spec"]["replicas"] = size
        updated = await self.client.update(REPLICASETS, body)
        self.rs_overlay.wrote(updated)
        if old_size != size:
            direction = "up" if size > old_size else "down"
            self.event(d, NORMAL, "ScalingReplicaSet",
                       f"Scaled {direction} replica set {rs['metadata']['name']} from {old_size} to {size}")
        return updated

    async def _write_status(self, d: Obj, status: Obj) -> None:
        result = await self.client.patch(DEPLOYMENTS, d["metadata"]["name"], {"status": status},
                                         d["metadata"]["namespace"], subresource="status")
        d["status"] = result.get("status", status)

    async def _set_revision(self, d: Obj, revision: str) -> None:
        if ro.annotations(d).get(ro.REVISION) == revision:
            return
        patch = {"metadata": {"annotations": {ro.REVISION: revision}}}
        await self.client.patch(DEPLOYMENTS, d["metadata"]["name"], patch, d["metadata"]["namespace"])
        d["metadata"].setdefault("annotations", {})[ro.REVISION] = revision

    # -- the rollout -----------------------------------------------------------------------------------
    async def sync(self, key: str) -> float | None:
        cached = self.deployments.cache.get(key)
        if cached is None:
            return None
        d = copy.deepcopy(cached)
        if not (d.get("spec", {}).get("selector") or {}):
            return None
        rs_list = await self._claim_rss(d)
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old = await self._all_rss(d, rs_list, create=False)
            return await self._sync_status(d, [*old, new_rs], new_rs)
        await self._check_paused(d)
        spec = d.get("spec", {})
        if spec.get("paused"):
            return await self._sync_scale(d, rs_list)
        new_rs, old = await self._all_rss(d, rs_list, create=False)
        if ro.is_scaling_event(d, new_rs, old):
            return await self._sync_scale(d, rs_list)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            return await self._recreate(d, rs_list)
        return await self._rolling(d, rs_list)

    async def _check_paused(self, d: Obj) -> None:
        if ro.progress_deadline(d) is None:
            return
        status = d.setdefault("status", {})
        cond = ro.get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == ro.TIMED_OUT_REASON:
            return
        paused_cond = cond is not None and cond.get("reason") == ro.PAUSED_REASON
        paused = bool(d.get("spec", {}).get("paused"))
        if paused and not paused_cond:
            new = ro.new_condition("Progressing", "Unknown", ro.PAUSED_REASON, "Deployment is paused")
        elif not paused and paused_cond:
            new = ro.new_condition("Progressing", "Unknown", ro.RESUMED_REASON, "Deployment is resumed")
        else:
            return
        ro.set_condition(status, new)
        await self._write_status(d, status)

    async def _all_rss(self, d: Obj, rs_list: list[Obj], *, create: bool) -> tuple[Obj | None, list[Obj]]:
        template = d.get("spec", {}).get("template") or {}
        matching = sorted((rs for rs in rs_list if ro.equal_ignore_hash(rs.get("spec", {}).get("template") or {},
                                                                        template)), key=ro.created)
        new_rs = matching[0] if matching else None
        old = [rs for rs in rs_list if rs is not new_rs]
        new_revision = ro.max_revision(old) + 1
        if new_rs is not None:
            body = copy.deepcopy(new_rs)
            changed = ro.sync_rs_annotations(d, body, new_revision, exists=True)
            min_ready = d.get("spec", {}).get("minReadySeconds") or 0
            if (body["spec"].get("minReadySeconds") or 0) != min_ready:
                body["spec"]["minReadySeconds"] = min_ready
                changed = True
            if changed:
                new_rs = await self.client.update(REPLICASETS, body)
                self.rs_overlay.wrote(new_rs)
            await self._set_revision(d, ro.annotations(new_rs).get(ro.REVISION, str(new_revision)))
            status = d.setdefault("status", {})
            if ro.progress_deadline(d) is not None and ro.get_condition(status, "Progressing") is None:
                ro.set_condition(status, ro.new_condition("Progressing", "True", ro.FOUND_NEW_RS_REASON,
                                                          f'Found new replica set "{new_rs["metadata"]["name"]}"'))
                await self._write_status(d, status)
            return new_rs, old
        if not create:
            return None, old
        return await self._create_new_rs(d, old, new_revision), old

    async def _create_new_rs(self, d: Obj, old: list[Obj], new_revision: int) -> Obj:
        md, spec = d["metadata"], d.get("spec", {})
        collision = d.get("status", {}).get("collisionCount")
        pod_hash = ro.compute_hash(spec.get("template") or {}, collision)
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[ro.HASH_LABEL] = pod_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[ro.HASH_LABEL] = pod_hash
        rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{md['name']}-{pod_hash}", "namespace": md["namespace"],
                         "labels": dict(template["metadata"]["labels"]), "annotations": {},
                         "ownerReferences": [_owner_ref(d)]},
            "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds") or 0, "selector": selector,
                     "template": template},
        }
        size = ro.new_rs_new_replicas(d, [*old, rs], rs)
        rs["spec"]["replicas"] = size
        ro.sync_rs_annotations(d, rs, new_revision, exists=False)
        already_exists = False
        try:
            created = await self.client.create(REPLICASETS, rs, md["namespace"])
        except ApiError as err:
            if err.code != 409:
                raise
            existing = await self.client.get(REPLICASETS, rs["metadata"]["name"], md["namespace"])
            if _controller_uid(existing) == md["uid"] and ro.equal_ignore_hash(
                    existing.get("spec", {}).get("template") or {}, spec.get("template") or {}):
                created, already_exists = existing, True
            else:  # a hash collision: bump collisionCount and let the next sync pick another name
                status = d.setdefault("status", {})
                status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                await self._write_status(d, status)
                raise
        self.rs_overlay.wrote(created)
        self._index_rs(created, True)
        if not already_exists and size > 0:
            self.event(d, NORMAL, "ScalingReplicaSet",
                       f"Scaled up replica set {created['metadata']['name']} from 0 to {size}")
        await self._set_revision(d, str(new_revision))
        if not already_exists and ro.progress_deadline(d) is not None:
            status = d.setdefault("status", {})
            ro.set_condition(status, ro.new_condition("Progressing", "True", ro.NEW_RS_REASON,
                                                      f'Created new replica set "{created["metadata"]["name"]}"'))
            await self._write_status(d, status)
        return created

    async def _rolling(self, d: Obj, rs_list: list[Obj]) -> float | None:
        new_rs, old = await self._all_rss(d, rs_list, create=True)
        assert new_rs is not None
        want = ro.replicas(d)
        if ro.replicas(new_rs) != want:
            size = want if ro.replicas(new_rs) > want else ro.new_rs_new_replicas(d, [*old, new_rs], new_rs)
            scaled = await self._scale(new_rs, size, d)
            if ro.replicas(scaled) != ro.replicas(new_rs):
                return await self._sync_status(d, [*old, scaled], scaled, rollout=True)
            new_rs = scaled
        plan = ro.old_scale_down_plan(d, [*old, new_rs], ro.active(list(old)), new_rs)
        if plan:
            old = [await self._scale(rs, plan[rs["metadata"]["name"]], d) if rs["metadata"]["name"] in plan else rs
                   for rs in old]
            return await self._sync_status(d, [*old, new_rs], new_rs, rollout=True)
        if ro.deployment_complete(d, d.get("status", {})):
            await self._cleanup(d, old)
        return await self._sync_status(d, [*old, new_rs], new_rs, rollout=True)

    async def _recreate(self, d: Obj, rs_list: list[Obj]) -> float | None:
        new_rs, old = await self._all_rss(d, rs_list, create=False)
        active_old = ro.active(list(old))
        if active_old:
            old = [await self._scale(rs, 0, d) if ro.replicas(rs) > 0 else rs for rs in old]
            return await self._sync_status(d, [*old, new_rs], new_rs, rollout=True)
        if self._old_pods_running(new_rs, old):
            return await self._sync_status(d, [*old, new_rs], new_rs, rollout=True)
        if new_rs is None:
            new_rs, old = await self._all_rss(d, rs_list, create=True)
        assert new_rs is not None
        if ro.replicas(new_rs) != ro.replicas(d):
            new_rs = await self._scale(new_rs, ro.replicas(d), d)
        if ro.deployment_complete(d, d.get("status", {})):
            await self._cleanup(d, old)
        return await self._sync_status(d, [*old, new_rs], new_rs, rollout=True)

    def _old_pods_running(self, new_rs: Obj | None, old: list[Obj]) -> bool:
        if ro.total_status(list(old), "replicas") > 0:
            return True
        old_uids = {rs["metadata"]["uid"] for rs in old}
        return any(_controller_uid(p) in old_uids and not is_terminal(p) for p in self.pods.cache.values())

    async def _sync_scale(self, d: Obj, rs_list: list[Obj]) -> float | None:
        new_rs, old = await self._all_rss(d, rs_list, create=False)
        sizes = ro.scale_plan(d, new_rs, old)
        by_name = {rs["metadata"]["name"]: rs for rs in [*old, new_rs] if rs is not None}
        for name, size in sizes.items():
            by_name[name] = await self._scale(by_name[name], size, d)
        new_rs = by_name.get(new_rs["metadata"]["name"]) if new_rs is not None else None
        old = [by_name[rs["metadata"]["name"]] for rs in old]
        if d.get("spec", {}).get("paused"):
            await self._cleanup(d, old)
        return await self._sync_status(d, [*old, new_rs], new_rs)

    async def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        limit = d.get("spec", {}).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        alive = [rs for rs in old if not rs["metadata"].get("deletionTimestamp")]
        excess = len(alive) - limit
        if excess <= 0:
            return
        for rs in sorted(alive, key=lambda r: (ro.revision(r), ro.created(r)))[:excess]:
            if ro.status_of(rs, "replicas") != 0 or ro.replicas(rs) != 0 or \
                    rs["metadata"].get("generation", 0) > ro.status_of(rs, "observedGeneration"):
                continue
            try:
                await self.client.delete(REPLICASETS, rs["metadata"]["name"], rs["metadata"]["namespace"],
                                         preconditions={"uid": rs["metadata"]["uid"]})
            except ApiError as err:
                if err.code not in (404, 409):
                    raise
            self.rs_overlay.deleted(rs)

    async def _sync_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None, *,
                           rollout: bool = False) -> float | None:
        at = now()
        if rollout:
            status = ro.rollout_status(d, all_rss, new_rs, at)
        else:
            status = ro.calculate_status(all_rss, new_rs, d, at)
        if not ro.status_equal(d.get("status") or {}, status):
            await self._write_status(d, status)
        deadline = ro.progress_deadline(d)
        cond = ro.get_condition(status, "Progressing")
        if rollout and deadline is not None and not ro.deployment_complete(d, status) and cond is not None \
                and cond.get("reason") != ro.TIMED_OUT_REASON:
            since = ro.parse_time(cond.get("lastUpdateTime"))
            if since is not None:
                return max(deadline - (at - since).total_seconds(), 0) + 1
        return None
