"""The HTTP face of the API server: routes Kubernetes REST paths to the registry."""

from __future__ import annotations

import asyncio
import copy
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from nanokube.api import errors, meta
from nanokube.api.errors import ApiError
from nanokube.api.served_resources import Resource, by_kind
from nanokube.apiserver import (
    discovery,
    ephemeral,
    event_versions,
    eviction,
    field_manager,
    fields,
    identity_api,
    kubelet_client,
    metrics_api,
    rbac,
    resourceproxy,
    streamproxy,
    tokens,
    versions,
)
from nanokube.apiserver.alt_versions import to_storage
from nanokube.apiserver.crds import resolve
from nanokube.apiserver.http import (
    decode_body,
    json_response,
    query_bool,
    read_body,
    status_response,
    success_status,
    wants_table,
)
from nanokube.apiserver.registry import Registry
from nanokube.apiserver.tokens import TokenSigner, UserInfo
from nanokube.apiserver.watch import serve_watch
from nanokube.store.base import Compacted

log = logging.getLogger(__name__)

PUBLIC_PATHS = ("/version", "/healthz", "/readyz", "/livez")
NODES = by_kind("", "Node")
# Stores with ReturnDeletedObject: a delete answers with the object; the others answer with a Status.
RETURNS_DELETED_OBJECT = frozenset({"pods", "services", "serviceaccounts", "namespaces", "persistentvolumes",
                                    "persistentvolumeclaims", "storageclasses"})
PODS = by_kind("", "Pod")


@dataclass
class Target:
    res: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclass
class ApiServerState:
    registry: Registry
    token: str | None
    signer: TokenSigner | None = None  # ServiceAccount tokens (TokenRequest) and their verification
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Applications mounted beside the API (prefix -> app, e.g. the web UI at /ui/): they check their own auth.
    mounted: dict[str, web.Application] = field(default_factory=dict)


