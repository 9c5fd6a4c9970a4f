"""Patches as the API server applies them: JSON merge patch, JSON patch, strategic merge patch, server-side apply.

Semantics and error texts follow what kube-apiserver v1.32 runs: gopkg.in/evanphx/json-patch.v4 for JSON and
merge patches, k8s.io/apimachinery/pkg/util/strategicpatch (StrategicMergeMapPatch) for strategic merge,
driven by the x-kubernetes-patch-strategy / x-kubernetes-patch-merge-key of the shipped schemas.
Server-side apply here is a subset of structured-merge-diff: see `server_side_apply`.

All functions take and return plain JSON values and never modify their inputs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nanokube.api import openapi_schemas
from nanokube.api.errors import ApiError, bad_request, go_json_kind

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER = "$setElementOrder"

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
MAX_JSON_PATCH_OPERATIONS = 10000


# ---------------------------------------------------------------- Go-flavoured helpers


def _go_type(value: Any) -> str:
    """reflect.TypeOf(value) as Go prints it for values decoded into interface{}."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def go_format(value: Any) -> str:
    """fmt's %v for decoded JSON: map[a:1 b:[x y]] with sorted keys."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _go_float(value: float) -> str:
    if value == int(value) and abs(value) < 1e21:
        text = repr(int(value))
        return text if len(text) <= 21 else f"{value:g}"
    return repr(value)


def _kind(value: Any) -> type:
    """reflect.TypeOf for decoded JSON (dict subclasses count as maps)."""
    if isinstance(value, dict):
        return dict
    return type(value)


def _same(a: Any, b: Any) -> bool:
    """Go's == on interface{} scalars: equal type and value (so 1 != 1.0 and true != 1)."""
    return type(a) is type(b) and a == b


def _deep_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return _same(a, b)


def _invalid_request() -> ApiError:
    """What NewGenericServerResponse(422, ...) gives: the server's own message is dropped."""
    return ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {})


def _internal(message: str) -> ApiError:
    """A plain Go error reaching the handler: 500 with an empty reason (StatusReasonUnknown)."""
    return ApiError(500, "", message)


# ---------------------------------------------------------------- RFC 7386 JSON merge patch


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 as json-patch.v4 MergePatch does it: null deletes a key, objects merge, all else replaces."""
    if patch is None:
        raise bad_request("Invalid JSON Patch")
    if not isinstance(patch, dict):
        return _prune_nulls(copy.deepcopy(patch))
    if not isinstance(target, dict):
        return _prune_nulls(copy.deepcopy(patch))
    return _merge_docs(copy.deepcopy(target), patch)


def _merge_docs(doc: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
            continue
        current = doc.get(key)
        if current is None:
            doc[key] = _prune_nulls(copy.deepcopy(value))
        elif isinstance(current, dict) and isinstance(value, dict):
            doc[key] = _merge_docs(current, value)
        elif isinstance(current, dict):
            doc[key] = copy.deepcopy(value)
        else:
            doc[key] = _prune_nulls(copy.deepcopy(value))
    return doc


def _prune_nulls(value: Any) -> Any:
    """json-patch.v4 drops null members of objects (recursively); null array elements stay."""
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) if v is not None else None for v in value]
    return value


# ---------------------------------------------------------------- RFC 6902 JSON patch


class _PatchError(Exception):
    pass


def json_patch(target: Any, ops: list[Any]) -> Any:
    """Apply RFC 6902 operations as json-patch.v4 does (negative indices allowed, `replace` on a missing object
    key adds it). A failing operation is a 422 whose message Kubernetes replaces with a generic one; the
    json-patch text is kept as the ApiError's details['causes'][0]['message'] for logs."""
    doc: Any = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict):
            raise bad_request(f"json: cannot unmarshal {go_json_kind(op)} into Go value of type jsonpatch.Operation")
        try:
            doc = _apply_op(doc, op)
        except _PatchError as exc:
            err = _invalid_request()
            err.details = {"causes": [{"message": str(exc)}]}
            raise err from None
    return doc


def _op_field(op: dict[str, Any], name: str) -> str:
    value = op.get(name)
    if value is None:
        raise KeyError(name)
    if not isinstance(value, str):
        raise _PatchError(f"json: cannot unmarshal {go_json_kind(value)} into Go value of type string")
    return value


