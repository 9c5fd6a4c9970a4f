"""Encode a Swagger 2.0 JSON document as gnostic's protobuf `openapi.v2.Document` (what /openapi/v2 serves to
`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, i.e. kubectl's client-side validation and
`kubectl explain --output=plaintext-openapiv2`).

Hand-written wire format, no protobuf dependency. Field numbers are those of gnostic's openapiv2/OpenAPIv2.proto.
The mapping follows gnostic's ParseDocument: keys starting with "x-" become NamedAny vendor extensions whose value
is the YAML text of the JSON value; maps become ordered (name, value) lists in document order; `type` and `items`
are lists; a present but empty message (e.g. `properties: {}`) is still written, because kube-openapi's reader
tells a Kind (properties set) from a Map by presence.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson
import yaml

_VARINT, _I64, _LEN = 0, 1, 2

# ---------------------------------------------------------------- wire format


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _msg(field: int, payload: bytes) -> bytes:
    """A length-delimited field, written even when empty (presence matters for messages)."""
    return _tag(field, _LEN) + _varint(len(payload)) + payload


def _str(field: int, value: Any) -> bytes:
    if not value:
        return b""
    return _msg(field, str(value).encode())


def _strs(field: int, values: Any) -> bytes:
    if isinstance(values, str):
        values = [values]
    return b"".join(_msg(field, str(v).encode()) for v in values or ())


def _bool(field: int, value: Any) -> bytes:
    return _tag(field, _VARINT) + b"\x01" if value else b""


def _int(field: int, value: Any) -> bytes:
    if value is None or int(value) == 0:
        return b""
    return _tag(field, _VARINT) + _varint(int(value))


def _double(field: int, value: Any) -> bytes:
    if value is None or float(value) == 0.0:
        return b""
    return _tag(field, _I64) + struct.pack("<d", float(value))


# ---------------------------------------------------------------- Any / vendor extensions

_yaml_cache: dict[bytes, str] = {}
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _yaml(value: Any) -> str:
    key = orjson.dumps(value)
    text = _yaml_cache.get(key)
    if text is None:
        text = yaml.dump(value, Dumper=_Dumper, default_flow_style=False, sort_keys=False)
        if text.endswith("\n...\n"):
            text = text[:-4]
        _yaml_cache[key] = text
    return text


def _any(value: Any) -> bytes:
    """gnostic Any: google.protobuf.Any value = 1 (unused), string yaml = 2."""
    return _str(2, _yaml(value))


def _any_field(field: int, node: dict[str, Any], key: str) -> bytes:
    return _msg(field, _any(node[key])) if key in node else b""


def _extensions(field: int, node: dict[str, Any]) -> bytes:
    """repeated NamedAny {string name = 1; Any value = 2}."""
    return b"".join(_msg(field, _str(1, k) + _msg(2, _any(v))) for k, v in node.items() if k.startswith("x-"))


def _named(field: int, mapping: dict[str, Any], encode: Any) -> bytes:
    """Ordered (name = 1, value = 2) pairs, gnostic's rendering of a JSON map."""
    return b"".join(_msg(field, _str(1, name) + _msg(2, encode(value))) for name, value in mapping.items())


# ---------------------------------------------------------------- Schema


