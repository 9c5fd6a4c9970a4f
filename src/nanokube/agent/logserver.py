"""The node's small "kubelet" HTTPS server: container logs for the apiserver's pods/log proxy.

Callers need the cluster's bearer token (kubelet_auth); the port serves TLS with a certificate from the CA.

GET /containerLogs/{namespace}/{pod}/{container}?follow=&previous=&tailLines=&sinceSeconds=&sinceTime=
    &timestamps=&limitBytes=
GET /healthz
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable

from aiohttp import web

from nanokube.agent.kubelet_auth import require_token
from nanokube.agent.logs import ContainerLog, LogOptions, parse_rfc3339, stream_log

log = logging.getLogger(__name__)

# (namespace, pod, container) -> the container's logs, or an error text (404) when it has none
LogLocator = Callable[[str, str, str], "ContainerLog | str"]


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _int(value: str | None, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"invalid {what}: {value}") from err
    if number < 0:
        raise web.HTTPBadRequest(text=f"{what} must be non-negative")
    return number


def options_from(query: dict[str, str]) -> LogOptions:
    since: float | None = None
    since_seconds = _int(query.get("sinceSeconds"), "sinceSeconds")
    if since_seconds is not None:
        since = time.time() - since_seconds
    elif query.get("sinceTime"):
        try:
            since = parse_rfc3339(query["sinceTime"])
        except ValueError as err:
            raise web.HTTPBadRequest(text=f"invalid sinceTime: {query['sinceTime']}") from err
    return LogOptions(follow=_flag(query.get("follow")), previous=_flag(query.get("previous")),
                      tail_lines=_int(query.get("tailLines"), "tailLines"), since=since,
                      timestamps=_flag(query.get("timestamps")), limit_bytes=_int(query.get("limitBytes"), "limitBytes"))


def make_app(locate: LogLocator, extend: Callable[[web.Application], None] | None = None,
             token: str | None = None) -> web.Application:
    """The kubelet port's routes; every one (but /healthz), extensions included, asks for the token
    (kubelet_auth)."""
    async def container_logs(request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        found = locate(ns, pod, container)
        if isinstance(found, str):
            raise web.HTTPNotFound(text=found)
        opts = options_from(dict(request.query))
        if opts.previous and found.previous is None:
            raise web.HTTPBadRequest(text=f'previous terminated container "{container}" in pod "{pod}" not found')
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            async for chunk in stream_log(found, opts):
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:  # the reader went away (kubectl logs -f ended): normal
            log.debug("logs of %s/%s/%s: reader disconnected", ns, pod, container)
        return response

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[require_token(token)])
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    app.router.add_get("/healthz", healthz)
    if extend is not None:
        extend(app)  # more kubelet endpoints (exec, attach, port-forward: agent/streaming.py)
    return app


async def start_server(locate: LogLocator, host: str, port: int,
                       extend: Callable[[web.Application], None] | None = None, *, token: str | None = None,
                       ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    """Start the server; returns the runner (cleanup() stops it) and the bound port."""
    runner = web.AppRunner(make_app(locate, extend, token), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
    await site.start()
    sockets = site._server.sockets if site._server else []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound
