"""The OpenAPI documents kubectl downloads: /openapi/v3 (index), /openapi/v3/<api|apis/group>/<version>, /openapi/v2.

Built from the shipped Kubernetes definitions (nanokube.api.openapi_schemas) for the resources in the scheme, on first
request, then cached as bytes with their ETag. What kubectl relies on (k8s.io/client-go/openapi, kubectl
explain templates, cli-runtime's query-param verifier, apply's patcher):
- the index maps "api/v1" / "apis/<g>/<v>" to a serverRelativeURL with ?hash=<etag>;
- components.schemas carry x-kubernetes-group-version-kind on top-level kinds, refs are #/components/schemas/;
- a list path (or {name} path) per resource whose operations carry x-kubernetes-group-version-kind (explain);
- the PATCH operation lists a `fieldValidation` query parameter (else kubectl validates client-side with v2)
  and accepts application/strategic-merge-patch+json (else client-side apply falls back).
Serving follows kube-openapi's handler3: ETag = uppercase hex SHA-512 of the body, a stale ?hash= gets a
301 to the current URL, a matching one gets `Cache-Control: public, immutable`.
/openapi/v2 follows kube-openapi's v2 handler: JSON, or gnostic's protobuf Document (openapi_v2_proto) for
`Accept: application/com.github.proto-openapi.spec.v2[@.]v1.0+protobuf`, which kubectl requests for client-side
validation (a `kind: List`, or servers without fieldValidation) and `explain --output=plaintext-openapiv2`.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

import orjson

from nanokube.api import openapi_schemas, patch
from nanokube.api.served_resources import RESOURCES, Resource
from nanokube.apiserver import alt_versions, crds, openapi_custom, openapi_v2_proto

V3_PREFIX = "/openapi/v3"
V2_PATH = "/openapi/v2"
V2_PROTO_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_V2_PROTO_SUBTYPES = ("com.github.proto-openapi.spec.v2@v1.0+protobuf", "com.github.proto-openapi.spec.v2.v1.0+protobuf")
_V3_REF = "#/components/schemas/"
_V2_REF = "#/definitions/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_PATCH_TYPES = patch.CONTENT_TYPES
_SCALE_GVK = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
_SCALE_DEF = "io.k8s.api.autoscaling.v1.Scale"


# ---------------------------------------------------------------- public API


def group_version_paths() -> list[str]:
    """OpenAPI v3 group-version paths we serve: 'api/v1', 'apis/apps/v1', ..., then custom resources'."""
    out: list[str] = []
    for r in [*RESOURCES, *alt_versions.ALT_RESOURCES, *crds.CATALOG.resources()]:
        path = _gv_path(r.group, r.version)
        if path not in out:
            out.append(path)
    return out


def openapi_v3_index() -> bytes:
    return _index()[0]


def openapi_v3_document(path: str) -> bytes | None:
    """The document for 'api/v1' or 'apis/<group>/<version>' (leading/trailing slashes ignored), or None."""
    doc = _v3_document(path.strip("/"))
    return doc[0] if doc else None


def openapi_v3_etag(path: str) -> str | None:
    doc = _v3_document(path.strip("/"))
    return doc[1] if doc else None


def openapi_v2() -> bytes:
    return _v2()[0]


def openapi_v2_protobuf() -> bytes:
    """/openapi/v2 as gnostic's openapi.v2.Document protobuf (built on first call, then cached)."""
    return _v2_proto()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def serve(path: str, query_hash: str | None = None, accept: str | None = None,
          if_none_match: str | None = None) -> Reply | None:
    """Answer a GET for an OpenAPI path the way kube-openapi does; None when the path is not ours (404).

    path: request path without query; query_hash: the `hash` query parameter; accept / if_none_match: headers.
    """
    path = path.rstrip("/") or "/"
    if path == V2_PATH:
        media = _v2_media(accept)
        if media is None:
            return Reply(406, {"Vary": "Accept"})
        if media == V2_PROTO_CONTENT_TYPE:
            # kube-openapi serves the protobuf rendering under the JSON document's ETag (Vary: Accept).
            return _content(_v2_proto(), _v2()[1], if_none_match, {"Vary": "Accept"}, media)
        body, etag = _v2()
        return _content(body, etag, if_none_match, {"Vary": "Accept"})
    if path == V3_PREFIX:
        body, etag = _index()
        return _content(body, etag, if_none_match, {})
    if not path.startswith(V3_PREFIX + "/"):
        return None
    gv = path[len(V3_PREFIX) + 1:]
    doc = _v3_document(gv)
    if doc is None:
        return None
    headers = {"Vary": "Accept"}
    if not _accepts_json(accept):
        return Reply(406, headers)
    body, etag = doc
    if query_hash:
        if query_hash != etag:
            return Reply(301, {**headers, "Location": _relative_url(gv, etag)})
        headers["Cache-Control"] = "public, immutable"
        headers["Expires"] = formatdate(_now() + 365 * 86400, usegmt=True)
    return _content(body, etag, if_none_match, headers)


