"""events.k8s.io/v1 Events served from the core/v1 Event store: one set of objects, two shapes.

kube-apiserver keeps one internal Event and converts on the way in and out (pkg/apis/events/v1/conversion.go),
so an event written through either group is read through both. Here the store holds core/v1 objects; requests
to events.k8s.io/v1 convert their bodies to core/v1 and every object they return (get, list, watch, writes)
back to events.k8s.io/v1. Field selectors name either group's fields. One liberty: an event without eventTime
(written through core/v1) shows its firstTimestamp there, where kube-apiserver writes null, which the official
Python client refuses to decode.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from nanokube.api import errors
from nanokube.api.meta import Obj
from nanokube.api.served_resources import by_kind
from nanokube.apiserver.http import decode_body, json_response, query_bool, read_body, wants_table
from nanokube.apiserver.watch import serve_watch

CORE = by_kind("", "Event")
EVENTS_V1 = by_kind("events.k8s.io", "Event")

# core/v1 field -> events.k8s.io/v1 field; the rest (eventTime, series, reportingInstance, action, reason,
# related, type, metadata) have one name in both
_RENAMED = {"involvedObject": "regarding", "message": "note", "source": "deprecatedSource",
            "firstTimestamp": "deprecatedFirstTimestamp", "lastTimestamp": "deprecatedLastTimestamp",
            "count": "deprecatedCount", "reportingComponent": "reportingController"}
_BACK = {v: k for k, v in _RENAMED.items()}
_SAME = ("metadata", "eventTime", "series", "reportingInstance", "action", "reason", "related", "type")


def to_core(event: Obj) -> Obj:
    """Convert_v1_Event_To_core_Event, in core/v1's JSON shape."""
    out: Obj = {"kind": "Event", "apiVersion": "v1"}
    for key, value in event.items():
        if key in ("kind", "apiVersion"):
            continue
        out[_BACK.get(key, key)] = value
    out.setdefault("involvedObject", {})
    out.setdefault("source", {})
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        out.setdefault(key, None)
    out.setdefault("reportingComponent", "")
    out.setdefault("reportingInstance", "")
    return out


def from_core(event: Obj) -> Obj:
    """Convert_core_Event_To_v1_Event, in events.k8s.io/v1's JSON shape (empty optional fields left out)."""
    out: Obj = {"kind": "Event", "apiVersion": EVENTS_V1.api_version}
    for key, value in event.items():
        if key in ("kind", "apiVersion"):
            continue
        name = _RENAMED.get(key, key)
        if name in ("deprecatedCount", "reportingController", "reportingInstance", "note", "reason", "type",
                    "action") and not value:
            continue
        if name == "deprecatedSource" and not value:
            continue
        out[name] = value
    if out.get("eventTime") is None:  # clients (the official Python client) refuse a null eventTime
        out["eventTime"] = event.get("firstTimestamp") and _micro(event["firstTimestamp"])
        if out["eventTime"] is None:
            del out["eventTime"]
    out.setdefault("regarding", {})
    return out


def _micro(stamp: str) -> str:
    """An RFC 3339 time in MicroTime's format (the eventTime of an event that only has firstTimestamp)."""
    return stamp[:-1] + ".000000Z" if stamp.endswith("Z") and "." not in stamp else stamp


def raw_from_core(raw: bytes) -> bytes:
    return orjson.dumps(from_core(orjson.loads(raw)))


def core_field_selector(selector: str | None) -> str | None:
    """events.k8s.io/v1 field selector -> core/v1 (regarding.name -> involvedObject.name, ...)."""
    if not selector:
        return selector
    parts = []
    for term in selector.split(","):
        for new, old in (("regarding.", "involvedObject."), ("note", "message"),
                         ("reportingController", "reportingComponent"), ("deprecatedSource", "source")):
            if term.startswith(new):
                term = old + term[len(new):]
                break
        parts.append(term)
    return ",".join(parts)


