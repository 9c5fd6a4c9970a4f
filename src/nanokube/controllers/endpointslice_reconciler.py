"""Pure EndpointSlice computation: Service + Pods + Nodes (+ the slices that exist) -> what to write.

Follows the Kubernetes EndpointSlice reconciler (staging/src/k8s.io/endpointslice/reconciler.go): group
endpoints by their resolved port list, keep endpoints where they already are, refill slices being
updated (fullest first), put a small remainder into an unchanged slice that fits, create new slices for
the rest, turn creates into updates of slices that would be deleted, and keep one placeholder slice when
a Service has no endpoints at all.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from nanokube.api.endpointslices import LABEL_SERVICE_NAME
from nanokube.api.meta import Obj, is_pod_ready
from nanokube.controllers.podports import (
    endpoint_hostname,
    find_port,
    ips_of_family,
    should_be_in_endpoints,
    target_ref,
)

LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_HEADLESS = "service.kubernetes.io/headless"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
_RESERVED = (LABEL_SERVICE_NAME, LABEL_MANAGED_BY)


@dataclass
class SlicePlan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    node_missing: bool = False  # some pod was skipped because its Node is unknown: look again later

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


def address_types(service: Obj) -> list[str]:
    families = service.get("spec", {}).get("ipFamilies") or ["IPv4"]
    return ["IPv6" if f == "IPv6" else "IPv4" for f in families]


def endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    ports = []
    for sp in service.get("spec", {}).get("ports") or []:
        number = find_port(pod, sp)
        if number is None:
            continue
        port = {"name": sp.get("name") or "", "port": number, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        ports.append(port)
    return ports


def port_map_key(ports: list[Obj] | None) -> bytes:
    return orjson.dumps(sorted(ports or [], key=lambda p: (p.get("name") or "", p.get("protocol") or "",
                                                           p.get("port") or 0)), option=orjson.OPT_SORT_KEYS)


def endpoint_key(endpoint: Obj) -> tuple[Any, ...]:
    ref = endpoint.get("targetRef") or {}
    return (tuple(sorted(endpoint.get("addresses") or [])), ref.get("uid") or ref.get("name"))


def pod_endpoint(pod: Obj, service: Obj, node: Obj | None, address_type: str) -> Obj | None:
    addresses = ips_of_family(pod, address_type)
    if not addresses:
        return None
    publish = bool(service.get("spec", {}).get("publishNotReadyAddresses"))
    ready = is_pod_ready(pod)
    terminating = bool(pod.get("metadata", {}).get("deletionTimestamp"))
    endpoint: Obj = {
        "addresses": addresses,
        "conditions": {"ready": publish or (ready and not terminating), "serving": ready,
                       "terminating": terminating},
        "targetRef": target_ref(pod),
    }
    node_name = pod.get("spec", {}).get("nodeName")
    if node_name:
        endpoint["nodeName"] = node_name
    zone = ((node or {}).get("metadata", {}).get("labels") or {}).get(ZONE_LABEL)
    if zone:
        endpoint["zone"] = zone
    hostname = endpoint_hostname(pod, service)
    if hostname:
        endpoint["hostname"] = hostname
    return endpoint


class EndpointMemo:
    """Kept by the controller between syncs of one Service: what was computed for unchanged objects.

    `pods`: (pod uid, pod resourceVersion, node name, node resourceVersion, address type) -> the pod's
    endpoint entry, or None when the pod is not an endpoint; `slices`: (slice uid, resourceVersion) -> its endpoint keys.
    With 1,000 pods a sync whose pods barely changed then costs a few dict look-ups per pod.
    """

    def __init__(self, service: Obj) -> None:
        md = service.get("metadata", {})
        self.version = (md.get("uid"), md.get("resourceVersion"))
        self.pods: dict[tuple[Any, ...], MemoEntry | None] = {}
        self.slices: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}

    def fits(self, service: Obj, pod_count: int, slice_count: int) -> bool:
        """False when the Service changed or old entries piled up: start over with a fresh memo."""
        md = service.get("metadata", {})
        return self.version == (md.get("uid"), md.get("resourceVersion")) and \
            len(self.pods) <= 4 * pod_count + 16 and len(self.slices) <= 2 * slice_count + 16


MemoEntry = tuple[bytes, list[Obj], Obj, tuple[Any, ...]]  # port-map key, ports, endpoint, endpoint key


def _memo_entry(service: Obj, pod: Obj, node: Obj | None, address_type: str) -> MemoEntry | None:
    if not should_be_in_endpoints(pod, include_terminating=True):
        return None
    endpoint = pod_endpoint(pod, service, node, address_type)
    if endpoint is None:
        return None
    ports = endpoint_ports(service, pod)
    return port_map_key(ports), ports, endpoint, endpoint_key(endpoint)


def desired_endpoints(service: Obj, pods: list[Obj], get_node: Callable[[str], Obj | None], address_type: str,
                      memo: EndpointMemo | None = None,
                      ) -> tuple[dict[bytes, tuple[list[Obj], dict[tuple[Any, ...], Obj]]], bool]:
    """port-map key -> (ports, endpoint key -> endpoint); and whether a pod was skipped for a missing Node."""
    publish = bool(service.get("spec", {}).get("publishNotReadyAddresses"))
    entries = memo.pods if memo is not None else None
    groups: dict[bytes, tuple[list[Obj], dict[tuple[Any, ...], Obj]]] = {}
    node_missing = False
    for pod in pods:
        pmd = pod.get("metadata", {})
        node_name = pod.get("spec", {}).get("nodeName") or ""
        node = get_node(node_name) if node_name else None
        memo_key = (pmd.get("uid"), pmd.get("resourceVersion"), node_name,
                    node["metadata"].get("resourceVersion") if node is not None else None, address_type)
        if entries is not None and memo_key in entries:
            entry = entries[memo_key]
        else:
            if node is None and not publish and should_be_in_endpoints(pod, include_terminating=True):
                node_missing = True
                continue
            entry = _memo_entry(service, pod, node, address_type)
            if entries is not None and memo_key[1]:
                entries[memo_key] = entry
        if entry is None:
            continue
        key, ports, endpoint, ekey = entry
        group = groups.get(key)
        if group is None:
            group = groups[key] = (ports, {})
        group[1][ekey] = endpoint
    return groups, node_missing


def slice_endpoint_keys(slice_: Obj, memo: EndpointMemo | None) -> list[tuple[Any, ...]]:
    endpoints = slice_.get("endpoints") or []
    md = slice_.get("metadata", {})
    memo_key = (md.get("uid"), md.get("resourceVersion"))
    if memo is not None and memo_key[1]:
        keys = memo.slices.get(memo_key)
        if keys is None or len(keys) != len(endpoints):
            keys = memo.slices[memo_key] = [endpoint_key(e) for e in endpoints]
        return keys
    return [endpoint_key(e) for e in endpoints]


def slice_labels(service: Obj, controller_name: str = CONTROLLER_NAME) -> dict[str, str]:
    md = service.get("metadata", {})
    labels = {k: v for k, v in (md.get("labels") or {}).items() if k not in _RESERVED and k != LABEL_HEADLESS}
    labels[LABEL_SERVICE_NAME] = md.get("name", "")
    labels[LABEL_MANAGED_BY] = controller_name
    if service.get("spec", {}).get("clusterIP") in (None, "", "None"):
        labels[LABEL_HEADLESS] = ""
    return labels


def generate_name(owner_name: str) -> str:
    prefix = f"{owner_name}-"
    return prefix if len(prefix) <= 253 else owner_name


def new_slice(service: Obj, ports: list[Obj], address_type: str) -> Obj:
    md = service.get("metadata", {})
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "generateName": generate_name(md.get("name", "")), "namespace": md.get("namespace"),
            "labels": slice_labels(service),
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": md.get("name"), "uid": md.get("uid"),
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "addressType": address_type,
        "endpoints": [],
        "ports": copy.deepcopy(ports) if ports else None,
    }


def owned_by(slice_: Obj, service: Obj) -> bool:
    uid = service.get("metadata", {}).get("uid")
    return any(ref.get("uid") == uid and ref.get("kind") == "Service"
               for ref in slice_.get("metadata", {}).get("ownerReferences") or [])


def _is_placeholder_of(slice_: Obj, service: Obj, address_type: str) -> bool:
    md = slice_.get("metadata", {})
    return (not slice_.get("endpoints") and not slice_.get("ports") and slice_.get("addressType") == address_type
            and (md.get("labels") or {}) == slice_labels(service) and owned_by(slice_, service))


def reconcile(service: Obj, existing: list[Obj], pods: list[Obj], get_node: Callable[[str], Obj | None],
              max_per_slice: int = 100, memo: EndpointMemo | None = None) -> SlicePlan:
    """Everything to create/update/delete so the Service's slices match its pods."""
    plan = SlicePlan()
    wanted = address_types(service)
    by_type: dict[str, list[Obj]] = {}
    for s in existing:
        if s.get("addressType") in wanted:
            by_type.setdefault(s["addressType"], []).append(s)
        else:
            plan.delete.append(s)
    for address_type in wanted:
        sub = _reconcile_address_type(service, by_type.get(address_type, []), pods, get_node, address_type,
                                      max_per_slice, memo)
        plan.create += sub.create
        plan.update += sub.update
        plan.delete += sub.delete
        plan.node_missing |= sub.node_missing
    for s in plan.create + plan.update:
        if not s.get("endpoints"):
            s["endpoints"] = None
    return plan


