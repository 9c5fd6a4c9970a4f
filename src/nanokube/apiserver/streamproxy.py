"""pods/exec, pods/attach and pods/portforward: the API server checks the request as kube-apiserver does (the
pod, its container, its node), then proxies the upgraded stream to the kubelet port of the pod's node.

The client's WebSocket is accepted with the subprotocol the kubelet chose, and messages are relayed unchanged
both ways (channel frames for exec/attach, port-forward frames, or the SPDY byte pipe of kubectl's
port-forward tunnel). A kubelet that refuses the upgrade has its Status passed back before any upgrade, so a
client that falls back to SPDY gets the same error a second time, as from kube-apiserver.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from nanokube.api import errors
from nanokube.api.errors import ApiError
from nanokube.api.served_resources import by_kind
from nanokube.apiserver import kubelet_client
from nanokube.apiserver.registry import Registry

PODS = by_kind("", "Pod")
NODES = by_kind("", "Node")
STREAMING = frozenset({"exec", "attach", "portforward"})
KUBELET_PATH = {"exec": "exec", "attach": "attach", "portforward": "portForward"}
MAX_MESSAGE = 64 * 1024 * 1024
_session: aiohttp.ClientSession | None = None


def session() -> aiohttp.ClientSession:
    """One connection pool to the kubelets for the whole API server."""
    global _session
    if _session is None or _session.closed:
        kubelet = kubelet_client.current()  # TLS checked against the cluster CA, the token on every request
        _session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                                         skip_auto_headers=("User-Agent",), headers=kubelet.headers(),
                                         connector=aiohttp.TCPConnector(ssl=kubelet.ssl_context()))
    return _session


async def close_session(_app: object = None) -> None:
    global _session
    if _session is not None and not _session.closed:
        await _session.close()
    _session = None


async def kubelet_base(registry: Registry, node_name: str) -> str:
    node = await registry.get(NODES, None, node_name)
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    address = next((a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    if not port or not address:
        raise errors.bad_request(f"node {node_name} has no kubelet endpoint")
    host = f"[{address}]" if ":" in address else address
    return f"{kubelet_client.current().scheme}://{host}:{port}"


def pick_container(pod: dict[str, Any], requested: str | None) -> str:
    """The container a stream addresses (the apiserver's validation and messages)."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    containers = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    ephemerals = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not requested:
        if len(containers) == 1:
            return containers[0]
        message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
        if inits:
            message += f" or one of the init containers: [{' '.join(inits)}]"
        if ephemerals:
            message += f" or one of the ephemeral containers: [{' '.join(ephemerals)}]"
        raise errors.bad_request(message)
    if requested not in containers + inits + ephemerals:
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


async def kubelet_url(registry: Registry, request: web.Request, sub: str, namespace: str, name: str) -> str:
    pod = await registry.get(PODS, namespace, name)
    node_name = (pod.get("spec") or {}).get("nodeName")
    path = f"/{KUBELET_PATH[sub]}/{namespace}/{name}"
    if sub != "portforward":
        path += "/" + pick_container(pod, request.query.get("container"))
    if not node_name:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    return await kubelet_base(registry, node_name) + path


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket" and \
        "upgrade" in request.headers.get("Connection", "").lower()


async def _kubelet_error(url: str, params: list[tuple[str, str]]) -> ApiError:
    """The kubelet's own answer to the request, as the error to give the client."""
    async with session().post(url, params=params) as resp:
        body = await resp.read()
        status = resp.status
    try:
        data = orjson.loads(body)
        return ApiError(status, data.get("reason") or "InternalError", data.get("message") or "")
    except (orjson.JSONDecodeError, AttributeError):
        return ApiError(status if status >= 400 else 500, "InternalError", body.decode(errors="replace").strip())


async def _relay(source: Any, sink: Any) -> None:
    async for msg in source:
        if msg.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(msg.data)
        elif msg.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(msg.data)
        elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
            break


async def serve(registry: Registry, request: web.Request, sub: str, namespace: str | None,
                name: str) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    url = await kubelet_url(registry, request, sub, namespace or "default", name)
    params = [(k, v) for k, v in request.query.items() if k != "container"]
    if not _is_websocket(request):
        raise await _kubelet_error(url, params)
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    try:
        upstream = await session().ws_connect(url, params=params, protocols=offered, compress=0, autoping=True,
                                              max_msg_size=MAX_MESSAGE, autoclose=True)
    except aiohttp.WSServerHandshakeError:
        raise await _kubelet_error(url, params) from None
    except aiohttp.ClientError as err:
        raise ApiError(500, "InternalError", f"error dialing backend: {err}") from None
    try:
        ws = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (),
                                   max_msg_size=MAX_MESSAGE, compress=False, autoping=True)
        await ws.prepare(request)
        to_kubelet = asyncio.ensure_future(_relay(ws, upstream))
        to_client = asyncio.ensure_future(_relay(upstream, ws))
        await asyncio.wait([to_kubelet, to_client], return_when=asyncio.FIRST_COMPLETED)
        if to_client.done():
            # the kubelet finished: its last messages are relayed; closing ends the client's read loop
            await ws.close(code=upstream.close_code or aiohttp.WSCloseCode.OK)
        to_kubelet.cancel()
        to_client.cancel()
        await asyncio.gather(to_kubelet, to_client, return_exceptions=True)
        return ws
    finally:
        with contextlib.suppress(Exception):
            await upstream.close()
