"""Decode-time checks: unknown/duplicate fields and Go type errors, with Kubernetes' wording."""

from __future__ import annotations

import pytest

from nanokube.api import openapi_schemas
from nanokube.api.errors import ApiError


def test_unknown_fields_in_nested_lists_and_maps() -> None:
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"any-key": "ok"}, "annotations": {"x": "y"}, "colour": "red"},
        "spec": {
            "containers": [
                {"name": "a", "image": "i", "ports": [{"containerPort": 80, "hostPortt": 1}]},
                {"name": "b", "image": "i", "resources": {"limits": {"cpu": "1"}}, "envv": []},
            ],
            "nodeSelector": {"disk": "ssd"},
            "volumes": [{"name": "v", "emptyDir": {"medium": "", "sizeLimitt": "1Gi"}}],
        },
        "status": {"phase": "Running", "extra": True},
    }
    assert openapi_schemas.find_unknown_fields("", "v1", "Pod", pod) == [
        "metadata.colour",
        "spec.containers[0].ports[0].hostPortt",
        "spec.containers[1].envv",
        "spec.volumes[0].emptyDir.sizeLimitt",
        "status.extra",
    ]


def test_opaque_and_case_sensitive_fields() -> None:
    obj = {"metadata": {"managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:anything": {}}}}]},
           "Spec": {}}
    assert openapi_schemas.find_unknown_fields("", "v1", "Service", obj) == ["Spec"]


def test_duplicate_fields_are_reported_in_order() -> None:
    obj = openapi_schemas.loads_tracking_duplicates(
        b'{"metadata":{"name":"a","name":"b","labels":{"k":"1","k":"2"}},"spec":{"type":"ClusterIP","bogus":1}}')
    assert obj["metadata"]["name"] == "b"
    assert openapi_schemas.strict_errors("", "v1", "Service", obj) == [
        'duplicate field "metadata.name"',
        'duplicate field "metadata.labels.k"',
        'unknown field "spec.bogus"',
    ]


def test_strict_rejects_with_all_fields_in_one_message() -> None:
    body = {"spec": {"foo": 1, "ports": [{"port": 80, "bogus": 2}]}}
    with pytest.raises(ApiError) as info:
        openapi_schemas.check_body("", "v1", "Service", body, openapi_schemas.STRICT)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"
    assert info.value.message == ('Service in version "v1" cannot be handled as a Service: strict decoding error: '
                                  'unknown field "spec.foo", unknown field "spec.ports[0].bogus"')


def test_warn_returns_warnings_and_ignore_returns_none() -> None:
    body = {"spec": {"foo": 1}}
    assert openapi_schemas.check_body("", "v1", "Service", body, openapi_schemas.WARN) == ['unknown field "spec.foo"']
    assert openapi_schemas.check_body("", "v1", "Service", body, openapi_schemas.IGNORE) == []
    assert openapi_schemas.warning_header('unknown field "spec.foo"') == '299 - "unknown field \\"spec.foo\\""'


@pytest.mark.parametrize(("body", "message"), [
    ({"spec": {"ports": [{"port": "80"}]}},
     "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32"),
    ({"spec": {"ports": [{"port": 80.5}]}},
     "json: cannot unmarshal number 80.5 into Go struct field ServicePort.spec.ports.port of type int32"),
    ({"spec": "x"}, "json: cannot unmarshal string into Go struct field Service.spec of type v1.ServiceSpec"),
    ({"spec": {"ports": {"port": 1}}},
     "json: cannot unmarshal object into Go struct field ServiceSpec.spec.ports of type []v1.ServicePort"),
    ({"metadata": {"labels": {"a": 1}}},
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"),
    ({"spec": {"ports": [{"port": 1, "targetPort": True}]}},
     "json: cannot unmarshal bool into Go struct field ServicePort.spec.ports.targetPort of type int32"),
])
def test_type_errors_have_go_wording(body: dict, message: str) -> None:
    with pytest.raises(ApiError) as info:
        openapi_schemas.check_body("", "v1", "Service", body, openapi_schemas.IGNORE)
    assert info.value.code == 400
    assert info.value.message == f'Service in version "v1" cannot be handled as a Service: {message}'


def test_valid_values_pass() -> None:
    body = {"spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}],
                     "selector": None, "clusterIP": None}}
    assert openapi_schemas.type_error("", "v1", "Service", body) is None
    assert openapi_schemas.check_body("", "v1", "Service", body, openapi_schemas.STRICT) == []


def test_field_validation_parameter() -> None:
    assert openapi_schemas.normalize_directive(None) == openapi_schemas.WARN
    assert openapi_schemas.normalize_directive("Strict") == openapi_schemas.STRICT
    with pytest.raises(ApiError) as info:
        openapi_schemas.normalize_directive("strict", "PatchOptions")
    assert info.value.code == 422
    assert info.value.message == ('PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: '
                                  '"strict": supported values: "", "Ignore", "Strict", "Warn"')