# ---------------------------------------------------------------- serving helpers


def _now() -> float:
    import time

    return time.time()


def _content(body: bytes, etag: str, if_none_match: str | None, headers: dict[str, str],
             content_type: str = "application/json") -> Reply:
    quoted = f'"{etag}"'
    headers = {**headers, "Etag": quoted}
    if if_none_match and (if_none_match.strip() == "*" or quoted in [t.strip() for t in if_none_match.split(",")]):
        return Reply(304, headers)
    return Reply(200, {**headers, "Content-Type": content_type}, body)


def _v2_media(accept: str | None) -> str | None:
    """The Content-Type to answer /openapi/v2 with, negotiated like kube-openapi's handler: clauses by falling q,
    the first one matching JSON, then either protobuf spelling (both answered with the current spelling)."""
    clauses: list[tuple[float, int, str]] = []
    for i, clause in enumerate((accept or "*/*").split(",")):
        media, *params = [part.strip() for part in clause.split(";")]
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media and q > 0:
            clauses.append((-q, i, media.lower()))
    for _, _, media in sorted(clauses):
        kind, _, sub = media.partition("/")
        if kind not in ("application", "*"):
            continue
        if sub in ("json", "*"):
            return "application/json"
        if sub in _V2_PROTO_SUBTYPES:
            return V2_PROTO_CONTENT_TYPE
    return None


def _accepts_json(accept: str | None) -> bool:
    if not accept:
        return True
    for clause in accept.split(","):
        media = clause.split(";", 1)[0].strip().lower()
        if media in ("*/*", "application/*", "application/json"):
            return True
    return False


def _etag(body: bytes) -> str:
    return hashlib.sha512(body).hexdigest().upper()


def _relative_url(gv_path: str, etag: str) -> str:
    return f"{V3_PREFIX}/{gv_path}?hash={quote(etag)}"


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


# ---------------------------------------------------------------- cached documents


# Custom resources change the documents: the caches below key on the CRD catalog's generation.


def _index() -> tuple[bytes, str]:
    return _index_at(crds.CATALOG.generation)


@functools.lru_cache(maxsize=2)
def _index_at(_generation: int) -> tuple[bytes, str]:
    paths: dict[str, Any] = {}
    for gv in group_version_paths():
        doc = _v3_document(gv)
        assert doc is not None
        paths[gv] = {"serverRelativeURL": _relative_url(gv, doc[1])}
    body = orjson.dumps({"paths": paths})
    return body, _etag(body)


def _v3_document(gv_path: str) -> tuple[bytes, str] | None:
    static = _static_v3_document(gv_path)
    if static is not None:
        return static
    return _custom_v3_document(gv_path, crds.CATALOG.generation)


@functools.lru_cache(maxsize=64)
def _custom_v3_document(gv_path: str, _generation: int) -> tuple[bytes, str] | None:
    resources: list[Resource] = [r for r in [*alt_versions.ALT_RESOURCES, *crds.CATALOG.resources()]
                                 if _gv_path(r.group, r.version) == gv_path]
    if not resources:
        return None
    body = orjson.dumps(_build_v3(gv_path, resources), option=orjson.OPT_SORT_KEYS)
    return body, _etag(body)


@functools.cache
def _static_v3_document(gv_path: str) -> tuple[bytes, str] | None:
    resources = [r for r in RESOURCES if _gv_path(r.group, r.version) == gv_path]
    if not resources:
        return None
    doc = _build_v3(gv_path, resources)
    body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return body, _etag(body)


def _v2() -> tuple[bytes, str]:
    return _v2_at(crds.CATALOG.generation)