def _reconcile_address_type(service: Obj, existing: list[Obj], pods: list[Obj],
                            get_node: Callable[[str], Obj | None], address_type: str, max_per_slice: int,
                            memo: EndpointMemo | None) -> SlicePlan:
    plan = SlicePlan()
    existing_by_ports: dict[bytes, list[Obj]] = {}
    for s in existing:
        if owned_by(s, service):
            existing_by_ports.setdefault(port_map_key(s.get("ports")), []).append(s)
        else:
            plan.delete.append(s)
    desired, plan.node_missing = desired_endpoints(service, pods, get_node, address_type, memo)
    for key, (ports, endpoints) in desired.items():
        _reconcile_port_map(service, existing_by_ports.get(key, []), ports, dict(endpoints), address_type,
                            max_per_slice, plan, memo)
    for key, slices in existing_by_ports.items():
        if key not in desired:
            plan.delete.extend(slices)
    if len(existing) == len(plan.delete) and not plan.create:
        if len(plan.delete) == 1 and _is_placeholder_of(plan.delete[0], service, address_type):
            plan.delete.clear()
        else:
            plan.create.append(new_slice(service, [], address_type))
    _creates_to_updates(service, plan)
    return plan


def _same_endpoint(a: Obj, b: Obj) -> bool:
    keys = ("addresses", "conditions", "targetRef", "nodeName", "zone", "hostname")
    return all(a.get(k) == b.get(k) for k in keys[:2]) and \
        all((a.get(k) or None) == (b.get(k) or None) for k in keys[2:]) and \
        _ref_view(a) == _ref_view(b)


