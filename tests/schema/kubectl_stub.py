"""A throwaway HTTP endpoint on 127.0.0.1 that serves just enough for the real kubectl to exercise our
OpenAPI documents, field validation and strategic merge patches: legacy discovery from the scheme, the
OpenAPI handler, and create/get/patch of objects kept in a dict. It is not the apiserver; it exists so
these tests can fail when kubectl would reject what nanokube.apiserver.openapi / nanokube.api.* produce.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from nanokube.api import openapi_schemas
from nanokube.api.errors import ApiError, not_found
from nanokube.api.served_resources import RESOURCES, Resource, groups, lookup
from nanokube.apiserver import openapi, patching

KUBECTL = shutil.which("kubectl") or "kubectl"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    content_type: str


@dataclass
class Stub:
    workdir: Path
    seen: list[Seen] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def kubectl(self, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.workdir / "kubeconfig"), "HOME": str(self.workdir)}
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, f"--cache-dir={self.workdir / 'cache'}", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
        return proc.returncode or 0, out.decode(), err.decode()


def _status(err: ApiError) -> web.Response:
    headers = dict(err.headers)
    return web.json_response(err.status(), status=err.code, headers=headers)


def _resource_list(group: str, version: str) -> dict[str, Any]:
    resources = []
    for r in RESOURCES:
        if r.group == group and r.version == version:
            resources.append({"name": r.plural, "singularName": r.singular_name, "namespaced": r.namespaced,
                              "kind": r.kind, "verbs": list(r.verbs), "shortNames": list(r.short_names)})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def build_app(stub: Stub) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        stub.seen.append(Seen(request.method, request.path, dict(request.query), request.content_type))
        try:
            return await route(request)
        except ApiError as err:
            return _status(err)

    async def route(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/openapi/"):
            reply = openapi.serve(path, request.query.get("hash"), request.headers.get("Accept"),
                                  request.headers.get("If-None-Match"))
            if reply is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return web.Response(status=reply.status, headers=reply.headers, body=reply.body)
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})
        if path == "/apis":
            out = []
            for group, versions in groups().items():
                if not group:
                    continue
                gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
                out.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": out})
        if path == "/version":
            return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        parts = path.strip("/").split("/")
        if parts[0] == "api":
            group, rest = "", parts[1:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, rest = parts[1], parts[2:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        version, rest = rest[0], rest[1:]
        if not rest:
            return web.json_response(_resource_list(group, version))
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        resource = lookup(group, version, rest[0])
        if resource is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        return await objects(request, resource, namespace, name)

    async def objects(request: web.Request, r: Resource, namespace: str | None, name: str | None) -> web.Response:
        body = await request.read()
        if request.method == "POST":
            directive = openapi_schemas.normalize_directive(request.query.get("fieldValidation"))
            obj = openapi_schemas.loads_tracking_duplicates(body)
            warnings = openapi_schemas.check_body(r.group, r.version, r.kind, obj, directive)
            name = obj["metadata"]["name"]
            key = r.key(namespace, name)
            obj["metadata"].update({"namespace": namespace, "uid": f"uid-{name}", "resourceVersion": "1",
                                    "creationTimestamp": "2025-01-01T00:00:00Z"})
            stub.objects[key] = json.loads(json.dumps(obj))
            headers = {"Warning": ", ".join(openapi_schemas.warning_header(w) for w in warnings)} if warnings else {}
            return web.json_response(stub.objects[key], status=201, headers=headers)
        assert name is not None
        key = r.key(namespace, name)
        if key not in stub.objects:
            raise not_found(r.group, r.plural, name)
        if request.method == "GET":
            return web.json_response(stub.objects[key])
        if request.method == "PATCH":
            current = stub.objects[key]
            new = patching.apply_patch(r, current, body, request.content_type, manager="", force=False)
            new["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
            stub.objects[key] = new
            return web.json_response(new)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def write_kubeconfig(path: Path, port: int) -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "stub",
        "clusters": [{"name": "stub", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "stub", "user": {}}],
        "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub", "namespace": "default"}}],
    }))
