"""RFC 6902 JSON patch as gopkg.in/evanphx/json-patch.v4 applies it (the Kubernetes flavour)."""

from __future__ import annotations

import copy
import json
from typing import Any

from nanokube.api.errors import bad_request, go_json_kind
from nanokube.api.patch.gojson import deep_equal, invalid_request


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
            err = invalid_request()
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
        if deep_equal(doc, op.get("value")):
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
    if "value" not in op or not deep_equal(value, expected):
        raise failed
    return doc
