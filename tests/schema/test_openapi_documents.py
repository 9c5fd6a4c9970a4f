"""Shape of the OpenAPI documents and how they are served (kube-openapi handler3 behaviour)."""

from __future__ import annotations

import hashlib
import json

from nanokube.apiserver import openapi


def test_index_lists_every_group_version_with_its_hash() -> None:
    index = json.loads(openapi.openapi_v3_index())
    assert set(index["paths"]) == {"api/v1", "apis/apps/v1", "apis/discovery.k8s.io/v1",
                                   "apis/coordination.k8s.io/v1", "apis/storage.k8s.io/v1", "apis/events.k8s.io/v1",
                                   "apis/batch/v1", "apis/autoscaling/v2", "apis/autoscaling/v1", "apis/networking.k8s.io/v1",
                                   "apis/policy/v1", "apis/rbac.authorization.k8s.io/v1", "apis/scheduling.k8s.io/v1",
                                   "apis/node.k8s.io/v1", "apis/apiextensions.k8s.io/v1", "apis/apiregistration.k8s.io/v1",
                                   "apis/authentication.k8s.io/v1", "apis/authorization.k8s.io/v1"}
    url = index["paths"]["api/v1"]["serverRelativeURL"]
    body = openapi.openapi_v3_document("api/v1")
    assert body is not None
    assert url == "/openapi/v3/api/v1?hash=" + hashlib.sha512(body).hexdigest().upper()


def test_group_version_document_has_what_explain_and_apply_need() -> None:
    doc = json.loads(openapi.openapi_v3_document("/api/v1/") or b"")
    schemas = doc["components"]["schemas"]
    service = schemas["io.k8s.api.core.v1.Service"]
    assert service["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Service", "version": "v1"}]
    assert service["type"] == "object"
    assert "enum" not in service["properties"]["kind"]
    assert service["properties"]["spec"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.ServiceSpec"}]
    ports = schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "port"
    assert ports["x-kubernetes-list-map-keys"] == ["port", "protocol"]
    assert ports["type"] == "array"
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {
        **{k: v for k, v in schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"].items() if k == "description"},
        "format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}
    refs = {m for m in _refs(doc)}
    assert refs <= {"#/components/schemas/" + name for name in schemas}
    item = doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]
    assert item["patch"]["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Service"}
    assert "fieldValidation" in [p["name"] for p in item["patch"]["parameters"]]
    assert "application/strategic-merge-patch+json" in item["patch"]["requestBody"]["content"]
    assert "get" in doc["paths"]["/api/v1/namespaces/{namespace}/services"]
    assert "/api/v1/nodes/{name}/status" in doc["paths"]


def test_unknown_group_version_is_none() -> None:
    assert openapi.openapi_v3_document("apis/batch/v2") is None
    assert openapi.serve("/openapi/v3/apis/example.com/v1") is None


def test_serving_headers_redirects_and_conditional_get() -> None:
    reply = openapi.serve("/openapi/v3/apps/v1".replace("/apps", "/apis/apps"))
    assert reply is not None and reply.status == 200
    etag = reply.headers["Etag"]
    assert reply.headers["Content-Type"] == "application/json"
    assert "Cache-Control" not in reply.headers
    good = openapi.serve("/openapi/v3/apis/apps/v1", etag.strip('"'))
    assert good is not None and good.headers["Cache-Control"] == "public, immutable"
    stale = openapi.serve("/openapi/v3/apis/apps/v1", "0123")
    assert stale is not None and stale.status == 301
    assert stale.headers["Location"] == "/openapi/v3/apis/apps/v1?hash=" + etag.strip('"')
    cached = openapi.serve("/openapi/v3/apis/apps/v1", if_none_match=etag)
    assert cached is not None and cached.status == 304 and cached.body == b""
    proto = openapi.serve("/openapi/v3/apis/apps/v1", accept="application/com.github.proto-openapi.spec.v3.v1.0+protobuf")
    assert proto is not None and proto.status == 406


def test_swagger_v2_document() -> None:
    doc = json.loads(openapi.openapi_v2())
    assert doc["swagger"] == "2.0"
    deployment = doc["definitions"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["properties"]["spec"] == {
        "$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec",
        "description": deployment["properties"]["spec"]["description"]}
    int_or_string = doc["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert (int_or_string["type"], int_or_string["format"]) == ("string", "int-or-string")
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        out = [v for k, v in node.items() if k == "$ref"]
        for v in node.values():
            out += _refs(v)
        return out
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []
