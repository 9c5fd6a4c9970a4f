"""Read-your-writes on top of an informer cache.

After a controller writes an object, its informer may not have seen the write yet; syncing again from the
stale copy would create duplicates or undo work. The overlay remembers what was written (and deleted)
until the informer catches up, and answers with the newest copy.

The watch event of a write often arrives before the write's own response. Between `begin(key)` and
`wrote(obj)` / `abandon(key)` such events are held back and judged when the response is in: only an
event of some other version is worth another sync.
"""

from __future__ import annotations

from nanokube.api.meta import Obj
from nanokube.client import Informer, object_key


def revision(obj: Obj | None) -> int:
    rv = (obj or {}).get("metadata", {}).get("resourceVersion") or "0"
    return int(rv) if rv.isdigit() else 0


class Overlay:
    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self._written: dict[str, Obj] = {}
        self._deleted: dict[str, str] = {}  # key -> uid of the deleted object
        self._in_flight: dict[str, list[int]] = {}  # key -> revisions seen while our write was under way

    def begin(self, key: str) -> None:
        """A write of `key` is about to be sent."""
        self._in_flight[key] = []

    def abandon(self, key: str) -> bool:
        """The write failed; True when events arrived meanwhile."""
        return bool(self._in_flight.pop(key, None))

    def wrote(self, obj: Obj) -> bool:
        """Remember a successful write; True when an event of another version came in while it was under way."""
        key = object_key(obj)
        self._written[key] = obj
        self._deleted.pop(key, None)
        seen = self._in_flight.pop(key, None)
        return bool(seen) and any(rv != revision(obj) for rv in seen)

    def deleted(self, obj: Obj) -> None:
        key = object_key(obj)
        self._written.pop(key, None)
        self._deleted[key] = obj.get("metadata", {}).get("uid", "")

    def observe(self, obj: Obj) -> bool:
        """Call from informer handlers: True when the event only reports a write we already know about."""
        key = object_key(obj)
        in_flight = self._in_flight.get(key)
        if in_flight is not None:
            in_flight.append(revision(obj))
            return True
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
