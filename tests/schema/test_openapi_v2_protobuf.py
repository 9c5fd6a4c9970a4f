"""/openapi/v2 as gnostic's protobuf openapi.v2.Document: the wire encoding (read back with an independent
decoder here), content negotiation like kube-openapi, and the real kubectl reading it for a `kind: List`
(client-side validation) and `kubectl explain --output=plaintext-openapiv2`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from typing import Any

import pytest
import yaml

from nanokube.apiserver import openapi, openapi_v2_proto

PROTO_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")

# Field numbers from gnostic openapiv2/OpenAPIv2.proto, written out independently of the encoder.
DOC_SWAGGER, DOC_INFO, DOC_PATHS, DOC_DEFINITIONS = 1, 2, 8, 9
SCHEMA_REF, SCHEMA_DESCRIPTION, SCHEMA_REQUIRED, SCHEMA_ADDITIONAL = 1, 4, 19, 21
SCHEMA_TYPE, SCHEMA_ITEMS, SCHEMA_PROPERTIES, SCHEMA_EXTENSION = 22, 23, 25, 31


# ---------------------------------------------------------------- an independent wire decoder


def fields(buf: bytes) -> dict[int, list[Any]]:
    """Top-level fields of one message: number -> values (int for varint, bytes for length-delimited)."""
    out: dict[int, list[Any]] = defaultdict(list)
    i = 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            b = buf[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value

    while i < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number].append(varint())
        elif wire == 2:
            n = varint()
            out[number].append(buf[i:i + n])
            i += n
        elif wire == 1:
            out[number].append(buf[i:i + 8])
            i += 8
        else:
            raise AssertionError(f"unexpected wire type {wire} for field {number}")
    assert i == len(buf), "message overran its length"
    return out


def text(msg: dict[int, list[Any]], number: int) -> str:
    return msg[number][0].decode() if msg.get(number) else ""


def named(buf: bytes, number: int = 1) -> dict[str, bytes]:
    """A gnostic Named* list (name = 1, value = 2) as an ordered dict."""
    out = {}
    for entry in fields(buf)[number]:
        f = fields(entry)
        out[text(f, 1)] = f[2][0]
    return out


def extensions(schema: dict[int, list[Any]], number: int = SCHEMA_EXTENSION) -> dict[str, Any]:
    out = {}
    for entry in schema.get(number, []):
        f = fields(entry)
        out[text(f, 1)] = yaml.safe_load(text(fields(f[2][0]), 2))
    return out


@pytest.fixture(scope="module")
def document() -> dict[int, list[Any]]:
    return fields(openapi.openapi_v2_protobuf())


@pytest.fixture(scope="module")
def definitions(document: dict[int, list[Any]]) -> dict[str, bytes]:
    return named(document[DOC_DEFINITIONS][0])


# ---------------------------------------------------------------- encoding


def test_wire_primitives_match_hand_computed_bytes() -> None:
    # Schema{ $ref = 1: "a", type = 22: TypeItem{value: ["string"]}, properties = 25 present but empty }
    assert openapi_v2_proto.schema({"$ref": "a"}) == b"\x0a\x01a"
    assert openapi_v2_proto.schema({"type": "string"}) == b"\xb2\x01\x08\x0a\x06string"
    assert openapi_v2_proto.schema({"properties": {}}) == b"\xca\x01\x00"
    assert openapi_v2_proto.schema({"maxLength": 300}) == b"\x58\xac\x02"
    assert openapi_v2_proto.schema({"minimum": -1}) == b"\x49" + b"\x00" * 6 + b"\xf0\xbf"
    assert openapi_v2_proto.schema({"additionalProperties": False}) == b"\xaa\x01\x02\x10\x00"


def test_document_carries_swagger_info_and_every_definition(document: dict[int, list[Any]],
                                                            definitions: dict[str, bytes]) -> None:
    as_json = json.loads(openapi.openapi_v2())
    assert text(document, DOC_SWAGGER) == "2.0"
    info = fields(document[DOC_INFO][0])
    assert (text(info, 1), text(info, 2)) == (as_json["info"]["title"], as_json["info"]["version"])
    assert list(definitions) == list(as_json["definitions"])


def test_kind_definition_fields_refs_and_vendor_extensions(definitions: dict[str, bytes]) -> None:
    service = fields(definitions["io.k8s.api.core.v1.Service"])
    assert extensions(service)["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Service", "version": "v1"}]
    assert fields(service[SCHEMA_TYPE][0])[1] == [b"object"]
    props = named(service[SCHEMA_PROPERTIES][0])
    assert list(props) == ["apiVersion", "kind", "metadata", "spec", "status"]
    spec = fields(props["spec"])
    assert text(spec, SCHEMA_REF) == "#/definitions/io.k8s.api.core.v1.ServiceSpec"
    assert SCHEMA_TYPE not in spec  # kube-openapi rejects a $ref that also has a type

    ports = fields(named(fields(definitions["io.k8s.api.core.v1.ServiceSpec"])[SCHEMA_PROPERTIES][0])["ports"])
    assert fields(ports[SCHEMA_TYPE][0])[1] == [b"array"]
    item = fields(fields(ports[SCHEMA_ITEMS][0])[1][0])
    assert text(item, SCHEMA_REF) == "#/definitions/io.k8s.api.core.v1.ServicePort"
    assert extensions(ports) == {"x-kubernetes-list-map-keys": ["port", "protocol"], "x-kubernetes-list-type": "map",
                                 "x-kubernetes-patch-merge-key": "port", "x-kubernetes-patch-strategy": "merge"}
    port = fields(definitions["io.k8s.api.core.v1.ServicePort"])
    assert [r.decode() for r in port[SCHEMA_REQUIRED]] == ["port"]
    assert "ServicePort contains information" in text(port, SCHEMA_DESCRIPTION)

    data = fields(named(fields(definitions["io.k8s.api.core.v1.ConfigMap"])[SCHEMA_PROPERTIES][0])["data"])
    value_schema = fields(fields(data[SCHEMA_ADDITIONAL][0])[1][0])
    assert fields(value_schema[SCHEMA_TYPE][0])[1] == [b"string"]


def test_paths_carry_patch_consumes_gvk_and_field_validation(document: dict[int, list[Any]]) -> None:
    paths = named(document[DOC_PATHS][0], 2)  # Paths {vendor_extension = 1; repeated NamedPathItem path = 2}
    item = fields(paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"])
    patch = fields(item[8][0])
    assert "application/strategic-merge-patch+json" in [c.decode() for c in patch[7]]
    assert extensions(patch, 13)["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment",
                                                                        "version": "v1"}
    query_names = []
    for p in patch[8]:
        non_body = fields(fields(fields(p)[1][0]).get(2, [b""])[0])
        if 3 in non_body:
            query_names.append(text(fields(non_body[3][0]), 4))
    assert "fieldValidation" in query_names
    path_params = [fields(fields(fields(fields(p)[1][0])[2][0])[4][0]) for p in item[9][:2]]
    assert [(text(p, 4), p[1]) for p in path_params] == [("name", [1]), ("namespace", [1])]


# ---------------------------------------------------------------- serving


def test_content_negotiation_like_kube_openapi() -> None:
    json_reply = openapi.serve("/openapi/v2")
    proto = openapi.serve("/openapi/v2", accept=PROTO_ACCEPT)
    assert json_reply is not None and proto is not None
    assert proto.status == 200 and proto.body == openapi.openapi_v2_protobuf()
    assert proto.headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert proto.headers["Vary"] == "Accept"
    assert proto.headers["Etag"] == json_reply.headers["Etag"]  # one ETag for both renderings, as kube-openapi
    new_spelling = openapi.serve("/openapi/v2", accept="application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    assert new_spelling is not None and new_spelling.body == proto.body
    for accept, expected in [("application/json", "application/json"), ("*/*", "application/json"),
                             (f"{PROTO_ACCEPT}, application/json;q=0.5", proto.headers["Content-Type"]),
                             (f"application/json;q=0.1, {PROTO_ACCEPT}", proto.headers["Content-Type"])]:
        reply = openapi.serve("/openapi/v2", accept=accept)
        assert reply is not None and reply.headers["Content-Type"] == expected, accept
    refused = openapi.serve("/openapi/v2", accept="application/yaml")
    assert refused is not None and refused.status == 406
    cached = openapi.serve("/openapi/v2", accept=PROTO_ACCEPT, if_none_match=proto.headers["Etag"])
    assert cached is not None and cached.status == 304 and cached.body == b""


def test_protobuf_is_built_lazily_and_quickly() -> None:
    script = (
        "import time\n"
        "from nanokube.apiserver import openapi\n"
        "openapi.serve('/openapi/v3'); openapi.serve('/openapi/v2')\n"
        "assert openapi._v2_proto_at.cache_info().currsize == 0\n"
        "t = time.perf_counter(); openapi.serve('/openapi/v2', accept='" + PROTO_ACCEPT + "')\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert float(out.stdout) < 1.0


# ---------------------------------------------------------------- the real kubectl

CONFIGMAP_LIST = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: v2-list-a}
  data: {x: "1"}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: v2-list-b}
  data: {y: "2"}
"""


