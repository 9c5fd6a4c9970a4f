"""The address plan of each network mode (the table in docs/loopback-mode.md), and what follows from it, in one place.

`rootless` is netns mode inside a user namespace: the same addresses, the same node network and proxy.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from nanokube.api.kube_dns import KUBE_DNS_HOST_INDEX, KUBERNETES_HOST_INDEX

NETWORK_MODES = ("netns", "rootless", "loopback")
DEFAULTS = {
    "netns": {"service_cidr": "10.96.0.0/12", "pod_cidr": "10.244.0.0/16", "lb_pool": "10.250.0.0/24"},
    "loopback": {"service_cidr": "127.96.0.0/16", "pod_cidr": "127.244.0.0/16", "lb_pool": "127.240.0.0/24"},
}


def nth_ip(cidr: str, n: int) -> str:
    return str(ipaddress.ip_network(cidr, strict=False).network_address + n)


def node_network(network: str) -> str:
    """What the node's components see: "netns" (own namespaces, nftables) or "loopback"."""
    return "loopback" if network == "loopback" else "netns"


@dataclass(frozen=True)
class AddressPlan:
    network: str  # one of NETWORK_MODES
    service_cidr: str
    pod_cidr: str
    lb_pool: str

    @classmethod
    def of(cls, network: str, service_cidr: str = "", pod_cidr: str = "", lb_pool: str = "") -> AddressPlan:
        """The mode's plan, with any range the user gave instead of the default."""
        defaults = DEFAULTS[node_network(network)]
        return cls(network, service_cidr or defaults["service_cidr"], pod_cidr or defaults["pod_cidr"],
                   lb_pool or defaults["lb_pool"])

    @property
    def node_network(self) -> str:
        return node_network(self.network)

    @property
    def proxy_mode(self) -> str:
        return "userspace" if self.node_network == "loopback" else "nftables"

    @property
    def kubernetes_ip(self) -> str:
        return nth_ip(self.service_cidr, KUBERNETES_HOST_INDEX)

    @property
    def kube_dns_ip(self) -> str:
        return nth_ip(self.service_cidr, KUBE_DNS_HOST_INDEX)

    @property
    def first_node_pod_cidr(self) -> str:
        """The first /24 of the pod CIDR: the server's own node's range."""
        net = ipaddress.ip_network(self.pod_cidr, strict=False)
        if net.prefixlen >= 24:
            return str(net)
        return str(next(net.subnets(new_prefix=24)))

    @property
    def first_node_gateway(self) -> str:
        return nth_ip(self.first_node_pod_cidr, 1)
