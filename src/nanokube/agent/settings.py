"""The node agent's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nanokube.api.address_plan import AddressPlan

KUBELET_VERSION = "v1.32.0-nanokube"


@dataclass
class AgentSettings:
    node_name: str
    node_ip: str
    network: str  # "netns" | "loopback"
    data_dir: Path
    pod_cidr: str | None
    cluster_dns: str
    cluster_domain: str = "cluster.local"
    image_dirs: list[Path] = field(default_factory=list)
    kubelet_port: int = 0  # 0: pick a free port
    backoff_base: float = 10.0
    node_lease_seconds: float = 10
    shutdown_budget: float = 8.0  # seconds all pods get to stop when the agent stops (server stops in < 10 s)
    # node-role.kubernetes.io/<role> labels (kubectl's ROLES column); the server's own node is its control plane,
    # as with kubeadm, k3s and minikube. A joining `nanokube agent` passes ().
    node_roles: tuple[str, ...] = ("control-plane",)
    max_pods: int = 110  # the node's pods capacity (kubelet --max-pods)
    # With pod_cidr None: seconds to wait for the server's node IPAM to set spec.podCIDR; after that the
    # default /24 is used, or (a joining `nanokube agent`, whose range must differ from every other node's)
    # the agent fails when pod_cidr_fallback is False.
    pod_cidr_wait: float = 1.0
    pod_cidr_fallback: bool = True
    # The kubelet port: TLS with this certificate and key (None: plain HTTP, for tests of the pieces) and the
    # bearer token callers must give (None: no check).
    kubelet_cert: Path | None = None
    kubelet_key: Path | None = None
    kubelet_token: str | None = None

    @property
    def default_pod_cidr(self) -> str:
        return AddressPlan.of(self.network).first_node_pod_cidr
