"""pods/eviction (policy/v1 Eviction), as kube-apiserver's EvictionREST decides (pkg/registry/core/pod/storage/
eviction.go): a pod covered by a PodDisruptionBudget is deleted only while the budget allows a disruption
(status.disruptionsAllowed > 0, computed by the disruption controller for the budget's current generation);
the allowance is spent in the same step. Otherwise 429 TooManyRequests, which `kubectl drain` retries."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from nanokube.api import errors
from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.api.selectors import matches_labels, selector_from_label_selector
from nanokube.api.served_resources import by_kind
from nanokube.apiserver.http import decode_body, json_response, read_body, success_status

PODS = by_kind("", "Pod")
PDBS = by_kind("policy", "PodDisruptionBudget")
DISRUPTION_ALLOWED = "DisruptionAllowed"


async def evict(registry: Any, request: web.Request, namespace: str, name: str) -> web.Response:
    raw = await read_body(request)
    body = decode_body(raw, request.headers.get("Content-Type", "application/json")) if raw.strip() else {}
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request was not a JSON object")
    if (body.get("metadata") or {}).get("name") not in (None, name):
        raise errors.bad_request("name in URL does not match name in Eviction object")
    pod = await registry.get(PODS, namespace, name)
    options = body.get("deleteOptions") or {}
    phase = (pod.get("status") or {}).get("phase")
    if not pod["metadata"].get("deletionTimestamp") and phase not in ("Succeeded", "Failed", "Pending"):
        for pdb in await _budgets_for(registry, pod):
            await _spend(registry, pdb, name)
    await registry.delete(PODS, namespace, name, options)
    return json_response(success_status(), 201)


async def _budgets_for(registry: Any, pod: Obj) -> list[Obj]:
    raws, *_ = await registry.list(PDBS, pod["metadata"].get("namespace"))
    out = []
    labels = pod["metadata"].get("labels") or {}
    for raw in raws:
        pdb = orjson.loads(raw)
        reqs = selector_from_label_selector((pdb.get("spec") or {}).get("selector"))
        if reqs is not None and matches_labels(reqs, labels):
            out.append(pdb)
    if len(out) > 1:
        raise ApiError(500, "InternalError", "Internal error occurred: This pod has more than one "
                       "PodDisruptionBudget, which the eviction subresource does not support.")
    return out


async def _spend(registry: Any, pdb: Obj, pod_name: str) -> None:
    md, status = pdb["metadata"], pdb.get("status") or {}
    if status.get("observedGeneration", 0) < md.get("generation", 0):
        raise _too_many(f"Cannot evict pod as it would violate the pod's disruption budget. The disruption "
                        f"budget {md['name']} is still being processed by the server.")
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed <= 0:
        raise _too_many(f"Cannot evict pod as it would violate the pod's disruption budget. The disruption "
                        f"budget {md['name']} needs {status.get('desiredHealthy', 0)} healthy pods and has "
                        f"{status.get('currentHealthy', 0)} currently", pdb)
    status = {**status, "disruptionsAllowed": allowed - 1,
              "disruptedPods": {**(status.get("disruptedPods") or {}), pod_name: _now()}}
    await registry.update(PDBS, md.get("namespace"), md["name"], {**pdb, "status": status}, subresource="status")


def _too_many(message: str, pdb: Obj | None = None) -> ApiError:
    details: Obj = {"causes": [{"reason": DISRUPTION_ALLOWED, "message": message}]} if pdb else {}
    return ApiError(429, "TooManyRequests", message, details)


def _now() -> str:
    from nanokube.api.meta import rfc3339

    return rfc3339()
