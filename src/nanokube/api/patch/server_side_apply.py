"""Server-side apply as structured-merge-diff's Updater.Apply runs it behind kube-apiserver's field manager chain
(merge/update.go; managedfields/internal: skipnonapplied, managedfieldsupdater, lastappliedmanager/updater).

1. merged = the live object with the configuration merged in (typed.merge: the config wins, list-map items by
   key with defaulted key fields, atomic lists/maps replaced);
2. the applier's set becomes the configuration's field set; what it applied last time and left out now is
   removed from the object unless another manager owns it (prune);
3. fields the merge changed that another manager owns are conflicts: a 409 naming them, unless forced, in
   which case ownership moves to the applier; fields the merge removed leave every other manager's set.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from nanokube.api.errors import ApiError
from nanokube.api.meta import rfc3339
from nanokube.api.patch import fieldpath, typed
from nanokube.api.patch.fieldpath import FieldSet, Path
from nanokube.api.patch.managed_fields import (
    APPLY,
    BEFORE_FIRST_APPLY,
    UPDATE,
    Conflict,
    Entry,
    ManagedFieldsError,
    Managers,
    conflict_error,
    decode,
    encode,
    owned_by_nobody,
    same_sets,
)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_KUBECTL = "kubectl"  # the only manager whose apply migrates client-side apply ownership (lastappliedmanager.go)


def _stamp(now: Callable[[], datetime] | None) -> str:
    return rfc3339(now() if now else None)


def split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


def typed_failure(obj: dict[str, Any], what: str, exc: Exception) -> ApiError:
    md = obj.get("metadata") or {}
    group, version = split_api_version(str(obj.get("apiVersion", "")))
    gvk = f"{group}/{version}, Kind={obj.get('kind', '')}"
    return ApiError(500, "", f"failed to create typed {what} object ({md.get('namespace', '')}/{md.get('name', '')}; "
                             f"{gvk}): {exc}")


def server_side_apply(live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool = False,
                      now: Callable[[], datetime] | None = None, subresource: str = "",
                      ignored: list[Path] | None = None) -> dict[str, Any]:
    """The object after `manager` applied `applied` to `live` (None: not there yet), managedFields included.
    Raises ApiError 409 on conflicts (unless force), 500 for a configuration the schema cannot take."""
    group, version = split_api_version(str(applied.get("apiVersion", "")))
    t = typed.root_type(group, version, str(applied.get("kind", "")))
    api_version = str(applied.get("apiVersion", ""))
    ignored = ignored or []
    base = copy.deepcopy(live) if live is not None else {}
    base_md = base.setdefault("metadata", {})
    live_entries = base_md.pop("managedFields", None)
    try:
        managers = decode(live_entries)
    except ManagedFieldsError as exc:
        raise ApiError(500, "", f"failed to decode managed fields: {exc}") from None
    config = copy.deepcopy(applied)
    try:
        config_set = typed.field_set(config, t)
    except typed.TypedError as exc:
        raise typed_failure(applied, "patch", exc) from None
    if live is not None and not live_entries:
        # skipnonapplied: an object nobody tracked yet belongs to "before-first-apply"
        first = owned_by_nobody(typed.field_set(base, t))
        first = fieldpath.without_prefixes(first, ignored)
        if first:
            managers = {(e := Entry(BEFORE_FIRST_APPLY, UPDATE, api_version, subresource, None, first)).identity: e}
    stamp = _stamp(now)
    try:
        merged, out = _apply(base, config, config_set, managers, manager, api_version, subresource, force, t,
                             ignored, stamp)
    except _Conflicts as exc:
        if manager != _KUBECTL:
            raise conflict_error(exc.conflicts) from None
        allowed = _allowed_by_last_applied(base, api_version, t)
        rest = [c for c in exc.conflicts if c.path not in allowed]
        if rest:
            raise conflict_error(rest) from None
        merged, out = _apply(base, config, config_set, managers, manager, api_version, subresource, True, t,
                             ignored, stamp)
    if manager == _KUBECTL:
        _update_last_applied(merged, applied)
    if merged == base and same_sets(out, managers):
        out = managers  # nothing changed: timestamps stay (equality.go)
    entries = encode(out)
    md = merged.setdefault("metadata", {})
    if entries:
        md["managedFields"] = entries
    else:
        md.pop("managedFields", None)
    return merged


class _Conflicts(Exception):
    def __init__(self, conflicts: list[Conflict]) -> None:
        super().__init__("conflicts")
        self.conflicts = conflicts


def _apply(live: dict[str, Any], config: dict[str, Any], config_set: FieldSet, managers: Managers, manager: str,
           api_version: str, subresource: str, force: bool, t: typed.Type, ignored: list[Path],
           stamp: str) -> tuple[dict[str, Any], Managers]:
    config_md = config.get("metadata")
    if isinstance(config_md, dict):
        config_md.pop("managedFields", None)
    try:
        merged = typed.merge(live, config, t)
    except typed.TypedError as exc:
        raise typed_failure(config, "patch", exc) from None
    mine = Entry(manager, APPLY, api_version, subresource, stamp,
                 fieldpath.without_prefixes(owned_by_nobody(config_set), ignored))
    previous = managers.get(mine.identity)
    out: Managers = {k: Entry(e.manager, e.operation, e.api_version, e.subresource, e.time, set(e.fields))
                     for k, e in managers.items()}
    out[mine.identity] = mine
    if previous is not None and previous.fields:
        merged = _prune(merged, out, previous.fields, t)
    cmp = typed.compare(live, merged, t).without(ignored)
    changed = cmp.modified | cmp.added
    conflicts: list[Conflict] = []
    for ident, e in out.items():
        if ident == mine.identity:
            continue
        for path in sorted(e.fields & changed, key=lambda p: [fieldpath.element_order(x) for x in p]):
            conflicts.append(Conflict(e, path))
    if conflicts and not force:
        raise _Conflicts(conflicts)
    for ident, e in list(out.items()):
        if ident == mine.identity:
            continue
        e.fields -= changed
        e.fields -= cmp.removed
        if not e.fields:
            del out[ident]
    return merged, out


def _prune(merged: Any, managers: Managers, last: FieldSet, t: typed.Type) -> Any:
    """Updater.prune: remove what the applier applied last time and nobody (itself included) owns now."""
    last_named = typed.named_fields(last, t)
    pruned = typed.remove_items(merged, last_named, t)
    owned: FieldSet = set()
    for e in managers.values():
        owned |= e.fields
    owned = typed.named_fields(owned, t)
    merged_set = typed.named_fields(typed.field_set(merged, t, strict=False), t)
    pruned_set = typed.named_fields(typed.field_set(pruned, t, strict=False), t)
    return typed.remove_items(merged, (merged_set - pruned_set - owned) & last_named, t)


# ---------------------------------------------------------------- client-side apply migration


def _allowed_by_last_applied(live: dict[str, Any], api_version: str, t: typed.Type) -> FieldSet:
    """lastAppliedManager: fields the last-applied annotation set to what the object still holds."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return set()
    try:
        last = json.loads(text)
    except ValueError:
        return set()
    if not isinstance(last, dict) or last.get("apiVersion") != api_version:
        return set()
    try:
        fields = typed.field_set(last, t, strict=False)
        cmp = typed.compare(last, live, t)
    except typed.TypedError:
        return set()
    return fields - cmp.modified - cmp.added - cmp.removed


def _update_last_applied(merged: dict[str, Any], applied: dict[str, Any]) -> None:
    """lastAppliedUpdater: keep an existing last-applied annotation in step with what kubectl applies."""
    annotations = (merged.get("metadata") or {}).get("annotations") or {}
    if not annotations.get(LAST_APPLIED):
        return
    config = copy.deepcopy(applied)
    config_annotations = (config.get("metadata") or {}).get("annotations")
    if isinstance(config_annotations, dict):
        config_annotations.pop(LAST_APPLIED, None)
    text = json.dumps(config, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    annotations[LAST_APPLIED] = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"
