"""PATCH dispatch: picks the patch algorithm from the request's content type."""

from __future__ import annotations

from typing import Any

import orjson

from nanokube.api import errors
from nanokube.api.patch import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from nanokube.api.patch.json_merge import json_merge_patch
from nanokube.api.patch.json_patch import json_patch
from nanokube.api.patch.strategic_merge import strategic_merge_patch
from nanokube.api.served_resources import Resource
from nanokube.apiserver import field_manager


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
        return json_patch(target, _load(raw))
    if content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        return json_merge_patch(target, _load(raw))
    raise errors.unsupported_media_type(content_type)


def apply_patch(res: Resource, live: dict[str, Any], raw: bytes, content_type: str, *, manager: str | None,
                force: bool, subresource: str | None = None, has_status: bool = False) -> dict[str, Any]:
    if content_type == MERGE_PATCH:
        return json_merge_patch(live, _load(raw))
    if content_type == JSON_PATCH:
        return json_patch(live, _load(raw))
    if content_type == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(live, _load(raw), res.group, res.version, res.kind)
    if content_type == APPLY_PATCH:
        return field_manager.apply(res, live, _load(raw, yaml_ok=True), manager, force, subresource, has_status)
    raise errors.unsupported_media_type(content_type)
