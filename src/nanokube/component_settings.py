"""Every component's settings, derived from one address plan, for both composition roots.

`nanokube server` (server.py) and `nanokube agent` (worker_node.py) run the same components; the choices that
follow from the network mode (proxy backend, which frontends a joining loopback node serves, the node network
the agent sees, the Lease period) are made here once. The per-component dataclasses stay: they keep the
components independent of each other and of these roots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nanokube.api.address_plan import AddressPlan

if TYPE_CHECKING:  # each imported where its settings are made: a component's package loads when it starts
    from nanokube.agent import AgentSettings
    from nanokube.controllers import ControllerSettings
    from nanokube.dns import DnsSettings
    from nanokube.proxy import ProxySettings

NODE_LEASE_DURATION = 40.0  # seconds (kubelet's default); the Lease is renewed every quarter of it


def lease_duration(node_monitor_grace_period: float) -> float:
    """A Lease that expires no later than the grace period the server's node lifecycle allows."""
    return min(NODE_LEASE_DURATION, node_monitor_grace_period)


@dataclass(frozen=True)
class NodeIdentity:
    """What the agent and the proxy of one node share."""

    plan: AddressPlan
    node_name: str
    node_ip: str
    data_dir: Path
    joining: bool  # a `nanokube agent` joining a server's cluster, not the server's own node


def agent_settings(node: NodeIdentity, *, kubelet_cert: Path | None, kubelet_key: Path | None, kubelet_token: str | None,
                   cluster_dns: str, cluster_domain: str, image_dirs: list[Path], backoff_base: float, max_pods: int,
                   lease_duration_seconds: float, kubelet_port: int = 0,
                   pod_cidr_wait: float | None = None) -> AgentSettings:
    from nanokube.agent import AgentSettings

    plan = node.plan
    extra = {} if pod_cidr_wait is None else {"pod_cidr_wait": pod_cidr_wait}
    return AgentSettings(
        kubelet_cert=kubelet_cert, kubelet_key=kubelet_key, kubelet_token=kubelet_token, node_name=node.node_name, node_ip=node.node_ip, network=plan.node_network, data_dir=node.data_dir,
        # the server's node takes the first /24; a joining node waits for the one the server's IPAM gives it
        pod_cidr=None if node.joining else plan.first_node_pod_cidr, cluster_dns=cluster_dns,
        cluster_domain=cluster_domain, image_dirs=image_dirs, kubelet_port=kubelet_port,
        backoff_base=backoff_base, max_pods=max_pods, node_lease_seconds=lease_duration_seconds / 4,
        node_roles=() if node.joining else ("control-plane",), pod_cidr_fallback=not node.joining, **extra)


def proxy_settings(node: NodeIdentity, *, status_port: int, status_token: str | None, status_socket: str | None
                   ) -> ProxySettings:
    from nanokube.proxy import ProxySettings

    plan = node.plan
    # A joining loopback node shares the host's `lo` with the server, whose proxy already serves every ClusterIP
    # and LB address: it serves only the node ports of its own address.
    kinds = ("nodeport",) if node.joining and plan.node_network == "loopback" else None
    return ProxySettings(mode=plan.proxy_mode, node_name=node.node_name, node_ips=[node.node_ip],
                         service_cidr=plan.service_cidr, pod_cidr=plan.pod_cidr, lb_pool=plan.lb_pool,
                         status_port=status_port, status_address=node.node_ip if node.joining else "127.0.0.1",
                         status_token=status_token, status_socket=status_socket, frontend_kinds=kinds)


def dns_settings(listen: list[tuple[str, int]], *, cluster_domain: str, ttl: int, pods_mode: str,
                 upstreams: list[str] | None, endpoint: tuple[str, int] | None = None,
                 node_name: str = "") -> DnsSettings:
    from nanokube.dns import DnsSettings

    return DnsSettings(listen=listen, cluster_domain=cluster_domain, ttl=ttl, pods_mode=pods_mode,
                       upstreams=upstreams, endpoint=endpoint, node_name=node_name)


def controller_settings(node: NodeIdentity, *, node_monitor_grace_period: float) -> ControllerSettings:
    from nanokube.controllers import ControllerSettings

    return ControllerSettings(lb_pool=node.plan.lb_pool, data_dir=node.data_dir,
                              node_monitor_grace_period=node_monitor_grace_period, pod_cidr=node.plan.pod_cidr,
                              reserved_pod_cidrs={node.node_name: node.plan.first_node_pod_cidr})
