"""ControllerRevisions of a StatefulSet or DaemonSet (pkg/controller/history): the revision holding the current
pod template is found, re-numbered (a rollback) or created (a name taken by another template bumps
collisionCount), and history beyond revisionHistoryLimit that nothing refers to is deleted."""

from __future__ import annotations

from collections.abc import Callable

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.controllers import statefulset_logic as logic
from nanokube.controllers.framework import Context
from nanokube.controllers.owned import OwnedIndex
from nanokube.controllers.resources import CONTROLLERREVISIONS


class RevisionHistory:
    def __init__(self, ctx: Context, kind: str, enqueue_owner: Callable[[str], None]) -> None:
        self.client = ctx.client
        self.kind = kind
        self.revisions = OwnedIndex(ctx.informer(CONTROLLERREVISIONS), kind, enqueue_owner)

    async def sync(self, owner: Obj) -> tuple[Obj, Obj, int]:
        """(current revision, update revision, collisionCount), creating or re-numbering as needed."""
        revisions = sorted(self.revisions.of(owner["metadata"]["uid"]), key=lambda r: r.get("revision", 0))
        status = owner.get("status") or {}
        collisions = int(status.get("collisionCount") or 0)
        data = logic.revision_data(owner)
        equal = [r for r in revisions if r.get("data") == data]
        latest = revisions[-1].get("revision", 0) if revisions else 0
        if equal and equal[-1] is revisions[-1]:
            update = equal[-1]
        elif equal:
            update = await self.client.update(CONTROLLERREVISIONS, {**equal[-1], "revision": latest + 1})
        else:
            update, collisions = await self._create(owner, data, latest + 1, collisions)
        name = status.get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == name), update)
        return current, update, collisions

    async def _create(self, owner: Obj, data: Obj, number: int, collisions: int) -> tuple[Obj, int]:
        """A name taken by a different template bumps collisionCount, which changes the hash."""
        while True:
            body = logic.new_revision(owner, data, number, collisions, self.kind)
            try:
                created = await self.client.create(CONTROLLERREVISIONS, body, owner["metadata"]["namespace"])
            except ApiError as err:
                if err.code != 409:
                    raise
                existing = await self.client.get(CONTROLLERREVISIONS, body["metadata"]["name"],
                                                 owner["metadata"]["namespace"])
                if existing.get("data") == data:
                    created = existing
                else:
                    collisions += 1
                    continue
            return created, collisions

    async def truncate(self, owner: Obj, pods: list[Obj], current: Obj, update: Obj) -> None:
        limit = (owner.get("spec") or {}).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        live = {current["metadata"]["name"], update["metadata"]["name"], *(logic.revision_of(p) for p in pods)}
        for revision in logic.revisions_to_truncate(self.revisions.of(owner["metadata"]["uid"]), live, limit):
            try:
                await self.client.delete(CONTROLLERREVISIONS, revision["metadata"]["name"],
                                         owner["metadata"]["namespace"])
            except ApiError as err:
                if err.code != 404:
                    raise
