"""CustomResourceDefinition (apiextensions.k8s.io/v1) defaulting and validation: the CRD's own rules
(apiextensions-apiserver pkg/apis/apiextensions/validation) and the structural-schema rules
(pkg/apiserver/schema/validation.go) a v1 schema must follow, with their field paths and messages.
"""

from __future__ import annotations

from typing import Any

from nanokube.api import validation
from nanokube.api.errors import FieldError, forbidden, invalid, not_supported, required
from nanokube.api.meta import Obj
from nanokube.api.structural import EMBEDDED, INT_OR_STRING, PRESERVE

_COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")


def set_defaults(crd: Obj) -> None:
    """SetDefaults_CustomResourceDefinitionSpec: singular/listKind from the kind, conversion None."""
    spec = crd.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    names = spec.setdefault("names", {})
    if isinstance(names, dict) and names.get("kind"):
        names.setdefault("singular", str(names["kind"]).lower())
        names.setdefault("listKind", f"{names['kind']}List")
    if not spec.get("conversion"):
        spec["conversion"] = {"strategy": "None"}


def storage_version(crd: Obj) -> str | None:
    for version in (crd.get("spec") or {}).get("versions") or []:
        if version.get("storage"):
            return str(version.get("name"))
    return None


def validate_crd(crd: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = crd.get("spec") or {}
    group = spec.get("group") or ""
    names = spec.get("names") or {}
    name = (crd.get("metadata") or {}).get("name") or ""
    plural = names.get("plural") or ""
    if name and plural and group and name != f"{plural}.{group}":
        errs.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if not group:
        errs.append(required("spec.group"))
    elif validation.is_dns1123_subdomain(group):
        errs.extend(invalid("spec.group", group, msg) for msg in validation.is_dns1123_subdomain(group))
    elif "." not in group:
        errs.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope")
    if not scope:
        errs.append(required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        errs.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    errs.extend(_validate_names(names, "spec.names"))
    errs.extend(_validate_versions(spec.get("versions") or [], spec))
    if spec.get("preserveUnknownFields"):
        errs.append(invalid("spec.preserveUnknownFields", True, "cannot set to true, set x-kubernetes-preserve-unknown-"
                            "fields to true in spec.versions[*].schema instead"))
    strategy = (spec.get("conversion") or {}).get("strategy")
    if strategy not in (None, "None", "Webhook"):
        errs.append(not_supported("spec.conversion.strategy", strategy, ["None", "Webhook"]))
    elif strategy == "Webhook":
        errs.append(forbidden("spec.conversion.strategy", "conversion webhooks are not supported by nanokube"))
    return errs


def _validate_names(names: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for field in ("plural", "singular"):
        value = names.get(field)
        if field == "plural" and not value:
            errs.append(required(f"{path}.plural"))
        elif value:
            errs.extend(invalid(f"{path}.{field}", value, msg) for msg in validation.is_dns1035_label(value))
    for field in ("kind", "listKind"):
        value = names.get(field)
        if field == "kind" and not value:
            errs.append(required(f"{path}.kind"))
        elif value and validation.is_dns1035_label(str(value).lower()):
            errs.append(invalid(f"{path}.{field}", value, "may have mixed case, but should otherwise match: "
                                "[a-z]([-a-z0-9]*[a-z0-9])?"))
    if names.get("kind") and names.get("listKind") == names.get("kind"):
        errs.append(invalid(f"{path}.listKind", names["listKind"], "kind and listKind may not be the same"))
    for i, short in enumerate(names.get("shortNames") or []):
        errs.extend(invalid(f"{path}.shortNames[{i}]", short, msg) for msg in validation.is_dns1035_label(short))
    return errs


def _validate_versions(versions: list[Obj], spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    if not versions:
        errs.append(invalid("spec.versions", versions, "must have exactly one version marked as storage version"))
        return errs
    storage = [v for v in versions if v.get("storage")]
    if len(storage) != 1:
        errs.append(invalid("spec.versions", versions, "must have exactly one version marked as storage version"))
    if not any(v.get("served") for v in versions):
        errs.append(invalid("spec.versions", versions, "must have at least one version marked as served"))
    seen: set[str] = set()
    for i, version in enumerate(versions):
        path = f"spec.versions[{i}]"
        name = version.get("name") or ""
        if not name:
            errs.append(required(f"{path}.name"))
        elif validation.is_dns1035_label(name):
            errs.extend(invalid(f"{path}.name", name, m) for m in validation.is_dns1035_label(name))
        if name in seen:
            errs.append(invalid("spec.versions", versions, "must contain unique version names"))
        seen.add(name)
        schema = ((version.get("schema") or {}).get("openAPIV3Schema"))
        schema_path = f"{path}.schema.openAPIV3Schema"
        if not isinstance(schema, dict):
            errs.append(required(schema_path, "schemas are required"))
        else:
            errs.extend(validate_structural(schema, schema_path))
        errs.extend(_validate_columns(version.get("additionalPrinterColumns") or [], f"{path}.additionalPrinterColumns"))
        scale = (version.get("subresources") or {}).get("scale")
        if isinstance(scale, dict):
            for field in ("specReplicasPath", "statusReplicasPath"):
                value = scale.get(field)
                if not value:
                    errs.append(required(f"{path}.subresources.scale.{field}"))
                elif not str(value).startswith("."):
                    errs.append(invalid(f"{path}.subresources.scale.{field}", value,
                                        "should be a json path under .spec" if field.startswith("spec")
                                        else "should be a json path under .status"))
    return errs


def _validate_columns(columns: list[Obj], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, column in enumerate(columns):
        here = f"{path}[{i}]"
        if not column.get("name"):
            errs.append(required(f"{here}.name"))
        if not column.get("type"):
            errs.append(required(f"{here}.type"))
        elif column["type"] not in _COLUMN_TYPES:
            errs.append(not_supported(f"{here}.type", column["type"], list(_COLUMN_TYPES)))
        if not column.get("jsonPath"):
            errs.append(required(f"{here}.jsonPath"))
    return errs


_NOT_SUPPORTED = (("$ref", "$ref"), ("id", "id"), ("additionalItems", "additionalItems"),
                  ("patternProperties", "patternProperties"), ("definitions", "definitions"),
                  ("dependencies", "dependencies"))
# In allOf/anyOf/oneOf/not (schema/validation.go validateNestedValueValidation): what may not be restated.
_NESTED_FORBIDDEN = (("type", "must be empty to be structural"),
                     ("additionalProperties", "must be undefined to be structural"),
                     ("default", "must be undefined to be structural"),
                     ("title", "must be empty to be structural"),
                     ("description", "must be empty to be structural"),
                     ("nullable", "must be false to be structural"),
                     ("externalDocs", "must be undefined to be structural"),
                     (PRESERVE, "must be false to be structural"),
                     (EMBEDDED, "must be false to be structural"),
                     (INT_OR_STRING, "must be false to be structural"),
                     ("x-kubernetes-list-map-keys", "must be empty to be structural"),
                     ("x-kubernetes-list-type", "must be undefined to be structural"),
                     ("x-kubernetes-map-type", "must be undefined to be structural"),
                     ("x-kubernetes-validations", "must be empty to be structural"))
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def validate_structural(schema: Obj, base: str) -> list[FieldError]:
    """The CRD schema rules (specStandardValidatorV3 and schema/validation.go ValidateStructural): no $ref and the
    like, every node typed (unless int-or-string or preserve-unknown-fields), arrays with items, value validations
    in allOf/anyOf/oneOf/not restating nothing structural, metadata at the root only constraining name and
    generateName. Errors sorted by their text, as Kubernetes sorts them."""
    errs: list[FieldError] = []
    _structural_node(schema, base, "root", errs)
    return sorted(errs, key=str)


def _structural_node(node: Obj, path: str, level: str, errs: list[FieldError]) -> None:
    for key, name in _NOT_SUPPORTED:
        if key in node and node[key] not in (None, "", {}):
            errs.append(forbidden(f"{path}.{name}", f"{name} is not supported"))
    if node.get("uniqueItems"):
        errs.append(forbidden(f"{path}.uniqueItems",
                              "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
    extra = node.get("additionalProperties")
    if extra is not None:
        if node.get("properties") and (extra is False or isinstance(extra, dict)):
            errs.append(forbidden(f"{path}.additionalProperties",
                                  "additionalProperties and properties are mutual exclusive"))
        if level == "root":
            errs.append(forbidden(f"{path}.additionalProperties", "must not be used at the root"))
        if isinstance(extra, dict):
            _structural_node(extra, f"{path}.additionalProperties", "field", errs)
    typed = node.get("type")
    if typed == "null":
        errs.append(forbidden(f"{path}.type", "type cannot be set to null, use nullable as an alternative"))
    if typed == "array" and not isinstance(node.get("items"), dict):
        errs.append(required(f"{path}.items", "must be specified"))
    if isinstance(node.get("items"), dict):
        _structural_node(node["items"], f"{path}.items", "item", errs)
    for key, sub in (node.get("properties") or {}).items():
        if isinstance(sub, dict):
            _structural_node(sub, f"{path}.properties[{key}]", "field", errs)
    if node.get(INT_OR_STRING) and node.get(PRESERVE):
        errs.append(invalid(f"{path}.{PRESERVE}", True, "must be false if x-kubernetes-int-or-string is true"))
    if node.get(INT_OR_STRING) and node.get(EMBEDDED):
        errs.append(invalid(f"{path}.{EMBEDDED}", True, "must be false if x-kubernetes-int-or-string is true"))
    _combinators(node, path, errs)
    if node.get(EMBEDDED) and typed != "object":
        if not typed:
            errs.append(required(f"{path}.type", "must be object if x-kubernetes-embedded-resource is true"))
        else:
            errs.append(invalid(f"{path}.type", typed, "must be object if x-kubernetes-embedded-resource is true"))
    elif not typed and not node.get(INT_OR_STRING) and not node.get(PRESERVE):
        where = {"root": "at the root", "item": "for specified array items", "field": "for specified object fields"}
        errs.append(required(f"{path}.type", f"must not be empty {where[level]}"))
    if level == "root" and typed and typed != "object":
        errs.append(invalid(f"{path}.type", typed, "must be object at the root"))
    check_metadata = level == "root" or bool(node.get(EMBEDDED))
    props = node.get("properties") or {}
    for meta_field in ("kind", "apiVersion"):
        sub = props.get(meta_field)
        if check_metadata and isinstance(sub, dict) and sub.get("type") != "string":
            errs.append(invalid(f"{path}.properties[{meta_field}].type", sub.get("type") or "", "must be string"))
    metadata = props.get("metadata")
    if isinstance(metadata, dict):
        if check_metadata and metadata.get("type") != "object":
            errs.append(invalid(f"{path}.properties[metadata].type", metadata.get("type") or "", "must be object"))
        if level == "root":
            rest = {k: v for k, v in metadata.items() if k not in ("type", "default", "description")}
            names = rest.pop("properties", None) or {}
            if set(names) - {"name", "generateName"} or rest:
                errs.append(forbidden(f"{path}.properties[metadata]", "must not specify anything other than name and "
                                      "generateName, but metadata is implicitly specified"))
    if node.get(EMBEDDED) and not node.get(PRESERVE) and not props:
        errs.append(required(f"{path}.properties", "must not be empty if x-kubernetes-embedded-resource is true "
                             "without x-kubernetes-preserve-unknown-fields"))
    if node.get(EMBEDDED) and node.get("additionalProperties") is not None:
        errs.append(forbidden(f"{path}.additionalProperties",
                              "must not be used if x-kubernetes-embedded-resource is set"))
    if "default" in node and node["default"] is None and not node.get("nullable"):
        errs.append(forbidden(f"{path}.default", "must not be null for non-nullable fields"))


def _combinators(node: Obj, path: str, errs: list[FieldError]) -> None:
    any_of = node.get("anyOf")
    int_or_string = any_of == _INT_OR_STRING_ANY_OF
    all_of = node.get("allOf") or []
    first_all_of_is_int_or_string = bool(all_of) and isinstance(all_of[0], dict) and \
        all_of[0].get("anyOf") == _INT_OR_STRING_ANY_OF
    if not int_or_string:
        for i, sub in enumerate(any_of or []):
            _nested(sub, f"{path}.anyOf[{i}]", errs)
    for i, sub in enumerate(all_of):
        _nested(sub, f"{path}.allOf[{i}]", errs, skip_any_of=first_all_of_is_int_or_string and i == 0)
    for i, sub in enumerate(node.get("oneOf") or []):
        _nested(sub, f"{path}.oneOf[{i}]", errs)
    if isinstance(node.get("not"), dict):
        _nested(node["not"], f"{path}.not", errs)


def _nested(node: Any, path: str, errs: list[FieldError], skip_any_of: bool = False) -> None:
    if not isinstance(node, dict):
        return
    for key, message in _NESTED_FORBIDDEN:
        if key in node and node[key] not in (None, False, "", [], {}):
            errs.append(forbidden(f"{path}.{key}", message))
    nested = dict(node)
    if skip_any_of:
        nested.pop("anyOf", None)
    for name in ("anyOf", "allOf", "oneOf"):
        for i, sub in enumerate(nested.get(name) or []):
            _nested(sub, f"{path}.{name}[{i}]", errs)
    if isinstance(nested.get("not"), dict):
        _nested(nested["not"], f"{path}.not", errs)
    if isinstance(nested.get("items"), dict):
        _nested(nested["items"], f"{path}.items", errs)
    for key, sub in (nested.get("properties") or {}).items():
        if key == "metadata":
            errs.append(forbidden(f"{path}.properties[metadata]", "must not be specified in a nested context"))
        _nested(sub, f"{path}.properties[{key}]", errs)
