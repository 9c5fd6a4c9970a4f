"""The kubelet's streaming endpoints on the node's kubelet port (the API server proxies pods/exec, pods/attach
and pods/portforward here, as kube-apiserver does to the kubelet):

GET|POST /exec/{namespace}/{pod}/{container}?command=..&stdin=&stdout=&stderr=&tty=
GET|POST /attach/{namespace}/{pod}/{container}?stdin=&stdout=&stderr=&tty=
GET|POST /portForward/{namespace}/{pod}[?ports=..]

Only WebSocket upgrades are served; a request that is not one (SPDY) is answered with its error, or 400 when
it would have been acceptable, so a client falling back to SPDY sees the same message as over WebSocket.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from nanokube.agent import attach, channels, poddial, portforward
from nanokube.agent import exec as exec_
from nanokube.agent.nodecontext import NodeRuntime


def status_error(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return web.Response(status=code, body=json.dumps(body).encode(), content_type="application/json")


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true")


class Streaming:
    def __init__(self, rt: NodeRuntime) -> None:
        self.rt = rt

    def worker(self, namespace: str, pod: str) -> Any:
        return self.rt.workers.get((namespace, pod))

    def container_process(self, ns: str, pod: str, name: str) -> Any:
        """The running process of the addressed container, or the error response to send."""
        worker = self.worker(ns, pod)
        if worker is None:
            return status_error(404, "NotFound", f'pod "{pod}" in namespace "{ns}" is not running on this node')
        c = worker.containers.get(name)
        if c is None or not c.running:
            return status_error(404, "NotFound", f'container not found ("{name}")')
        return c.proc

    async def _upgrade(self, request: web.Request, supported: tuple[str, ...]) -> channels.ChannelSocket | None:
        protocol = channels.choose(request, supported)
        if protocol is None:
            return None
        ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), max_msg_size=channels.MAX_MESSAGE,
                                   compress=False, autoping=True)
        await ws.prepare(request)
        return channels.ChannelSocket(ws, protocol)

    async def serve(self, sub: str, request: web.Request, namespace: str, pod: str,
                    container: str | None) -> web.StreamResponse:
        """One streaming request handed over in-process by the API server of this process (it authorized it):
        the same answers as on the kubelet port, without a second WebSocket hop. An error comes back as an
        unprepared Response carrying the Status."""
        if sub == "portforward":
            return await self.port_forward(request, namespace, pod)
        if sub == "exec":
            return await self.exec(request, namespace, pod, container or "")
        return await self.attach(request, namespace, pod, container or "")

    async def exec(self, request: web.Request, ns: str, pod: str, container: str) -> web.StreamResponse:
        target = self.container_process(ns, pod, container)
        if isinstance(target, web.Response):
            return target
        command = request.query.getall("command", [])
        if not command:
            return status_error(400, "BadRequest", "you must specify at least 1 command")
        opts = exec_.ExecOptions(command=list(command), stdin=_flag(request, "stdin"),
                                 stdout=_flag(request, "stdout"), stderr=_flag(request, "stderr"),
                                 tty=_flag(request, "tty"))
        if not channels.is_websocket(request):
            return status_error(400, "BadRequest", "only WebSocket upgrades are served (v5.channel.k8s.io, "
                                "v4.channel.k8s.io)")
        sock = await self._upgrade(request, channels.EXEC_PROTOCOLS)
        if sock is None:
            return status_error(400, "BadRequest", "none of the offered subprotocols is supported")
        try:
            await exec_.run(sock, target, opts)
        finally:
            await sock.ws.close()
        return sock.ws

    async def attach(self, request: web.Request, ns: str, pod: str, container: str) -> web.StreamResponse:
        target = self.container_process(ns, pod, container)
        if isinstance(target, web.Response):
            return target
        if not channels.is_websocket(request):
            return status_error(400, "BadRequest", "only WebSocket upgrades are served (v5.channel.k8s.io, "
                                "v4.channel.k8s.io)")
        sock = await self._upgrade(request, channels.EXEC_PROTOCOLS)
        if sock is None:
            return status_error(400, "BadRequest", "none of the offered subprotocols is supported")
        try:
            await attach.run(sock, target, stdin=_flag(request, "stdin"), stdout=_flag(request, "stdout"),
                             stderr=_flag(request, "stderr"))
        finally:
            await sock.ws.close()
        return sock.ws

    async def port_forward(self, request: web.Request, ns: str, pod: str) -> web.StreamResponse:
        worker = self.worker(ns, pod)
        if worker is None or worker.sandbox is None:
            return status_error(404, "NotFound", f'pod "{pod}" in namespace "{ns}" is not running on this node')
        sandbox = worker.sandbox
        host_network = bool((worker.pod.get("spec") or {}).get("hostNetwork"))
        netns_path = None if host_network or not self.rt.netns_mode else sandbox.netns_path
        pod_ip = "127.0.0.1" if host_network else sandbox.ip

        async def dial(port: int) -> tuple[Any, Any]:
            return await poddial.dial(port, netns_path=netns_path, pod_ip=pod_ip)

        async def connect(port: int) -> Any:
            return await poddial.connect(port, netns_path=netns_path, pod_ip=pod_ip)

        offers = channels.offered(request)
        if not channels.is_websocket(request):
            return status_error(400, "BadRequest", "only WebSocket upgrades are served "
                                f"({portforward.TUNNEL_PROTOCOL}, v4.channel.k8s.io)")
        if portforward.TUNNEL_PROTOCOL in offers:
            ws = await self._accept(request, portforward.TUNNEL_PROTOCOL)
            await portforward.Tunnel(ws, request.transport, connect, worker.uid).run()
        else:
            ports = []
            for value in request.query.getall("ports", []):
                for item in value.split(","):
                    port = portforward.parse_port(item.strip())
                    if port is None:
                        return status_error(400, "BadRequest", f'invalid port "{item}"')
                    ports.append(port)
            if not ports:
                return status_error(400, "BadRequest", "query parameter \"ports\" is required")
            protocol = next((p for p in offers if p in portforward.CHANNEL_PROTOCOLS), "" if not offers else None)
            if protocol is None:
                return status_error(400, "BadRequest", "none of the offered subprotocols is supported")
            ws = await self._accept(request, protocol)
            await portforward.serve_channels(ws, ports, dial, worker.uid)
        await ws.close()
        return ws

    @staticmethod
    async def _accept(request: web.Request, protocol: str) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), max_msg_size=channels.MAX_MESSAGE,
                                   compress=False, autoping=True)
        await ws.prepare(request)
        return ws


_in_process: dict[str, Streaming] = {}  # node name -> the streaming endpoints of an agent in this process


def in_process(node_name: str) -> Streaming | None:
    """The streaming endpoints of the agent running in this process as node ``node_name``, if any."""
    return _in_process.get(node_name)


def add_routes(app: web.Application, rt: NodeRuntime) -> None:
    streaming = Streaming(rt)
    node_name = rt.settings.node_name

    def route(sub: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            m = request.match_info
            return await streaming.serve(sub, request, m["namespace"], m["pod"], m.get("container"))
        return handle

    for method in ("GET", "POST"):
        app.router.add_route(method, "/exec/{namespace}/{pod}/{container}", route("exec"))
        app.router.add_route(method, "/attach/{namespace}/{pod}/{container}", route("attach"))
        app.router.add_route(method, "/portForward/{namespace}/{pod}", route("portforward"))
    _in_process[node_name] = streaming

    async def forget(_app: web.Application) -> None:
        if _in_process.get(node_name) is streaming:
            del _in_process[node_name]

    app.on_cleanup.append(forget)