@functools.lru_cache(maxsize=2)
def _v2_at(_generation: int) -> tuple[bytes, str]:
    body = orjson.dumps(_build_v2(), option=orjson.OPT_SORT_KEYS)
    return body, _etag(body)


def _v2_proto() -> bytes:
    return _v2_proto_at(crds.CATALOG.generation)


@functools.lru_cache(maxsize=2)
def _v2_proto_at(_generation: int) -> bytes:
    # From the served JSON bytes, so maps keep the JSON body's (sorted) order, as gnostic's parser would see them.
    return openapi_v2_proto.document(orjson.loads(_v2()[0]))


# ---------------------------------------------------------------- document construction


def _served_definition_roots(resources: list[Resource]) -> list[str]:
    roots = [_META + n for n in ("APIResourceList", "DeleteOptions", "Patch", "Status", "WatchEvent")]
    for r in resources:
        for kind in (r.kind, r.list_kind):
            name = openapi_schemas.definition_name(r.group, r.version, kind)
            if name:
                roots.append(name)
        if "scale" in r.subresources:
            roots.append(_SCALE_DEF)
        if getattr(r, "custom", False):
            roots.extend(openapi_custom.meta_roots())
    return roots


def _custom_definitions(resources: list[Resource], v3: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in resources:
        if getattr(r, "custom", False):
            out.update(openapi_custom.definitions(r, _V3_REF if v3 else _V2_REF, v3))
    return out


def _build_v3(gv_path: str, resources: list[Resource]) -> dict[str, Any]:
    defs = openapi_schemas.definitions()
    names = openapi_schemas.referenced_names(_served_definition_roots(resources))
    components = {name: openapi_schemas.export_schema(defs[name], _V3_REF, wrap_refs=True) for name in names}
    components.update(_custom_definitions(resources, v3=True))
    paths: dict[str, Any] = {f"/{gv_path}/": _v3_resource_list_path(resources[0])}
    for r in resources:
        for path, item in _resource_paths(r, v3=True).items():
            paths[path] = item
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": openapi_schemas.KUBERNETES_VERSION},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header",
                                "description": "Bearer Token authentication"},
            },
        },
    }


def _build_v2() -> dict[str, Any]:
    defs = openapi_schemas.definitions()
    served: list[Resource] = [*RESOURCES, *alt_versions.ALT_RESOURCES, *crds.CATALOG.resources()]
    names = openapi_schemas.referenced_names(_served_definition_roots(served))
    paths: dict[str, Any] = {}
    for r in served:
        paths.update(_resource_paths(r, v3=False))
    custom = _custom_definitions(served, v3=False)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": openapi_schemas.KUBERNETES_VERSION},
        "paths": paths,
        "definitions": {**{name: openapi_schemas.export_schema(defs[name], _V2_REF, wrap_refs=False) for name in names},
                        **custom},
        "securityDefinitions": {
            "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header",
                            "description": "Bearer Token authentication"},
        },
        "security": [{"BearerToken": []}],
    }


def _v3_resource_list_path(r: Resource) -> dict[str, Any]:
    ref = {"$ref": _V3_REF + _META + "APIResourceList"}
    return {"get": {
        "description": "get available resources",
        "operationId": f"get{_op_group(r)}APIResources",
        "tags": [_tag(r)],
        "responses": {
            "200": {"description": "OK", "content": {t: {"schema": ref} for t in ("application/json", "application/yaml")}},
            "401": {"description": "Unauthorized"},
        },
    }}


def _op_group(r: Resource) -> str:
    group = r.group.split(".", 1)[0] if r.group else "core"
    return group[:1].upper() + group[1:] + r.version[:1].upper() + r.version[1:]


def _tag(r: Resource) -> str:
    return f"{r.group.split('.', 1)[0] if r.group else 'core'}_{r.version}"


