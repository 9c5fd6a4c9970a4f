"""Pure computation of the legacy v1 Endpoints object of a Service (pkg/controller/endpoint)."""

from __future__ import annotations

from typing import Any

from nanokube.api.meta import is_pod_ready
from nanokube.controllers.endpointslices import LABEL_HEADLESS
from nanokube.controllers.podports import (
    endpoint_hostname,
    find_port,
    ips_of_family,
    should_be_in_endpoints,
    target_ref,
)

Obj = dict[str, Any]

MANAGED_BY_LABEL = "endpoints.kubernetes.io/managed-by"
MANAGED_BY = "endpoint-controller"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
MAX_ADDRESSES = 1000


def endpoints_labels(service: Obj) -> dict[str, str]:
    labels = {k: v for k, v in (service.get("metadata", {}).get("labels") or {}).items() if k != LABEL_HEADLESS}
    if service.get("spec", {}).get("clusterIP") in (None, "", "None"):
        labels[LABEL_HEADLESS] = ""
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def _port(service_port: Obj, number: int) -> Obj:
    port: Obj = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def _port_key(port: Obj) -> tuple[str, int, str]:
    return (port.get("name") or "", port.get("port") or 0, port.get("protocol") or "TCP")


def compute_subsets(service: Obj, pods: list[Obj]) -> tuple[list[Obj], bool]:
    """Repacked subsets (sorted addresses, one subset per distinct port set) and whether truncated."""
    spec = service.get("spec", {})
    publish = bool(spec.get("publishNotReadyAddresses"))
    family = (spec.get("ipFamilies") or ["IPv4"])[0]
    headless = spec.get("clusterIP") in (None, "", "None")
    service_ports = spec.get("ports") or []
    # address identity -> (address, ready, set of port keys, ports by key)
    by_address: dict[tuple[str, str], tuple[Obj, bool, dict[tuple[str, int, str], Obj]]] = {}
    for pod in pods:
        if not should_be_in_endpoints(pod, include_terminating=publish):
            continue
        ips = ips_of_family(pod, family)
        if not ips:
            continue
        address: Obj = {"ip": ips[0], "targetRef": target_ref(pod)}
        if pod.get("spec", {}).get("nodeName"):
            address["nodeName"] = pod["spec"]["nodeName"]
        hostname = endpoint_hostname(pod, service)
        if hostname:
            address["hostname"] = hostname
        ready = publish or is_pod_ready(pod)
        ports: dict[tuple[str, int, str], Obj] = {}
        if not service_ports:
            if not headless:
                continue
        else:
            for sp in service_ports:
                number = find_port(pod, sp)
                if number is not None:
                    port = _port(sp, number)
                    ports[_port_key(port)] = port
            if not ports:
                continue
        by_address[(ips[0], address["targetRef"].get("uid") or "")] = (address, ready, ports)
    truncated = len(by_address) > MAX_ADDRESSES
    items = sorted(by_address.items(), key=lambda kv: (not kv[1][1], kv[0]))[:MAX_ADDRESSES]
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj], list[tuple[Any, ...]]]] = {}
    for ident, (address, ready, ports) in items:
        pkey = tuple(sorted(ports))
        group = groups.setdefault(pkey, ([], [], []))
        group[0 if ready else 1].append((ident, address))  # type: ignore[arg-type]
        if not group[2]:
            group[2].extend(ports[k] for k in pkey)  # type: ignore[misc]
    subsets = []
    for _, (ready_list, not_ready_list, ports_list) in sorted(groups.items()):
        subset: Obj = {}
        if ready_list:
            subset["addresses"] = [a for _, a in sorted(ready_list, key=lambda x: x[0])]  # type: ignore[index]
        if not_ready_list:
            subset["notReadyAddresses"] = [a for _, a in sorted(not_ready_list, key=lambda x: x[0])]  # type: ignore
        if ports_list:
            subset["ports"] = list(ports_list)
        subsets.append(subset)
    return subsets, truncated


def desired_endpoints(service: Obj, pods: list[Obj]) -> Obj:
    md = service.get("metadata", {})
    subsets, truncated = compute_subsets(service, pods)
    body: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": md.get("name"), "namespace": md.get("namespace"),
                              "labels": endpoints_labels(service)}}
    if truncated:
        body["metadata"]["annotations"] = {OVER_CAPACITY: "truncated"}
    if subsets:
        body["subsets"] = subsets
    return body


def endpoints_differ(current: Obj, desired: Obj) -> bool:
    cmd, dmd = current.get("metadata", {}), desired.get("metadata", {})
    if (cmd.get("labels") or {}) != dmd.get("labels"):
        return True
    if (cmd.get("annotations") or {}).get(OVER_CAPACITY) != (dmd.get("annotations") or {}).get(OVER_CAPACITY):
        return True
    return _normal(current.get("subsets")) != _normal(desired.get("subsets"))


def _normal(subsets: list[Obj] | None) -> list[Any]:
    out = []
    for s in subsets or []:
        addrs = sorted((a.get("ip"), (a.get("targetRef") or {}).get("uid"), a.get("nodeName"), a.get("hostname"))
                       for a in s.get("addresses") or [])
        nready = sorted((a.get("ip"), (a.get("targetRef") or {}).get("uid"), a.get("nodeName"), a.get("hostname"))
                        for a in s.get("notReadyAddresses") or [])
        ports = sorted((p.get("name") or "", p.get("port"), p.get("protocol") or "TCP", p.get("appProtocol"))
                       for p in s.get("ports") or [])
        out.append((addrs, nready, ports))
    return sorted(out)
