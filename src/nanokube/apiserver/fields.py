"""fieldValidation: unknown fields reported as Kubernetes reports them (Strict -> 400, Warn -> warnings)."""

from __future__ import annotations

from typing import Any

from nanokube.api import errors, schema
from nanokube.api.scheme import Resource


def check_fields(res: Resource, obj: dict[str, Any], *, strict: bool) -> list[str]:
    """Returns warnings (Warn mode); raises 400 BadRequest in Strict mode."""
    unknown = schema.find_unknown_fields(res.group, res.version, res.kind, obj)
    if not unknown:
        return []
    if strict:
        raise errors.bad_request(schema.strict_decoding_message(res.kind, res.version, unknown))
    return [f'unknown field "{path}"' for path in unknown]
