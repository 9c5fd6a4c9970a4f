"""Who may call the node's kubelet port: the API server (it proxies `kubectl logs`, and later exec and
port-forward) or a user holding the cluster's bearer token; like the kubelet with anonymous auth off.

The check is an aiohttp middleware on the whole app, so every route added later inherits it. The port serves
TLS with a certificate from the cluster CA (`apiserver.certs.ensure_kubelet_cert`, issued by whoever starts
the agent), so the token never crosses the network in clear.
"""

from __future__ import annotations

import hmac
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

OPEN_PATHS = frozenset({"/healthz"})  # the kubelet's health port answers anyone

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def require_token(token: str | None) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """A middleware refusing (401, as the kubelet words it) requests without `Authorization: Bearer <token>`.
    token None: no check (a test of the routes themselves)."""
    wanted = token.encode() if token else None

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if wanted is not None and request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "")
            if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), wanted)):
                return web.Response(status=401, text="Unauthorized")
        return await handler(request)

    return authenticate


def serving_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.load_cert_chain(str(cert), str(key))
    return ctx
