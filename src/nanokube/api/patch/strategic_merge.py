"""Strategic merge patch: k8s.io/apimachinery/pkg/util/strategicpatch (StrategicMergeMapPatch), driven by the
x-kubernetes-patch-strategy / x-kubernetes-patch-merge-key of the shipped schemas."""

from __future__ import annotations

import copy
import json
from typing import Any

from nanokube.api import openapi_schemas
from nanokube.api.errors import bad_request, go_json_kind
from nanokube.api.patch.gojson import go_format, go_kind, go_same, go_type, internal_error, invalid_request

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER = "$setElementOrder"


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
    raise internal_error(f"unexpected patch strategy: [{' '.join(strategies)}]")


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
    return _SmpError(f"expected a {expected}, but received a {go_type(actual)}")


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
            raise invalid_request() from None
        raise internal_error(str(exc)) from None


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
        if key not in original or go_kind(original[key]) is not go_kind(value):
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
        return go_same(left, right)
    if not isinstance(left, dict):
        raise _bad_arg_type("map[string]interface {}", left)
    if not isinstance(right, dict):
        raise _bad_arg_type("map[string]interface {}", right)
    if merge_key not in left:
        raise _no_merge_key(left, merge_key)
    if merge_key not in right:
        raise _no_merge_key(right, merge_key)
    return go_same(left[merge_key], right[merge_key])


def _element_kind(*lists: list[Any]) -> type:
    """sliceElementType: all elements share one JSON type and none is a list."""
    previous: type | None = None
    for items in lists:
        for item in items:
            current = go_kind(item)
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
            return [v for v in original if not any(go_same(v, d) for d in patch)]
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
            if go_same(items[i], items[j]):
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
    return merge_key in item and go_same(item[merge_key], value)


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
    inside = [v for v in items if any(go_same(v, b) for b in by)]
    outside = [v for v in items if not any(go_same(v, b) for b in by)]
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
        if go_same(key_of(item), wanted):
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
