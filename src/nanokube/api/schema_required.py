"""Required fields of a built-in kind, read from its official schema (the `required` lists of the v1.32
OpenAPI definitions): a missing or empty one is `<path>: Required value`, as the kind's Go validation says it.

Used for the kinds nanokube serves without a hand-written validator; the schema's types and unknown fields
are checked at decode time (openapi_schemas.check_body).
"""

from __future__ import annotations

from typing import Any

from nanokube.api import openapi_schemas
from nanokube.api.errors import FieldError, required

# Fields the schema marks required that the v1.32 validators accept empty.
_NOT_ENFORCED: dict[str, frozenset[str]] = {
    "io.k8s.api.apps.v1.StatefulSetSpec": frozenset({"serviceName"}),
    # builtin_strategies says these with their own detail:
    "io.k8s.api.rbac.v1.PolicyRule": frozenset({"verbs"}),
    "io.k8s.api.networking.v1.HTTPIngressPath": frozenset({"pathType", "backend"}),
}


def missing_required(group: str, version: str, kind: str, obj: Any) -> list[FieldError]:
    name = openapi_schemas.definition_name(group, version, kind)
    if name is None or not isinstance(obj, dict):
        return []
    errs: list[FieldError] = []
    _walk(name, openapi_schemas.definitions()[name], obj, "", errs)
    return errs


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _walk(def_name: str | None, node: Any, value: Any, path: str, errs: list[FieldError]) -> None:
    if not isinstance(node, dict) or value is None or len(errs) > 50:
        return
    if "allOf" in node and len(node["allOf"]) == 1:
        node = node["allOf"][0]
    ref = openapi_schemas.ref_name(node)
    if ref is not None:
        def_name, node = ref, openapi_schemas.definitions().get(ref)
        if node is None:
            return
    if isinstance(value, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            skip = _NOT_ENFORCED.get(def_name or "", frozenset())
            for key in node.get("required") or ():
                if key in skip:
                    continue
                present = value.get(key)
                if (present is None or present == "" or present == []) and _checked(props.get(key)):
                    errs.append(required(_join(path, key)))
            for key, sub in value.items():
                if key in props and (path or key != "status"):  # status is the controllers' to fill
                    _walk(None, props[key], sub, _join(path, key), errs)
        elif isinstance(node.get("additionalProperties"), dict):
            for key, sub in value.items():
                _walk(None, node["additionalProperties"], sub, _join(path, key), errs)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, sub in enumerate(value):
            _walk(None, node["items"], sub, f"{path}[{i}]", errs)


def _checked(node: Any) -> bool:
    """Go validators report missing strings, structs and lists; a missing number is a zero they range-check."""
    return openapi_schemas.schema_type(openapi_schemas.resolve(node)) in ("string", "object", "array")