def schema(s: dict[str, Any]) -> bytes:
    """openapi.v2.Schema."""
    out = [
        _str(1, s.get("$ref")),
        _str(2, s.get("format")),
        _str(3, s.get("title")),
        _str(4, s.get("description")),
        _any_field(5, s, "default"),
        _double(6, s.get("multipleOf")),
        _double(7, s.get("maximum")),
        _bool(8, s.get("exclusiveMaximum")),
        _double(9, s.get("minimum")),
        _bool(10, s.get("exclusiveMinimum")),
        _int(11, s.get("maxLength")),
        _int(12, s.get("minLength")),
        _str(13, s.get("pattern")),
        _int(14, s.get("maxItems")),
        _int(15, s.get("minItems")),
        _bool(16, s.get("uniqueItems")),
        _int(17, s.get("maxProperties")),
        _int(18, s.get("minProperties")),
        _strs(19, s.get("required")),
        b"".join(_msg(20, _any(v)) for v in s.get("enum") or ()),
    ]
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        out.append(_msg(21, _msg(1, schema(extra))))
    elif isinstance(extra, bool):
        out.append(_msg(21, _tag(2, _VARINT) + (b"\x01" if extra else b"\x00")))
    if "type" in s:
        out.append(_msg(22, _strs(1, s["type"])))
    items = s.get("items")
    if items is not None:
        out.append(_msg(23, b"".join(_msg(1, schema(i)) for i in (items if isinstance(items, list) else [items]))))
    out.extend(_msg(24, schema(sub)) for sub in s.get("allOf") or ())
    if "properties" in s:
        out.append(_msg(25, _named(1, s["properties"], schema)))
    out.append(_str(26, s.get("discriminator")))
    out.append(_bool(27, s.get("readOnly")))
    out.append(_any_field(30, s, "example"))
    out.append(_extensions(31, s))
    return b"".join(out)


# ---------------------------------------------------------------- paths


def _parameter_item(p: dict[str, Any]) -> bytes:
    """ParametersItem {Parameter parameter = 1; JsonReference json_reference = 2}."""
    if "$ref" in p:
        return _msg(2, _str(1, p["$ref"]) + _str(2, p.get("description")))
    if p.get("in") == "body":
        body = (_str(1, p.get("description")) + _str(2, p.get("name")) + _str(3, p.get("in"))
                + _bool(4, p.get("required")) + _msg(5, schema(p.get("schema") or {})) + _extensions(6, p))
        return _msg(1, _msg(1, body))
    # NonBodyParameter oneof: header = 1, formData = 2, query = 3, path = 4. Query and formData share one layout
    # (with allowEmptyValue = 5), header and path the other (no allowEmptyValue): everything after `name` shifts.
    where = p.get("in")
    choice = {"header": 1, "formData": 2, "query": 3, "path": 4}.get(str(where), 3)
    has_allow_empty = choice in (2, 3)
    head = _bool(1, p.get("required")) + _str(2, where) + _str(3, p.get("description")) + _str(4, p.get("name"))
    if has_allow_empty:
        head += _bool(5, p.get("allowEmptyValue"))
    n = 6 if has_allow_empty else 5
    rest = [
        _str(n, p.get("type")),
        _str(n + 1, p.get("format")),
        _msg(n + 2, _primitives_items(p["items"])) if isinstance(p.get("items"), dict) else b"",
        _str(n + 3, p.get("collectionFormat")),
        _any_field(n + 4, p, "default"),
        _double(n + 5, p.get("maximum")),
        _bool(n + 6, p.get("exclusiveMaximum")),
        _double(n + 7, p.get("minimum")),
        _bool(n + 8, p.get("exclusiveMinimum")),
        _int(n + 9, p.get("maxLength")),
        _int(n + 10, p.get("minLength")),
        _str(n + 11, p.get("pattern")),
        _int(n + 12, p.get("maxItems")),
        _int(n + 13, p.get("minItems")),
        _bool(n + 14, p.get("uniqueItems")),
        b"".join(_msg(n + 15, _any(v)) for v in p.get("enum") or ()),
        _double(n + 16, p.get("multipleOf")),
        _extensions(n + 17, p),
    ]
    return _msg(1, _msg(2, _msg(choice, head + b"".join(rest))))


def _primitives_items(p: dict[str, Any]) -> bytes:
    """PrimitivesItems (type = 1, format = 2, items = 3, collectionFormat = 4, default = 5, ...)."""
    return b"".join([
        _str(1, p.get("type")),
        _str(2, p.get("format")),
        _msg(3, _primitives_items(p["items"])) if isinstance(p.get("items"), dict) else b"",
        _str(4, p.get("collectionFormat")),
        _any_field(5, p, "default"),
        b"".join(_msg(16, _any(v)) for v in p.get("enum") or ()),
        _extensions(18, p),
    ])