@needs_kubectl
def test_kubectl_apply_list_validates_with_v2_protobuf(api_server) -> None:  # type: ignore[no-untyped-def]
    out = api_server.apply(CONFIGMAP_LIST)
    assert "configmap/v2-list-a created" in out and "configmap/v2-list-b created" in out
    again = api_server.apply(CONFIGMAP_LIST.replace('"2"', '"3"'))
    assert "configmap/v2-list-a unchanged" in again and "configmap/v2-list-b configured" in again

    unknown = api_server.kubectl("apply", "-f", "-", check=False,
                                 input=CONFIGMAP_LIST.replace("v2-list-b}", "v2-list-c}\n  bogus: 1"))
    assert unknown.returncode != 0
    assert 'ValidationError(ConfigMap): unknown field "bogus" in io.k8s.api.core.v1.ConfigMap' in unknown.stderr
    wrong_type = api_server.kubectl("apply", "-f", "-", check=False,
                                    input=CONFIGMAP_LIST.replace("v2-list-b}", "v2-list-c}\n  immutable: maybe"))
    assert wrong_type.returncode != 0
    assert 'invalid type for io.k8s.api.core.v1.ConfigMap.immutable: got "string", expected "boolean"' \
        in wrong_type.stderr
    names = api_server.kubectl("get", "configmaps", "-o", "name").stdout.split()
    assert "configmap/v2-list-c" not in names


