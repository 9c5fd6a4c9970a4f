"""Pod routes between nodes in netns mode, driven only by Node objects (flannel's kube subnet manager model).

Each node routes every other node's `spec.podCIDR` to that node's InternalIP:

* `host-gw`: a plain route `podCIDR via NODE_IP` on the link holding this node's IP; a peer that is not on that
  link cannot be reached this way and is reported (once per peer), never looped on;
* `vxlan`: through the kernel VXLAN device `flannel.1` (VNI 1, UDP 8472, no learning) with, per peer, a route
  `podCIDR via PEER_SUBNET.0 onlink`, a permanent neighbour (PEER_SUBNET.0 -> peer VTEP MAC) and a permanent FDB
  entry (VTEP MAC -> peer IP): the three entries flannel installs;
* `auto` (the default): host-gw for peers on the same link, VXLAN for the others (flannel's vxlan backend with
  DirectRouting): no encapsulation cost where none is needed, and nodes behind a router still work.

This node's VTEP MAC is published in the Node's `flannel.alpha.coreos.com/backend-data` annotation and reused
after a restart, so peers' entries stay valid. No traffic is masqueraded here: pod to pod keeps the pod IPs.
Our routes carry protocol number ROUTE_PROTO so the ones of a node that left (or of a crashed run) are found.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from nanokube.aio.runner import BoundedFrequencyRunner
from nanokube.api.served_resources import BY_KIND
from nanokube.client import ApiClient, Informer

log = logging.getLogger(__name__)

BACKENDS = ("auto", "host-gw", "vxlan")
ROUTE_PROTO = 79  # the service proxy's routes use 78
VXLAN_DEVICE = "flannel.1"
VNI = 1
VXLAN_PORT = 8472  # the kernel's (and flannel's) default, not IANA's 4789
VXLAN_OVERHEAD = 50
ANNOTATION_PREFIX = "flannel.alpha.coreos.com/"
NODES = BY_KIND["", "Node"]


class RouteError(RuntimeError):
    pass


@dataclass(frozen=True)
class Peer:
    name: str
    pod_cidr: str
    ip: str
    vtep_mac: str  # "" when the peer publishes none (host-gw only)


@dataclass(frozen=True)
class Link:
    name: str
    network: ipaddress.IPv4Network
    mtu: int


def node_ip(node: dict[str, Any]) -> str:
    addresses = (node.get("status") or {}).get("addresses") or []
    return next((a.get("address", "") for a in addresses if a.get("type") == "InternalIP"), "")


def peer_of(node: dict[str, Any]) -> Peer | None:
    meta = node.get("metadata") or {}
    cidr = (node.get("spec") or {}).get("podCIDR") or ""
    ip = node_ip(node)
    if not cidr or not ip:
        return None
    try:
        data = json.loads((meta.get("annotations") or {}).get(ANNOTATION_PREFIX + "backend-data") or "{}")
        mac = str(data.get("VtepMAC") or "") if isinstance(data, dict) else ""
    except ValueError:
        mac = ""
    return Peer(meta.get("name", ""), cidr, ip, mac)


def subnet_zero(cidr: str) -> str:
    return str(ipaddress.ip_network(cidr, strict=False).network_address)


async def _run(argv: list[str], stdin: str | None = None, *, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    if check and proc.returncode != 0:
        raise RouteError(f"{' '.join(argv)}: {err.decode(errors='replace').strip()}")
    return out.decode()


async def ip_batch(commands: list[str], *, check: bool = True) -> None:
    if commands:
        await _run(["ip", *([] if check else ["-force"]), "-batch", "-"], "\n".join(commands) + "\n", check=check)


async def bridge_batch(commands: list[str], *, check: bool = True) -> None:
    if commands:
        await _run(["bridge", *([] if check else ["-force"]), "-batch", "-"], "\n".join(commands) + "\n",
                   check=check)


async def find_link(address: str) -> Link:
    """The interface holding `address`, its connected network and MTU."""
    for link in json.loads(await _run(["ip", "-j", "addr", "show"]) or "[]"):
        for info in link.get("addr_info") or []:
            if info.get("family") == "inet" and info.get("local") == address:
                net = ipaddress.ip_network(f"{address}/{info['prefixlen']}", strict=False)
                return Link(link["ifname"], net, int(link.get("mtu") or 1500))  # type: ignore[arg-type]
    raise RouteError(f"no interface holds the node IP {address}")


class PodRoutes:
    """Keeps this node's routes (and VXLAN entries) to the other nodes' pod CIDRs in step with the Nodes."""

    def __init__(self, client: ApiClient, *, node_name: str, node_ip: str, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"flannel backend must be one of {', '.join(BACKENDS)}")
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.backend = backend
        self.nodes = Informer(client, NODES)
        self.runner = BoundedFrequencyRunner(self.sync, name="pod routes", max_interval=60.0)
        self.link: Link | None = None
        self.vtep_mac = ""
        self.applied: dict[str, tuple[Peer, str]] = {}  # node name -> (peer, "host-gw" | "vxlan")
        self.reported: set[tuple[str, str]] = set()
        self.synced = asyncio.Event()
        self.own_cidr = asyncio.Event()

    @property
    def uses_vxlan(self) -> bool:
        return self.backend in ("auto", "vxlan")

    def mode_for(self, peer: Peer) -> str | None:
        assert self.link is not None
        on_link = ipaddress.ip_address(peer.ip) in self.link.network
        if self.backend == "vxlan" or (self.backend == "auto" and not on_link):
            return "vxlan" if peer.vtep_mac else None
        return "host-gw" if on_link else None

    # -- kernel state -----------------------------------------------------------------------------------
    async def _flush_routes(self) -> None:
        routes = json.loads(await _run(["ip", "-j", "route", "show", "proto", str(ROUTE_PROTO)]) or "[]")
        await ip_batch([f"route del {r['dst']} proto {ROUTE_PROTO}" for r in routes], check=False)

    async def _setup_vxlan(self, own_cidr: str, mac: str) -> str:
        assert self.link is not None
        await ip_batch([f"link del {VXLAN_DEVICE}"], check=False)  # drops stale neighbours and FDB entries
        mac = mac or "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
        await ip_batch([
            f"link add {VXLAN_DEVICE} address {mac} type vxlan id {VNI} dstport {VXLAN_PORT} local {self.node_ip} "
            f"dev {self.link.name} nolearning",
            f"link set {VXLAN_DEVICE} mtu {self.link.mtu - VXLAN_OVERHEAD} up",
            # the subnet's .0 as /32: no broadcast route; the source of node -> remote pod traffic
            f"addr replace {subnet_zero(own_cidr)}/32 dev {VXLAN_DEVICE}",
        ])
        return mac

    async def _publish(self) -> None:
        annotations = {ANNOTATION_PREFIX + "backend-type": "vxlan" if self.uses_vxlan else "host-gw",
                       ANNOTATION_PREFIX + "public-ip": self.node_ip,
                       ANNOTATION_PREFIX + "kube-subnet-manager": "true"}
        if self.vtep_mac:
            annotations[ANNOTATION_PREFIX + "backend-data"] = json.dumps({"VNI": VNI, "VtepMAC": self.vtep_mac},
                                                                         separators=(",", ":"))
        await self.client.patch(NODES, self.node_name, {"metadata": {"annotations": annotations}})

    def _add(self, peer: Peer, mode: str) -> tuple[list[str], list[str]]:
        assert self.link is not None
        if mode == "host-gw":
            return [f"route replace {peer.pod_cidr} via {peer.ip} dev {self.link.name} proto {ROUTE_PROTO}"], []
        gw = subnet_zero(peer.pod_cidr)
        return ([f"neigh replace {gw} lladdr {peer.vtep_mac} dev {VXLAN_DEVICE} nud permanent",
                 f"route replace {peer.pod_cidr} via {gw} dev {VXLAN_DEVICE} onlink proto {ROUTE_PROTO}"],
                [f"fdb replace {peer.vtep_mac} dev {VXLAN_DEVICE} dst {peer.ip} self permanent"])

    def _remove(self, peer: Peer, mode: str) -> tuple[list[str], list[str]]:
        ip_cmds = [f"route del {peer.pod_cidr} proto {ROUTE_PROTO}"]
        if mode == "host-gw":
            return ip_cmds, []
        return ([*ip_cmds, f"neigh del {subnet_zero(peer.pod_cidr)} dev {VXLAN_DEVICE}"],
                [f"fdb del {peer.vtep_mac} dev {VXLAN_DEVICE} dst {peer.ip} self"])

    # -- reconcile --------------------------------------------------------------------------------------
    async def sync(self) -> None:
        if not self.nodes.synced.is_set():
            return
        wanted: dict[str, tuple[Peer, str]] = {}
        for node in self.nodes.list():
            peer = peer_of(node)
            if peer is None or peer.name == self.node_name:
                continue
            mode = self.mode_for(peer)
            if mode is None:
                key = (peer.name, peer.ip)
                if key not in self.reported:
                    self.reported.add(key)
                    log.error("pod routes: node %s (%s) is not on this node's link %s and has no VXLAN endpoint "
                              "(backend %s): its pods are unreachable from here", peer.name, peer.ip,
                              self.link.network if self.link else "?", self.backend)
                continue
            wanted[peer.name] = (peer, mode)
        gone = [(name, entry) for name, entry in self.applied.items() if wanted.get(name) != entry]
        ip_del: list[str] = []
        br_del: list[str] = []
        for _, (peer, mode) in gone:
            a, b = self._remove(peer, mode)
            ip_del += a
            br_del += b
        await bridge_batch(br_del, check=False)
        await ip_batch(ip_del, check=False)
        for name, _ in gone:
            del self.applied[name]
        ip_add: list[str] = []
        br_add: list[str] = []
        for name, (peer, mode) in wanted.items():
            if name not in self.applied:
                a, b = self._add(peer, mode)
                ip_add += a
                br_add += b
        await bridge_batch(br_add)  # the FDB entry first: the neighbour and route then resolve at once
        await ip_batch(ip_add)
        self.applied.update(wanted)
        self.synced.set()

    def _changed(self, node: dict[str, Any] | None = None) -> None:
        if node is not None and (node.get("metadata") or {}).get("name") == self.node_name \
                and (node.get("spec") or {}).get("podCIDR"):
            self.own_cidr.set()
        self.runner.request()

    async def _own_node(self) -> dict[str, Any]:
        """This node once it has a pod CIDR (the agent registers it; the server's IPAM fills spec.podCIDR)."""
        await self.own_cidr.wait()
        node = self.nodes.get(None, self.node_name)
        assert node is not None
        return node

    async def run(self, ready: asyncio.Event | None = None) -> None:
        self.link = await find_link(self.node_ip)
        self.nodes.add_handler(on_add=self._changed, on_update=lambda _old, new: self._changed(new),
                               on_delete=lambda _: self._changed(), on_synced=self._changed)
        try:
            await self._flush_routes()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.nodes.run(), name="pod routes: nodes informer")
                await self.nodes.synced.wait()
                own = await self._own_node()
                if self.uses_vxlan:
                    old = peer_of(own)
                    self.vtep_mac = await self._setup_vxlan(own["spec"]["podCIDR"], old.vtep_mac if old else "")
                await self._publish()
                tg.create_task(self.runner.run(), name="pod routes: sync runner")
                self.runner.request()
                await self.synced.wait()
                if ready is not None:
                    ready.set()
        finally:
            await asyncio.shield(self.cleanup())

    async def cleanup(self) -> None:
        await self._flush_routes()
        if self.uses_vxlan:
            await ip_batch([f"link del {VXLAN_DEVICE}"], check=False)
        self.applied.clear()