def _response_value(r: dict[str, Any]) -> bytes:
    """ResponseValue {Response response = 1; JsonReference json_reference = 2}."""
    if "$ref" in r:
        return _msg(2, _str(1, r["$ref"]))
    body = _str(1, r.get("description"))
    if isinstance(r.get("schema"), dict):
        body += _msg(2, _msg(1, schema(r["schema"])))  # SchemaItem {Schema schema = 1}
    return _msg(1, body + _extensions(5, r))


def _operation(op: dict[str, Any]) -> bytes:
    responses = {k: v for k, v in (op.get("responses") or {}).items() if not k.startswith("x-")}
    return b"".join([
        _strs(1, op.get("tags")),
        _str(2, op.get("summary")),
        _str(3, op.get("description")),
        _str(5, op.get("operationId")),
        _strs(6, op.get("produces")),
        _strs(7, op.get("consumes")),
        b"".join(_msg(8, _parameter_item(p)) for p in op.get("parameters") or ()),
        _msg(9, _named(1, responses, _response_value) + _extensions(2, op.get("responses") or {})),
        _strs(10, op.get("schemes")),
        _bool(11, op.get("deprecated")),
        b"".join(_msg(12, _security_requirement(r)) for r in op.get("security") or ()),
        _extensions(13, op),
    ])


_METHOD_FIELDS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _path_item(item: dict[str, Any]) -> bytes:
    out = [_str(1, item.get("$ref"))]
    out.extend(_msg(n, _operation(item[m])) for m, n in _METHOD_FIELDS.items() if m in item)
    out.extend(_msg(9, _parameter_item(p)) for p in item.get("parameters") or ())
    out.append(_extensions(10, item))
    return b"".join(out)


# ---------------------------------------------------------------- document


def _security_requirement(req: dict[str, Any]) -> bytes:
    """SecurityRequirement {repeated NamedStringArray additional_properties = 1}; StringArray {repeated value = 1}."""
    return _named(1, req, lambda scopes: _strs(1, scopes))


def _security_definition(d: dict[str, Any]) -> bytes:
    """SecurityDefinitionsItem oneof: basic = 1, apiKey = 2 (others are not served by us)."""
    if d.get("type") == "basic":
        return _msg(1, _str(1, d.get("type")) + _str(2, d.get("description")) + _extensions(3, d))
    return _msg(2, _str(1, d.get("type")) + _str(2, d.get("name")) + _str(3, d.get("in"))
                + _str(4, d.get("description")) + _extensions(5, d))


def document(doc: dict[str, Any]) -> bytes:
    """openapi.v2.Document for a Swagger 2.0 JSON document (maps are written in the dict's order)."""
    info = doc.get("info") or {}
    paths = doc.get("paths") or {}
    return b"".join([
        _str(1, doc.get("swagger")),
        _msg(2, _str(1, info.get("title")) + _str(2, info.get("version")) + _str(3, info.get("description"))
             + _extensions(7, info)) if "info" in doc else b"",
        _str(3, doc.get("host")),
        _str(4, doc.get("basePath")),
        _strs(5, doc.get("schemes")),
        _strs(6, doc.get("consumes")),
        _strs(7, doc.get("produces")),
        _msg(8, _extensions(1, paths) + _named(2, {k: v for k, v in paths.items() if not k.startswith("x-")},
                                               _path_item)) if "paths" in doc else b"",
        _msg(9, _named(1, doc["definitions"], schema)) if "definitions" in doc else b"",
        b"".join(_msg(12, _security_requirement(r)) for r in doc.get("security") or ()),
        _msg(13, _named(1, doc["securityDefinitions"], _security_definition)) if "securityDefinitions" in doc
        else b"",
        _extensions(16, doc),
    ])
