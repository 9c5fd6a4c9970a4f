"""Which addresses a service port answers on and which endpoints each one uses (pure; both backends).

Endpoint choice follows kube-proxy (pkg/proxy/topology.go): Cluster policy uses ready endpoints, or, when
none is ready anywhere, the serving+terminating ones; Local policy does the same with this node's
endpoints only. Frontend kinds: "cluster" (ClusterIP, internalTrafficPolicy), "external" (LB ingress IPs
and externalIPs) and "nodeport" (a node port on one node address), both governed by
externalTrafficPolicy.

loadBalancerSourceRanges (pkg/proxy/nftables/proxier.go, the firewall chain) restrict only the "external"
frontends of LB ingress IPs: ClusterIPs, externalIPs and node ports are not subject to them. When the node's
own IP is inside a range, the LB IP itself is allowed too: a node reaching a VIP that is local to it can
arrive with the VIP as its source address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from nanokube.proxy.model import Endpoint, ServicePortInfo, ServicePortName, SliceEndpoints

REJECT = "reject"
DROP = "drop"


@dataclass(frozen=True)
class Frontend:
    ip: str
    protocol: str
    port: int
    kind: str  # "cluster" | "external" | "nodeport"
    endpoints: tuple[Endpoint, ...]  # what this frontend's traffic policy selects; may be empty
    cluster_endpoints: tuple[Endpoint, ...]  # Cluster-policy endpoints (the short-circuit for Local)
    local_policy: bool
    masquerade: bool  # external traffic with Cluster policy is always masqueraded
    no_endpoints: str  # "" when endpoints exist, else REJECT (none anywhere) or DROP (none on this node)
    affinity_timeout: int
    # allowed client CIDRs for an LB ingress IP with loadBalancerSourceRanges (collapsed); () = anyone
    source_ranges: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.ip, self.protocol, self.port)


@dataclass(frozen=True)
class ServicePortPlan:
    name: ServicePortName
    cluster_ip: str
    frontends: tuple[Frontend, ...]

    @property
    def endpoints(self) -> frozenset[Endpoint]:
        return frozenset(ep for fe in self.frontends for ep in (*fe.endpoints, *fe.cluster_endpoints))


def categorize(endpoints: tuple[Endpoint, ...], node_name: str) -> tuple[tuple[Endpoint, ...], tuple[Endpoint, ...]]:
    """(cluster-policy endpoints, local-policy endpoints)."""
    cluster = tuple(ep for ep in endpoints if ep.ready)
    if not cluster:
        cluster = tuple(ep for ep in endpoints if ep.serving and ep.terminating)
    mine = tuple(ep for ep in endpoints if ep.node_name == node_name)
    local = tuple(ep for ep in mine if ep.ready)
    if not local:
        local = tuple(ep for ep in mine if ep.serving and ep.terminating)
    return cluster, local


def firewall_ranges(info: ServicePortInfo, lb_ip: str, node_ip: str) -> tuple[str, ...]:
    """The sources allowed to reach LB ingress IP `lb_ip` of this service port; () = no restriction."""
    if not info.lb_source_ranges:
        return ()
    nets = [ipaddress.IPv4Network(r) for r in info.lb_source_ranges]
    if node_ip and any(ipaddress.IPv4Address(node_ip) in n for n in nets):
        nets.append(ipaddress.IPv4Network(lb_ip))
    return tuple(str(n) for n in ipaddress.collapse_addresses(nets))


def plan_service_port(name: ServicePortName, info: ServicePortInfo, endpoints: SliceEndpoints, *,
                      node_name: str, nodeport_ips: tuple[str, ...], node_ip: str = "") -> ServicePortPlan:
    eps = endpoints.get((name.port_name, name.protocol), ())
    cluster, local = categorize(eps, node_name)
    has_any = bool(cluster or local)
    fronts: list[Frontend] = []

    def add(ip: str, port: int, kind: str, ranges: tuple[str, ...] = ()) -> None:
        policy_local = info.internal_local if kind == "cluster" else info.external_local
        chosen = local if policy_local else cluster
        if not has_any:
            verdict = REJECT
        elif not chosen:
            verdict = DROP
        else:
            verdict = ""
        masq = kind != "cluster" and not policy_local
        fronts.append(Frontend(ip, name.protocol, port, kind, chosen, cluster, policy_local, masq, verdict,
                               info.affinity_timeout, ranges))

    add(info.cluster_ip, info.port, "cluster")
    for ip in sorted({*info.external_ips, *info.lb_ips}):
        add(ip, info.port, "external", firewall_ranges(info, ip, node_ip) if ip in info.lb_ips else ())
    if info.node_port:
        for ip in nodeport_ips:
            add(ip, info.node_port, "nodeport")
    return ServicePortPlan(name, info.cluster_ip, tuple(fronts))