# Query parameters by operation; kubectl only looks at names (fieldValidation on PATCH), the rest is for humans.
_QUERY_PARAMS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "list": (
        ("allowWatchBookmarks", "boolean", "request BOOKMARK events on a watch"),
        ("continue", "string", "continue token from a previous paginated list"),
        ("fieldSelector", "string", "restrict the list by fields"),
        ("labelSelector", "string", "restrict the list by labels"),
        ("limit", "integer", "maximum number of items to return"),
        ("resourceVersion", "string", "resource version the list or watch is served from"),
        ("resourceVersionMatch", "string", "how resourceVersion applies to a list"),
        ("timeoutSeconds", "integer", "timeout for the list or watch call"),
        ("watch", "boolean", "watch for changes and return them as a stream of events"),
    ),
    "write": (
        ("dryRun", "string", "when present, modifications are not persisted (valid value: All)"),
        ("fieldManager", "string", "name of the actor making the change, recorded in managedFields"),
        ("fieldValidation", "string",
         "how to handle unknown or duplicate fields in the request: Ignore, Warn (default) or Strict"),
    ),
    "patch": (
        ("dryRun", "string", "when present, modifications are not persisted (valid value: All)"),
        ("fieldManager", "string", "name of the actor making the change; required for apply patches"),
        ("fieldValidation", "string",
         "how to handle unknown or duplicate fields in the request: Ignore, Warn (default) or Strict"),
        ("force", "boolean", "apply patches only: take ownership of fields that conflict"),
    ),
    "delete": (
        ("dryRun", "string", "when present, modifications are not persisted (valid value: All)"),
        ("gracePeriodSeconds", "integer", "seconds before the object is deleted"),
        ("propagationPolicy", "string", "garbage collection policy: Orphan, Background or Foreground"),
    ),
}


def _params(kind: str, v3: bool) -> list[dict[str, Any]]:
    out = []
    for name, typ, text in _QUERY_PARAMS[kind]:
        if v3:
            out.append({"name": name, "in": "query", "description": text, "schema": {"type": typ, "uniqueItems": True}})
        else:
            out.append({"name": name, "in": "query", "description": text, "type": typ, "uniqueItems": True})
    return out


def _path_params(names: tuple[str, ...], kind: str, v3: bool) -> list[dict[str, Any]]:
    texts = {"name": f"name of the {kind}", "namespace": "object name and auth scope, such as for teams and projects"}
    out: list[dict[str, Any]] = []
    for name in names:
        p: dict[str, Any] = {"name": name, "in": "path", "required": True, "description": texts[name]}
        if v3:
            p["schema"] = {"type": "string", "uniqueItems": True}
        else:
            p.update({"type": "string", "uniqueItems": True})
        out.append(p)
    pretty: dict[str, Any] = {"name": "pretty", "in": "query", "description": "If 'true', then the output is pretty printed."}
    if v3:
        pretty["schema"] = {"type": "string", "uniqueItems": True}
    else:
        pretty.update({"type": "string", "uniqueItems": True})
    out.append(pretty)
    return out


