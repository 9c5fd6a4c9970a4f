"""services/proxy and pods/proxy: `/api/v1/namespaces/{ns}/services/[scheme:]{name}[:port]/proxy/{path}` (and the
same for pods) forwards any HTTP request to a ready endpoint of the Service (its target port) or to the pod's
address, as kube-apiserver does; `kubectl proxy` and the `kubectl cluster-info` links use it."""

from __future__ import annotations

import ssl

import aiohttp
import orjson
from aiohttp import web

from nanokube.api import errors
from nanokube.api.errors import ApiError
from nanokube.api.served_resources import by_kind
from nanokube.apiserver import streamproxy
from nanokube.apiserver.registry import Registry

PODS = by_kind("", "Pod")
SERVICES = by_kind("", "Service")
SLICES = by_kind("discovery.k8s.io", "EndpointSlice")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "authorization", "host", "content-length"})
_insecure = ssl.create_default_context()
_insecure.check_hostname = False
_insecure.verify_mode = ssl.CERT_NONE


def split_name(text: str) -> tuple[str, str, str]:
    """(scheme, name, port) of `name`, `name:port` or `scheme:name:port`."""
    parts = text.split(":")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return "", text, ""


async def _service_target(registry: Registry, ns: str, name: str, port: str) -> tuple[str, int]:
    svc = await registry.get(SERVICES, ns, name)
    ports = (svc.get("spec") or {}).get("ports") or []
    chosen = None
    for p in ports:
        if not port or p.get("name") == port or str(p.get("port")) == port:
            chosen = p
            break
    if chosen is None:
        raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
    if chosen.get("protocol", "TCP") != "TCP":  # HTTP to a UDP-only listener would never be answered
        raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: port {chosen.get('port')}/"
                       f"{chosen.get('protocol')} of service \"{name}\" does not carry TCP")
    port_name = chosen.get("name") or ""
    raws, *_ = await registry.list(SLICES, ns, label_selector=f"kubernetes.io/service-name={name}")
    for raw in raws:
        eps = orjson.loads(raw)
        target = next((p.get("port") for p in eps.get("ports") or [] if (p.get("name") or "") == port_name), None)
        if not target:
            continue
        for ep in eps.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready", True) and ep.get("addresses"):
                return ep["addresses"][0], int(target)
    raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')


async def _pod_target(registry: Registry, ns: str, name: str, port: str) -> tuple[str, int]:
    pod = await registry.get(PODS, ns, name)
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        raise errors.bad_request("address not allowed")
    if not port:
        return ip, 80
    if port.isdigit():
        return ip, int(port)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == port:
                return ip, int(p["containerPort"])
    raise errors.bad_request(f'no such container port "{port}" in pod {name}')


async def serve(registry: Registry, request: web.Request) -> web.StreamResponse:
    info = request.match_info
    ns, kind, tail = info["namespace"], info["kind"], info["tail"]
    scheme, name, port = split_name(info["name"])
    if not tail:
        if request.method == "GET":
            raise web.HTTPMovedPermanently(location=request.path + "/" + (f"?{request.query_string}"
                                                                           if request.query_string else ""))
        tail = "/"
    if kind == "services":
        host, number = await _service_target(registry, ns, name, port)
    else:
        host, number = await _pod_target(registry, ns, name, port)
    scheme = scheme or "http"
    if ":" in host:
        host = f"[{host}]"
    url = f"{scheme}://{host}:{number}{tail}"
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    body = await request.read() if request.can_read_body else None
    try:
        async with streamproxy.session().request(request.method, url, params=request.query, headers=headers,
                                                 data=body, allow_redirects=False,
                                                 ssl=_insecure if scheme == "https" else None) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    response.headers.add(key, value)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except aiohttp.ClientError as err:
        raise ApiError(503, "ServiceUnavailable", f"error trying to reach {kind[:-1]}: {err}") from None


def route_pattern() -> str:
    return "/api/v1/namespaces/{namespace}/{kind:services|pods}/{name}/proxy{tail:(/.*)?}"
