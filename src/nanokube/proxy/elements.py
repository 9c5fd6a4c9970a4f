"""In-memory mirror of the table's set/map elements, owned per service port, and diffs between states.

Several owners may contribute the same element (a ClusterIP shared by a Service's ports, an endpoint in
two Services' hairpin set); the element stays while any owner wants it. When owners disagree on a map
value, the smallest owner wins, so the result does not depend on the order of updates.
"""

from __future__ import annotations

from collections.abc import Hashable

from nanokube.proxy.nftrules import ElementKey, Elements


class ElementMirror:
    def __init__(self) -> None:
        self._by_owner: dict[Hashable, Elements] = {}
        self._holders: dict[ElementKey, dict[Hashable, str]] = {}

    def _effective(self, key: ElementKey) -> str | None:
        holders = self._holders.get(key)
        if not holders:
            return None
        return holders[min(holders)]  # type: ignore[type-var]

    def set_owner(self, owner: Hashable, elements: Elements) -> tuple[Elements, Elements]:
        """Replace what `owner` contributes; returns (elements to delete, elements to add)."""
        old = self._by_owner.get(owner, {})
        if old == elements:
            return {}, {}
        touched = {k for k in old if old[k] != elements.get(k)} | {k for k in elements if k not in old or
                                                                   old[k] != elements[k]}
        before = {k: self._effective(k) for k in touched}
        for k in old:
            if k not in elements:
                holders = self._holders[k]
                del holders[owner]
                if not holders:
                    del self._holders[k]
        for k, v in elements.items():
            self._holders.setdefault(k, {})[owner] = v
        if elements:
            self._by_owner[owner] = elements
        else:
            self._by_owner.pop(owner, None)
        deletes: Elements = {}
        adds: Elements = {}
        for k in touched:
            was, now = before[k], self._effective(k)
            if was == now:
                continue
            if was is not None:
                deletes[k] = was
            if now is not None:
                adds[k] = now
        return deletes, adds

    def all(self) -> Elements:
        return {k: self._effective(k) or "" for k in self._holders}

    def owners(self) -> list[Hashable]:
        return list(self._by_owner)

    def __len__(self) -> int:
        return len(self._holders)