class _Ops:
    """Builds operation objects for one resource, in v3 or v2 (swagger) shape."""

    def __init__(self, r: Resource, v3: bool) -> None:
        self.r = r
        self.v3 = v3
        self.ref = _V3_REF if v3 else _V2_REF
        custom = getattr(r, "definition", "")  # a custom resource names its own definitions
        self.kind_def = custom or openapi_schemas.definition_name(r.group, r.version, r.kind) or ""
        self.list_def = custom + "List" if custom else openapi_schemas.definition_name(r.group, r.version,
                                                                                       r.list_kind) or ""
        self.gvk = {"group": r.group, "version": r.version, "kind": r.kind}

    def _schema(self, definition: str) -> dict[str, str]:
        return {"$ref": self.ref + definition}

    def _responses(self, codes: dict[str, str], definition: str, watch: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        media = ["application/json", "application/yaml"]
        if watch:
            media.append("application/json;stream=watch")
        for code, text in codes.items():
            if self.v3:
                out[code] = {"description": text, "content": {m: {"schema": self._schema(definition)} for m in media}}
            else:
                out[code] = {"description": text, "schema": self._schema(definition)}
        out["401"] = {"description": "Unauthorized"}
        return out

    def op(self, verb: str, action: str, op_id: str, params: str | None, body: str | None,
           codes: dict[str, str], result: str, gvk: dict[str, str] | None = None, body_types: tuple[str, ...] = ("*/*",),
           watch: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "description": f"{verb} {self.r.kind}",
            "operationId": op_id,
            "tags": [_tag(self.r)],
            "parameters": _params(params, self.v3) if params else [],
            "responses": self._responses(codes, result, watch),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk or self.gvk,
        }
        if body:
            if self.v3:
                out["requestBody"] = {"content": {t: {"schema": self._schema(body)} for t in body_types}}
                if action != "deletecollection" and action != "delete":
                    out["requestBody"]["required"] = True
            else:
                out["parameters"].append({"name": "body", "in": "body", "required": action not in ("delete", "deletecollection"),
                                          "schema": self._schema(body)})
                out["consumes"] = list(body_types)
        if not self.v3:
            out["produces"] = ["application/json", "application/yaml"]
            out["schemes"] = ["https"]
        return out


def _resource_paths(r: Resource, v3: bool) -> dict[str, Any]:
    ops = _Ops(r, v3)
    g = _op_group(r)
    ns = "Namespaced" if r.namespaced else ""
    base = f"/{_gv_path(r.group, r.version)}"
    collection = f"{base}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{base}/{r.plural}"
    item = f"{collection}/{{name}}"
    coll_params = ("namespace",) if r.namespaced else ()
    item_params = ("name", "namespace") if r.namespaced else ("name",)
    ok = {"200": "OK"}
    created = {"200": "OK", "201": "Created", "202": "Accepted"}
    patched = {"200": "OK", "201": "Created"}
    status_def = _META + "Status"
    delete_def = _META + "DeleteOptions"
    patch_def = _META + "Patch"
    k = r.kind
    paths: dict[str, Any] = {}

    paths[collection] = {
        "parameters": _path_params(coll_params, k, v3),
        "get": ops.op("list or watch objects of kind", "list", f"list{g}{ns}{k}", "list", None, ok, ops.list_def,
                      watch=True),
        "post": ops.op("create a", "post", f"create{g}{ns}{k}", "write", ops.kind_def, created, ops.kind_def),
        "delete": ops.op("delete collection of", "deletecollection", f"delete{g}Collection{ns}{k}", "delete",
                         delete_def, ok, status_def),
    }
    paths[item] = {
        "parameters": _path_params(item_params, k, v3),
        "get": ops.op("read the specified", "get", f"read{g}{ns}{k}", None, None, ok, ops.kind_def),
        "put": ops.op("replace the specified", "put", f"replace{g}{ns}{k}", "write", ops.kind_def,
                      {"200": "OK", "201": "Created"}, ops.kind_def),
        "patch": ops.op("partially update the specified", "patch", f"patch{g}{ns}{k}", "patch", patch_def, patched,
                        ops.kind_def, body_types=_PATCH_TYPES),
        "delete": ops.op("delete a", "delete", f"delete{g}{ns}{k}", "delete", delete_def,
                         {"200": "OK", "202": "Accepted"}, status_def),
    }
    if r.namespaced:
        paths[f"{base}/{r.plural}"] = {
            "parameters": _path_params((), k, v3) + _params("list", v3),
            "get": ops.op("list or watch objects of kind", "list", f"list{g}{k}ForAllNamespaces", None, None, ok,
                          ops.list_def, watch=True),
        }
    if "status" in r.subresources:
        paths[f"{item}/status"] = {
            "parameters": _path_params(item_params, k, v3),
            "get": ops.op("read status of the specified", "get", f"read{g}{ns}{k}Status", None, None, ok, ops.kind_def),
            "put": ops.op("replace status of the specified", "put", f"replace{g}{ns}{k}Status", "write", ops.kind_def,
                          {"200": "OK", "201": "Created"}, ops.kind_def),
            "patch": ops.op("partially update status of the specified", "patch", f"patch{g}{ns}{k}Status", "patch",
                            patch_def, patched, ops.kind_def, body_types=_PATCH_TYPES),
        }
    if "scale" in r.subresources:
        paths[f"{item}/scale"] = {
            "parameters": _path_params(item_params, k, v3),
            "get": ops.op("read scale of the specified", "get", f"read{g}{ns}{k}Scale", None, None, ok, _SCALE_DEF,
                          gvk=_SCALE_GVK),
            "put": ops.op("replace scale of the specified", "put", f"replace{g}{ns}{k}Scale", "write", _SCALE_DEF,
                          {"200": "OK", "201": "Created"}, _SCALE_DEF, gvk=_SCALE_GVK),
            "patch": ops.op("partially update scale of the specified", "patch", f"patch{g}{ns}{k}Scale", "patch",
                            patch_def, patched, _SCALE_DEF, gvk=_SCALE_GVK, body_types=_PATCH_TYPES),
        }
    return paths
