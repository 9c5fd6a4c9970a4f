"""v1 Secret decoding, defaulting and validation (Kubernetes v1.32).

Decode: every `data` value must be base64 as Go's encoding/json reads []byte (StdEncoding, padded, CR/LF
ignored); a bad value fails the whole request with 400 `Secret in version "v1" cannot be handled as a Secret:
illegal base64 data at input byte N`. Defaulting sets `type: Opaque`. Conversion folds `stringData` into
`data` (stringData wins) and drops it. Validation: key names, 1 MiB total, per-type required keys.
Values never appear in error messages.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from nanokube.api.errors import ApiError, FieldError, bad_request, forbidden, go_json_kind, invalid, required, too_long
from nanokube.api.validation import (
    FIELD_IMMUTABLE_MSG,
    is_config_map_key,
    name_is_dns_subdomain,
    validate_object_meta,
    validate_object_meta_update,
)

MAX_SECRET_SIZE = 1024 * 1024
OPAQUE = "Opaque"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
DOCKERCFG = "kubernetes.io/dockercfg"
DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
BASIC_AUTH = "kubernetes.io/basic-auth"
SSH_AUTH = "kubernetes.io/ssh-auth"
TLS = "kubernetes.io/tls"
REDACTED = "<secret contents redacted>"

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DECODE = [0xFF] * 256
for _i, _c in enumerate(_ALPHABET):
    _DECODE[_c] = _i


class CorruptBase64Error(ValueError):
    def __init__(self, offset: int) -> None:
        super().__init__(f"illegal base64 data at input byte {offset}")
        self.offset = offset


def go_b64decode(text: str) -> bytes:
    """base64.StdEncoding.Decode with Go's exact error offsets (non-strict: CR/LF skipped)."""
    src = text.encode()
    end = len(src)
    out = bytearray()
    si = 0
    while si < end:
        quantum = [0, 0, 0, 0]
        length = 4
        j = 0
        while j < 4:
            if si == end:
                if j == 0:
                    return bytes(out)
                raise CorruptBase64Error(si - j)
            ch = src[si]
            si += 1
            value = _DECODE[ch]
            if value != 0xFF:
                quantum[j] = value
                j += 1
                continue
            if ch in (0x0A, 0x0D):
                continue
            if ch != 0x3D:  # '='
                raise CorruptBase64Error(si - 1)
            if j in (0, 1):
                raise CorruptBase64Error(si - 1)
            if j == 2:
                while si < end and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == end:
                    raise CorruptBase64Error(end)
                if src[si] != 0x3D:
                    raise CorruptBase64Error(si - 1)
                si += 1
            while si < end and src[si] in (0x0A, 0x0D):
                si += 1
            if si < end:
                raise CorruptBase64Error(si)
            length = j
            break
        bits = quantum[0] << 18 | quantum[1] << 12 | quantum[2] << 6 | quantum[3]
        out.extend(bits.to_bytes(3, "big")[: length - 1])
    return bytes(out)


def _decode_error(message: str) -> ApiError:
    return bad_request(f'Secret in version "v1" cannot be handled as a Secret: {message}')