def _decode_token(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _find_container(doc: Any, path: str) -> tuple[Any, str] | None:
    """findObject: the parent container of the path's last token, or None when any step is missing."""
    parts = path.split("/")
    if len(parts) < 2:
        return None
    node = doc
    for raw in parts[1:-1]:
        part = _decode_token(raw)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list):
            try:
                node = node[_array_index(node, part, for_get=True)]
            except _PatchError:
                return None
        else:
            return None
        if not isinstance(node, (dict, list)):
            return None
    return node, _decode_token(parts[-1])


def _array_index(array: list[Any], key: str, for_get: bool = False, for_add: bool = False) -> int:
    try:
        idx = int(key, 10)
    except ValueError:
        if for_add:
            raise _PatchError(f"value was not a proper array index: '{key}': strconv.Atoi: parsing {json.dumps(key)}: "
                              "invalid syntax") from None
        raise _PatchError(f'strconv.Atoi: parsing {json.dumps(key)}: invalid syntax') from None
    size = len(array) + 1 if for_add else len(array)
    if idx >= size:
        raise _PatchError(f"Unable to access invalid index: {idx}: invalid index referenced")
    if idx < 0:
        if idx < -size:
            raise _PatchError(f"Unable to access invalid index: {idx}: invalid index referenced")
        idx += size
    return idx


def _get(container: Any, key: str) -> tuple[bool, Any]:
    if isinstance(container, dict):
        return key in container, container.get(key)
    return True, container[_array_index(container, key, for_get=True)]


