"""Read-your-writes on top of an informer cache.

After a controller writes an object, its informer may not have seen the write yet; syncing again from the
stale copy would create duplicates or undo work. The overlay remembers what was written (and deleted)
until the informer catches up, and answers with the newest copy.
"""

from __future__ import annotations

from typing import Any

from nanokube.client import Informer, object_key

Obj = dict[str, Any]


def revision(obj: Obj | None) -> int:
    rv = (obj or {}).get("metadata", {}).get("resourceVersion") or "0"
    return int(rv) if rv.isdigit() else 0


class Overlay:
    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self._written: dict[str, Obj] = {}
        self._deleted: dict[str, str] = {}  # key -> uid of the deleted object

    def wrote(self, obj: Obj) -> None:
        key = object_key(obj)
        self._written[key] = obj
        self._deleted.pop(key, None)

    def deleted(self, obj: Obj) -> None:
        key = object_key(obj)
        self._written.pop(key, None)
        self._deleted[key] = obj.get("metadata", {}).get("uid", "")

    def observe(self, obj: Obj) -> bool:
        """Call from informer handlers: True when the event only reports a write we already know about."""
        key = object_key(obj)
        written = self._written.get(key)
        if written is None or revision(obj) < revision(written):
            return False
        del self._written[key]
        return revision(obj) == revision(written)

    def view(self, key: str, cached: Obj | None) -> Obj | None:
        written = self._written.get(key)
        if written is not None:
            if cached is not None and revision(cached) >= revision(written):
                del self._written[key]
                return cached
            return written
        uid = self._deleted.get(key)
        if uid is not None:
            if cached is None or cached.get("metadata", {}).get("uid") != uid:
                del self._deleted[key]
                return cached
            return None
        return cached

    def get(self, namespace: str | None, name: str) -> Obj | None:
        key = f"{namespace}/{name}" if namespace else name
        return self.view(key, self.informer.cache.get(key))