def _ref_view(endpoint: Obj) -> tuple[Any, ...]:
    ref = endpoint.get("targetRef") or {}
    return (ref.get("kind"), ref.get("namespace"), ref.get("name"), ref.get("uid"))


def _reconcile_port_map(service: Obj, existing: list[Obj], ports: list[Obj], desired: dict[tuple[Any, ...], Obj],
                        address_type: str, max_per_slice: int, plan: SlicePlan, memo: EndpointMemo | None) -> None:
    labels = slice_labels(service)
    unchanged: list[Obj] = []
    to_update: list[Obj] = []
    for s in existing:
        kept: list[Obj] = []
        changed = False
        for endpoint, key in zip(s.get("endpoints") or [], slice_endpoint_keys(s, memo), strict=True):
            want = desired.pop(key, None)
            if want is not None:
                kept.append(want)
                if not changed and want != endpoint:  # plain equality first: the common case, done in C
                    changed = not _same_endpoint(want, endpoint)
        current = s.get("endpoints") or []
        labels_changed = (s.get("metadata", {}).get("labels") or {}) != labels
        if changed or len(kept) != len(current):
            if not kept:
                plan.delete.append(s)
                continue
            s = _with(s, kept, labels)
            to_update.append(s)
        elif labels_changed:
            to_update.append(_with(s, list(current), labels))
        else:
            unchanged.append(s)
    remaining = list(desired.values())
    if remaining and to_update:
        for s in sorted(to_update, key=lambda x: -len(x["endpoints"])):
            room = max_per_slice - len(s["endpoints"])
            if room > 0:
                s["endpoints"].extend(remaining[:room])
                del remaining[:room]
    while remaining:
        target = None
        if len(remaining) < max_per_slice and unchanged:
            target = _slice_to_fill(unchanged, len(remaining), max_per_slice)
        if target is None:
            target = new_slice(service, ports, address_type)
        else:
            unchanged.remove(target)
            target = _with(target, list(target.get("endpoints") or []), labels)
        room = max_per_slice - len(target["endpoints"])
        target["endpoints"].extend(remaining[:room])
        del remaining[:room]
        if target.get("metadata", {}).get("name"):
            to_update.append(target)
        else:
            plan.create.append(target)
    plan.update.extend(to_update)


def _slice_to_fill(slices: list[Obj], count: int, max_per_slice: int) -> Obj | None:
    best = None
    for s in slices:
        size = len(s.get("endpoints") or [])
        if size + count <= max_per_slice and (best is None or size > len(best.get("endpoints") or [])):
            best = s
    return best


def _with(slice_: Obj, endpoints: list[Obj], labels: dict[str, str]) -> Obj:
    out = dict(slice_)
    out["metadata"] = dict(slice_.get("metadata", {}))
    out["metadata"]["labels"] = dict(labels)
    out["endpoints"] = endpoints
    return out


def _creates_to_updates(service: Obj, plan: SlicePlan) -> None:
    """Reuse slices about to be deleted for slices about to be created (fewer writes, stable names)."""
    i = 0
    while i < len(plan.delete) and plan.create:
        doomed = plan.delete[i]
        fresh = plan.create[-1]
        if doomed.get("addressType") == fresh.get("addressType") and owned_by(doomed, service):
            plan.create.pop()
            reused = dict(fresh)
            reused["metadata"] = dict(doomed.get("metadata", {}))
            reused["metadata"]["labels"] = fresh["metadata"]["labels"]
            reused["metadata"]["ownerReferences"] = fresh["metadata"]["ownerReferences"]
            plan.update.append(reused)
            plan.delete.pop(i)
        else:
            i += 1
