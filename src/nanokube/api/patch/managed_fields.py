"""metadata.managedFields: who owns which fields, as kube-apiserver's field manager keeps them
(k8s.io/apimachinery/pkg/util/managedfields/internal and structured-merge-diff merge/update.go).

`Managers` maps an entry's identity (manager, operation, apiVersion for Update, subresource) to its field set.
`track_update` is the Update operation (create, PUT, JSON/merge/strategic patches): the writer takes every field
it added or changed, from everyone. `apply` (server_side_apply.py) is the Apply operation.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from nanokube.api.errors import ApiError
from nanokube.api.patch import fieldpath, typed
from nanokube.api.patch.fieldpath import FieldSet, Path

APPLY = "Apply"
UPDATE = "Update"
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
BEFORE_FIRST_APPLY = "before-first-apply"

# stripmeta.go: fields nobody owns
_f = fieldpath.field
STRIPPED: frozenset[Path] = frozenset({
    (_f("apiVersion"),), (_f("kind"),), (_f("metadata"),),
    *((_f("metadata"), _f(name)) for name in ("name", "namespace", "creationTimestamp", "selfLink", "uid",
                                               "clusterName", "generation", "managedFields", "resourceVersion")),
})


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    subresource: str = ""
    time: str | None = None
    fields: FieldSet = field(default_factory=set)

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """What tells entries apart (BuildManagerIdentifier): all but time and fields, and apiVersion for Apply."""
        return (self.manager, self.operation, "" if self.operation == APPLY else self.api_version, self.subresource)

    def identity_json(self) -> str:
        """BuildManagerIdentifier's text (conflict messages list managers in its order)."""
        ident: dict[str, str] = {}
        if self.manager:
            ident["manager"] = self.manager
        ident["operation"] = self.operation
        if self.operation != APPLY and self.api_version:
            ident["apiVersion"] = self.api_version
        if self.subresource:
            ident["subresource"] = self.subresource
        return json.dumps(ident, separators=(",", ":"))

    def describe(self) -> str:
        """printManager in conflict messages."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text


Managers = dict[tuple[str, str, str, str], Entry]


class ManagedFieldsError(ValueError):
    pass


def decode(entries: Any) -> Managers:
    """DecodeManagedFields; ManagedFieldsError on a malformed entry."""
    out: Managers = {}
    if entries is None:
        return out
    if not isinstance(entries, list):
        raise ManagedFieldsError("managedFields must be a list")
    for i, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise ManagedFieldsError(f"managed fields entry {i} is not an object")
        fields_type = raw.get("fieldsType", "")
        if fields_type != "FieldsV1":
            raise ManagedFieldsError(f"missing fieldsType in managed fields entry {i}" if not fields_type
                                     else f'invalid fieldsType "{fields_type}" in managed fields entry {i}')
        operation = raw.get("operation")
        if operation not in (APPLY, UPDATE):
            raise ManagedFieldsError("operation must be `Apply` or `Update`")
        if not raw.get("apiVersion"):
            raise ManagedFieldsError("apiVersion must not be empty")
        try:
            fields = set(_decoded_set(orjson.dumps(raw.get("fieldsV1") or {})))
        except (ValueError, TypeError) as exc:
            raise ManagedFieldsError(f"error decoding fieldsV1 in managed fields entry {i}: {exc}") from None
        entry = Entry(str(raw.get("manager", "")), operation, str(raw["apiVersion"]),
                      str(raw.get("subresource") or ""), raw.get("time"), fields)
        out[entry.identity] = entry
    return out


def _order(e: Entry) -> tuple[Any, ...]:
    return (e.operation, e.time or "", e.manager, e.api_version, e.subresource)


def retimed(entries: list[dict[str, Any]], managers: Managers) -> list[dict[str, Any]]:
    """The encoded entries of `managers` when only their times differ from `entries` (no re-encoding)."""
    out = []
    for raw in entries:
        e = Entry(str(raw.get("manager", "")), str(raw.get("operation")), str(raw.get("apiVersion")),
                  str(raw.get("subresource") or ""), raw.get("time"))
        now = managers[e.identity].time
        if now != e.time:
            raw = {**raw, "time": now}
            e.time = now
        out.append((_order(e), raw))
    out.sort(key=lambda pair: pair[0])
    return [raw for _, raw in out]


@functools.lru_cache(maxsize=1024)
def _decoded_set(fields_v1: bytes) -> frozenset[Path]:
    """fieldsV1 decoded once per distinct text (every write of an object decodes the same entries again)."""
    return frozenset(fieldpath.from_fields_v1(orjson.loads(fields_v1)))


def encode(managers: Managers) -> list[dict[str, Any]]:
    """The managedFields list: empty sets dropped, sorted as sortEncodedManagedFields does."""
    out = []
    for e in sorted((e for e in managers.values() if e.fields), key=_order):
        entry: dict[str, Any] = {"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version}
        if e.time:
            entry["time"] = e.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = fieldpath.to_fields_v1(e.fields)
        if e.subresource:
            entry["subresource"] = e.subresource
        out.append(entry)
    return out


def same_sets(a: Managers, b: Managers) -> bool:
    return a.keys() == b.keys() and all(a[k].fields == b[k].fields for k in a)


def owned_by_nobody(paths: FieldSet) -> FieldSet:
    return paths - STRIPPED


# ---------------------------------------------------------------- Update


def track_update(old: Any, new: Any, managers: Managers, manager: str, api_version: str, subresource: str,
                 t: typed.Type, ignored: list[Path], now: str) -> Managers:
    """Updater.Update + managedFieldsUpdater: the writer takes what it added or modified (from everyone);
    what it removed leaves everyone's sets. Its entry's time moves only when it took something."""
    cmp = typed.compare(old, new, t).without(ignored)
    taken = cmp.added | cmp.modified
    out: Managers = {}
    for ident, e in managers.items():
        rest = e.fields - taken - cmp.removed
        if rest:
            out[ident] = Entry(e.manager, e.operation, e.api_version, e.subresource, e.time, rest)
    taken = owned_by_nobody(taken)
    if taken:
        mine = Entry(manager, UPDATE, api_version, subresource, now)
        previous = out.get(mine.identity)
        mine.fields = taken | (previous.fields if previous else set())
        out[mine.identity] = mine
    return cap_update_managers(out)


def cap_update_managers(managers: Managers, limit: int = MAX_UPDATE_MANAGERS) -> Managers:
    """capManagersManager: beyond `limit` Update entries the oldest go into `ancient-changes` per apiVersion."""
    updaters = [e for e in managers.values() if e.operation == UPDATE]
    if len(updaters) <= limit:
        return managers
    updaters.sort(key=lambda e: e.time or "")
    out = dict(managers)
    for e in updaters[:len(updaters) - limit + 1]:
        del out[e.identity]
        bucket = Entry(ANCIENT_CHANGES, UPDATE, e.api_version, "", e.time)
        previous = out.get(bucket.identity)
        if previous is not None:
            bucket.fields = previous.fields | e.fields
            bucket.time = max(previous.time or "", e.time or "") or None
        else:
            bucket.fields = set(e.fields)
        out[bucket.identity] = bucket
    return out


# ---------------------------------------------------------------- conflicts


@dataclass
class Conflict:
    owner: Entry
    path: Path


def conflict_error(conflicts: list[Conflict]) -> ApiError:
    """NewConflictError / NewApplyConflict: 409 naming each manager and field."""
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {c.owner.describe()}",
               "field": fieldpath.path_text(c.path)} for c in conflicts]
    if len(conflicts) == 1:
        c = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {c.owner.describe()}: {fieldpath.path_text(c.path)}"
    else:
        by_owner: dict[str, list[Conflict]] = {}
        for c in conflicts:
            by_owner.setdefault(c.owner.identity_json(), []).append(c)
        lines = []
        for ident in sorted(by_owner):
            lines.append(f"conflicts with {by_owner[ident][0].owner.describe()}:")
            lines.extend(f"- {fieldpath.path_text(c.path)}" for c in by_owner[ident])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})
