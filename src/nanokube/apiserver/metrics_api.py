"""metrics.k8s.io/v1beta1 (what metrics-server serves, so `kubectl top pod|node` works): PodMetrics and NodeMetrics
built from each node's kubelet-port usage endpoint (CPU rates over the agent's sampling window, working sets)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from nanokube.api import errors
from nanokube.api.selectors import matches_labels, parse_label_selector
from nanokube.api.served_resources import by_kind
from nanokube.apiserver import streamproxy
from nanokube.apiserver.http import json_response
from nanokube.apiserver.registry import Registry

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
GV = f"{GROUP}/{VERSION}"
NODES = by_kind("", "Node")
PODS = by_kind("", "Pod")


def group_doc() -> dict[str, Any]:
    entry = {"groupVersion": GV, "version": VERSION}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [entry], "preferredVersion": entry}


def resource_list() -> dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GV, "resources": [
        {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
        {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]}]}


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usage(cpu_nanocores: int, memory: int) -> dict[str, str]:
    return {"cpu": f"{cpu_nanocores}n", "memory": f"{memory // 1024}Ki"}


def _window(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


async def _node_usage(registry: Registry) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(node, its kubelet's usage document) for every node that answers."""
    raws, *_ = await registry.list(NODES, None)
    nodes = [orjson.loads(r) for r in raws]

    async def fetch(node: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        # a node whose kubelet cannot be reached or answers nonsense is left out, as metrics-server does
        with contextlib.suppress(errors.ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError):
            base = await streamproxy.kubelet_base(registry, node["metadata"]["name"])
            async with streamproxy.session().get(base + "/metrics/usage",
                                                 timeout=aiohttp.ClientTimeout(total=5)) as resp:
                if resp.status == 200:
                    return node, await resp.json()
        return None

    found = await asyncio.gather(*(fetch(n) for n in nodes))
    return [f for f in found if f is not None]


def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": f"{kind}List", "apiVersion": GV, "metadata": {}, "items": items}


def _selector(request: web.Request) -> Any:
    text = request.query.get("labelSelector")
    if not text:
        return None
    try:
        return parse_label_selector(text)
    except ValueError as err:
        raise errors.bad_request(str(err)) from None


async def nodes(registry: Registry, request: web.Request) -> web.Response:
    name = request.match_info.get("name")
    selector = _selector(request)
    items = []
    for node, usage in await _node_usage(registry):
        md = node["metadata"]
        if (name and md["name"] != name) or (selector and not matches_labels(selector, md.get("labels") or {})):
            continue
        n = usage["node"]
        items.append({"kind": "NodeMetrics", "apiVersion": GV,
                      "metadata": {"name": md["name"], "creationTimestamp": _time(n["timestamp"]),
                                   "labels": md.get("labels") or {}},
                      "timestamp": _time(n["timestamp"]), "window": _window(n["window"] or 5.0),
                      "usage": _usage(n["cpu_nanocores"], n["memory_bytes"])})
    if name:
        if not items:
            raise errors.not_found(GROUP, "nodes", name)
        return json_response(items[0])
    return json_response(_list("NodeMetrics", items))


async def pods(registry: Registry, request: web.Request) -> web.Response:
    ns, name = request.match_info.get("namespace"), request.match_info.get("name")
    selector = _selector(request)
    raws, *_ = await registry.list(PODS, ns)
    labels = {(p["metadata"].get("namespace"), p["metadata"]["name"]): p["metadata"].get("labels") or {}
              for p in map(orjson.loads, raws)}
    items = []
    for _node, usage in await _node_usage(registry):
        for p in usage["pods"]:
            key = (p["namespace"], p["name"])
            if key not in labels or (name and p["name"] != name):
                continue
            if selector and not matches_labels(selector, labels[key]):
                continue
            items.append({"kind": "PodMetrics", "apiVersion": GV,
                          "metadata": {"name": p["name"], "namespace": p["namespace"],
                                       "creationTimestamp": _time(p["timestamp"]), "labels": labels[key]},
                          "timestamp": _time(p["timestamp"]), "window": _window(p["window"]),
                          "containers": [{"name": c["name"], "usage": _usage(c["cpu_nanocores"], c["memory_bytes"])}
                                         for c in p["containers"]]})
    if name:
        if not items:
            raise errors.not_found(GROUP, "pods", name)
        return json_response(items[0])
    return json_response(_list("PodMetrics", sorted(items, key=lambda i: (i["metadata"]["namespace"],
                                                                           i["metadata"]["name"]))))


def add_routes(router: web.UrlDispatcher, registry: Registry) -> None:
    base = f"/apis/{GV}"

    async def group(_request: web.Request) -> web.Response:
        return json_response(group_doc())

    async def resources(_request: web.Request) -> web.Response:
        return json_response(resource_list())

    router.add_get(f"/apis/{GROUP}", group)
    router.add_get(base, resources)
    router.add_get(f"{base}/nodes", lambda r: nodes(registry, r))
    router.add_get(f"{base}/nodes/{{name}}", lambda r: nodes(registry, r))
    router.add_get(f"{base}/pods", lambda r: pods(registry, r))
    router.add_get(f"{base}/namespaces/{{namespace}}/pods", lambda r: pods(registry, r))
    router.add_get(f"{base}/namespaces/{{namespace}}/pods/{{name}}", lambda r: pods(registry, r))
