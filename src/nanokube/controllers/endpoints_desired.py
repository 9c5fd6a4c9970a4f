"""Pure computation of the legacy v1 Endpoints object of a Service (pkg/controller/endpoint)."""

from __future__ import annotations

from typing import Any

from nanokube.api.meta import Obj, is_pod_ready
from nanokube.controllers.endpointslice_reconciler import LABEL_HEADLESS
from nanokube.controllers.podports import (
    endpoint_hostname,
    find_port,
    ips_of_family,
    should_be_in_endpoints,
    target_ref,
)

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


PortKey = tuple[str, int, str]
# identity (ip, pod uid), address, ready, the ports, their sorted keys
AddressEntry = tuple[tuple[str, str], Obj, bool, list[Obj], tuple[PortKey, ...]]


def address_entry(service: Obj, pod: Obj) -> AddressEntry | None:
    """What one pod contributes to the Service's Endpoints, or None."""
    spec = service.get("spec", {})
    publish = bool(spec.get("publishNotReadyAddresses"))
    if not should_be_in_endpoints(pod, include_terminating=publish):
        return None
    ips = ips_of_family(pod, (spec.get("ipFamilies") or ["IPv4"])[0])
    if not ips:
        return None
    address: Obj = {"ip": ips[0], "targetRef": target_ref(pod)}
    if pod.get("spec", {}).get("nodeName"):
        address["nodeName"] = pod["spec"]["nodeName"]
    hostname = endpoint_hostname(pod, service)
    if hostname:
        address["hostname"] = hostname
    ports: dict[PortKey, Obj] = {}
    service_ports = spec.get("ports") or []
    if not service_ports:
        if spec.get("clusterIP") not in (None, "", "None"):
            return None  # only headless Services publish addresses without ports
    else:
        for sp in service_ports:
            number = find_port(pod, sp)
            if number is not None:
                port = _port(sp, number)
                ports[_port_key(port)] = port
        if not ports:
            return None
    pkey = tuple(sorted(ports))
    return ((ips[0], address["targetRef"].get("uid") or ""), address, publish or is_pod_ready(pod),
            [ports[k] for k in pkey], pkey)


class AddressMemo:
    """Per Service, kept between syncs: (pod uid, resourceVersion) -> address_entry, while the Service is unchanged."""

    def __init__(self, service: Obj) -> None:
        md = service.get("metadata", {})
        self.version = (md.get("uid"), md.get("resourceVersion"))
        self.entries: dict[tuple[Any, ...], AddressEntry | None] = {}

    def fits(self, service: Obj, pod_count: int) -> bool:
        md = service.get("metadata", {})
        return self.version == (md.get("uid"), md.get("resourceVersion")) and len(self.entries) <= 4 * pod_count + 16


def compute_subsets(service: Obj, pods: list[Obj], memo: AddressMemo | None = None) -> tuple[list[Obj], bool]:
    """Repacked subsets (sorted addresses, one subset per distinct port set) and whether truncated."""
    by_address: dict[tuple[str, str], AddressEntry] = {}
    entries = memo.entries if memo is not None else None
    for pod in pods:
        pmd = pod.get("metadata", {})
        memo_key = (pmd.get("uid"), pmd.get("resourceVersion"))
        if entries is not None and memo_key in entries:
            entry = entries[memo_key]
        else:
            entry = address_entry(service, pod)
            if entries is not None and memo_key[1]:
                entries[memo_key] = entry
        if entry is not None:
            by_address[entry[0]] = entry
    truncated = len(by_address) > MAX_ADDRESSES
    entries_kept = by_address.values()
    if truncated:  # ready addresses are kept first
        entries_kept = sorted(entries_kept, key=lambda e: (not e[2], e[0]))[:MAX_ADDRESSES]
    groups: dict[tuple[PortKey, ...], tuple[list[AddressEntry], list[AddressEntry], list[Obj]]] = {}
    for entry in entries_kept:
        group = groups.get(entry[4])
        if group is None:
            group = groups[entry[4]] = ([], [], entry[3])
        group[0 if entry[2] else 1].append(entry)
    subsets = []
    for _, (ready_list, not_ready_list, ports_list) in sorted(groups.items()):
        subset: Obj = {}
        if ready_list:
            ready_list.sort(key=_identity)
            subset["addresses"] = [e[1] for e in ready_list]
        if not_ready_list:
            not_ready_list.sort(key=_identity)
            subset["notReadyAddresses"] = [e[1] for e in not_ready_list]
        if ports_list:
            subset["ports"] = list(ports_list)
        subsets.append(subset)
    return subsets, truncated


def _identity(entry: AddressEntry) -> tuple[str, str]:
    return entry[0]


def desired_endpoints(service: Obj, pods: list[Obj], memo: AddressMemo | None = None) -> Obj:
    md = service.get("metadata", {})
    subsets, truncated = compute_subsets(service, pods, memo)
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
    if current.get("subsets") == desired.get("subsets"):  # what we wrote last time comes back as written
        return False
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
