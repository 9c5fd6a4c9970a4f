"""What kube-apiserver does to a custom resource with its CRD's structural schema (apiextensions-apiserver
pkg/apiserver/schema/{pruning,defaulting} and kube-openapi's validator): prune unknown fields, drop nulls of
non-nullable fields, apply defaults, validate. A schema is the CRD's `openAPIV3Schema` dict as written.

Validation messages are kube-openapi's, turned into field errors the way apiextensions'
kubeOpenAPIResultToFieldErrors does (`spec.replicas: Invalid value: 20: spec.replicas in body should be less
than or equal to 10`).
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

import orjson

from nanokube.api.errors import FieldError, GoLiteral, go_quote, invalid, required, too_long

Schema = dict[str, Any]
ROOT_META = ("apiVersion", "kind", "metadata")
PRESERVE = "x-kubernetes-preserve-unknown-fields"
EMBEDDED = "x-kubernetes-embedded-resource"
INT_OR_STRING = "x-kubernetes-int-or-string"
# ObjectMeta's fields: anything else under metadata is dropped, as decoding into ObjectMeta drops it.
OBJECT_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields"})


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ---------------------------------------------------------------- pruning


def prune(obj: Any, schema: Schema) -> list[str]:
    """Remove fields the schema does not declare (and nulls of non-nullable fields) from a whole object, in
    place; return the removed unknown fields' paths (`spec.foo`) for fieldValidation warnings/errors."""
    removed: list[str] = []
    if not isinstance(obj, dict):
        return removed
    _prune_meta(obj, "", removed)
    props = schema.get("properties") or {}
    for key in list(obj):
        if key in ROOT_META:
            continue
        if key in props:
            _prune(obj, key, props[key], key, removed)
        elif not schema.get(PRESERVE):
            del obj[key]
            removed.append(key)
    return removed


def _prune_meta(obj: dict[str, Any], path: str, removed: list[str]) -> None:
    md = obj.get("metadata")
    if isinstance(md, dict):
        for key in list(md):
            if key not in OBJECT_META_FIELDS:
                del md[key]
                removed.append(_join(_join(path, "metadata"), key))


def _prune(parent: Any, key: Any, schema: Schema, path: str, removed: list[str]) -> None:
    value = parent[key]
    if value is None:
        if not schema.get("nullable") and isinstance(parent, dict):
            del parent[key]
        return
    if isinstance(value, dict):
        if schema.get(EMBEDDED):
            _prune_meta(value, path, removed)
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if isinstance(props, dict):
            for k in list(value):
                if k in props:
                    _prune(value, k, props[k], _join(path, k), removed)
                elif schema.get(EMBEDDED) and k in ROOT_META:
                    continue
                elif not schema.get(PRESERVE):
                    del value[k]
                    removed.append(_join(path, k))
        elif isinstance(extra, dict):
            for k in list(value):
                _prune(value, k, extra, _join(path, k), removed)
        elif not schema.get(PRESERVE) and extra is not True and schema.get("type") == "object":
            for k in list(value):
                if not (schema.get(EMBEDDED) and k in ROOT_META):
                    del value[k]
                    removed.append(_join(path, k))
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i in range(len(value)):
                _prune(value, i, items, f"{path}[{i}]", removed)


# ---------------------------------------------------------------- defaulting


def has_defaults(schema: Any) -> bool:
    return _has_defaults_cached(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))


@lru_cache(maxsize=64)
def _has_defaults_cached(encoded: bytes) -> bool:
    return b'"default":' in encoded


