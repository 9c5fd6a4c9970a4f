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


class ExclusiveGroups:
    """Groups of elements that only one owner at a time may contribute: a frontend's source-range intervals,
    since two owners' intervals could overlap and the kernel rejects that. The smallest claimant wins, as
    for map values above; the others take over when it leaves."""

    def __init__(self) -> None:
        self._claims: dict[str, dict[Hashable, Elements]] = {}
        self._groups_of: dict[Hashable, set[str]] = {}

    def set_owner(self, owner: Hashable, groups: dict[str, Elements]) -> dict[str, Elements]:
        """Replace what `owner` claims; returns the winning elements of every group it touched ({} = none)."""
        touched = self._groups_of.pop(owner, set()) | set(groups)
        if groups:
            self._groups_of[owner] = set(groups)
        out: dict[str, Elements] = {}
        for group in touched:
            claims = self._claims.setdefault(group, {})
            claims.pop(owner, None)
            if group in groups:
                claims[owner] = groups[group]
            if claims:
                out[group] = claims[min(claims)]  # type: ignore[type-var]
            else:
                del self._claims[group]
                out[group] = {}
        return out