async def serve(h: Any, request: web.Request, t: Any) -> web.StreamResponse:
    """One request to events.k8s.io/v1 events (h: the app's Handlers, t: its Target)."""
    registry = h.registry
    method = request.method
    q = request.query
    if t.subresource:
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    if t.name is None and method == "GET":
        if query_bool(request, "watch"):
            if q.get("fieldSelector"):
                request = request.clone(rel_url=request.rel_url.update_query(
                    fieldSelector=core_field_selector(q["fieldSelector"])))
            return await serve_watch(request, registry, CORE, t.namespace,
                                     table=lambda raw, _first: raw_from_core(raw))
        try:
            limit = int(q.get("limit") or 0)
        except ValueError as exc:
            raise errors.bad_request("invalid limit") from exc
        raws, rev, cont, remaining = await registry.list(
            CORE, t.namespace, label_selector=q.get("labelSelector"),
            field_selector=core_field_selector(q.get("fieldSelector")), limit=limit, continue_token=q.get("continue"))
        items = [raw_from_core(r) for r in raws]
        list_meta: Obj = {"resourceVersion": str(rev)}
        if cont:
            list_meta["continue"] = cont
            list_meta["remainingItemCount"] = remaining
        table_version = wants_table(request)
        if table_version:
            return json_response(h._table(request, EVENTS_V1, items, list_meta, table_version))
        head = orjson.dumps({"kind": EVENTS_V1.list_kind, "apiVersion": EVENTS_V1.api_version, "metadata": list_meta})
        return json_response(head[:-1] + b',"items":[' + b",".join(items) + b"]}")
    if t.name is None and method == "POST":
        obj = decode_body(await read_body(request), request.headers.get("Content-Type", "application/json"))
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        result = await registry.create(CORE, t.namespace, to_core(obj), dry_run=_dry_run(request))
        return json_response(raw_from_core(result.raw), 201)
    if t.name is None and method == "DELETE":
        response: web.Response = await h.delete_collection(request, _core_target(t))
        return _converted(response)
    if method == "GET":
        kv = await registry.get_raw(CORE, t.namespace, t.name)
        table_version = wants_table(request)
        if table_version:
            return json_response(h._table(request, EVENTS_V1, [raw_from_core(kv.value)],
                                          {"resourceVersion": str(kv.revision)}, table_version))
        return json_response(raw_from_core(kv.value))
    if method == "PUT":
        obj = decode_body(await read_body(request), request.headers.get("Content-Type", "application/json"))
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        result = await registry.update(CORE, t.namespace, t.name, to_core(obj), dry_run=_dry_run(request))
        return json_response(raw_from_core(result.raw))
    if method == "PATCH":
        from nanokube.apiserver import patching

        raw = await read_body(request)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        current = await registry.get_raw(CORE, t.namespace, t.name)
        live = from_core(orjson.loads(current.value))
        live["metadata"]["resourceVersion"] = str(current.revision)
        new = patching.apply_patch(EVENTS_V1, live, raw, ctype, manager=q.get("fieldManager"),
                                   force=query_bool(request, "force"))
        result = await registry.update(CORE, t.namespace, t.name, to_core(new), dry_run=_dry_run(request),
                                       current=current)
        return json_response(raw_from_core(result.raw))
    if method == "DELETE":
        return _converted(await h.delete(request, _core_target(t)))
    raise errors.method_not_allowed("the server does not allow this method on the requested resource")


def _core_target(t: Any) -> Any:
    return type(t)(CORE, t.namespace, t.name, t.subresource)


def _converted(response: web.Response) -> web.Response:
    body = orjson.loads(response.body) if isinstance(response.body, bytes) else {}
    if body.get("kind") == "Event":
        body = from_core(body)
    elif body.get("kind") == CORE.list_kind:
        body = {**body, "kind": EVENTS_V1.list_kind, "apiVersion": EVENTS_V1.api_version,
                "items": [from_core(i) for i in body.get("items") or []]}
    return json_response(body, response.status)


def _dry_run(request: web.Request) -> bool:
    return "All" in request.query.getall("dryRun", [])