def apply_defaults(obj: Any, schema: Schema) -> None:
    """Set every missing field that has a default (deep-copied), top-down, never overwriting a value; an explicit
    null of a non-nullable field is replaced too (pruning removed it first)."""
    if isinstance(obj, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for key, sub in props.items():
                if not isinstance(sub, dict):
                    continue
                if "default" in sub and (key not in obj or (obj[key] is None and not sub.get("nullable"))):
                    obj[key] = copy.deepcopy(sub["default"])
                if key in obj:
                    apply_defaults(obj[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for value in obj.values():
                apply_defaults(value, extra)
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for value in obj:
                apply_defaults(value, items)


# ---------------------------------------------------------------- validation


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number(value: Any) -> str:
    """%v of a float64 the way Go prints it (10, 1.5)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _type_ok(schema: Schema, value: Any) -> bool:
    actual = json_type(value)
    if schema.get(INT_OR_STRING):
        return actual in ("integer", "string")
    wanted = schema.get("type")
    if not wanted:
        return True
    if wanted == "number":
        return actual in ("number", "integer")
    return bool(actual == wanted)


def validate(obj: Any, schema: Schema) -> list[FieldError]:
    """Field errors of a whole custom object (apiVersion, kind and metadata are checked elsewhere)."""
    errs: list[FieldError] = []
    if not isinstance(obj, dict):
        return errs
    rest = {k: v for k, v in obj.items() if k not in ROOT_META}
    shallow = {k: v for k, v in schema.items() if k != "required"}
    shallow["required"] = [r for r in schema.get("required") or [] if r not in ROOT_META]
    if isinstance(shallow.get("properties"), dict):
        shallow["properties"] = {k: v for k, v in shallow["properties"].items() if k not in ROOT_META}
    _validate(rest, shallow, "", errs)
    return sorted(errs, key=lambda e: e.field)  # Go walks properties in map order: any order is faithful


def _validate(value: Any, schema: Schema, path: str, errs: list[FieldError]) -> None:
    if len(errs) >= 100:
        return
    if value is None:
        if schema.get("nullable"):
            return
        if schema.get("type") or schema.get(INT_OR_STRING):
            errs.append(_type_error(schema, value, path))
        return
    if not _type_ok(schema, value):
        errs.append(_type_error(schema, value, path))
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = [v if isinstance(v, str) else orjson.dumps(v).decode() for v in schema["enum"]]
        errs.append(FieldError("FieldValueNotSupported", path, value,
                               "supported values: " + ", ".join(go_quote(v) for v in allowed)))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(value, schema, path, errs)
    elif isinstance(value, str):
        _validate_string(value, schema, path, errs)
    elif isinstance(value, list):
        _validate_array(value, schema, path, errs)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, errs)
    _validate_combinators(value, schema, path, errs)


def _type_error(schema: Schema, value: Any, path: str) -> FieldError:
    wanted = "integer,string" if schema.get(INT_OR_STRING) else schema.get("type")
    actual = json_type(value)
    return FieldError("FieldValueTypeInvalid", path, actual,
                      f"{path} in body must be of type {wanted}: {go_quote(actual)}")


def _validate_number(value: float, schema: Schema, path: str, errs: list[FieldError]) -> None:
    where = f"{path} in body"
    maximum, minimum = schema.get("maximum"), schema.get("minimum")
    if maximum is not None:
        if schema.get("exclusiveMaximum") and value >= maximum:
            errs.append(invalid(path, value, f"{where} should be less than {_number(maximum)}"))
        elif value > maximum:
            errs.append(invalid(path, value, f"{where} should be less than or equal to {_number(maximum)}"))
    if minimum is not None:
        if schema.get("exclusiveMinimum") and value <= minimum:
            errs.append(invalid(path, value, f"{where} should be greater than {_number(minimum)}"))
        elif value < minimum:
            errs.append(invalid(path, value, f"{where} should be greater than or equal to {_number(minimum)}"))
    step = schema.get("multipleOf")
    if step and (value / step) != int(value / step):
        errs.append(invalid(path, value, f"{where} should be a multiple of {_number(step)}"))


def _validate_string(value: str, schema: Schema, path: str, errs: list[FieldError]) -> None:
    if schema.get(INT_OR_STRING):
        return
    max_length, min_length = schema.get("maxLength"), schema.get("minLength")
    if max_length is not None and len(value) > max_length:
        errs.append(too_long(path, value, max_length))
    if min_length is not None and len(value) < min_length:
        errs.append(invalid(path, value, f"{path} in body should be at least {min_length} chars long"))
    pattern = schema.get("pattern")
    if pattern and not _compiled(pattern).search(value):
        errs.append(invalid(path, value, f"{path} in body should match '{pattern}'"))


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error:
        return re.compile(re.escape(pattern))


def _validate_array(value: list[Any], schema: Schema, path: str, errs: list[FieldError]) -> None:
    max_items, min_items = schema.get("maxItems"), schema.get("minItems")
    if max_items is not None and len(value) > max_items:
        errs.append(FieldError("FieldValueTooMany", path, len(value), f"must have at most {max_items} items"))
    if min_items is not None and len(value) < min_items:
        errs.append(invalid(path, len(value), f"{path} in body should have at least {min_items} items"))
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, f"{path}[{i}]", errs)
    if schema.get("x-kubernetes-list-type") == "set":
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                errs.append(FieldError("FieldValueDuplicate", f"{path}[{i}]", item))
            seen.append(item)


def _validate_object(value: dict[str, Any], schema: Schema, path: str, errs: list[FieldError]) -> None:
    for key in schema.get("required") or []:
        if key not in value:
            errs.append(required(_join(path, key)))
    max_props, min_props = schema.get("maxProperties"), schema.get("minProperties")
    if max_props is not None and len(value) > max_props:
        errs.append(FieldError("FieldValueTooMany", path, len(value), f"must have at most {max_props} items"))
    if min_props is not None and len(value) < min_props:
        errs.append(invalid(path, len(value), f"{path} in body should have at least {min_props} properties"))
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, sub in value.items():
        if key in props:
            _validate(sub, props[key], _join(path, key), errs)
        elif isinstance(extra, dict):
            _validate(sub, extra, _join(path, key), errs)


def _validate_combinators(value: Any, schema: Schema, path: str, errs: list[FieldError]) -> None:
    where = f"{path} in body"
    for sub in schema.get("allOf") or []:
        _validate_constraints(value, sub, path, errs)
    any_of = schema.get("anyOf")
    if any_of and not any(not _constraint_errors(value, sub, path) for sub in any_of):
        errs.append(invalid(path, GoLiteral('""'), f"{where} must validate at least one schema (anyOf)"))
    one_of = schema.get("oneOf")
    if one_of and sum(1 for sub in one_of if not _constraint_errors(value, sub, path)) != 1:
        errs.append(invalid(path, GoLiteral('""'), f"{where} must validate one and only one schema (oneOf)"))
    not_schema = schema.get("not")
    if isinstance(not_schema, dict) and not _constraint_errors(value, not_schema, path):
        errs.append(invalid(path, GoLiteral('""'), f"{where} must not validate the schema (not)"))


def _constraint_errors(value: Any, schema: Schema, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    _validate_constraints(value, schema, path, out)
    return out


def _validate_constraints(value: Any, schema: Schema, path: str, errs: list[FieldError]) -> None:
    """A combinator branch restates constraints without a type of its own: validate with the value's type."""
    if not isinstance(schema, dict):
        return
    branch = dict(schema)
    if "type" in branch and not _type_ok(branch, value):
        errs.append(_type_error(branch, value, path))
        return
    branch.pop("type", None)
    _validate(value, branch, path, errs)