@needs_kubectl
def test_kubectl_apply_list_nested_unknown_field_through_refs(api_server) -> None:  # type: ignore[no-untyped-def]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "v2-list-web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nanokube/echo", "ports": [{"containerPort": 80,
                                                                                          "hostPorts": 1}]}]}}},
    }
    manifest = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [deployment]})
    proc = api_server.kubectl("apply", "-f", "-", input=manifest, check=False)
    assert proc.returncode != 0
    assert ('ValidationError(Deployment.spec.template.spec.containers[0].ports[0]): unknown field "hostPorts" in '
            "io.k8s.api.core.v1.ContainerPort") in proc.stderr


@needs_kubectl
def test_kubectl_explain_plaintext_openapiv2(api_server) -> None:  # type: ignore[no-untyped-def]
    out = api_server.kubectl("explain", "service.spec", "--output=plaintext-openapiv2").stdout
    assert "KIND:     Service" in out and "RESOURCE: spec <Object>" in out
    assert "ServiceSpec describes the attributes that a user creates on a service." in out
    assert "   ports\t<[]Object>" in out and "   clusterIP\t<string>" in out
    ports = api_server.kubectl("explain", "deployment.spec.template.spec.containers.ports",
                               "--output=plaintext-openapiv2").stdout
    assert "VERSION:  apps/v1" in ports and "   containerPort\t<integer> -required-" in ports
