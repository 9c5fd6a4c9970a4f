"""The Kubernetes v1.32 type schemas, and the decode-time checks the API server runs with them.

Source of truth: the `$defs` shipped by the `kubernetes-validate` package (generated from the official
swagger). They keep the x-kubernetes-* extensions (patch strategy, merge keys, list/map types, GVK) but
were rewritten as JSON Schema: optional types became `[t, "null"]`, int-or-string and quantities became
`oneOf`, `apiVersion`/`kind` got an `enum`. `export_schema` undoes exactly those rewrites so the OpenAPI
documents look like Kubernetes' own.

The checks mirror what decoding into Go structs does (sigs.k8s.io/json): unknown and duplicate fields in
strict mode, and `json: cannot unmarshal ...` type errors. Everything is loaded on first use and cached.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nanokube.api.errors import ApiError, FieldError, bad_request, go_json_kind, invalid, invalid_object, not_supported

KUBERNETES_VERSION = "v1.32.0"
_REF_PREFIX = "#/$defs/"

STRICT = "Strict"
WARN = "Warn"
IGNORE = "Ignore"

Schema = dict[str, Any]


# ---------------------------------------------------------------- loading


def _definitions_path() -> Path:
    # find_spec locates the package without running it: importing it loads jsonschema, referencing, rpds and
    # attrs (about 9 MB of a server's RSS) only to read one JSON file that ships with it
    import importlib.util

    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("kubernetes-validate is not installed", name="kubernetes_validate")
    base = Path(spec.origin).parent / "kubernetes-json-schema"
    return base / f"{KUBERNETES_VERSION}-local" / "_definitions.json"


@functools.cache
def definitions() -> dict[str, Schema]:
    """All definitions by name (e.g. 'io.k8s.api.core.v1.Service'), as shipped (refs are '#/$defs/<name>')."""
    with open(_definitions_path(), "rb") as f:
        defs: dict[str, Schema] = json.load(f)["$defs"]
    return defs


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            index.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return index


def definition_name(group: str, version: str, kind: str) -> str | None:
    """Definition name of a top-level kind, found through x-kubernetes-group-version-kind."""
    return _gvk_index().get((group, version, kind))


def kind_schema(group: str, version: str, kind: str) -> Schema | None:
    name = definition_name(group, version, kind)
    return definitions()[name] if name else None


def ref_name(node: Schema) -> str | None:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        return ref[len(_REF_PREFIX):]
    return None


def resolve(node: Schema | None) -> Schema | None:
    """Follow a `$ref` (also one wrapped in a single-element allOf) to the definition it names."""
    if node is None:
        return None
    if "allOf" in node and len(node["allOf"]) == 1:
        node = node["allOf"][0]
    name = ref_name(node)
    if name is not None:
        return definitions().get(name)
    return node


def schema_type(node: Schema | None) -> str | None:
    """The JSON type of a (resolved) schema, without the 'null' alternative the JSON Schema rewrite added."""
    if node is None:
        return None
    t = node.get("type")
    if isinstance(t, list):
        return next((str(item) for item in t if item != "null"), None)
    return None if t is None else str(t)


def property_schema(node: Schema | None, key: str) -> Schema | None:
    """Unresolved schema of a struct field, or None when the field is not declared."""
    node = resolve(node)
    if node is None:
        return None
    props: dict[str, Schema] | None = node.get("properties")
    if props is None:
        return None
    return props.get(key)


def items_schema(node: Schema | None) -> Schema | None:
    node = resolve(node)
    if node is None:
        return None
    items = node.get("items")
    return items if isinstance(items, dict) else None


def map_values_schema(node: Schema | None) -> Schema | None:
    node = resolve(node)
    if node is None:
        return None
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def referenced_names(roots: list[str]) -> list[str]:
    """The given definitions plus every definition they reference, transitively, in a stable order."""
    defs = definitions()
    seen: dict[str, None] = {}
    stack = list(reversed(roots))
    while stack:
        name = stack.pop()
        if name in seen or name not in defs:
            continue
        seen[name] = None
        stack.extend(sorted(_refs_in(defs[name]), reverse=True))
    return sorted(seen)


def _refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_REF_PREFIX):
                yield value[len(_REF_PREFIX):]
            else:
                yield from _refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs_in(value)


# ---------------------------------------------------------------- export to OpenAPI shapes


def export_schema(node: Any, ref_prefix: str, wrap_refs: bool, in_kind: bool = False) -> Any:
    """Turn a shipped definition back into the shape Kubernetes publishes.

    ref_prefix: '#/components/schemas/' (v3) or '#/definitions/' (v2). wrap_refs: OpenAPI v3 style, a $ref
    with siblings (description) becomes allOf: [{$ref}]. v2 keeps $ref and description side by side.
    """
    if isinstance(node, list):
        return [export_schema(v, ref_prefix, wrap_refs) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith(_REF_PREFIX):
            out[key] = ref_prefix + value[len(_REF_PREFIX):]
        elif key == "type" and isinstance(value, list):
            t = schema_type(node)
            if t is not None:
                out[key] = t
        elif key == "properties" and isinstance(value, dict):
            gvk_bearing = "x-kubernetes-group-version-kind" in node
            out[key] = {
                name: _export_property(name, sub, ref_prefix, wrap_refs, gvk_bearing) for name, sub in value.items()
            }
        elif key == "oneOf" and isinstance(value, list):
            out.update(_export_one_of(value, wrap_refs))
        else:
            out[key] = export_schema(value, ref_prefix, wrap_refs)
    if wrap_refs and "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


def _export_property(name: str, node: Any, ref_prefix: str, wrap_refs: bool, gvk_bearing: bool) -> Any:
    out = export_schema(node, ref_prefix, wrap_refs)
    if gvk_bearing and name in ("apiVersion", "kind") and isinstance(out, dict):
        out.pop("enum", None)  # added by the JSON Schema rewrite, not part of the published schema
    return out


def _export_one_of(alternatives: list[Any], v3: bool) -> dict[str, Any]:
    """int-or-string and quantity: the rewrite turned `format: int-or-string` into oneOf; undo that."""
    types = [schema_type(alt) for alt in alternatives if isinstance(alt, dict)]
    if v3:
        out: dict[str, Any] = {}
        if set(types) == {"string", "integer"}:
            out["format"] = "int-or-string"
            types = ["integer", "string"]
        out["oneOf"] = [{"type": t} for t in types if t]
        return out
    out = {"type": "string"}
    if "integer" in types:
        out["format"] = "int-or-string"
    return out


# ---------------------------------------------------------------- JSON decoding with duplicate tracking


class _Obj(dict[str, Any]):
    """A decoded JSON object that remembers which of its keys appeared more than once (in order)."""

    __slots__ = ("duplicate_keys",)

    def __init__(self, pairs: list[tuple[str, Any]], duplicates: list[str]) -> None:
        super().__init__(pairs)
        self.duplicate_keys = duplicates


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    duplicates: list[str] = []
    for key, _ in pairs:
        if key in seen:
            duplicates.append(key)
        seen.add(key)
    if duplicates:
        return _Obj(pairs, duplicates)
    return dict(pairs)


def loads_tracking_duplicates(data: bytes | str) -> Any:
    """json.loads that keeps the last of duplicate keys (as Go does) and remembers the duplicates,
    so `strict_errors` can report them. Use it only when fieldValidation is Strict or Warn."""
    return json.loads(data, object_pairs_hook=_object_pairs)


# ---------------------------------------------------------------- strict decoding (unknown / duplicate fields)


def find_unknown_fields(group: str, version: str, kind: str, obj: Any) -> list[str]:
    """Paths of fields the kind does not declare, e.g. ['spec.foo', 'spec.ports[0].bogus'], in document order."""
    return [path for problem, path in _strict_problems(group, version, kind, obj) if problem == "unknown field"]


def strict_errors(group: str, version: str, kind: str, obj: Any) -> list[str]:
    """Kubernetes' strict decoding messages: 'unknown field "spec.foo"', 'duplicate field "metadata.name"'.

    Duplicates are only seen when obj came from `loads_tracking_duplicates`.
    """
    return [f"{problem} {_go_quote(path)}" for problem, path in _strict_problems(group, version, kind, obj)]


def _strict_problems(group: str, version: str, kind: str, obj: Any) -> list[tuple[str, str]]:
    root = kind_schema(group, version, kind)
    if root is None:
        return []
    problems: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def report(problem: str, path: str) -> None:
        if (problem, path) not in seen and len(problems) < 100:  # sigs.k8s.io/json dedupes and caps at 100
            seen.add((problem, path))
            problems.append((problem, path))

    _walk_strict(root, obj, "", report)
    return problems


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _walk_strict(node: Schema | None, value: Any, path: str, report: Any) -> None:
    node = resolve(node)
    if node is None or value is None:
        return
    if isinstance(value, dict):
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props is not None:
            duplicates = getattr(value, "duplicate_keys", ())
            for key in duplicates:
                if key in props:
                    report("duplicate field", _join(path, key))
            for key, sub in value.items():
                if key in props:
                    _walk_strict(props[key], sub, _join(path, key), report)
                else:
                    report("unknown field", _join(path, key))
        elif isinstance(extra, dict):
            for key in getattr(value, "duplicate_keys", ()):
                report("duplicate field", _join(path, key))
            for key, sub in value.items():
                _walk_strict(extra, sub, _join(path, key), report)
        # objects without declared fields (FieldsV1, RawExtension) are opaque to the decoder
    elif isinstance(value, list):
        items = node.get("items")
        if isinstance(items, dict):
            for i, sub in enumerate(value):
                _walk_strict(items, sub, f"{path}[{i}]", report)


def _go_quote(text: str) -> str:
    """strconv.Quote for the printable text used in field paths."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# ---------------------------------------------------------------- type errors (json: cannot unmarshal ...)

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def type_error(group: str, version: str, kind: str, obj: Any) -> str | None:
    """The first `json: cannot unmarshal X into Go struct field S.path of type T` Go would report, or None.

    Go type names come from the schema: named string types (v1.ServiceType, v1.Protocol) show as `string`.
    """
    name = definition_name(group, version, kind)
    if name is None:
        return None
    return _check_type({"$ref": _REF_PREFIX + name}, obj, _struct_name(name), [])


def _struct_name(definition: str) -> str:
    return definition.rsplit(".", 1)[-1]


def go_type_name(node: Schema | None) -> str:
    """Go type a schema stands for, as encoding/json prints it: int32, []v1.ServicePort, map[string]string."""
    if node is None:
        return "interface {}"
    if "allOf" in node and len(node["allOf"]) == 1:
        node = node["allOf"][0]
    name = ref_name(node)
    if name is not None:
        parts = name.split(".")
        return f"{parts[-2]}.{parts[-1]}"
    t = schema_type(node)
    fmt = node.get("format")
    if t == "integer":
        return fmt if fmt in ("int32", "int64") else "int"
    if t == "number":
        return "float64"
    if t == "boolean":
        return "bool"
    if t == "string":
        return "[]uint8" if fmt == "byte" else "string"
    if t == "array":
        return "[]" + go_type_name(node.get("items"))
    if t == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return "map[string]" + go_type_name(extra)
        return "map[string]interface {}"
    return "interface {}"


def _number_kind(value: Any) -> str:
    """What Go names a JSON number it cannot put into a non-number type: the kind and the number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "number " + _number_text(value)
    return go_json_kind(value)


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    return repr(value)


def _check_type(node: Schema | None, value: Any, struct: str, fields: list[str]) -> str | None:
    if value is None or node is None:
        return None
    unwrapped = node["allOf"][0] if "allOf" in node and len(node["allOf"]) == 1 else node
    target = resolve(unwrapped)
    if target is None:
        return None
    ref = ref_name(unwrapped)

    def mismatch(value_kind: str, go_type: str | None = None) -> str:
        field = ".".join(fields)
        return (f"json: cannot unmarshal {value_kind} into Go struct field {struct}.{field} "
                f"of type {go_type or go_type_name(unwrapped)}")

    if "oneOf" in target:
        types = {schema_type(alt) for alt in target["oneOf"]}
        if "integer" in types:  # IntOrString: strings, else decoded into its int32
            if isinstance(value, str):
                return None
            return _check_int(value, "int32", mismatch)
        return None  # Quantity: strings and numbers; anything else fails in its own parser
    t = schema_type(target)
    if t == "object":
        props = target.get("properties")
        extra = target.get("additionalProperties")
        if not isinstance(value, dict):
            if props is None and not isinstance(extra, dict):
                return None  # opaque (RawExtension, FieldsV1) take any JSON
            return mismatch(go_json_kind(value))
        if props is not None:
            inner_struct = _struct_name(ref) if ref else struct
            for key, sub in value.items():
                if key in props:
                    err = _check_type(props[key], sub, inner_struct, [*fields, key])
                    if err:
                        return err
        elif isinstance(extra, dict):
            for sub in value.values():
                err = _check_type(extra, sub, struct, fields)
                if err:
                    return err
        return None
    if t == "array":
        if not isinstance(value, list):
            if isinstance(value, str) and target.get("format") == "byte":
                return None
            return mismatch(go_json_kind(value))
        items = target.get("items")
        for sub in value:
            err = _check_type(items, sub, struct, fields)
            if err:
                return err
        return None
    if t == "string":
        if isinstance(value, str):
            return None
        return mismatch(go_json_kind(value), "string" if ref else None)
    if t == "boolean":
        return None if isinstance(value, bool) else mismatch(go_json_kind(value))
    if t == "integer":
        return _check_int(value, target.get("format") or "int64", mismatch)
    if t == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        return mismatch(go_json_kind(value))
    return None


def _check_int(value: Any, go_type: str, mismatch: Callable[[str, str], str]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return mismatch(go_json_kind(value), go_type)
    low, high = _INT_RANGES.get(go_type, _INT_RANGES["int64"])
    if isinstance(value, float) or not low <= value <= high:
        return mismatch(_number_kind(value), go_type)
    return None


# ---------------------------------------------------------------- what the API server does with them


def normalize_directive(value: str | None, options_kind: str = "CreateOptions") -> str:
    """fieldValidation query value -> Strict|Warn|Ignore (empty means Warn, the server default).

    options_kind: CreateOptions, UpdateOptions or PatchOptions, named in the 422 for an unsupported value.
    """
    if not value:
        return WARN
    if value in (STRICT, WARN, IGNORE):
        return value
    cause = not_supported("fieldValidation", value, ["", IGNORE, STRICT, WARN])
    return _raise_invalid_options(options_kind, cause)


def _raise_invalid_options(options_kind: str, cause: FieldError) -> str:
    raise ApiError(422, "Invalid", f'{options_kind}.meta.k8s.io "" is invalid: {cause}',
                   {"group": "meta.k8s.io", "kind": options_kind,
                    "causes": [{"reason": cause.type, "message": cause.body(), "field": cause.field}]})


def decode_error(kind: str, version: str, reason: str) -> ApiError:
    """400 for a body that cannot be decoded as the kind (transformDecodeError)."""
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {reason}')


def strict_decoding_message(errors: list[str]) -> str:
    return "strict decoding error: " + ", ".join(errors)


def check_body(group: str, version: str, kind: str, obj: Any, directive: str) -> list[str]:
    """Decode-time checks for a create/update body (POST/PUT).

    Raises the 400 Kubernetes gives for type errors (always) and for unknown/duplicate fields under
    Strict. Returns the warnings to send (one `Warning: 299 - "..."` header each) under Warn.
    """
    problem = type_error(group, version, kind, obj)
    if problem:
        raise decode_error(kind, version, problem)
    if directive == IGNORE:
        return []
    errors = strict_errors(group, version, kind, obj)
    if not errors:
        return []
    if directive == STRICT:
        raise decode_error(kind, version, strict_decoding_message(errors))
    return errors


def strict_patch_error(patched_repr: str, errors: list[str]) -> ApiError:
    """422 for unknown/duplicate fields found after applying a patch under Strict (patch.go applyPatchToObject).

    patched_repr: the patched object as Kubernetes prints it (JSON text for json/merge patches).
    """
    return invalid_object("", "", "", [invalid("patch", patched_repr, strict_decoding_message(errors))])


def warning_header(text: str, agent: str = "-") -> str:
    """Value of one HTTP Warning header the way the apiserver writes it (code 299)."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 {agent} "{quoted}"'
