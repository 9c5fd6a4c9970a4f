"""The UI's HTTP routes, mounted by the composition root under /ui/ on the API server (no port of its own).

Read-only: every route GETs; the only POST is the login form. Nothing but the login page and static files is
served without a valid session cookie.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import yaml
from aiohttp import web

from nanokube.api.errors import ApiError
from nanokube.api.served_resources import by_kind
from nanokube.client import ApiClient
from nanokube.ui import auth
from nanokube.ui.live import ClusterCache, TrafficSource

log = logging.getLogger(__name__)

STATIC = {"app.js": "text/javascript", "worker.js": "text/javascript", "app.css": "text/css"}
KINDS = {"Service": ("", "Service"), "Pod": ("", "Pod"), "Node": ("", "Node"),
         "EndpointSlice": ("discovery.k8s.io", "EndpointSlice")}
HEARTBEAT_SECONDS = 15.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _asset(name: str) -> bytes:
    return resources.files("nanokube.ui").joinpath("static", name).read_bytes()


def build_ui_app(client: ApiClient, token: str, *, cluster_domain: str = "cluster.local",
                 traffic: TrafficSource | None = None) -> web.Application:
    sessions = auth.Sessions(token)
    cache = ClusterCache(client, domain=cluster_domain, traffic=traffic)
    pages = {name: _asset(name) for name in ("index.html", "login.html", *STATIC)}

    def signed_in(request: web.Request) -> bool:
        return sessions.valid_session(request.cookies.get(auth.COOKIE))

    def login_page(status: int = 200) -> web.Response:
        return web.Response(status=status, body=pages["login.html"], content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    def with_session(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            if not signed_in(request):
                return web.json_response({"error": "sign in first"}, status=401)
            return await handler(request)
        return checked

    def session_reply(cookie: str | None) -> web.Response:
        if cookie is None:
            return login_page(401)
        resp = web.HTTPSeeOther("/ui/")
        resp.set_cookie(auth.COOKIE, cookie, max_age=auth.SESSION_SECONDS, path="/ui/", secure=True, httponly=True,
                        samesite="Strict")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    async def index(request: web.Request) -> web.Response:
        if not signed_in(request):
            return login_page()
        return web.Response(body=pages["index.html"], content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def login_get(request: web.Request) -> web.Response:
        return session_reply(sessions.redeem(request.query.get("code", "")))

    async def login_post(request: web.Request) -> web.Response:
        form = await request.post()
        return session_reply(sessions.redeem_token(str(form.get("token", "")).strip()))

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=pages[name], content_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    async def stream(request: web.Request) -> web.StreamResponse:
        sub = await cache.subscribe(request.query.get("namespace") or "default")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        try:
            await resp.prepare(request)
            while True:
                chunk = sub.take()
                if chunk:
                    await resp.write(chunk)
                    continue
                try:
                    await asyncio.wait_for(sub.wake.wait(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    await resp.write(b": keep-alive\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            cache.unsubscribe(sub)
        return resp

    def _resource(request: web.Request) -> tuple[Any, str, str | None]:
        kind = KINDS.get(request.query.get("kind", ""))
        if kind is None:
            raise web.HTTPBadRequest(text="unknown kind")
        res = by_kind(*kind)
        return res, request.query.get("name", ""), request.query.get("namespace") if res.namespaced else None

    async def object_yaml(request: web.Request) -> web.Response:
        res, name, namespace = _resource(request)
        try:
            obj = await client.get(res, name, namespace)
        except ApiError as err:
            return web.Response(status=err.code, text=err.message)
        (obj.get("metadata") or {}).pop("managedFields", None)
        return web.Response(text=yaml.safe_dump(obj, sort_keys=False), content_type="text/plain")

    async def events(request: web.Request) -> web.Response:
        _res, name, namespace = _resource(request)
        await cache.start()
        kind = request.query["kind"]
        found = [e for e in cache.all("events") if (e.get("involvedObject") or {}).get("kind") == kind
                 and (e.get("involvedObject") or {}).get("name") == name
                 and (e.get("metadata") or {}).get("namespace") == (namespace or "default")]
        found.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return web.json_response([{"type": e.get("type"), "reason": e.get("reason"), "message": e.get("message"),
                                   "count": e.get("count") or 1, "last": e.get("lastTimestamp") or e.get("eventTime")}
                                  for e in found[-50:]], dumps=json.dumps)

    async def logs(request: web.Request) -> web.StreamResponse:
        namespace, pod = request.query.get("namespace", "default"), request.query.get("name", "")
        params = {"follow": "true", "tailLines": "500"}
        if request.query.get("container"):
            params["container"] = request.query["container"]
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store",
                                           "X-Content-Type-Options": "nosniff"})
        async with client.session.get(client.base_url + path, params=params) as upstream:
            resp.set_status(upstream.status)
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (ConnectionResetError, asyncio.CancelledError):
                pass
        return resp

    async def on_cleanup(_app: web.Application) -> None:
        await cache.stop()

    app = web.Application()
    app.on_cleanup.append(on_cleanup)
    r = app.router
    r.add_get("/", index)
    r.add_get("/login", login_get)
    r.add_post("/login", login_post)
    r.add_get("/static/{name}", static)
    r.add_get("/api/stream", with_session(stream))
    r.add_get("/api/yaml", with_session(object_yaml))
    r.add_get("/api/events", with_session(events))
    r.add_get("/api/logs", with_session(logs))
    return app
