"""OpenAPI definitions of custom resources, as apiextensions-apiserver's openapi builder publishes a CRD
version: its schema plus apiVersion/kind/metadata and the group-version-kind, and a `<Kind>List`.
v2 gets a schema without what Swagger 2.0 cannot say (combinators, nullable), like the v2 builder's conversion.
"""

from __future__ import annotations

from typing import Any

from nanokube.api.meta import Obj

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object. Servers should "
                    "convert recognized schemas to the latest internal value, and may reject unrecognized values. More "
                    "info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources")
_KIND_DOC = ("Kind is a string value representing the REST resource this object represents. Servers may infer this "
             "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
             "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds")
_METADATA_DOC = ("Standard object's metadata. More info: "
                 "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")
_V2_DROPPED = ("allOf", "anyOf", "oneOf", "not", "nullable", "x-kubernetes-validations")


def _ref(prefix: str, name: str, wrap: bool, description: str) -> Obj:
    if wrap:
        return {"allOf": [{"$ref": prefix + name}], "description": description}
    return {"$ref": prefix + name, "description": description}


def _for_v2(node: Any) -> Any:
    if isinstance(node, list):
        return [_for_v2(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _for_v2(v) for k, v in node.items() if k not in _V2_DROPPED}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    return out


def _for_v3(node: Any) -> Any:
    """int-or-string fields get the anyOf [integer, string] the v3 builder adds (kubectl explain: <IntOrString>)."""
    if isinstance(node, list):
        return [_for_v3(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _for_v3(v) for k, v in node.items()}
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def definitions(res: Any, ref_prefix: str, v3: bool) -> dict[str, Obj]:
    """{definition name: schema} for the resource's kind and list kind."""
    schema = _for_v3(res.schema) if v3 else _for_v2(res.schema)
    gvk = {"group": res.group, "version": res.version, "kind": res.kind}
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": _API_VERSION_DOC}
    props["kind"] = {"type": "string", "description": _KIND_DOC}
    props["metadata"] = _ref(ref_prefix, _META + "ObjectMeta", v3, _METADATA_DOC)
    schema.setdefault("type", "object")
    schema["x-kubernetes-group-version-kind"] = [gvk]
    list_schema = {
        "description": f"{res.kind}List is a list of {res.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": _API_VERSION_DOC},
            "items": {"type": "array", "description": f"List of {res.plural}. More info: "
                      "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
                      "items": {"$ref": ref_prefix + res.definition}},
            "kind": {"type": "string", "description": _KIND_DOC},
            "metadata": _ref(ref_prefix, _META + "ListMeta", v3,
                             "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/"
                             "sig-architecture/api-conventions.md#types-kinds"),
        },
        "x-kubernetes-group-version-kind": [{**gvk, "kind": res.list_kind}],
    }
    return {res.definition: schema, res.definition + "List": list_schema}


def meta_roots() -> list[str]:
    return [_META + n for n in ("ObjectMeta", "ListMeta")]
