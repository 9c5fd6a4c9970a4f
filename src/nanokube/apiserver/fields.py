"""fieldValidation: unknown and mistyped fields reported as Kubernetes reports them, then dropped.

Kubernetes decodes a body into its typed struct, so fields the kind does not declare never reach storage
(under Warn and Ignore); nanokube keeps plain dicts, so it removes them here.
"""

from __future__ import annotations

import re
from typing import Any

from nanokube.api import openapi_schemas
from nanokube.api.served_resources import Resource

OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def check_fields(res: Resource, obj: dict[str, Any], *, directive: str | None, method: str) -> list[str]:
    """Returns warnings (Warn); raises 400 for type errors and, under Strict, unknown fields. Unknown fields
    are removed from obj."""
    mode = openapi_schemas.normalize_directive(directive, OPTIONS_KIND.get(method, "CreateOptions"))
    schema = getattr(res, "schema", None)
    if schema is not None:  # a custom resource: its CRD's structural schema prunes
        return _prune_custom(res, obj, schema, mode)
    warnings = openapi_schemas.check_body(res.group, res.version, res.kind, obj, mode)
    if warnings or mode == openapi_schemas.IGNORE:  # Warn with no warnings has nothing to drop
        prune(obj, openapi_schemas.find_unknown_fields(res.group, res.version, res.kind, obj))
    return warnings


def prune(obj: dict[str, Any], paths: list[str]) -> None:
    """Delete each field path (`spec.ports[0].bogus`) from obj."""
    for path in paths:
        tokens: list[str | int] = [int(i) if i else key for key, i in _TOKEN.findall(path)]
        node: Any = obj
        for token in tokens[:-1]:
            try:
                node = node[token]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if isinstance(node, dict):
            node.pop(tokens[-1], None)


def _prune_custom(res: Resource, obj: dict[str, Any], schema: dict[str, Any], mode: str) -> list[str]:
    """Pruning as the custom resource codec does it: unknown fields go (Warn: one warning each; Strict: 400)."""
    from nanokube.api import structural

    removed = structural.prune(obj, schema)
    if not removed or mode == openapi_schemas.IGNORE:
        return []
    problems = [f"unknown field {openapi_schemas._go_quote(path)}" for path in removed]
    if mode == openapi_schemas.STRICT:
        raise openapi_schemas.decode_error(res.kind, res.version,
                                           openapi_schemas.strict_decoding_message(problems))
    return problems
