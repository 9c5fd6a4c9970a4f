"""CustomResourceDefinition (apiextensions.k8s.io/v1) defaulting and validation: the CRD's own rules
(apiextensions-apiserver pkg/apis/apiextensions/validation) and the structural-schema rules
(pkg/apiserver/schema/validation.go) a v1 schema must follow, with their field paths and messages.
"""

from __future__ import annotations

from nanokube.api import validation
from nanokube.api.errors import FieldError, forbidden, invalid, not_supported, required
from nanokube.api.meta import Obj
from nanokube.api.structural import EMBEDDED, INT_OR_STRING, PRESERVE, walk

_FORBIDDEN_KEYWORDS = (("$ref", "$ref"), ("definitions", "definitions"), ("additionalItems", "additionalItems"),
                       ("dependencies", "dependencies"), ("patternProperties", "patternProperties"))
_IN_COMBINATOR_FORBIDDEN = ("type", "default", "additionalProperties", "nullable", "description", PRESERVE,
                            EMBEDDED, INT_OR_STRING, "x-kubernetes-list-type", "x-kubernetes-map-type")
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


def validate_structural(schema: Obj, base: str) -> list[FieldError]:
    """The structural-schema rules: every node typed (unless int-or-string or preserve-unknown-fields), arrays with
    items, no $ref/definitions/..., combinators only restating constraints, metadata constraints at the root."""
    errs: list[FieldError] = []
    if schema.get("type") != "object":
        errs.append(invalid(f"{base}.type", schema.get("type") or "", "must be object at the root"))
    for rel, node in walk(schema):
        path = base + rel
        in_combinator = any(f".{c}[" in rel for c in ("allOf", "anyOf", "oneOf")) or ".not" in rel
        for key, name in _FORBIDDEN_KEYWORDS:
            if key in node:
                errs.append(forbidden(f"{path}.{name}", "must not be specified in a structural schema"))
        if node.get("uniqueItems"):
            errs.append(forbidden(f"{path}.uniqueItems", "uniqueItems cannot be set to true since the runtime "
                                  "complexity becomes quadratic"))
        if in_combinator:
            for key in _IN_COMBINATOR_FORBIDDEN:
                if key in node:
                    errs.append(forbidden(f"{path}.{key}", "must be empty to be structural"))
            continue
        typed = node.get("type")
        if node.get(INT_OR_STRING):
            if typed:
                errs.append(forbidden(f"{path}.type", "must be empty for x-kubernetes-int-or-string"))
        elif not typed and not node.get(PRESERVE):
            errs.append(required(f"{path}.type", "must not be empty for specified object fields"))
        if typed == "array" and not isinstance(node.get("items"), dict):
            errs.append(required(f"{path}.items", "must be specified"))
        if node.get("properties") and isinstance(node.get("additionalProperties"), dict):
            errs.append(forbidden(f"{path}.additionalProperties",
                                  "additionalProperties and properties are mutual exclusive"))
        if node.get(EMBEDDED) and typed != "object":
            errs.append(invalid(f"{path}.type", typed or "", "must be object if x-kubernetes-embedded-resource is true"))
        if node.get(EMBEDDED) and not node.get("properties") and not node.get(PRESERVE):
            errs.append(required(f"{path}.properties", "must not be empty if x-kubernetes-embedded-resource is true "
                                 "without x-kubernetes-preserve-unknown-fields"))
        if "default" in node and node["default"] is None and not node.get("nullable"):
            errs.append(forbidden(f"{path}.default", "must not be null for non-nullable fields"))
    meta = (schema.get("properties") or {}).get("metadata")
    if isinstance(meta, dict):
        for key in (meta.get("properties") or {}):
            if key not in ("name", "generateName"):
                errs.append(forbidden(f"{base}.properties[metadata].properties[{key}]",
                                      "must not be specified"))
    return errs
