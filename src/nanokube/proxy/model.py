"""What the proxy needs from Services and EndpointSlices, read from the API's JSON into frozen values.

The unit of work is the service port: (namespace, service, port name, protocol). Comparing these values
is how the trackers drop no-op changes, so they hold only fields that change what gets programmed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from nanokube.api.kube_dns import SERVICE_PROXY_NAME_LABEL
from nanokube.api.meta import Obj

DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds; Kubernetes' default for sessionAffinity ClientIP
HEADLESS_LABEL = "service.kubernetes.io/headless"  # kube-proxy skips these too (its label selector)
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, order=True)
class ServicePortName:
    namespace: str
    name: str
    port_name: str
    protocol: str  # "TCP" | "UDP" | "SCTP"

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name}/{self.protocol.lower()}"


@dataclass(frozen=True)
class ServicePortInfo:
    cluster_ip: str
    port: int
    node_port: int  # 0 = none
    external_ips: tuple[str, ...]
    lb_ips: tuple[str, ...]
    external_local: bool  # externalTrafficPolicy: Local (only meaningful when externally reachable)
    internal_local: bool  # internalTrafficPolicy: Local
    affinity_timeout: int  # 0 = no session affinity
    # loadBalancerSourceRanges as collapsed IPv4 CIDRs; () = no restriction (unset, or a range allows all)
    lb_source_ranges: tuple[str, ...] = ()
    health_check_node_port: int = 0  # type LoadBalancer with externalTrafficPolicy Local only; 0 = none

    @property
    def externally_reachable(self) -> bool:
        return bool(self.node_port or self.external_ips or self.lb_ips)


@dataclass(frozen=True)
class ServiceHealth:
    """What a Service's health-check node port reports on this node."""

    port: int  # spec.healthCheckNodePort
    local_endpoints: int  # ready endpoints on this node (distinct IPs)


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int
    ready: bool
    serving: bool
    terminating: bool
    node_name: str

    @property
    def addr(self) -> tuple[str, int]:
        return (self.ip, self.port)


def _is_ipv4(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).version == 4
    except ValueError:
        return False


def source_ranges(values: list[str]) -> tuple[str, ...]:
    """kube-proxy's reading of loadBalancerSourceRanges (pkg/proxy/service.go): whitespace trimmed, other
    families and unparsable entries skipped, and a zero-length prefix means "allow all", the same as none.
    Overlaps are merged, since the kernel rejects overlapping intervals for one key of an interval set."""
    nets: list[ipaddress.IPv4Network] = []
    for value in values:
        try:
            net = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            continue
        if not isinstance(net, ipaddress.IPv4Network):
            continue
        if net.prefixlen == 0:
            return ()
        nets.append(net)
    return tuple(str(n) for n in ipaddress.collapse_addresses(nets))


def service_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', 'default')}/{meta['name']}"


