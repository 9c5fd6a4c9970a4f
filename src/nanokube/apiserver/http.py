"""Request/response plumbing: body decoding, content negotiation, Status replies."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from nanokube.api import errors
from nanokube.api.errors import ApiError

MAX_BODY = 3 * 1024 * 1024


def json_response(body: bytes | dict[str, Any], status: int = 200, *, warnings: list[str] | None = None
                  ) -> web.Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = web.Response(body=raw, status=status, content_type="application/json")
    for w in warnings or []:
        resp.headers.add("Warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return resp


def status_response(err: ApiError) -> web.Response:
    resp = json_response(orjson.dumps(err.status()) + b"\n", err.code)  # json.Encoder's newline, as Kubernetes
    for k, v in err.headers.items():
        resp.headers[k] = v
    return resp


def success_status(details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    return body


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None:
        if request.content_length > MAX_BODY:
            raise errors.too_large()
        return await request.read()  # the usual case: one read of a known length
    data = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        data += chunk
        if len(data) > MAX_BODY:
            raise errors.too_large()
    return bytes(data)


def decode_body(raw: bytes, content_type: str, *, track_duplicates: bool = False) -> Any:
    """The body as JSON values. track_duplicates: JSON objects remember repeated keys (for fieldValidation)."""
    from nanokube.apiserver import body  # the limits on what a body may expand to

    if not raw.strip():
        raise errors.bad_request("request body must not be empty")
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/vnd.kubernetes.protobuf":
        from nanokube.apiserver import protobuf

        return protobuf.decode_body(raw)
    if ctype not in ("", "application/json", "application/yaml", "text/yaml", "application/x-yaml", "*/*"):
        raise errors.unsupported_media_type(ctype)
    if "yaml" in ctype:
        import yaml

        try:
            return body.load_yaml(raw)
        except (yaml.YAMLError, body.BodyError) as exc:
            raise body.yaml_error(exc) from exc
    try:
        return body.load_json(raw, track_duplicates=track_duplicates)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        # Kubernetes' decoder message for malformed JSON bodies.
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


def wants_table(request: web.Request) -> str | None:
    """Return the Table apiVersion the client asked for, if any (first acceptable in Accept order)."""
    accept = request.headers.get("Accept", "")
    if "as=Table" not in accept:
        return None
    for part in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return f"meta.k8s.io/{params.get('v', 'v1')}"
        if "as" not in params:
            return None
    return None


def query_bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")
