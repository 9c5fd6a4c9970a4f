"""Garbage collector: ownerReferences with background, foreground and orphan propagation.

The apiserver records how a delete should propagate by finalizers on the owner (`foregroundDeletion`,
`orphan`); plain (background) deletes just remove the owner. Then:
- a dependent whose owners are all gone is deleted (after asking the API: the cache may not have seen a
  brand-new owner yet);
- an owner deleting in the foreground waits until no dependent that blocks it is left, then drops its
  finalizer; its dependents are deleted (in the foreground themselves when they have dependents);
- an orphaning owner strips itself from its dependents' ownerReferences, then drops its finalizer.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.api.served_resources import RESOURCES, Resource, by_kind
from nanokube.client import Informer, object_key
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.resources import resource_for

CRDS = by_kind("apiextensions.k8s.io", "CustomResourceDefinition")
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
_NOT_TRACKED = {"events", "namespaces", "storageclasses"}


def tracked_resources() -> list[Resource]:
    return [r for r in RESOURCES if r.plural not in _NOT_TRACKED and "list" in r.verbs and "watch" in r.verbs]


def custom_resource_of(crd: Obj) -> Resource | None:
    """The resource an established CRD serves, at its storage version (None while not established)."""
    status = crd.get("status") or {}
    if not any(c.get("type") == "Established" and c.get("status") == "True" for c in status.get("conditions") or []):
        return None
    spec = crd.get("spec") or {}
    names = status.get("acceptedNames") or spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served")]
    version = next((v for v in versions if v.get("storage")), versions[0] if versions else None)
    if version is None or not names.get("plural") or not names.get("kind"):
        return None
    return Resource(spec.get("group") or "", version["name"], names["kind"], names["plural"],
                    spec.get("scope") == "Namespaced")


def _finalizers(obj: Obj) -> list[str]:
    return obj.get("metadata", {}).get("finalizers") or []


def _refs(obj: Obj) -> list[Obj]:
    return obj.get("metadata", {}).get("ownerReferences") or []


class GarbageCollector(Controller):
    name = "garbage-collector-controller"
    workers = 4

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.by_plural: dict[str, tuple[Resource, Informer]] = {}
        self._uids: dict[str, tuple[str, str]] = {}  # uid -> (plural, key)
        self._dependents: dict[str, set[tuple[str, str]]] = {}  # owner uid -> {(plural, key)}
        for resource in tracked_resources():
            self._track(resource, ctx.informer(resource))
        # Custom resources come and go with their CRDs: an informer each, started and stopped here.
        self._custom: dict[str, tuple[tuple[str, ...], asyncio.Task[None]]] = {}  # CRD name -> (plural, task)
        self.by_plural[f"{CRDS.group}/{CRDS.plural}"][1].add_handler(
            on_add=self._crd_changed, on_update=lambda _old, new: self._crd_changed(new),
            on_delete=self._crd_deleted)

    def _track(self, resource: Resource, informer: Informer) -> str:
        plural = f"{resource.group}/{resource.plural}"
        self.by_plural[plural] = (resource, informer)
        informer.add_handler(on_add=lambda o, p=plural: self._changed(p, None, o),
                             on_update=lambda old, new, p=plural: self._changed(p, old, new),
                             on_delete=lambda o, p=plural: self._deleted(p, o))
        return plural

    def _crd_changed(self, crd: Obj) -> None:
        resource = custom_resource_of(crd)
        name = crd["metadata"]["name"]
        if resource is None or crd["metadata"].get("deletionTimestamp"):
            return
        plural = f"{resource.group}/{resource.plural}"
        current = self._custom.get(name)
        if current is not None and current[0] == (plural, resource.version):
            return
        self._crd_deleted(crd)
        informer = Informer(self.client, resource)
        self._track(resource, informer)
        self._custom[name] = ((plural, resource.version), asyncio.create_task(informer.run(),
                                                                               name=f"controllers: {plural} informer"))

    async def run(self) -> None:
        try:
            await super().run()
        finally:  # the custom resources' informers live as long as the collector
            for _, task in self._custom.values():
                task.cancel()
            await asyncio.gather(*(task for _, task in self._custom.values()), return_exceptions=True)

    def _crd_deleted(self, crd: Obj) -> None:
        entry = self._custom.pop(crd["metadata"]["name"], None)
        if entry is not None:
            entry[1].cancel()
            self.by_plural.pop(entry[0][0], None)

    # -- graph -----------------------------------------------------------------------------------------
    def _changed(self, plural: str, old: Obj | None, new: Obj) -> None:
        key = object_key(new)
        md = new["metadata"]
        self._uids[md["uid"]] = (plural, key)
        old_refs = _refs(old) if old is not None else []
        new_refs = _refs(new)
        if old is None or old_refs != new_refs:
            for ref in old_refs:
                self._dependents.get(ref.get("uid", ""), set()).discard((plural, key))
            for ref in new_refs:
                self._dependents.setdefault(ref.get("uid", ""), set()).add((plural, key))
            if new_refs:
                self.queue.add(("dep", plural, key))
        was_deleting = old is not None and old["metadata"].get("deletionTimestamp")
        if md.get("deletionTimestamp") and (not was_deleting or _finalizers(old or {}) != _finalizers(new)):
            if {FOREGROUND, ORPHAN} & set(_finalizers(new)):
                self.queue.add(("owner", plural, key))
            if new_refs:
                self.queue.add(("dep", plural, key))

    def _deleted(self, plural: str, obj: Obj) -> None:
        key = object_key(obj)
        uid = obj["metadata"].get("uid", "")
        if self._uids.get(uid) == (plural, key):
            del self._uids[uid]
        for ref in _refs(obj):
            owner_uid = ref.get("uid", "")
            deps = self._dependents.get(owner_uid)
            if deps is not None:
                deps.discard((plural, key))
                if not deps and owner_uid not in self._uids:
                    del self._dependents[owner_uid]
            owner = self._uids.get(owner_uid)
            if owner is not None:
                self.queue.add(("owner", *owner))
        for dep in self._dependents.get(uid, ()):
            self.queue.add(("dep", *dep))

    def _get(self, plural: str, key: str) -> Obj | None:
        entry = self.by_plural.get(plural)
        return entry[1].cache.get(key) if entry else None

    async def start(self) -> None:
        for plural, (_, informer) in self.by_plural.items():
            for obj in informer.list():
                if _refs(obj):
                    self.queue.add(("dep", plural, object_key(obj)))
                if obj["metadata"].get("deletionTimestamp") and {FOREGROUND, ORPHAN} & set(_finalizers(obj)):
                    self.queue.add(("owner", plural, object_key(obj)))

    async def sync(self, item: tuple[str, str, str]) -> float | None:
        what, plural, key = item
        if what == "dep":
            return await self._sync_dependent(plural, key)
        return await self._sync_owner(plural, key)

    # -- dependents ------------------------------------------------------------------------------------
    async def _owner_state(self, obj: Obj, ref: Obj) -> str:
        """'solid', 'waiting' (owner deleting in the foreground) or 'dangling'."""
        entry = self._uids.get(ref.get("uid", ""))
        owner = self._get(*entry) if entry else None
        if owner is None:
            resource = resource_for(ref.get("apiVersion", ""), ref.get("kind", "")) or self._custom_kind(ref)
            if resource is None:
                return "solid"  # a kind we do not serve: never delete on a guess
            ns = obj["metadata"].get("namespace") if resource.namespaced else None
            try:
                owner = await self.client.get(resource, ref.get("name", ""), ns)
            except ApiError as err:
                if err.code == 404:
                    return "dangling"
                raise
            if owner["metadata"].get("uid") != ref.get("uid"):
                return "dangling"
        if owner["metadata"].get("deletionTimestamp") and FOREGROUND in _finalizers(owner):
            return "waiting"
        return "solid"

    def _custom_kind(self, ref: Obj) -> Resource | None:
        group = (ref.get("apiVersion") or "").rsplit("/", 1)[0] if "/" in (ref.get("apiVersion") or "") else ""
        for resource, _ in self.by_plural.values():
            if getattr(resource, "group", None) == group and resource.kind == ref.get("kind"):
                return resource
        return None

    async def _sync_dependent(self, plural: str, key: str) -> float | None:
        obj = self._get(plural, key)
        if obj is None or not _refs(obj):
            return None
        md = obj["metadata"]
        if md.get("deletionTimestamp") and FOREGROUND not in _finalizers(obj):
            return None
        states = {ref.get("uid"): await self._owner_state(obj, ref) for ref in _refs(obj)}
        solid = [u for u, s in states.items() if s == "solid"]
        gone = {u for u, s in states.items() if s != "solid"}
        if plural not in self.by_plural:
            return None
        resource = self.by_plural[plural][0]
        if solid:
            if gone:
                await self._rewrite_refs(resource, obj, lambda ref: ref.get("uid") not in gone)
            return None
        waiting = [u for u, s in states.items() if s == "waiting"]
        if waiting and (dependents := self._dependents.get(md["uid"])):
            # Deleted in the foreground itself, so the waiting owner keeps waiting for this one's dependents too.
            # Only a dependent that is itself deleting its dependents could make that a cycle: then (as
            # Kubernetes' GC does) this object stops blocking its owners.
            if any(self._deleting_dependents(p, k) for p, k in list(dependents)):
                await self._rewrite_refs(resource, obj, lambda ref: True, unblock=set(waiting))
            await self._delete(resource, obj, "Foreground")
            return None
        policy = "Orphan" if ORPHAN in _finalizers(obj) else "Foreground" if FOREGROUND in _finalizers(obj) \
            else "Background"
        await self._delete(resource, obj, policy)
        return None

    def _deleting_dependents(self, plural: str, key: str) -> bool:
        obj = self._get(plural, key)
        return obj is not None and bool(obj["metadata"].get("deletionTimestamp")) and FOREGROUND in _finalizers(obj)

    async def _delete(self, resource: Resource, obj: Obj, policy: str) -> None:
        md = obj["metadata"]
        if md.get("deletionTimestamp"):
            return
        try:
            await self.client.delete(resource, md["name"], md.get("namespace"), propagation_policy=policy,
                                     preconditions={"uid": md["uid"]})
        except ApiError as err:
            if err.code not in (404, 409):
                raise

    async def _rewrite_refs(self, resource: Resource, obj: Obj, keep: Any, unblock: set[str] | None = None) -> None:
        body = copy.deepcopy(obj)
        refs = [r for r in _refs(body) if keep(r)]
        for ref in refs:
            if unblock and ref.get("uid") in unblock:
                ref["blockOwnerDeletion"] = False
        body["metadata"]["ownerReferences"] = refs
        try:
            await self.client.update(resource, body)
        except ApiError as err:
            if err.code != 404:
                raise

    # -- owners being deleted --------------------------------------------------------------------------
    async def _sync_owner(self, plural: str, key: str) -> float | None:
        owner = self._get(plural, key)
        if owner is None or not owner["metadata"].get("deletionTimestamp"):
            return None
        uid = owner["metadata"]["uid"]
        finalizers = _finalizers(owner)
        dependents = [(p, k, o) for p, k in list(self._dependents.get(uid, ())) if (o := self._get(p, k)) is not None]
        if ORPHAN in finalizers:
            for p, _k, dep in dependents:
                await self._rewrite_refs(self.by_plural[p][0], dep, lambda ref: ref.get("uid") != uid)
            await self._drop_finalizer(plural, owner, ORPHAN)
            return None
        if FOREGROUND in finalizers:
            blocking = [(p, k, d) for p, k, d in dependents
                        if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in _refs(d))]
            if not blocking:
                await self._drop_finalizer(plural, owner, FOREGROUND)
                return None
            for p, k, dep in dependents:
                if not dep["metadata"].get("deletionTimestamp"):
                    self.queue.add(("dep", p, k))
            return 1.0
        return None

    async def _drop_finalizer(self, plural: str, owner: Obj, finalizer: str) -> None:
        body = copy.deepcopy(owner)
        body["metadata"]["finalizers"] = [f for f in _finalizers(owner) if f != finalizer]
        try:
            await self.client.update(self.by_plural[plural][0], body)
        except ApiError as err:
            if err.code != 404:
                raise