def service_ports(svc: Obj | None) -> dict[ServicePortName, ServicePortInfo]:
    """The proxied ports of a Service; empty for headless, ExternalName and foreign-proxy Services, and for those
    labelled service.kubernetes.io/headless."""
    if not svc:
        return {}
    meta, spec = svc.get("metadata", {}), svc.get("spec") or {}
    labels = meta.get("labels") or {}
    if SERVICE_PROXY_NAME_LABEL in labels or HEADLESS_LABEL in labels:
        return {}
    if spec.get("type") == "ExternalName":
        return {}
    cluster_ip = spec.get("clusterIP") or ""
    if not _is_ipv4(cluster_ip):
        ipv4s = [ip for ip in spec.get("clusterIPs") or [] if _is_ipv4(ip)]
        if not ipv4s:
            return {}  # headless ("None"), unallocated or IPv6-only
        cluster_ip = ipv4s[0]
    svc_type = spec.get("type") or "ClusterIP"
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    external_ips = tuple(sorted(ip for ip in spec.get("externalIPs") or [] if _is_ipv4(ip)))
    lb_ips: tuple[str, ...] = ()
    if svc_type == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        # ipMode Proxy: the load balancer delivers to the node itself, so kube-proxy does not program the IP.
        lb_ips = tuple(sorted(i["ip"] for i in ingress
                              if _is_ipv4(i.get("ip") or "") and i.get("ipMode", "VIP") != "Proxy"))
    external_local = spec.get("externalTrafficPolicy") == "Local" and svc_type in ("NodePort", "LoadBalancer")
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    ranges: tuple[str, ...] = ()
    health_port = 0
    if svc_type == "LoadBalancer":
        ranges = source_ranges(spec.get("loadBalancerSourceRanges") or [])
        if external_local:  # apiservice.NeedsHealthCheck
            health_port = int(spec.get("healthCheckNodePort") or 0)
    ns, name = meta.get("namespace", "default"), meta["name"]
    out: dict[ServicePortName, ServicePortInfo] = {}
    for p in spec.get("ports") or []:
        protocol = p.get("protocol") or "TCP"
        if protocol not in PROTOCOLS:
            continue
        node_port = int(p.get("nodePort") or 0) if svc_type in ("NodePort", "LoadBalancer") else 0
        out[ServicePortName(ns, name, p.get("name") or "", protocol)] = ServicePortInfo(
            cluster_ip=cluster_ip, port=int(p["port"]), node_port=node_port, external_ips=external_ips,
            lb_ips=lb_ips, external_local=external_local, internal_local=internal_local,
            affinity_timeout=affinity, lb_source_ranges=ranges, health_check_node_port=health_port)
    return out


# -- EndpointSlices ------------------------------------------------------------------------------------

PortKey = tuple[str, str]  # (port name, protocol)
SliceEndpoints = dict[PortKey, tuple[Endpoint, ...]]


def slice_endpoints(slice_obj: Obj | None) -> SliceEndpoints:
    """Endpoints of one IPv4 EndpointSlice, grouped by (port name, protocol)."""
    if not slice_obj or slice_obj.get("addressType", "IPv4") != "IPv4":
        return {}
    ports = slice_obj.get("ports") or []
    out: SliceEndpoints = {}
    for p in ports:
        port = p.get("port")
        if port is None:
            continue
        key = (p.get("name") or "", p.get("protocol") or "TCP")
        eps: list[Endpoint] = []
        for ep in slice_obj.get("endpoints") or []:
            addrs = ep.get("addresses") or []
            if not addrs:
                continue
            cond = ep.get("conditions") or {}
            ready = cond.get("ready")
            ready = True if ready is None else bool(ready)
            serving = cond.get("serving")
            serving = ready if serving is None else bool(serving)
            terminating = bool(cond.get("terminating"))
            eps.append(Endpoint(addrs[0], int(port), ready, serving, terminating, ep.get("nodeName") or ""))
        out[key] = tuple(eps)
    return out


def local_ready_endpoints(endpoints: SliceEndpoints, node_name: str) -> int:
    """Ready endpoints of this node, counted by IP across all ports (kube-proxy's LocalReadyEndpoints: a pod
    serving 80 and 443 is one endpoint). Terminating endpoints never count: health checks must fail first."""
    return len({ep.ip for eps in endpoints.values() for ep in eps if ep.ready and ep.node_name == node_name})


def merge_slices(slices: dict[str, SliceEndpoints]) -> SliceEndpoints:
    """Union of a Service's slices; the same ip:port listed twice counts once (first slice by name wins)."""
    merged: dict[PortKey, dict[tuple[str, int], Endpoint]] = {}
    for name in sorted(slices):
        for key, eps in slices[name].items():
            seen = merged.setdefault(key, {})
            for ep in eps:
                seen.setdefault(ep.addr, ep)
    return {key: tuple(sorted(by_addr.values())) for key, by_addr in merged.items() if by_addr}