def _add(container: Any, key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
    elif key == "-":
        container.append(value)
    else:
        container.insert(_array_index(container, key, for_add=True), value)


def _remove(container: Any, key: str) -> Any:
    if isinstance(container, dict):
        if key not in container:
            raise _PatchError(f"Unable to remove nonexistent key: {key}: missing value")
        return container.pop(key)
    return container.pop(_array_index(container, key))


def _apply_op(doc: Any, op: dict[str, Any]) -> Any:
    kind = op.get("op")
    if kind not in ("add", "remove", "replace", "move", "test", "copy"):
        raise _PatchError(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")
    try:
        path = _op_field(op, "path")
    except KeyError:
        raise _PatchError(f"{kind} operation failed to decode path: missing value") from None
    if kind == "add":
        found = _find_container(doc, path)
        if found is None:
            raise _PatchError(f'add operation does not apply: doc is missing path: "{path}": missing value')
        try:
            _add(found[0], found[1], copy.deepcopy(op.get("value")))
        except _PatchError as exc:
            raise _PatchError(f"error in add for path: '{path}': {exc}") from None
        return doc
    if kind == "remove":
        found = _find_container(doc, path)
        if found is None:
            raise _PatchError(f'remove operation does not apply: doc is missing path: "{path}": missing value')
        try:
            _remove(*found)
        except _PatchError as exc:
            raise _PatchError(f"error in remove for path: '{path}': {exc}") from None
        return doc
    if kind == "replace":
        if path == "":
            value = op.get("value")
            if not isinstance(value, (dict, list)):
                raise _PatchError("replace operation value must be object or array")
            return copy.deepcopy(value)
        found = _find_container(doc, path)
        if found is None:
            raise _PatchError(f"replace operation does not apply: doc is missing path: {path}: missing value")
        container, key = found
        if isinstance(container, list):
            try:
                idx = _array_index(container, key, for_get=True)
            except _PatchError:
                raise _PatchError(f"replace operation does not apply: doc is missing key: {path}: missing value") from None
            container[idx] = copy.deepcopy(op.get("value"))
        else:
            container[key] = copy.deepcopy(op.get("value"))
        return doc
    if kind == "test":
        return _test(doc, op, path)
    try:
        source = _op_field(op, "from")
    except KeyError:
        raise _PatchError(f"{kind} operation failed to decode from: operation, missing from field: missing value") from None
    found = _find_container(doc, source)
    if found is None:
        raise _PatchError(f"{kind} operation does not apply: doc is missing from path: {source}: missing value")
    try:
        _, value = _get(*found)
    except _PatchError as exc:
        where = f"path: '{found[1]}'" if kind == "move" else f"from: '{source}'"
        raise _PatchError(f"error in {kind} for {where}: {exc}") from None
    if kind == "move":
        try:
            _remove(*found)
        except _PatchError as exc:
            raise _PatchError(f"error in move for path: '{found[1]}': {exc}") from None
    else:
        value = copy.deepcopy(value)
    target = _find_container(doc, path)
    if target is None:
        raise _PatchError(f"{kind} operation does not apply: doc is missing destination path: {path}: missing value")
    try:
        _add(target[0], target[1], value)
    except _PatchError as exc:
        prefix = f"error in move for path: '{path}'" if kind == "move" else "error while adding value during copy"
        raise _PatchError(f"{prefix}: {exc}") from None
    return doc


def _test(doc: Any, op: dict[str, Any], path: str) -> Any:
    failed = _PatchError(f"testing value {path} failed: test failed")
    if path == "":
        if _deep_equal(doc, op.get("value")):
            return doc
        raise failed
    found = _find_container(doc, path)
    if found is None:
        raise _PatchError(f"test operation does not apply: is missing path: {path}: missing value")
    try:
        present, value = _get(*found)
    except _PatchError as exc:
        raise _PatchError(f"error in test for path: '{path}': {exc}") from None
    expected = op.get("value")
    if not present or value is None:
        if expected is None:
            return doc
        raise failed
    if "value" not in op or not _deep_equal(value, expected):
        raise failed
    return doc


# ---------------------------------------------------------------- strategic merge patch


class _Meta:
    """Schema position for a strategic merge: LookupPatchMeta over the shipped definitions.

    A None node means 'unknown to the schema': maps still merge, lists are replaced.
    """

    __slots__ = ("node",)

    def __init__(self, node: openapi_schemas.Schema | None) -> None:
        self.node = node

    def for_struct(self, key: str) -> tuple[_Meta, list[str], str]:
        sub = openapi_schemas.property_schema(self.node, key)
        if sub is None:
            sub = openapi_schemas.map_values_schema(self.node)
            return _Meta(sub), [], ""
        return _Meta(sub), _strategies(sub), sub.get("x-kubernetes-patch-merge-key", "")

    def for_slice(self, key: str) -> tuple[_Meta, list[str], str]:
        sub = openapi_schemas.property_schema(self.node, key)
        if sub is None:
            return _Meta(None), [], ""
        return _Meta(openapi_schemas.items_schema(sub)), _strategies(sub), sub.get("x-kubernetes-patch-merge-key", "")

    def name(self) -> str:
        node = openapi_schemas.resolve(self.node)
        t = openapi_schemas.schema_type(node)
        return t if t else "Struct"


def _strategies(node: openapi_schemas.Schema) -> list[str]:
    text = node.get("x-kubernetes-patch-strategy")
    return text.split(",") if isinstance(text, str) and text else []


def _split_strategy(strategies: list[str]) -> str:
    """extractRetainKeysPatchStrategy: the non-retainKeys strategy."""
    if len(strategies) == 0:
        return ""
    if len(strategies) == 1:
        return "" if strategies[0] == "retainKeys" else strategies[0]
    if len(strategies) == 2 and "retainKeys" in strategies:
        return strategies[0] if strategies[1] == "retainKeys" else strategies[1]
    raise _internal(f"unexpected patch strategy: [{' '.join(strategies)}]")


class _SmpError(Exception):
    """A strategic merge error and the HTTP status Kubernetes maps it to (interpretStrategicMergePatchError)."""

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.code = code


_BAD_PRIMITIVE_LIST = _SmpError("invalid patch format of primitive list", 400)
_BAD_RETAIN_KEYS = _SmpError("invalid patch format of retainKeys", 400)
_BAD_SET_ORDER = _SmpError("invalid patch format of setElementOrder list", 400)
_NO_LIST_OF_LISTS = "lists of lists are not supported"


def _bad_arg_type(expected: str, actual: Any) -> _SmpError:
    return _SmpError(f"expected a {expected}, but received a {_go_type(actual)}")


def _no_merge_key(item: dict[str, Any], key: str) -> _SmpError:
    return _SmpError(f"map: {go_format(item)} does not contain declared merge key: {key}")


def strategic_merge_patch(target: dict[str, Any], patch: dict[str, Any], group: str, version: str,
                          kind: str) -> dict[str, Any]:
    """StrategicMergeMapPatch for a built-in kind: merge lists by their patch merge key, replace otherwise.

    Supports `$patch: replace|delete|merge`, `$retainKeys`, `$deleteFromPrimitiveList/<f>`,
    `$setElementOrder/<f>` and merge-strategy primitive lists. Raises ApiError with Kubernetes' status.
    """
    if not isinstance(patch, dict):
        raise bad_request(f"json: cannot unmarshal {go_json_kind(patch)} into Go value of type map[string]interface {{}}")
    name = openapi_schemas.definition_name(group, version, kind)
    root = {"$ref": "#/$defs/" + name} if name else None
    try:
        return _merge_map(copy.deepcopy(target), copy.deepcopy(patch), _Meta(root))
    except _SmpError as exc:
        if exc.code == 400:
            raise bad_request(str(exc)) from None
        if exc.code == 422:
            raise _invalid_request() from None
        raise _internal(str(exc)) from None


def _merge_map(original: dict[str, Any] | None, patch: dict[str, Any], meta: _Meta) -> dict[str, Any]:
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "replace":
            del patch[DIRECTIVE]
            return patch
        if directive == "delete":
            return {}
        raise _SmpError(f"unknown patch type: {go_format(directive)} in map: {go_format(patch)}")
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_set_element_order(original, patch, meta)

    for key in list(patch):
        if key not in patch:
            continue
        value = patch[key]
        is_delete_list = False
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            key = _extract_key(key, DELETE_FROM_PRIMITIVE_LIST, _BAD_PRIMITIVE_LIST)
            is_delete_list = True
        if value is None:
            original.pop(key, None)
            continue
        if key not in original or _kind(original[key]) is not _kind(value):
            if not is_delete_list:
                _discard_nulls(value)
                kept, keep = _remove_directives(value)
                if keep:
                    original[key] = kept
                else:
                    original.pop(key, None)
            continue
        current = original[key]
        if isinstance(current, dict):
            sub, strategies, _ = meta.for_struct(key)
            strategy = _split_strategy(strategies)
            original[key] = value if strategy == "replace" else _merge_map(current, value, sub)
        elif isinstance(current, list):
            sub, strategies, merge_key = meta.for_slice(key)
            strategy = _split_strategy(strategies)
            if strategy == "merge" or is_delete_list:
                original[key] = _merge_slice(current, value, sub, merge_key, is_delete_list)
            else:
                original[key] = value
        else:
            kept, keep = _remove_directives(value)
            if keep:
                original[key] = kept
            else:
                original.pop(key, None)
    return original


def _extract_key(key: str, prefix: str, error: _SmpError) -> str:
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        raise error
    return rest


def _discard_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for k in [k for k, v in value.items() if v is None]:
            del value[k]
        for v in value.values():
            _discard_nulls(v)
    elif isinstance(value, list):
        for v in value:
            _discard_nulls(v)


def _remove_directives(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        out = {}
        for k, v in value.items():
            kept, keep = _remove_directives(v)
            if keep:
                out[k] = kept
        return out, True
    if isinstance(value, list):
        items = []
        for v in value:
            kept, keep = _remove_directives(v)
            if keep:
                items.append(kept)
        return items, True
    return value, True


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if RETAIN_KEYS not in patch:
        return
    retain = patch.pop(RETAIN_KEYS)
    if not isinstance(retain, list):
        raise _BAD_RETAIN_KEYS
    keep = {json.dumps(v) for v in retain}
    for key, value in patch.items():
        if value is None or key.startswith(DELETE_FROM_PRIMITIVE_LIST) or key.startswith(SET_ELEMENT_ORDER):
            continue
        if json.dumps(key) not in keep:
            raise _BAD_RETAIN_KEYS
    for key in list(original):
        if json.dumps(key) not in keep:
            del original[key]


def _merge_set_element_order(original: dict[str, Any], patch: dict[str, Any], meta: _Meta) -> None:
    """mergePatchIntoOriginal: process $setElementOrder/<field> together with the patch list of <field>."""
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise _bad_arg_type("[]interface {}", order)
        field = _extract_key(key, SET_ELEMENT_ORDER, _BAD_SET_ORDER)
        found_original = field in original
        found_patch = field in patch
        original_list: list[Any] = []
        patch_list: list[Any] = []
        if found_original:
            if not isinstance(original[field], list):
                raise _bad_arg_type("[]interface {}", original[field])
            original_list = original[field]
        if found_patch:
            if not isinstance(patch[field], list):
                raise _bad_arg_type("[]interface {}", patch[field])
            patch_list = patch[field]
        sub, strategies, merge_key = meta.for_slice(field)
        strategy = _split_strategy(strategies)
        _validate_with_order(patch_list, order, merge_key)
        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged = _remove_directives(patch_list)[0]
        elif found_original and found_patch:
            if strategy == "merge":
                merged = _merge_slice(original_list, patch_list, sub, merge_key, False)
            else:
                merged = patch_list
        else:
            continue
        if merge_key:
            patch_items, server_only = _partition_maps(merged, order, merge_key)
        else:
            patch_items, server_only = _partition_primitives(merged, order)
        is_map = _element_kind(original_list, patch_list) is dict
        original[field] = _normalize_element_order(patch_items, server_only, order, original_list, merge_key, is_map)
        patch.pop(field, None)


def _validate_with_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    if not order or not patch_list:
        return
    non_delete = _split_deletes(patch_list)[0] if merge_key else patch_list
    p = s = 0
    while p < len(non_delete) and s < len(order):
        item = non_delete[p]
        if isinstance(item, dict) and DIRECTIVE in item:
            p += 1
            continue
        if _merge_key_equal(item, order[s], merge_key):
            p += 1
        s += 1
    if p < len(non_delete) and s >= len(order):
        raise _SmpError(f"The order in patch list:\n{go_format(patch_list)}\n doesn't match {SET_ELEMENT_ORDER} "
                        f"list:\n{go_format(order)}\n")


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _same(left, right)
    if not isinstance(left, dict):
        raise _bad_arg_type("map[string]interface {}", left)
    if not isinstance(right, dict):
        raise _bad_arg_type("map[string]interface {}", right)
    if merge_key not in left:
        raise _no_merge_key(left, merge_key)
    if merge_key not in right:
        raise _no_merge_key(right, merge_key)
    return _same(left[merge_key], right[merge_key])


def _element_kind(*lists: list[Any]) -> type:
    """sliceElementType: all elements share one JSON type and none is a list."""
    previous: type | None = None
    for items in lists:
        for item in items:
            current = _kind(item)
            if previous is None:
                previous = current
                if current is list:
                    raise _SmpError(_NO_LIST_OF_LISTS, 422)
            elif current is not previous:
                raise _SmpError(f"list element types are not identical: {go_format(list(lists))}")
    if previous is None:
        raise _SmpError("no elements in any of the given slices")
    return previous


def _merge_slice(original: list[Any], patch: list[Any], meta: _Meta, merge_key: str,
                 is_delete_list: bool) -> list[Any]:
    if not original and not patch:
        return original
    element = _element_kind(original, patch)
    if element is not dict:
        if is_delete_list:
            return [v for v in original if not any(_same(v, d) for d in patch)]
        merged = _dedupe_scalars(original + patch)
    else:
        if not merge_key:
            raise _SmpError(f"cannot merge lists without merge key for {meta.name()}")
        original, patch = _merge_special_elements(original, patch, merge_key)
        merged = _merge_maps_by_key(original, patch, merge_key, meta)
    if merge_key:
        patch_items, server_only = _partition_maps(merged, patch, merge_key)
    else:
        patch_items, server_only = _partition_primitives(merged, patch)
    return _normalize_element_order(patch_items, server_only, patch, original, merge_key, element is dict)


def _dedupe_scalars(items: list[Any]) -> list[Any]:
    """deduplicateScalars, including its habit of moving the last element into a removed duplicate's place."""
    items = list(items)
    length = len(items) - 1
    i = 0
    while i < length:
        j = i + 1
        while j <= length:
            if _same(items[i], items[j]):
                items[j] = items[length]
                items = items[:length]
                length -= 1
                j -= 1
            j += 1
        i += 1
    return items


def _merge_special_elements(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    without: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            without.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            original = [o for o in original if not _key_matches(o, merge_key, item[merge_key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _SmpError("merging lists cannot yet be specified in the patch")
        else:
            raise _SmpError(f"unknown patch type: {go_format(directive)} in map: {go_format(item)}")
    if replace:
        return without, []
    return original, without


def _key_matches(item: Any, merge_key: str, value: Any) -> bool:
    if not isinstance(item, dict):
        raise _SmpError("value for key is not a map")
    return merge_key in item and _same(item[merge_key], value)


def _merge_maps_by_key(original: list[Any], patch: list[Any], merge_key: str, meta: _Meta) -> list[Any]:
    original = list(original)
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        value = item[merge_key]
        for idx, existing in enumerate(original):
            if _key_matches(existing, merge_key, value):
                original[idx] = _merge_map(existing, item, meta)
                break
        else:
            original.append(item)
    return original


def _partition_primitives(items: list[Any], by: list[Any]) -> tuple[list[Any], list[Any]]:
    inside = [v for v in items if any(_same(v, b) for b in by)]
    outside = [v for v in items if not any(_same(v, b) for b in by)]
    return inside, outside


def _partition_maps(items: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    inside: list[Any] = []
    outside: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        if any(_key_matches(b, merge_key, item[merge_key]) for b in by):
            inside.append(item)
        else:
            outside.append(item)
    return inside, outside


def _index_in(items: list[Any], value: Any, merge_key: str, is_map: bool) -> int:
    def key_of(item: Any) -> Any:
        if is_map:
            return item.get(merge_key) if isinstance(item, dict) else None
        return item

    wanted = key_of(value)
    for i, item in enumerate(items):
        if _same(key_of(item), wanted):
            return i
    return -1


def _split_deletes(items: list[Any]) -> tuple[list[Any], list[Any]]:
    keep: list[Any] = []
    delete: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        (delete if item.get(DIRECTIVE) == "delete" else keep).append(item)
    return keep, delete


def _normalize_slice_order(to_sort: list[Any], order: list[Any], merge_key: str, is_map: bool) -> list[Any]:
    deletes: list[Any] = []
    if is_map:
        for item in [*to_sort, *order]:
            if not isinstance(item, dict) or merge_key not in item:
                raise _no_merge_key(item if isinstance(item, dict) else {}, merge_key)
        to_sort, deletes = _split_deletes(to_sort)
    positions = [_index_in(order, item, merge_key, is_map) for item in to_sort]
    # Go's sort.SliceStable with a comparator that is only meaningful when both items are in `order`;
    # an insertion sort with the same comparator reproduces its result.
    result = list(zip(positions, to_sort, strict=True))
    for i in range(1, len(result)):
        j = i
        while j > 0 and _order_less(result[j], result[j - 1]):
            result[j], result[j - 1] = result[j - 1], result[j]
            j -= 1
    return [item for _, item in result] + deletes


def _order_less(a: tuple[int, Any], b: tuple[int, Any]) -> bool:
    if a[0] >= 0 and b[0] >= 0:
        return a[0] < b[0]
    return True


def _normalize_element_order(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
                             server_order: list[Any], merge_key: str, is_map: bool) -> list[Any]:
    patch_items = _normalize_slice_order(patch_items, patch_order, merge_key, is_map)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, is_map)
    return _merge_sorted(server_only, patch_items, server_order, merge_key, is_map)


def _merge_sorted(left: list[Any], right: list[Any], server_order: list[Any], merge_key: str,
                  is_map: bool) -> list[Any]:
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index_in(server_order, left[i], merge_key, is_map)
            ri = _index_in(server_order, right[j], merge_key, is_map)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


# ---------------------------------------------------------------- server-side apply (subset)


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
    merged: dict[str, Any] = _apply_merge(base, config, root)

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
            items = list(live)
            for item in config:
                k = _item_key(item, keys)
                if k in by_key:
                    items[by_key[k]] = _apply_merge(items[by_key[k]], item, item_node)
                else:
                    by_key[k] = len(items)
                    items.append(copy.deepcopy(item))
            return items
        if list_type == "set":
            items = list(live)
            for item in config:
                if not any(_deep_equal(item, existing) for existing in items):
                    items.append(item)
            return items
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
                        and all(_deep_equal(item.get(k), v) for k, v in keys.items())), None)
            if idx is None:
                return
            if last:
                node.pop(idx)
                return
            node = node[idx]
        elif kind == "v" and isinstance(node, list) and last:
            member = json.loads(value)
            node[:] = [item for item in node if not _deep_equal(item, member)]
            return
        else:
            return
