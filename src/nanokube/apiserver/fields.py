"""fieldValidation: unknown and mistyped fields reported as Kubernetes reports them."""

from __future__ import annotations

from typing import Any

from nanokube.api import schema
from nanokube.api.scheme import Resource

OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}


def check_fields(res: Resource, obj: dict[str, Any], *, directive: str | None, method: str) -> list[str]:
    """Returns warnings (Warn); raises 400 for type errors and, under Strict, unknown fields."""
    mode = schema.normalize_directive(directive, OPTIONS_KIND.get(method, "CreateOptions"))
    return schema.check_body(res.group, res.version, res.kind, obj, mode)
