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
from collections.abc import Callable
from typing import Any, Protocol

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


class LocalKubelet(Protocol):
    """The streaming endpoints of a node agent running in this same process (wired by server.py): the API
    server hands it the authorized request and the client's connection instead of relaying every message over
    a second WebSocket to the kubelet port."""

    async def serve(self, sub: str, request: web.Request, namespace: str, pod: str,
                    container: str | None) -> web.StreamResponse: ...


def _no_local(_node: str) -> LocalKubelet | None:
    return None


_local: Callable[[str], LocalKubelet | None] = _no_local


def serve_in_process(lookup: Callable[[str], LocalKubelet | None]) -> None:
    """Streams to a pod on a node whose agent runs in this process go to ``lookup(node name)``."""
    global _local
    _local = lookup


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


async def _target(registry: Registry, request: web.Request, sub: str, namespace: str,
                  name: str) -> tuple[str, str | None]:
    """The pod's node and the addressed container (None for port-forward), checked as kube-apiserver does."""
    pod = await registry.get(PODS, namespace, name)
    node_name = (pod.get("spec") or {}).get("nodeName")
    container = None if sub == "portforward" else pick_container(pod, request.query.get("container"))
    if not node_name:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    return node_name, container


async def _url(registry: Registry, node_name: str, sub: str, namespace: str, name: str,
               container: str | None) -> str:
    path = f"/{KUBELET_PATH[sub]}/{namespace}/{name}" + (f"/{container}" if container is not None else "")
    return await kubelet_base(registry, node_name) + path


def _status_error(resp: web.StreamResponse) -> ApiError | None:
    """The kubelet's refusal (an unprepared Response carrying a Status) as the error to give the client."""
    if resp.prepared or not isinstance(resp, web.Response):
        return None
    body = resp.body if isinstance(resp.body, bytes) else b""
    return _as_error(resp.status, body)


def _as_error(status: int, body: bytes) -> ApiError:
    try:
        data = orjson.loads(body)
        return ApiError(status, data.get("reason") or "InternalError", data.get("message") or "")
    except (orjson.JSONDecodeError, AttributeError):
        return ApiError(status if status >= 400 else 500, "InternalError", body.decode(errors="replace").strip())


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket" and \
        "upgrade" in request.headers.get("Connection", "").lower()


async def _kubelet_error(url: str, params: list[tuple[str, str]]) -> ApiError:
    """The kubelet's own answer to the request, as the error to give the client."""
    async with session().post(url, params=params) as resp:
        body = await resp.read()
        return _as_error(resp.status, body)


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
    namespace = namespace or "default"
    node_name, container = await _target(registry, request, sub, namespace, name)
    local = _local(node_name)
    if local is not None:
        resp = await local.serve(sub, request, namespace, name, container)
        error = _status_error(resp)
        if error is not None:
            raise error
        return resp
    url = await _url(registry, node_name, sub, namespace, name, container)
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