def parse_target(path: str) -> Target | None:
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    if parts[0] == "api" and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = resolve(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            ns, rest = rest[1], rest[2:]
    res = resolve(group, version, rest[0])
    if res is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource",
                       {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) >= 3 else None
    if len(rest) > 3 or (sub and sub not in res.subresources):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Target(res, ns, name, sub)


OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions", "DELETE": "DeleteOptions"}


def _check_dry_run(values: list[str], method: str) -> bool:
    """ValidateDryRun: only `All` is supported (422 naming the request's options kind otherwise)."""
    if any(v != "All" for v in values):
        raise errors.invalid_object("meta.k8s.io", OPTIONS_KIND.get(method, "CreateOptions"), "", [
            errors.not_supported("dryRun", list(values), ["All"])])
    return bool(values)


def _tracker(request: web.Request, res: Resource, has_status: bool,
             subresource: str | None = None) -> field_manager.UpdateTracker:
    wanted = request.query.get("fieldManager")
    field_manager.check_field_manager(wanted)
    return field_manager.UpdateTracker(res, field_manager.manager_name(wanted, request.headers.get("User-Agent")),
                                       subresource, has_status)


def _dry_run(request: web.Request) -> bool:
    return _check_dry_run(request.query.getall("dryRun", []), request.method)


class Handlers:
    def __init__(self, state: ApiServerState) -> None:
        self.state = state
        self.registry = state.registry

    # -- table helpers -------------------------------------------------------------------------------
    def _table(self, request: web.Request, res: Resource, raws: list[bytes], list_meta: dict[str, Any],
               api_version: str) -> bytes:
        from nanokube.apiserver import printing  # imported on first use: most requests never need it

        if getattr(res, "custom", False):  # a custom resource's columns may read defaults applied on read
            raws = [_present(res, r) for r in raws]
        objs = [orjson.loads(r) for r in raws]
        include = request.query.get("includeObject", "Metadata")
        table = printing.to_table(res.plural, res.group, objs, now=meta.now(), include_object=include,
                                  list_meta=list_meta, api_version=api_version, printer=getattr(res, "printer", None))
        return orjson.dumps(table)

    # -- verbs ---------------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = parse_target(request.path)
        if target is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        method = request.method
        t = target
        if t.res is event_versions.EVENTS_V1:  # one Event store, served in both shapes
            return await event_versions.serve(self, request, t)
        if identity_api.handles(t):
            return await identity_api.serve(self.registry, self.state.signer, request, t)
        if t.subresource == "log":
            return await self.pod_log(request, t)
        if t.subresource in streamproxy.STREAMING and t.res is PODS and t.name:
            return await streamproxy.serve(self.registry, request, t.subresource, t.namespace, t.name)
        if t.subresource == "ephemeralcontainers" and t.res is PODS and t.name:
            return await ephemeral.serve(self.registry, request, t.namespace, t.name)
        if t.subresource == "scale":
            return await self.scale(request, t)
        if t.subresource == "eviction" and request.method == "POST":
            return await eviction.evict(self.registry, request, t.namespace or "default", t.name or "")
        if t.subresource == "binding":
            return await self.binding(request, t)
        if t.name is None:
            if method == "GET":
                if query_bool(request, "watch"):
                    return await self.watch(request, t)
                return await self.list(request, t)
            if method == "POST":
                return await self.create(request, t)
            if method == "DELETE":
                return await self.delete_collection(request, t)
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        if method == "GET":
            return await self.get(request, t)
        if method == "PUT":
            return await self.update(request, t)
        if method == "PATCH":
            return await self.patch(request, t)
        if method == "DELETE":
            return await self.delete(request, t)
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")

    async def get(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        kv = await self.registry.get_raw(t.res, t.namespace, t.name)
        table_version = wants_table(request)
        if table_version:  # printers read the stored version (Kubernetes prints the internal one)
            return json_response(self._table(request, t.res, [kv.value], {"resourceVersion": str(kv.revision)},
                                             table_version))
        return json_response(_present(t.res, kv.value))

    async def list(self, request: web.Request, t: Target) -> web.Response:
        q = request.query
        limit = versions.parse_limit(q.get("limit"))
        at = await versions.list_revision(self.registry, q.get("resourceVersion", ""),
                                          q.get("resourceVersionMatch", ""), limit=limit,
                                          continue_token=q.get("continue"))
        try:
            raws, rev, cont, remaining = await self.registry.list(
                t.res, t.namespace, label_selector=q.get("labelSelector"), field_selector=q.get("fieldSelector"),
                limit=limit, continue_token=q.get("continue"), revision=at)
        except Compacted as exc:
            raise versions.expired_list() from exc
        list_meta: dict[str, Any] = {"resourceVersion": str(rev)}
        if cont:
            list_meta["continue"] = cont
            list_meta["remainingItemCount"] = remaining
        table_version = wants_table(request)
        if table_version:
            return json_response(self._table(request, t.res, raws, list_meta, table_version))
        if getattr(t.res, "rewrites", False):
            raws = [_present(t.res, raw) for raw in raws]
        head = orjson.dumps({"kind": t.res.list_kind, "apiVersion": t.res.api_version, "metadata": list_meta})
        body = head[:-1] + b',"items":[' + b",".join(raws) + b"]}"
        return json_response(body)

    async def watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        table_version = wants_table(request)
        table = None
        if table_version:
            from nanokube.apiserver import printing

            def table(raw: bytes, first: bool) -> bytes:
                obj = orjson.loads(raw)
                out = printing.to_table(t.res.plural, t.res.group, [obj], now=meta.now(),
                                        include_object=request.query.get("includeObject", "Metadata"),
                                        list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                                        api_version=table_version, no_headers=not first,
                                        printer=getattr(t.res, "printer", None))
                return orjson.dumps(out)
        transform = getattr(t.res, "present", None) if getattr(t.res, "rewrites", False) else None
        return await serve_watch(request, self.state.registry, t.res, t.namespace, table=table, transform=transform)

    async def _body(self, request: web.Request) -> Any:
        raw = await read_body(request)
        return decode_body(raw, request.headers.get("Content-Type", "application/json"),
                           track_duplicates=request.query.get("fieldValidation") != "Ignore")

    def _field_validation(self, request: web.Request, res: Resource, obj: Any) -> list[str]:
        if not isinstance(obj, dict):
            return []
        return fields.check_fields(res, obj, directive=request.query.get("fieldValidation"),
                                   method=request.method)

    async def create(self, request: web.Request, t: Target) -> web.Response:
        obj = await self._body(request)
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        self._check_kind(t.res, obj)
        warnings = self._field_validation(request, t.res, obj)
        stored_as, obj = to_storage(t.res, obj)
        result = await self.registry.create(stored_as, t.namespace, obj, dry_run=_dry_run(request),
                                            manager=_tracker(request, stored_as, self._has_status(stored_as)))
        return json_response(_present(t.res, result.raw), 201, warnings=warnings)

    def _has_status(self, res: Resource) -> bool:
        return self.registry.strategy(res).has_status_subresource

    @staticmethod
    def _check_kind(res: Resource, obj: dict[str, Any]) -> None:
        kind = obj.get("kind")
        if kind and kind != res.kind:
            raise errors.bad_request(f"the API version in the data ({obj.get('apiVersion')}) does not match "
                                     f"the expected API version ({res.api_version})"
                                     if obj.get("apiVersion") not in (None, res.api_version)
                                     else f"the kind in the data ({kind}) does not match the expected kind "
                                          f"({res.kind})")

    async def update(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        obj = await self._body(request)
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        if t.subresource not in (None, "status", "finalize"):
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        self._check_kind(t.res, obj)
        warnings = self._field_validation(request, t.res, obj)
        sub = "status" if t.subresource == "status" else None
        if t.subresource == "finalize":
            result = await self.finalize_namespace(t.name, obj, _dry_run(request))
        else:
            stored_as, obj = to_storage(t.res, obj)
            result = await self.registry.update(stored_as, t.namespace, t.name, obj, subresource=sub,
                                                dry_run=_dry_run(request),
                                                manager=_tracker(request, stored_as, self._has_status(stored_as), sub))
        return json_response(_present(t.res, result.raw), warnings=warnings)

    async def finalize_namespace(self, name: str, obj: dict[str, Any], dry_run: bool) -> Any:
        current = await self.registry.get_raw(t_res := by_kind("", "Namespace"), None, name)
        old = orjson.loads(current.value)
        new = copy.deepcopy(old)
        new.setdefault("spec", {})["finalizers"] = obj.get("spec", {}).get("finalizers") or []
        return await self.registry.update(t_res, None, name, new, dry_run=dry_run, current=current)

    async def patch(self, request: web.Request, t: Target) -> web.Response:
        from nanokube.apiserver import patching  # the patch machinery loads on the first PATCH

        assert t.name is not None
        raw = await read_body(request)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        sub = t.subresource if t.subresource == "status" else None
        dry_run = _dry_run(request)
        force = query_bool(request, "force")
        manager = request.query.get("fieldManager")
        has_status = self._has_status(t.res)
        tracker = None if ctype == patching.APPLY_PATCH else _tracker(request, t.res, has_status, sub)
        for attempt in range(8):
            try:
                current = await self.registry.get_raw(t.res, t.namespace, t.name)
            except ApiError as err:
                if err.code == 404 and ctype == patching.APPLY_PATCH and sub is None:
                    applied = decode_body(raw, "application/yaml")
                    created = field_manager.apply(t.res, None, applied, manager, force, has_status=has_status)
                    warnings = self._field_validation(request, t.res, created)
                    stored_as, created = to_storage(t.res, created)
                    result = await self.registry.create(stored_as, t.namespace, created, dry_run=dry_run)
                    return json_response(_present(t.res, result.raw), 201, warnings=warnings)
                raise
            live = orjson.loads(_present(t.res, current.value))  # patched as the requested version shows it
            new = patching.apply_patch(t.res, live, raw, ctype, manager=manager, force=force, subresource=sub,
                                       has_status=has_status)
            warnings = self._field_validation(request, t.res, new)
            if "resourceVersion" not in (new.get("metadata") or {}) or \
                    new["metadata"]["resourceVersion"] == str(current.revision):
                new.setdefault("metadata", {})["resourceVersion"] = str(current.revision)
            stored_as, new = to_storage(t.res, new)
            try:
                result = await self.registry.update(stored_as, t.namespace, t.name, new, subresource=sub,
                                                    dry_run=dry_run, current=current, manager=tracker)
            except ApiError as err:
                if err.code == 409 and err.reason == "Conflict" and attempt < 7 and \
                        b'"resourceVersion"' not in raw:
                    continue
                raise
            return json_response(_present(t.res, result.raw), warnings=warnings)
        raise errors.conflict(t.res.group, t.res.plural, t.name)

    async def _delete_options(self, request: web.Request) -> tuple[dict[str, Any], bool]:
        """DeleteOptions from the body or, without one, from the query; and whether it is a dry run."""
        options: dict[str, Any] = {}
        raw = await read_body(request)
        if raw.strip():
            options = decode_body(raw, request.headers.get("Content-Type", "application/json")) or {}
            if not isinstance(options, dict):
                raise errors.bad_request("the body of the request was not a DeleteOptions object")
        else:
            q = request.query
            try:
                if "gracePeriodSeconds" in q:
                    options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError as exc:
                raise errors.bad_request(f'strconv.ParseInt: parsing "{q["gracePeriodSeconds"]}": '
                                         "invalid syntax") from exc
            if "orphanDependents" in q:
                options["orphanDependents"] = q["orphanDependents"].lower() == "true"
            if "propagationPolicy" in q:
                options["propagationPolicy"] = q["propagationPolicy"]
        return options, _dry_run(request) or _check_dry_run(list(options.get("dryRun") or []), "DELETE")

    async def delete(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        options, dry_run = await self._delete_options(request)
        obj, body, deleted_now = await self.registry.delete(t.res, t.namespace, t.name, options, dry_run=dry_run)
        # 202 only when the client explicitly asked for cascading (orphanDependents=false) and it is not done.
        status = 202 if not deleted_now and options.get("orphanDependents") is False else 200
        if deleted_now and t.res.plural not in RETURNS_DELETED_OBJECT:
            return json_response(_deleted_status(t.res, obj), status)
        return json_response(_present(t.res, body), status)

    async def delete_collection(self, request: web.Request, t: Target) -> web.Response:
        """DeleteCollection: lists, deletes each item (ignoring ones already gone) and answers with the list."""
        q = request.query
        raws, rev, _cont, _rem = await self.registry.list(
            t.res, t.namespace, label_selector=q.get("labelSelector"), field_selector=q.get("fieldSelector"))
        options, dry_run = await self._delete_options(request)
        for item_raw in raws:
            md = orjson.loads(item_raw)["metadata"]
            try:
                await self.registry.delete(t.res, md.get("namespace"), md["name"], options, dry_run=dry_run)
            except ApiError as err:
                if err.code != 404:
                    raise
        head = orjson.dumps({"kind": t.res.list_kind, "apiVersion": t.res.api_version,
                             "metadata": {"resourceVersion": str(rev)}})
        return json_response(head[:-1] + b',"items":[' + b",".join(raws) + b"]}")

    # -- subresources --------------------------------------------------------------------------------
    async def scale(self, request: web.Request, t: Target) -> web.Response:
        from nanokube.apiserver import scaling

        assert t.name is not None
        current = await self.registry.get_raw(t.res, t.namespace, t.name)
        obj = orjson.loads(current.value)
        if request.method in ("PUT", "PATCH"):
            raw = await read_body(request)
            scale = scaling.to_scale(t.res, obj)
            if request.method == "PUT":
                wanted = decode_body(raw, request.headers.get("Content-Type", "application/json"))
            else:
                ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
                from nanokube.apiserver import patching

                wanted = patching.apply_plain_patch(scale, raw, ctype)
            replicas = (wanted.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.invalid_object("autoscaling", "Scale", t.name, [
                    errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")])
            scaling.set_replicas(t.res, obj, replicas)
            rv = (wanted.get("metadata") or {}).get("resourceVersion")
            obj["metadata"]["resourceVersion"] = rv or str(current.revision)
            result = await self.registry.update(t.res, t.namespace, t.name, obj, dry_run=_dry_run(request),
                                                current=current)
            obj = result.obj
        return json_response(scaling.to_scale(t.res, obj))

    async def binding(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        if request.method != "POST":
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        body = await self._body(request)
        node = (body.get("target") or {}).get("name")
        if not node:
            raise errors.invalid_object("", "Binding", t.name, [errors.required("target.name")])
        current = await self.registry.get_raw(t.res, t.namespace, t.name)
        pod = orjson.loads(current.value)
        if pod["spec"].get("nodeName"):
            raise errors.conflict("", "pods/binding", t.name,
                                  f"pod {t.name} is already assigned to node \"{pod['spec']['nodeName']}\"")
        pod["spec"]["nodeName"] = node
        conds = pod.setdefault("status", {}).setdefault("conditions", [])
        conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": meta.rfc3339()})
        pod["metadata"]["resourceVersion"] = str(current.revision)
        await self.registry.update(t.res, t.namespace, t.name, pod, current=current)
        # Binding writes spec and status together; the registry's update keeps status, so write it again.
        fresh = await self.registry.get_raw(t.res, t.namespace, t.name)
        pod2 = orjson.loads(fresh.value)
        pod2.setdefault("status", {})["conditions"] = conds
        await self.registry.update(t.res, t.namespace, t.name, pod2, subresource="status", current=fresh)
        return json_response(success_status(), 201)

    async def pod_log(self, request: web.Request, t: Target) -> web.StreamResponse:
        assert t.name is not None
        pod = await self.registry.get(PODS, t.namespace, t.name)
        node_name = pod.get("spec", {}).get("nodeName")
        containers = [c["name"] for c in pod["spec"].get("containers", [])]
        container = request.query.get("container") or (containers[0] if len(containers) == 1 else None)
        if container is None:
            raise errors.bad_request(f"a container name must be specified for pod {t.name}, choose one of: "
                                     f"[{' '.join(containers)}]")
        all_names = containers + [c["name"] for c in pod["spec"].get("initContainers", [])]
        if container not in all_names:
            raise errors.bad_request(f"container {container} is not valid for pod {t.name}")
        if not node_name:
            raise errors.bad_request(f'container "{container}" in pod "{t.name}" is waiting to start: '
                                     "ContainerCreating")
        node = await self.registry.get(NODES, None, node_name)
        kubelet = kubelet_client.current()
        params = {k: v for k, v in request.query.items() if k != "container"}
        url = kubelet.url(node, f"/containerLogs/{t.namespace}/{t.name}/{container}")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(url, params=params, headers=kubelet.headers(), ssl=kubelet.ssl_context()) as upstream:
            if upstream.status >= 300:
                body = await upstream.read()
                try:
                    data = orjson.loads(body)
                    raise ApiError(upstream.status, data.get("reason", "BadRequest"), data.get("message", ""))
                except orjson.JSONDecodeError:
                    raise errors.bad_request(body.decode(errors="replace")) from None
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
            except ConnectionResetError:  # the client went away (kubectl logs -f ended): normal
                log.debug("pods/log %s/%s: client disconnected", t.namespace, t.name)
            return resp


def _present(res: Resource, raw: bytes) -> bytes:
    """Stored bytes as the requested version serves them (custom resources of several versions or defaults)."""
    present = getattr(res, "present", None)
    return present(raw) if present is not None else raw


def _deleted_status(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """finalizeDelete's answer for stores that do not return the deleted object (details.kind is the resource)."""
    md = obj.get("metadata") or {}
    details: dict[str, Any] = {"name": md.get("name", "")}
    if res.group:
        details["group"] = res.group
    details["kind"] = res.plural
    if md.get("uid"):
        details["uid"] = md["uid"]
    return success_status(details)


async def _impersonated(state: ApiServerState, request: web.Request, user: UserInfo) -> UserInfo:
    """Impersonate-User / Impersonate-Group (`kubectl --as`), for users allowed to impersonate."""
    name = request.headers.get("Impersonate-User")
    if not name:
        return user
    attrs = rbac.Attributes(verb="impersonate", resource_request=True, api_group="",
                            resource="serviceaccounts" if name.startswith("system:serviceaccount:") else "users",
                            name=name)
    if not await rbac.allowed(state.registry, user, attrs):
        raise rbac.forbidden(user, attrs)
    groups = request.headers.getall("Impersonate-Group", [])
    if name.startswith("system:serviceaccount:") and name.count(":") == 3:
        _, _, ns, sa = name.split(":")
        base = tokens.service_account_user(ns, sa)
        return tokens.UserInfo(name, groups=tuple(dict.fromkeys([*groups, *base.groups])))
    return tokens.UserInfo(name, groups=tuple(dict.fromkeys([*groups, "system:authenticated"])))


async def _authorize(state: ApiServerState, request: web.Request, user: UserInfo) -> None:
    try:
        target = parse_target(request.path)
    except ApiError:
        return  # an unknown resource: its 404 comes from the handler
    attrs = rbac.request_attributes(request.method, request.path, request.query, target)
    if target is not None and identity_api.handles(target) and target.subresource != "token":
        return  # the reviews answer for the requester itself (system:basic-user lets everyone ask)
    if not await rbac.allowed(state.registry, user, attrs):
        raise rbac.forbidden(user, attrs)


def build_app(state: ApiServerState) -> web.Application:
    handlers = Handlers(state)
    mounted_prefixes = tuple(prefix.rstrip("/") + "/" for prefix in state.mounted)

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        try:
            if state.token and request.path not in PUBLIC_PATHS and not request.path.startswith(mounted_prefixes):
                given = tokens.bearer_token(request.headers.get("Authorization", ""))
                if given and hmac.compare_digest(given, state.token):
                    user: UserInfo | None = tokens.ADMIN
                else:
                    user = await identity_api.identify(state.registry, state.signer, given) if given else None
                if user is None:
                    return status_response(errors.unauthorized())
                user = await _impersonated(state, request, user)
                request["user"] = user
                if rbac.MASTERS not in user.groups:
                    await _authorize(state, request, user)
            return await handler(request)
        except ApiError as err:
            return status_response(err)
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, request.path)
            return status_response(errors.internal(type(exc).__name__))

    async def version(_: web.Request) -> web.Response:
        return json_response(discovery.version())

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        if not state.ready.is_set():
            return web.Response(status=500, text="not ready")
        return web.Response(text="ok")

    async def api_root(_: web.Request) -> web.Response:
        return json_response(discovery.core_versions())

    async def apis_root(_: web.Request) -> web.Response:
        return json_response(discovery.group_list())

    async def core_v1(request: web.Request) -> web.Response:
        doc = discovery.resource_list("", request.match_info["version"])
        if doc is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return json_response(doc)

    async def api_group(request: web.Request) -> web.Response:
        doc = discovery.group(request.match_info["group"])
        if doc is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return json_response(doc)

    async def api_group_version(request: web.Request) -> web.Response:
        doc = discovery.resource_list(request.match_info["group"], request.match_info["version"])
        if doc is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return json_response(doc)

    async def openapi_doc(request: web.Request) -> web.Response:
        from nanokube.apiserver import openapi

        reply = openapi.serve(request.path, request.query.get("hash"), request.headers.get("Accept"),
                              request.headers.get("If-None-Match"))
        if reply is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return web.Response(status=reply.status, body=reply.body or None, headers=reply.headers)

    app = web.Application(middlewares=[guard], client_max_size=4 * 1024 * 1024)
    r = app.router
    r.add_get("/version", version)
    r.add_get("/version/", version)
    for p in ("/healthz", "/livez"):
        r.add_get(p, healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/api", api_root)
    r.add_get("/api/", api_root)
    r.add_get("/apis", apis_root)
    r.add_get("/apis/", apis_root)
    metrics_api.add_routes(r, state.registry)  # before /apis/{group}: metrics.k8s.io is served here
    app.on_cleanup.append(streamproxy.close_session)  # the connection pool to the kubelets
    r.add_get("/api/{version}", core_v1)
    r.add_get("/apis/{group}", api_group)
    r.add_get("/apis/{group}/{version}", api_group_version)
    r.add_get("/openapi/v2", openapi_doc)
    r.add_get("/openapi/v3", openapi_doc)
    r.add_get("/openapi/v3/{tail:.+}", openapi_doc)
    r.add_route("*", resourceproxy.route_pattern(), lambda req: resourceproxy.serve(state.registry, req))
    r.add_route("*", "/api/{tail:.+}", handlers.handle)
    r.add_route("*", "/apis/{tail:.+}", handlers.handle)
    for prefix, sub in state.mounted.items():
        app.add_subapp(prefix.rstrip("/"), sub)
    return app


def age_now() -> datetime:
    return meta.now()
