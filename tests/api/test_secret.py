"""Secrets: Go-exact base64 errors, stringData folding, type default, key/size/type validation."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nanokube.api.errors import ApiError, invalid_object
from nanokube.api.secret import go_b64decode, prepare_secret, secret_data, validate_secret, validate_secret_update


def secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "default"}, **fields}


@pytest.mark.parametrize(("text", "offset"), [
    ("admin", 4),  # the classic: a plain-text value in `data`
    ("my-password", 2),
    ("hello world", 5),
    ("abc", 0),
    ("YWJj=", 4),
    ("YQ=", 3),
    ("YQ==\nYQ==", 5),
    ("Y===", 1),
    ("wörd", 1),
])
def test_go_base64_error_offsets(text: str, offset: int) -> None:
    with pytest.raises(ValueError, match=f"^illegal base64 data at input byte {offset}$"):
        go_b64decode(text)


@pytest.mark.parametrize(("text", "value"), [
    ("", b""), ("YWJj", b"abc"), ("YWI=", b"ab"), ("YQ==", b"a"), ("YW\nJj\r\n", b"abc"), ("cGFzc3dvcmQ=", b"password"),
])
def test_go_base64_accepts(text: str, value: bytes) -> None:
    assert go_b64decode(text) == value


def test_bad_base64_fails_the_request_with_400() -> None:
    with pytest.raises(ApiError) as caught:
        prepare_secret(secret(data={"user": "YWRtaW4=", "password": "admin"}))
    err = caught.value
    assert err.code == 400 and err.reason == "BadRequest"
    assert err.message == 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 4'
    assert "admin" not in err.message.replace("byte", "")


def test_string_data_is_folded_into_data_and_wins() -> None:
    obj = prepare_secret(secret(data={"a": "b2xk", "keep": "eA=="}, stringData={"a": "new", "b": "héllo"}))
    assert "stringData" not in obj
    assert obj["type"] == "Opaque"
    assert secret_data(obj) == {"a": b"new", "keep": b"x", "b": "héllo".encode()}
    assert obj["data"]["b"] == base64.b64encode("héllo".encode()).decode()


def test_data_is_served_in_canonical_base64() -> None:
    obj = prepare_secret(secret(data={"k": "YW\nJj"}, type="Opaque"))
    assert obj["data"] == {"k": "YWJj"}


def test_valid_secret_has_no_errors() -> None:
    obj = prepare_secret(secret(stringData={"username": "u", "password": "p"}, type="kubernetes.io/basic-auth"))
    assert validate_secret(obj) == []


def test_bad_key_name() -> None:
    obj = prepare_secret(secret(stringData={"my key": "v"}))
    err = invalid_object("", "Secret", "creds", validate_secret(obj))
    assert err.message == (
        'Secret "creds" is invalid: data[my key]: Invalid value: "my key": a valid config key must consist of '
        "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used "
        "for validation is '[-._a-zA-Z0-9]+')")


def test_dot_dot_key() -> None:
    errs = validate_secret(prepare_secret(secret(stringData={"..x": "v"})))
    assert [str(e) for e in errs] == ["data[..x]: Invalid value: \"..x\": must not start with '..'"]


def test_too_large() -> None:
    errs = validate_secret(prepare_secret(secret(stringData={"a": "x" * (1024 * 1024), "b": "y"})))
    assert [str(e) for e in errs] == ["data: Too long: must have at most 1048576 bytes"]


def test_tls_requires_cert_and_key() -> None:
    errs = validate_secret(prepare_secret(secret(type="kubernetes.io/tls", stringData={"tls.crt": "c"})))
    assert [str(e) for e in errs] == ["data[tls.key]: Required value"]


def test_dockerconfigjson_must_be_json_and_is_redacted() -> None:
    obj = prepare_secret(secret(type="kubernetes.io/dockerconfigjson", stringData={".dockerconfigjson": "{bad"}))
    errs = validate_secret(obj)
    assert [str(e) for e in errs] == [
        'data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": '
        "invalid character 'b' looking for beginning of object key string"]


def test_bad_secret_name() -> None:
    errs = validate_secret(prepare_secret({"metadata": {"name": "Creds", "namespace": "default"}}))
    assert [e.field for e in errs] == ["metadata.name"]


def test_update_type_and_immutable_data() -> None:
    old = prepare_secret(secret(stringData={"a": "1"}, immutable=True))
    old["metadata"].update(resourceVersion="5", uid="u")
    new = prepare_secret(secret(stringData={"a": "2"}, type="kubernetes.io/tls", immutable=True))
    new["metadata"].update(resourceVersion="5", uid="u")
    messages = [str(e) for e in validate_secret_update(old, new)]
    assert 'type: Invalid value: "kubernetes.io/tls": field is immutable' in messages
    assert "data: Forbidden: field is immutable when `immutable` is set" in messages
