"""Server-side apply (a subset of structured-merge-diff): see `server_side_apply`."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nanokube.api import openapi_schemas
from nanokube.api.patch.gojson import deep_equal


def server_side_apply(live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool = False,
                      now: Callable[[], datetime] | None = None, subresource: str = "") -> dict[str, Any]:
    """Merge an apply configuration into the live object and record the manager's managedFields entry.

    Follows structured-merge-diff for the shapes built-in kinds use: structs and granular maps merge key
    by key, `x-kubernetes-list-type: map` lists merge by their list-map keys, `set` lists union, atomic
    lists/maps (and unknown fields) are replaced. Fields this manager applied before but left out now are
    removed unless another manager's entry still claims them. NOT done: conflict detection (applying a field
    another manager set to a different value succeeds, force or not), and ownership of fields written by
    non-apply requests (those managers' entries are kept as they are).
    """
    del force  # conflicts are not detected yet (see docstring)
    group, version = _split_api_version(str(applied.get("apiVersion", "")))
    kind = str(applied.get("kind", ""))
    name = openapi_schemas.definition_name(group, version, kind)
    root: openapi_schemas.Schema | None = {"$ref": "#/$defs/" + name} if name else None
    base = copy.deepcopy(live) if live is not None else {}
    metadata = base.setdefault("metadata", {})
    entries: list[dict[str, Any]] = list(metadata.get("managedFields") or [])
    config = copy.deepcopy(applied)
    config_meta = config.get("metadata")
    if isinstance(config_meta, dict):
        config_meta.pop("managedFields", None)

    mine = [e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"
            and e.get("subresource", "") == subresource]
    previous = _fields_from_v1(mine[0].get("fieldsV1", {})) if mine else set()
    owned_by_others: set[tuple[Any, ...]] = set()
    for entry in entries:
        if any(entry is m for m in mine):
            continue
        owned_by_others |= _fields_from_v1(entry.get("fieldsV1", {}))
    current = _field_set(config, root)
    dropped = previous - current - owned_by_others
    # whole list items first (their key fields must still match), then leaves, deepest first
    for path in sorted((p for p in dropped if p[-1] == (".",)), key=len):
        _remove_path(base, path)
    for path in sorted((p for p in dropped if p[-1] != (".",)), key=len, reverse=True):
        _remove_path(base, path)
    merged = _apply_merge(base, config, root)

    stamp = (now or (lambda: datetime.now(UTC)))().strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied.get("apiVersion", ""),
        "time": stamp,
        "fieldsType": "FieldsV1",
        "fieldsV1": _fields_to_v1(current),
    }
    if subresource:
        entry["subresource"] = subresource
    if mine:
        entries = [entry if e is mine[0] else e for e in entries if e is mine[0] or e not in mine]
    else:
        entries.append(entry)
    merged.setdefault("metadata", {})["managedFields"] = entries
    return merged


def _split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


def _list_info(node: openapi_schemas.Schema | None) -> tuple[str, list[str]]:
    if node is None:
        return "atomic", []
    if "allOf" in node and len(node["allOf"]) == 1:
        node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
    list_type = node.get("x-kubernetes-list-type")
    if list_type is None:
        # untagged lists in built-in types: merge-strategy lists behave as sets/maps, the rest are atomic
        if node.get("x-kubernetes-patch-strategy", "").startswith("merge"):
            key = node.get("x-kubernetes-patch-merge-key")
            return ("map", [key]) if key else ("set", [])
        return "atomic", []
    return list_type, list(node.get("x-kubernetes-list-map-keys") or [])


def _is_atomic_map(node: openapi_schemas.Schema | None) -> bool:
    if node is None:
        return True
    resolved = openapi_schemas.resolve(node)
    if node.get("x-kubernetes-map-type") == "atomic" or (resolved or {}).get("x-kubernetes-map-type") == "atomic":
        return True
    if resolved is None:
        return True
    return "properties" not in resolved and not isinstance(resolved.get("additionalProperties"), dict)


def _item_key(item: Any, keys: list[str]) -> tuple[Any, ...]:
    if isinstance(item, dict):
        return tuple((k, json.dumps(item.get(k), sort_keys=True)) for k in keys)
    return (("v", json.dumps(item, sort_keys=True)),)


def _apply_merge(live: Any, config: Any, node: openapi_schemas.Schema | None) -> Any:
    if isinstance(config, dict) and isinstance(live, dict) and not _is_atomic_map(node):
        out = dict(live)
        for key, value in config.items():
            sub = openapi_schemas.property_schema(node, key)
            if sub is None:
                sub = openapi_schemas.map_values_schema(node)
            out[key] = _apply_merge(live.get(key), value, sub)
        return out
    if isinstance(config, list) and isinstance(live, list):
        list_type, keys = _list_info(node)
        item_node = openapi_schemas.items_schema(node)
        if list_type == "map" and keys:
            by_key = {_item_key(item, keys): i for i, item in enumerate(live)}
            out = list(live)
            for item in config:
                k = _item_key(item, keys)
                if k in by_key:
                    out[by_key[k]] = _apply_merge(out[by_key[k]], item, item_node)
                else:
                    by_key[k] = len(out)
                    out.append(copy.deepcopy(item))
            return out
        if list_type == "set":
            out = list(live)
            for item in config:
                if not any(deep_equal(item, existing) for existing in out):
                    out.append(item)
            return out
    return copy.deepcopy(config)


def _field_set(config: Any, node: openapi_schemas.Schema | None, prefix: tuple[Any, ...] = ()) -> set[tuple[Any, ...]]:
    """Paths the configuration sets: ('f', name) steps, ('k', {keys}) list items, ('v', value) set members."""
    out: set[tuple[Any, ...]] = set()
    if isinstance(config, dict) and not _is_atomic_map(node):
        for key, value in config.items():
            if prefix == () and key in ("apiVersion", "kind"):
                continue
            if prefix == (("f", "metadata"),) and key in ("name", "namespace", "managedFields"):
                continue
            sub = openapi_schemas.property_schema(node, key)
            if sub is None:
                sub = openapi_schemas.map_values_schema(node)
            path = (*prefix, ("f", key))
            children = _field_set(value, sub, path)
            if not children:
                out.add(path)
            out |= children
        return out
    if isinstance(config, list):
        list_type, keys = _list_info(node)
        item_node = openapi_schemas.items_schema(node)
        if list_type == "map" and keys:
            for item in config:
                if not isinstance(item, dict):
                    continue
                ident = json.dumps({k: item[k] for k in keys if k in item}, sort_keys=True, separators=(",", ":"))
                path = (*prefix, ("k", ident))
                out.add((*path, (".",)))
                out |= _field_set(item, item_node, path)
            return out
        if list_type == "set":
            for item in config:
                out.add((*prefix, ("v", json.dumps(item, separators=(",", ":")))))
            return out
    return out


def _fields_to_v1(paths: set[tuple[Any, ...]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths, key=lambda p: [json.dumps(step) for step in p]):
        node = tree
        for step in path:
            label = "." if step == (".",) else f"{step[0]}:{step[1]}"
            node = node.setdefault(label, {})
    return tree


def _fields_from_v1(tree: Any, prefix: tuple[Any, ...] = ()) -> set[tuple[Any, ...]]:
    out: set[tuple[Any, ...]] = set()
    if not isinstance(tree, dict):
        return out
    for label, sub in tree.items():
        if label == ".":
            out.add((*prefix, (".",)))
            continue
        kind, _, rest = label.partition(":")
        path = (*prefix, (kind, rest))
        children = _fields_from_v1(sub, path)
        if not children:
            out.add(path)
        out |= children
    return out


def _remove_path(obj: Any, path: tuple[Any, ...]) -> None:
    """Remove what one field path names from obj (a missing path is ignored)."""
    if path and path[-1] == (".",):
        path = path[:-1]
    node = obj
    for i, step in enumerate(path):
        last = i == len(path) - 1
        kind, value = step
        if kind == "f" and isinstance(node, dict):
            if last:
                node.pop(value, None)
                return
            node = node.get(value)
        elif kind == "k" and isinstance(node, list):
            keys = json.loads(value)
            idx = next((j for j, item in enumerate(node) if isinstance(item, dict)
                        and all(deep_equal(item.get(k), v) for k, v in keys.items())), None)
            if idx is None:
                return
            if last:
                node.pop(idx)
                return
            node = node[idx]
        elif kind == "v" and isinstance(node, list) and last:
            member = json.loads(value)
            node[:] = [item for item in node if not deep_equal(item, member)]
            return
        else:
            return