def prepare_secret(secret: dict[str, Any]) -> dict[str, Any]:
    """Decode-time work on a Secret from a client, in place: base64 check, type default, stringData fold.

    `data` values come out re-encoded in canonical base64, as the API server would serve them.
    Raises ApiError 400 on undecodable data.
    """
    data = secret.get("data")
    decoded: dict[str, bytes] = {}
    if data is not None:
        if not isinstance(data, dict):
            raise _decode_error(f"json: cannot unmarshal {go_json_kind(data)} into Go struct field Secret.data "
                                "of type map[string][]uint8")
        for key, value in data.items():
            if value is None:
                decoded[key] = b""
                continue
            if not isinstance(value, str):
                raise _decode_error(f"json: cannot unmarshal {go_json_kind(value)} into Go struct field "
                                    "Secret.data of type []uint8")
            try:
                decoded[key] = go_b64decode(value)
            except CorruptBase64Error as err:
                raise _decode_error(str(err)) from None
    string_data = secret.pop("stringData", None)
    if string_data is not None:
        if not isinstance(string_data, dict):
            raise _decode_error(f"json: cannot unmarshal {go_json_kind(string_data)} into Go struct field "
                                "Secret.stringData of type map[string]string")
        for key, value in string_data.items():
            if value is not None and not isinstance(value, str):
                raise _decode_error(f"json: cannot unmarshal {go_json_kind(value)} into Go struct field "
                                    "Secret.stringData of type string")
            decoded[key] = (value or "").encode()
    if data is not None or string_data is not None:
        secret["data"] = {k: base64.b64encode(v).decode() for k, v in decoded.items()}
    if not secret.get("type"):
        secret["type"] = OPAQUE
    return secret


def secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """Decoded data of a stored (already prepared) Secret."""
    return {k: base64.b64decode(v or "") for k, v in (secret.get("data") or {}).items()}


def _json_error(raw: bytes, into: str = "map[string]interface {}") -> str | None:
    """Go json.Unmarshal's error for raw into a map (None when it would succeed)."""
    text = raw.decode(errors="replace")
    if not text.strip():
        return "unexpected end of JSON input"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        if err.pos >= len(text):
            return "unexpected end of JSON input"
        where = "object key string" if err.msg.startswith("Expecting property name") else "value"
        return f"invalid character {_go_char(text[err.pos])} looking for beginning of {where}"
    if value is None or isinstance(value, dict):
        return None
    return f"json: cannot unmarshal {go_json_kind(value)} into Go value of type {into}"


def _go_char(ch: str) -> str:
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    return f"'{ch}'"


def validate_secret(secret: Mapping[str, Any]) -> list[FieldError]:
    """ValidateSecret on a prepared Secret."""
    errs = validate_object_meta(secret, True, name_is_dns_subdomain)
    data = secret_data(secret)
    total = 0
    for key, value in data.items():
        errs.extend(invalid(f"data[{key}]", key, msg) for msg in is_config_map_key(key))
        total += len(value)
    if total > MAX_SECRET_SIZE:
        errs.append(too_long("data", "", MAX_SECRET_SIZE))
    kind = secret.get("type") or ""
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    if kind == SERVICE_ACCOUNT_TOKEN:
        if not annotations.get("kubernetes.io/service-account.name"):
            errs.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif kind in (DOCKERCFG, DOCKER_CONFIG_JSON):
        key = ".dockercfg" if kind == DOCKERCFG else ".dockerconfigjson"
        if key not in data:
            errs.append(required(f"data[{key}]"))
        else:
            problem = _json_error(data[key])
            if problem:
                errs.append(invalid(f"data[{key}]", REDACTED, problem))
    elif kind == BASIC_AUTH:
        if "username" not in data and "password" not in data:
            errs.append(required("data[username]"))
            errs.append(required("data[password]"))
    elif kind == SSH_AUTH:
        if not data.get("ssh-privatekey"):
            errs.append(required("data[ssh-privatekey]"))
    elif kind == TLS:
        if "tls.crt" not in data:
            errs.append(required("data[tls.crt]"))
        if "tls.key" not in data:
            errs.append(required("data[tls.key]"))
    return errs


def validate_secret_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldError]:
    """ValidateSecretUpdate: type immutable; immutable Secrets keep their data."""
    errs = validate_object_meta_update(new, old)
    if (new.get("type") or "") != (old.get("type") or ""):
        errs.append(invalid("type", new.get("type") or "", FIELD_IMMUTABLE_MSG))
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        if secret_data(new) != secret_data(old):
            errs.append(forbidden("data", "field is immutable when `immutable` is set"))
    errs.extend(validate_secret(new))
    return errs
