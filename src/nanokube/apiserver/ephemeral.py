"""pods/ephemeralcontainers (`kubectl debug`): GET shows the pod; PATCH (strategic merge, JSON patch, merge)
and PUT change only spec.ephemeralContainers, which may only grow: an ephemeral container, once added, can be
neither changed nor removed (kube-apiserver's ValidatePodEphemeralContainersUpdate)."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from aiohttp import web

from nanokube.api import errors
from nanokube.api.errors import FieldError
from nanokube.api.served_resources import by_kind
from nanokube.apiserver.http import decode_body, json_response, read_body
from nanokube.apiserver.registry import Registry

PODS = by_kind("", "Pod")
# fields an ephemeral container may not set (EphemeralContainerCommon's "not allowed" list)
FORBIDDEN = ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resources",
             "resizePolicy", "restartPolicy")


def _defaulted(c: dict[str, Any]) -> dict[str, Any]:
    out = dict(c)
    out.setdefault("terminationMessagePath", "/dev/termination-log")
    out.setdefault("terminationMessagePolicy", "File")
    out.setdefault("imagePullPolicy", "Always" if str(out.get("image", "")).endswith(":latest") or
                   ":" not in str(out.get("image", "")) else "IfNotPresent")
    return out


def validate(pod: dict[str, Any], old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[FieldError]:
    spec = pod.get("spec") or {}
    taken = {c.get("name") for key in ("containers", "initContainers") for c in spec.get(key) or []}
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, c in enumerate(new):
        path = f"spec.ephemeralContainers[{i}]"
        name = c.get("name") or ""
        if not name:
            errs.append(errors.required(f"{path}.name"))
        elif name in taken or name in seen:
            errs.append(FieldError("FieldValueDuplicate", f"{path}.name", name))
        seen.add(name)
        if not c.get("image"):
            errs.append(errors.required(f"{path}.image"))
        for key in FORBIDDEN:
            if c.get(key):  # kubectl sends empty ones (resources: {})
                errs.append(FieldError("FieldValueForbidden", f"{path}.{key}", None,
                                       "cannot be set for an Ephemeral Container"))
    by_name = {c.get("name"): c for c in new}
    for c in old:
        now = by_name.get(c.get("name"))
        if now is None:
            errs.append(FieldError("FieldValueForbidden", "spec.ephemeralContainers", None,
                                   f'existing ephemeral containers "{c.get("name")}" may not be removed\n'))
        elif _defaulted(now) != c:
            errs.append(FieldError("FieldValueForbidden", "spec.ephemeralContainers", None,
                                   f'existing ephemeral containers "{c.get("name")}" may not be changed\n'))
    return errs


async def serve(registry: Registry, request: web.Request, namespace: str | None, name: str) -> web.Response:
    current = await registry.get_raw(PODS, namespace, name)
    if request.method == "GET":
        return json_response(current.value)
    if request.method not in ("PATCH", "PUT"):
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    live = orjson.loads(current.value)
    raw = await read_body(request)
    if request.method == "PATCH":
        from nanokube.apiserver import patching

        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        wanted = patching.apply_patch(PODS, copy.deepcopy(live), raw, ctype,
                                      manager=request.query.get("fieldManager", ""), force=False)
    else:
        wanted = decode_body(raw, request.headers.get("Content-Type", "application/json"))
        if not isinstance(wanted, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
    old = (live.get("spec") or {}).get("ephemeralContainers") or []
    new = [_defaulted(c) for c in (wanted.get("spec") or {}).get("ephemeralContainers") or []
           if isinstance(c, dict)]
    errs = validate(live, old, new)
    if errs:
        raise errors.invalid_object("", "Pod", name, errs)
    live.setdefault("spec", {})["ephemeralContainers"] = new
    live["metadata"]["resourceVersion"] = str(current.revision)
    result = await registry.update(PODS, namespace, name, live, current=current)
    return json_response(result.raw)
