"""RFC 7386 JSON merge patch as gopkg.in/evanphx/json-patch.v4 MergePatch applies it."""

from __future__ import annotations

import copy
from typing import Any

from nanokube.api.errors import bad_request


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
