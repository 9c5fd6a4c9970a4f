"""Namespace controller: a namespace being deleted has everything inside it deleted, then its
`kubernetes` finalizer removed through namespaces/{name}/finalize so the apiserver can drop it.
"""

from __future__ import annotations

import copy

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.api.served_resources import RESOURCES, Resource
from nanokube.controllers import discovered
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.resources import NAMESPACES

FINALIZER = "kubernetes"


def namespaced_resources() -> list[Resource]:
    seen: set[tuple[str, str]] = set()
    out = []
    for r in RESOURCES:
        if r.namespaced and "delete" in r.verbs and (r.group, r.plural) not in seen:
            seen.add((r.group, r.plural))
            out.append(r)
    return out


class NamespaceController(Controller):
    name = "namespace-controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.namespaces = ctx.informer(NAMESPACES)
        self.namespaces.add_handler(on_add=self._changed, on_update=lambda _o, n: self._changed(n))

    def _changed(self, ns: Obj) -> None:
        if ns["metadata"].get("deletionTimestamp"):
            self.queue.add(ns["metadata"]["name"])

    async def sync(self, name: str) -> float | None:
        ns = self.namespaces.cache.get(name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return None
        if FINALIZER not in (ns.get("spec", {}).get("finalizers") or []):
            return None
        remaining = 0
        custom = [r for r in await discovered.custom_resources(self.client) if r.namespaced]
        for resource in [*namespaced_resources(), *custom]:
            try:
                items = (await self.client.list(resource, name)).get("items") or []
            except ApiError as err:
                if err.code in (404, 405):
                    continue
                raise
            remaining += len(items)
            for item in items:
                md = item.get("metadata", {})
                if md.get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(resource, md["name"], name, propagation_policy="Background")
                except ApiError as err:
                    if err.code not in (404, 409):
                        raise
        if remaining:
            return 0.25
        body = copy.deepcopy(ns)
        body["spec"]["finalizers"] = [f for f in ns["spec"]["finalizers"] if f != FINALIZER]
        try:
            await self.client.update(NAMESPACES, body, subresource="finalize")
        except ApiError as err:
            if err.code != 404:
                raise
        return None
