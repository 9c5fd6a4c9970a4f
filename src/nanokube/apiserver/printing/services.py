"""Services, Endpoints and EndpointSlices (printService, printEndpoints, printEndpointSlice)."""

from __future__ import annotations

from datetime import datetime

from nanokube.apiserver.printing.base import (
    Cell,
    Column,
    Obj,
    Printer,
    age_column,
    age_of,
    doc,
    join_host_port,
    list_with_more,
    name_column,
    name_of,
    spec,
    status,
    wide,
)
from nanokube.apiserver.printing.labels import format_labels


def _load_balancer_ingress(svc: Obj) -> list[str]:
    """Ingress IPs (else hostnames), deduplicated and sorted (sets.String.List)."""
    found: set[str] = set()
    for ingress in (status(svc).get("loadBalancer") or {}).get("ingress") or []:
        if ingress.get("ip"):
            found.add(ingress["ip"])
        elif ingress.get("hostname"):
            found.add(ingress["hostname"])
    return sorted(found)


def external_ip(svc: Obj) -> str:
    s = spec(svc)
    external_ips: list[str] = s.get("externalIPs") or []
    svc_type = s.get("type") or "ClusterIP"
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if svc_type == "LoadBalancer":
        addresses = _load_balancer_ingress(svc) + external_ips
        return ",".join(addresses) if addresses else "<pending>"
    if svc_type == "ExternalName":
        return s.get("externalName") or ""
    return "<unknown>"


def port_string(ports: list[Obj] | None) -> str:
    """makePortString: `port/PROTO` or `port:nodePort/PROTO`; the target port is never shown."""
    pieces = []
    for port in ports or []:
        protocol = port.get("protocol") or "TCP"
        node_port = port.get("nodePort") or 0
        if node_port > 0:
            pieces.append(f"{port.get('port', 0)}:{node_port}/{protocol}")
        else:
            pieces.append(f"{port.get('port', 0)}/{protocol}")
    return ",".join(pieces)


def cluster_ip(svc: Obj) -> str:
    s = spec(svc)
    # The registry fills clusterIPs from clusterIP when it reads an older object (defaultOnRead).
    ips = s.get("clusterIPs") or ([s["clusterIP"]] if s.get("clusterIP") else [])
    return ips[0] if ips else "<none>"


def _service_row(svc: Obj, now: datetime) -> list[Cell]:
    s = spec(svc)
    return [
        name_of(svc),
        s.get("type") or "ClusterIP",
        cluster_ip(svc),
        external_ip(svc),
        port_string(s.get("ports")) or "<none>",
        age_of(svc, now),
        format_labels(s.get("selector")),
    ]


SERVICES = Printer(
    (
        name_column(),
        Column("Type", description=doc("ServiceSpec.type")),
        Column("Cluster-IP", description=doc("ServiceSpec.clusterIP")),
        Column("External-IP", description=doc("ServiceSpec.externalIPs")),
        Column("Port(s)", description=doc("ServiceSpec.ports")),
        age_column(),
        wide("Selector", doc("ServiceSpec.selector")),
    ),
    _service_row,
)


def format_endpoints(endpoints: Obj) -> str:
    """formatEndpoints: ready addresses as ip:port over subsets x ports, 3 shown, then ` + N more...`."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    limit, total = 3, 0
    for subset in subsets:
        addresses = [a.get("ip") or "" for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            # Headless services may have no ports: bare addresses.
            total += len(addresses)
            shown.extend(addresses[: max(0, limit - len(shown))])
            continue
        for port in ports:
            total += len(addresses)
            room = max(0, limit - len(shown))
            shown.extend(join_host_port(ip, port.get("port", 0)) for ip in addresses[:room])
    text = ",".join(shown)
    return f"{text} + {total - limit} more..." if total > limit else text


def _endpoints_row(endpoints: Obj, now: datetime) -> list[Cell]:
    return [name_of(endpoints), format_endpoints(endpoints), age_of(endpoints, now)]


ENDPOINTS = Printer(
    (name_column(), Column("Endpoints", description=doc("Endpoints.subsets")), age_column()),
    _endpoints_row,
)


def _slice_ports(ports: list[Obj] | None) -> str:
    labels = []
    for port in ports or []:
        if port.get("port") is not None:
            labels.append(str(port["port"]))
        elif port.get("name") is not None:
            labels.append(port["name"])
        else:
            labels.append("*")
    return list_with_more(labels, len(labels))


def _slice_endpoints(endpoints: list[Obj] | None) -> str:
    addresses = [address for endpoint in endpoints or [] for address in endpoint.get("addresses") or []]
    return list_with_more(addresses, len(addresses))


def _endpoint_slice_row(eps: Obj, now: datetime) -> list[Cell]:
    return [
        name_of(eps),
        eps.get("addressType") or "",
        _slice_ports(eps.get("ports")),
        _slice_endpoints(eps.get("endpoints")),
        age_of(eps, now),
    ]


ENDPOINT_SLICES = Printer(
    (
        name_column(),
        Column("AddressType", description=doc("EndpointSlice.addressType")),
        Column("Ports", description=doc("EndpointSlice.ports")),
        Column("Endpoints", description=doc("EndpointSlice.endpoints")),
        age_column(),
    ),
    _endpoint_slice_row,
)
