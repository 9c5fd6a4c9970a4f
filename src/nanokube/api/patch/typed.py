"""Schema-aware operations on objects, as structured-merge-diff's `typed` package does them (ToFieldSet, Merge,
Compare, RemoveItems), driven by the OpenAPI extensions of the shipped schemas (kube-openapi schemaconv):

- structs (`properties`) and maps (`additionalProperties`) are granular unless `x-kubernetes-map-type: atomic`;
- lists follow `x-kubernetes-list-type` (atomic | set | map with `x-kubernetes-list-map-keys`); without it a
  `merge` patch strategy with a merge key is a map list, `merge` alone a set, anything else atomic;
- a list-map item's key uses the schema default of a key field the item leaves out (SMD "defaulted keys");
  the shipped schemas carry no `default`, so the defaults kube-apiserver declares for key fields are listed here;
- without a schema (unknown kinds and fields) objects are granular maps and lists are atomic.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from nanokube.api import openapi_schemas
from nanokube.api.patch import fieldpath
from nanokube.api.patch.fieldpath import Element, FieldSet, Path

# +default markers on key fields (k8s.io/api core/v1 types.go): ContainerPort.protocol, ServicePort.protocol
KEY_DEFAULTS: dict[str, dict[str, Any]] = {
    "io.k8s.api.core.v1.ContainerPort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.ServicePort": {"protocol": "TCP"},
}


class TypedError(Exception):
    """A value the schema cannot take (SMD ValidationErrors): the message carries the field path."""


@dataclass(eq=False)
class Type:
    shape: str  # struct | map | list | scalar | untyped
    atomic: bool = False
    node: openapi_schemas.Schema | None = None  # resolved
    list_type: str = "atomic"
    keys: tuple[str, ...] = ()
    key_defaults: dict[str, Any] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    _children: dict[str, Type] = field(default_factory=dict)
    _item: Type | None = None

    def child(self, key: str) -> tuple[Type, bool]:
        """The type of a struct field / map value, and whether key is a declared struct field."""
        if self.shape == "struct":
            props = self.node.get("properties") or {} if self.node else {}
            if key in props:
                t = self._children.get(key)
                if t is None:
                    t = self._children[key] = type_of(props[key])
                return t, True
            return UNTYPED, False
        if self.shape == "map" and self.node is not None:
            if self._item is None:
                self._item = type_of(openapi_schemas.map_values_schema(self.node))
            return self._item, False
        return UNTYPED, False

    def item(self) -> Type:
        if self._item is None:
            self._item = type_of(openapi_schemas.items_schema(self.node)) if self.node is not None else UNTYPED
        return self._item


UNTYPED = Type("untyped")
_CACHE: dict[int, Type] = {}


def type_of(node: openapi_schemas.Schema | None) -> Type:
    if node is None:
        return UNTYPED
    cached = _CACHE.get(id(node))
    if cached is None:
        cached = _CACHE[id(node)] = _build(node)
    return cached


def root_type(group: str, version: str, kind: str) -> Type:
    name = openapi_schemas.definition_name(group, version, kind)
    if not name:
        return UNTYPED
    return type_of(openapi_schemas.definitions()[name])


def _build(node: openapi_schemas.Schema) -> Type:
    resolved = openapi_schemas.resolve(node)
    if resolved is None:
        return UNTYPED
    map_atomic = "atomic" in (node.get("x-kubernetes-map-type"), resolved.get("x-kubernetes-map-type"))
    kind = openapi_schemas.schema_type(resolved)
    if "properties" in resolved:
        return Type("struct", map_atomic, resolved, required=frozenset(resolved.get("required") or ()))
    if kind == "object":
        if isinstance(resolved.get("additionalProperties"), dict):
            return Type("map", map_atomic, resolved)
        return Type("untyped", map_atomic, None)
    if kind == "array":
        list_type, keys = _list_semantics(node, resolved)
        item_ref = openapi_schemas.ref_name(openapi_schemas.items_schema(resolved) or {}) or ""
        defaults = {k: v for k, v in KEY_DEFAULTS.get(item_ref, {}).items() if k in keys}
        return Type("list", list_type == "atomic", resolved, list_type, keys, defaults)
    if kind is None and "oneOf" not in resolved:
        return Type("untyped", map_atomic, None)
    return Type("scalar", True, resolved)


def _list_semantics(node: openapi_schemas.Schema, resolved: openapi_schemas.Schema) -> tuple[str, tuple[str, ...]]:
    """kube-openapi getListElementRelationship: list-type wins, else the patch strategy decides."""
    def ext(name: str) -> Any:
        return node.get(name, resolved.get(name))
    list_type = ext("x-kubernetes-list-type")
    if list_type in ("atomic", "set"):
        return list_type, ()
    if list_type == "map":
        return "map", tuple(ext("x-kubernetes-list-map-keys") or ())
    strategies = str(ext("x-kubernetes-patch-strategy") or "").split(",")
    if "merge" in strategies:
        key = ext("x-kubernetes-patch-merge-key")
        return ("map", (key,)) if key else ("set", ())
    return "atomic", ()


# ---------------------------------------------------------------- list items


def item_element(t: Type, item: Any, index: int) -> Element:
    """listItemToPathElement: the key of a list-map item (with defaulted key fields), a set value, or an index."""
    if t.list_type == "map" and t.keys:
        if not isinstance(item, dict):
            raise TypedError("associative list with keys may not have non-map elements")
        fields = {}
        for k in t.keys:
            if item.get(k) is not None:
                fields[k] = item[k]
            elif k in t.key_defaults:
                fields[k] = t.key_defaults[k]
        if not fields:
            quoted = " ".join(f'"{k}"' for k in t.keys)
            raise TypedError(f"associative list with keys has an element that omits all key fields [{quoted}] "
                             "(and doesn't have default values for any key fields)")
        return fieldpath.key_element(fields)
    if t.list_type == "set":
        if isinstance(item, (dict, list)):
            raise TypedError("associative list without keys has an element that's a map type" if isinstance(
                item, dict) else "associative list without keys has an element that's a list type")
        return fieldpath.value_element(item)
    return fieldpath.index_element(index)


def _index(t: Type, items: list[Any], path: Path, allow_duplicates: bool) -> dict[Element, Any]:
    out: dict[Element, Any] = {}
    for i, item in enumerate(items):
        try:
            pe = item_element(t, item, i)
        except TypedError as exc:
            raise TypedError(f"{fieldpath.path_text(path)}: element {i}: {exc}") from None
        if pe in out:
            if allow_duplicates:
                continue
            raise TypedError(f"{fieldpath.path_text(path)}: duplicate entries for key {fieldpath.element_text(pe)}")
        out[pe] = item
    return out


def _is_leaf(t: Type, value: Any) -> bool:
    if t.shape == "untyped":
        return not isinstance(value, dict) or t.atomic
    return t.atomic or t.shape == "scalar"


# ---------------------------------------------------------------- ToFieldSet


def field_set(value: Any, t: Type, path: Path = (), strict: bool = True) -> FieldSet:
    """ToFieldSet. strict: duplicate list-map keys are an error (an applied configuration); live objects
    may hold duplicates (the first one counts)."""
    out: FieldSet = set()
    _to_set(value, t, path, out, strict)
    return out


def _to_set(value: Any, t: Type, path: Path, out: FieldSet, strict: bool) -> None:
    if _is_leaf(t, value):
        out.add(path)
        return
    if t.shape == "list" or isinstance(value, list):
        if t.shape != "list":
            out.add(path)
            return
        if not isinstance(value, list):
            return
        item_t = t.item()
        for pe, item in _index(t, value, path, allow_duplicates=not strict).items():
            sub = (*path, pe)
            _to_set(item, item_t, sub, out, strict)
            out.add(sub)
        return
    if not isinstance(value, dict):
        return
    for key, val in value.items():
        child_t, declared = t.child(key)
        sub = (*path, fieldpath.field(key))
        _to_set(val, child_t, sub, out, strict)
        if not declared or val is None or (isinstance(val, dict) and not val):
            out.add(sub)


# ---------------------------------------------------------------- Merge (apply: the config wins)

_MISSING: Any = object()


def merge(live: Any, config: Any, t: Type, path: Path = ()) -> Any:
    """Merge an applied configuration into the live value; neither input is modified."""
    if config is _MISSING:
        return live
    if live is _MISSING or live is None or config is None or _is_leaf(t, config) or _is_leaf(t, live):
        return copy.deepcopy(config)
    if isinstance(config, list) and isinstance(live, list):
        if t.shape != "list" or (not live and not config):
            return copy.deepcopy(config)
        return _merge_lists(live, config, t, path)
    if isinstance(config, dict) and isinstance(live, dict):
        if not live and not config:
            return {}
        out = dict(live)
        for key, val in config.items():
            child_t, _ = t.child(key)
            out[key] = merge(live.get(key, _MISSING), val, child_t, (*path, fieldpath.field(key)))
        return out
    return copy.deepcopy(config)


def _merge_lists(lhs: list[Any], rhs: list[Any], t: Type, path: Path) -> list[Any]:
    """merge.go visitListItems: live order kept, shared items merged in place, new items where the config has
    them relative to the shared ones."""
    item_t = t.item()
    rhs_items = _index(t, rhs, path, allow_duplicates=False)
    lhs_items = _index(t, lhs, path, allow_duplicates=True)
    lhs_order, rhs_order = list(lhs_items), list(rhs_items)
    shared = [pe for pe in rhs_order if pe in lhs_items]
    next_shared = shared.pop(0) if shared else None
    out: list[Any] = []
    li = ri = 0
    while li < len(lhs_order) or ri < len(rhs_order):
        if li < len(lhs_order) and ri < len(rhs_order):
            pe = lhs_order[li]
            if pe == rhs_order[ri]:
                out.append(merge(lhs_items[pe], rhs_items[pe], item_t, (*path, pe)))
                li += 1
                ri += 1
                next_shared = shared.pop(0) if shared else None
                continue
            if pe in rhs_items and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(lhs_order):
            pe = lhs_order[li]
            if pe not in rhs_items:
                out.append(lhs_items[pe])
                li += 1
                continue
        if ri < len(rhs_order):
            pe = rhs_order[ri]
            out.append(merge(lhs_items.get(pe, _MISSING), rhs_items[pe], item_t, (*path, pe)))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop(0) if shared else None
            continue
        li += 1  # a shared live item the config already placed
    return out


# ---------------------------------------------------------------- Compare


@dataclass
class Comparison:
    added: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)

    def is_same(self) -> bool:
        return not (self.added or self.modified or self.removed)

    def without(self, prefixes: list[Path]) -> Comparison:
        return Comparison(fieldpath.without_prefixes(self.added, prefixes),
                          fieldpath.without_prefixes(self.modified, prefixes),
                          fieldpath.without_prefixes(self.removed, prefixes))


def compare(old: Any, new: Any, t: Type) -> Comparison:
    """What changed from old to new: leaves added/modified/removed, plus added/removed granular maps, lists
    and list items. Struct fields and required fields are not marked themselves: kube-apiserver compares Go
    objects, where those exist as zero values whenever their parent does."""
    out = Comparison()
    _compare(old, new, t, (), out, unmarked=True)
    return out


def _compare(lhs: Any, rhs: Any, t: Type, path: Path, out: Comparison, unmarked: bool) -> None:
    if lhs is not _MISSING and rhs is not _MISSING and type(lhs) is type(rhs) and lhs == rhs:
        return  # equal subtrees (compared in C) have no differences to walk for
    value = rhs if rhs is not _MISSING else lhs
    lhs_v = None if lhs is _MISSING else lhs
    rhs_v = None if rhs is _MISSING else rhs
    empty = _empty(lhs_v) and _empty(rhs_v)
    if _is_leaf(t, value) or (t.shape == "list" and not isinstance(value, list)) or empty or \
            (type(lhs_v) is not type(rhs_v) and lhs_v is not None and rhs_v is not None):
        if lhs is _MISSING:
            out.added.add(path)
        elif rhs is _MISSING:
            out.removed.add(path)
        elif lhs != rhs or type(lhs) is not type(rhs):
            out.modified.add(path)
        return
    if not unmarked:
        if lhs is _MISSING:
            out.added.add(path)
        elif rhs is _MISSING:
            out.removed.add(path)
    if isinstance(value, list):
        item_t = t.item()
        lhs_items = _index(t, lhs_v or [], path, allow_duplicates=True)
        rhs_items = _index(t, rhs_v or [], path, allow_duplicates=True)
        for pe, item in lhs_items.items():
            _compare(item, rhs_items.get(pe, _MISSING), item_t, (*path, pe), out, unmarked=False)
        for pe, item in rhs_items.items():
            if pe not in lhs_items:
                _compare(_MISSING, item, item_t, (*path, pe), out, unmarked=False)
        return
    lmap = lhs_v if isinstance(lhs_v, dict) else {}
    rmap = rhs_v if isinstance(rhs_v, dict) else {}
    for key in {**lmap, **rmap}:
        child_t, declared = t.child(key)
        unmarked_field = declared and (child_t.shape == "struct" or key in t.required)
        _compare(lmap.get(key, _MISSING), rmap.get(key, _MISSING), child_t, (*path, fieldpath.field(key)), out,
                 unmarked_field)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (dict, list)) and not value)


# ---------------------------------------------------------------- RemoveItems


def remove_items(value: Any, paths: FieldSet, t: Type) -> Any:
    """A copy of value without what the member paths name (a removed map key or list item takes its subtree)."""
    if not paths:
        return value
    trie: dict[Element | None, Any] = {}
    leaf: dict[Element | None, Any] = {}
    for path in paths:
        node = trie
        for pe in path[:-1]:
            node = node.setdefault(pe, {})
        node.setdefault(path[-1], {})[None] = leaf
    return _remove(value, trie, t)


def _remove(value: Any, trie: dict[Element | None, Any], t: Type) -> Any:
    if isinstance(value, dict) and not (t.shape == "list"):
        out = {}
        for key, val in value.items():
            sub = trie.get(fieldpath.field(key))
            if sub is None:
                out[key] = val
            elif None in sub:
                continue
            else:
                out[key] = _remove(val, sub, t.child(key)[0])
        return out
    if isinstance(value, list) and t.shape == "list" and not t.atomic:
        item_t = t.item()
        kept = []
        for i, item in enumerate(value):
            try:
                pe = item_element(t, item, i)
            except TypedError:
                kept.append(item)
                continue
            sub = trie.get(pe)
            if sub is None:
                kept.append(item)
            elif None not in sub:
                kept.append(_remove(item, sub, item_t))
        return kept
    return value


def named_fields(paths: FieldSet, t: Type) -> FieldSet:
    """EnsureNamedFieldsAreMembers: every declared struct field on the way to a member becomes a member too."""
    out = set(paths)
    for path in paths:
        cur = t
        for i, pe in enumerate(path[:-1]):
            if pe[0] == "f":
                cur, declared = cur.child(pe[1])
                if declared:
                    out.add(path[:i + 1])
            else:
                cur = cur.item() if cur.shape == "list" else UNTYPED
    return out
