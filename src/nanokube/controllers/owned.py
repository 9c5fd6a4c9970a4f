"""Which objects (pods, claims, jobs) a controller of one kind owns, kept up to date from an informer.

The informer's handlers feed `OwnedIndex`; it maps owner uid -> keys of objects whose controllerRef names that
kind, keeps orphans (no controllerRef) per namespace for adoption, and tells which owner key to enqueue.
"""

from __future__ import annotations

from collections.abc import Callable

from nanokube.api.meta import Obj
from nanokube.client import Informer, object_key


def controller_uid(obj: Obj, kind: str) -> str | None:
    """The uid of its controller when that is a `kind`, "" when another kind controls it, None if orphan."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid") or "" if ref.get("kind") == kind else ""
    return None


class OwnedIndex:
    def __init__(self, informer: Informer, kind: str, enqueue_owner: Callable[[str], None],
                 on_orphan: Callable[[Obj], None] | None = None) -> None:
        self.informer = informer
        self.kind = kind
        self._enqueue_owner = enqueue_owner  # called with the owner's uid
        self._on_orphan = on_orphan
        self.owned: dict[str, set[str]] = {}
        self.orphans: dict[str, set[str]] = {}
        informer.add_handler(on_add=self._added, on_update=self._updated, on_delete=self._deleted)

    def of(self, uid: str) -> list[Obj]:
        cache = self.informer.cache
        return [obj for key in self.owned.get(uid, ()) if (obj := cache.get(key)) is not None]

    def orphans_in(self, namespace: str) -> list[Obj]:
        cache = self.informer.cache
        return [obj for key in self.orphans.get(namespace, ()) if (obj := cache.get(key)) is not None]

    def _index(self, obj: Obj, present: bool) -> None:
        key = object_key(obj)
        uid = controller_uid(obj, self.kind)
        if uid:
            owned = self.owned.setdefault(uid, set())
            owned.add(key) if present else owned.discard(key)
            if not owned:
                self.owned.pop(uid, None)
        elif uid is None:
            orphans = self.orphans.setdefault(obj["metadata"].get("namespace", ""), set())
            orphans.add(key) if present else orphans.discard(key)

    def _notify(self, obj: Obj) -> None:
        uid = controller_uid(obj, self.kind)
        if uid:
            self._enqueue_owner(uid)
        elif uid is None and self._on_orphan is not None:
            self._on_orphan(obj)

    def _added(self, obj: Obj) -> None:
        self._index(obj, True)
        self._notify(obj)

    def _updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("ownerReferences") != new["metadata"].get("ownerReferences"):
            self._index(old, False)
            self._notify(old)
        self._index(new, True)
        self._notify(new)

    def _deleted(self, obj: Obj) -> None:
        self._index(obj, False)
        self._notify(obj)
