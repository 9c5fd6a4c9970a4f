"""Node IPAM (kube-controller-manager's range allocator): every Node without spec.podCIDR gets the next free
/24 of the cluster pod CIDR, written as spec.podCIDR and spec.podCIDRs.

The allocation lives only in the Nodes: on start every podCIDR already given is marked used, so node ranges
are stable across restarts. A deleted Node frees its range. `reserved` ranges (the server's own node keeps
the first /24, which its agent uses from the start) go only to the node they are reserved for.
"""

from __future__ import annotations

import ipaddress
import logging

from nanokube.api.meta import Obj
from nanokube.controllers.events import NORMAL, WARNING
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.resources import NODES

log = logging.getLogger(__name__)

NODE_PREFIX = 24


def node_pod_cidr(node: Obj) -> str | None:
    spec = node.get("spec") or {}
    return spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or []), None)


class CidrSet:
    """The /24s of a cluster CIDR; hands out the lowest free one (pure, no I/O)."""

    def __init__(self, cluster_cidr: str, prefix: int = NODE_PREFIX,
                 reserved: dict[str, str] | None = None) -> None:
        net = ipaddress.ip_network(cluster_cidr, strict=False)
        self.network = net
        self.prefix = max(prefix, net.prefixlen)
        self.used: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, str] = {}  # range -> node name
        self.reserved = {ipaddress.ip_network(c, strict=False): name for name, c in (reserved or {}).items()}

    def occupy(self, node_name: str, cidr: str) -> bool:
        """Mark a range a node already has; False when it is outside the cluster CIDR or another node's."""
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return False
        if net.version != self.network.version or not net.subnet_of(self.network):  # type: ignore[arg-type]
            return False
        holder = self.used.setdefault(net, node_name)
        return holder == node_name

    def release(self, node_name: str) -> None:
        for net in [n for n, holder in self.used.items() if holder == node_name]:
            del self.used[net]

    def allocate(self, node_name: str) -> str | None:
        """The node's range: the one it already holds (an allocation its Node in the cache does not show yet),
        its reserved one, else the lowest free one; None when the cluster CIDR is full."""
        for net, name in self.used.items():
            if name == node_name:
                return str(net)
        for net, name in self.reserved.items():
            if name == node_name and self.used.get(net, node_name) == node_name:
                self.used[net] = node_name
                return str(net)
        reserved = set(self.reserved)
        for net in self.network.subnets(new_prefix=self.prefix):
            if net not in self.used and net not in reserved:
                self.used[net] = node_name
                return str(net)
        return None


class NodeIpamController(Controller):
    name = "node-ipam-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cidrs = CidrSet(ctx.settings.pod_cidr, reserved=ctx.settings.reserved_pod_cidrs)
        self.nodes = ctx.informer(NODES)
        self.nodes.add_handler(on_add=self._changed, on_update=lambda _o, n: self._changed(n),
                               on_delete=self._changed)

    def _changed(self, node: Obj) -> None:
        self.queue.add(node["metadata"]["name"])

    async def start(self) -> None:
        # First every range already given, so a restart never hands one out twice; then the nodes without one.
        for node in self.nodes.list():
            name = node["metadata"]["name"]
            cidr = node_pod_cidr(node)
            if cidr and not self.cidrs.occupy(name, cidr):
                log.warning("node %s: podCIDR %s is outside %s or also another node's", name, cidr,
                            self.cidrs.network)
        for node in self.nodes.list():
            if not node_pod_cidr(node):
                self.queue.add(node["metadata"]["name"])

    async def sync(self, name: str) -> float | None:
        node = self.nodes.cache.get(name)
        if node is None:
            self.cidrs.release(name)
            return None
        cidr = node_pod_cidr(node)
        if cidr:
            if not self.cidrs.occupy(name, cidr):
                log.warning("node %s: podCIDR %s is outside %s or also another node's", name, cidr,
                            self.cidrs.network)
            return None
        cidr = self.cidrs.allocate(name)
        if cidr is None:
            self.event(node, WARNING, "CIDRNotAvailable", f"Node {name} status is now: CIDRNotAvailable")
            return 10.0
        try:
            await self.client.patch(NODES, name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except Exception:
            self.cidrs.release(name)
            raise
        log.info("node %s: podCIDR %s", name, cidr)
        self.event(node, NORMAL, "CIDRAssignmentSucceeded", f"Node {name} got podCIDR {cidr}")
        return None
