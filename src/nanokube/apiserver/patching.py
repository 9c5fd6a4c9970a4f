"""PATCH dispatch: picks the patch algorithm from the request's content type."""

from __future__ import annotations

from typing import Any

import orjson

from nanokube.api import errors, patch
from nanokube.api.served_resources import Resource

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def _load(raw: bytes, yaml_ok: bool = False) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        if yaml_ok:
            import yaml  # only YAML patches pay for it

            from nanokube.apiserver import body

            try:
                return body.load_yaml(raw)
            except (yaml.YAMLError, body.BodyError) as exc:
                raise errors.bad_request(f"error decoding YAML: {exc}") from exc
        raise errors.bad_request("error decoding patch: invalid JSON") from None


def apply_plain_patch(target: dict[str, Any], raw: bytes, content_type: str) -> dict[str, Any]:
    if content_type == JSON_PATCH:
        return patch.json_patch(target, _load(raw))
    if content_type in (MERGE, STRATEGIC):
        return patch.json_merge_patch(target, _load(raw))
    raise errors.unsupported_media_type(content_type)


def apply_patch(res: Resource, live: dict[str, Any], raw: bytes, content_type: str, *, manager: str,
                force: bool) -> dict[str, Any]:
    if content_type == MERGE:
        return patch.json_merge_patch(live, _load(raw))
    if content_type == JSON_PATCH:
        return patch.json_patch(live, _load(raw))
    if content_type == STRATEGIC:
        return patch.strategic_merge_patch(live, _load(raw), res.group, res.version, res.kind)
    if content_type == APPLY:
        applied = _load(raw, yaml_ok=True)
        if not isinstance(applied, dict):
            raise errors.bad_request("apply patch must be an object")
        return patch.server_side_apply(live, applied, manager or "unknown", force)
    raise errors.unsupported_media_type(content_type)


def apply_create(applied: dict[str, Any], manager: str) -> dict[str, Any]:
    """Server-side apply of an object that does not exist yet: the applied config is the object."""
    return patch.server_side_apply({}, applied, manager or "unknown", False)
