"""Settings of `nanokube server`: flags, the data dir, and the address plan of each network mode."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nanokube.api import privileged_ports
from nanokube.api.address_plan import NETWORK_MODES, AddressPlan
from nanokube.api.validation import parse_port_range
from nanokube.control_plane import ControlPlane
from nanokube.rootless.namespaces import SBIN_PATH, userns_unavailable_reason

# Where the cluster DNS listens when it cannot have port 53 (a user's loopback mode; rootless mode's host side):
# the k3s rule for privileged ports, 10000 + port.
DNS_UNPRIVILEGED_PORT = 10053


class SettingsError(Exception):
    """A bad flag or environment; the CLI prints it on one line and exits non-zero."""


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/nanokube")
    return Path(os.path.expanduser("~/.local/share/nanokube"))


def _nft_found() -> bool:
    return (shutil.which("nft") or shutil.which("nft", path=SBIN_PATH)) is not None


def resolve_network(requested: str) -> str:
    """auto: netns as root; rootless for a user when user namespaces work; else loopback (saying why)."""
    linux = sys.platform.startswith("linux")
    root = os.geteuid() == 0
    if requested == "auto":
        if linux and root and _nft_found():
            return "netns"
        if linux and not root:
            reason = userns_unavailable_reason() if _nft_found() else "no nft command (apt-get install nftables)"
            if not reason:
                return "rootless"
            logging.getLogger("nanokube").warning(
                "--network auto: loopback mode, as rootless mode cannot run here (%s)", reason)
        return "loopback"
    if requested == "netns" and not (linux and root and _nft_found()):
        if not root:
            raise SettingsError("--network netns needs root (run as root, or use --network rootless or loopback)")
        raise SettingsError("--network netns needs Linux with the nft command (apt-get install nftables)")
    if requested == "rootless":
        if root:
            raise SettingsError("--network rootless is for a non-root user; as root use --network netns")
        reason = userns_unavailable_reason() if linux else "needs Linux"
        if not reason and not _nft_found():
            reason = "no nft command (apt-get install nftables)"
        if reason:
            raise SettingsError(f"--network rootless: user namespaces unavailable ({reason}); "
                                "use --network loopback")
    if requested not in NETWORK_MODES:
        raise SettingsError(f"--network must be auto, netns, rootless or loopback, not {requested!r}")
    return requested


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        return text, default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError as exc:
        raise SettingsError(f"invalid address {text!r}: want HOST:PORT") from exc


@dataclass
class ServerSettings:
    data_dir: Path = field(default_factory=default_data_dir)
    api_host: str = "127.0.0.1"
    api_port: int = 6443
    network: str = "loopback"
    service_cidr: str = ""
    pod_cidr: str = ""
    lb_pool: str = ""
    node_port_range: str = "30000-32767"
    cluster_domain: str = "cluster.local"
    dns_listen: tuple[str, int] | None = None
    host_dns_listen: tuple[str, int] | None = None  # rootless: where the host reaches the DNS (forwarded)
    node_name: str = field(default_factory=lambda: socket.gethostname().split(".")[0].lower())
    node_ip: str = ""
    agent: bool = True
    node_monitor_grace_period: float = 40.0
    dns_ttl: int = 5
    dns_pods: str = "verified"
    dns_upstreams: list[str] | None = None
    image_dirs: list[Path] = field(default_factory=list)
    backoff_base: float = 10.0
    proxy_status_port: int = 10256
    max_pods: int = 110
    flannel_backend: str = "auto"  # netns mode with a --node-ip off the bridge: routes to other nodes' pods
    compact_keep_revisions: int = 10_000
    compact_keep_seconds: float = 300.0
    control_plane: ControlPlane = field(default_factory=ControlPlane)  # etcd, several API servers, leader election

    def fill_defaults(self) -> None:
        plan = AddressPlan.of(self.network, self.service_cidr, self.pod_cidr, self.lb_pool)
        self.service_cidr, self.pod_cidr, self.lb_pool = plan.service_cidr, plan.pod_cidr, plan.lb_pool
        for flag, value in (("--service-cidr", self.service_cidr), ("--pod-cidr", self.pod_cidr)):
            try:
                net = ipaddress.ip_network(value, strict=False)
            except ValueError as exc:
                raise SettingsError(f"{flag}: {exc}") from exc
            if net.version != 4:
                raise SettingsError(f"{flag}: only IPv4 is supported")
        if not self.node_ip:
            self.node_ip = "127.0.0.1" if self.network == "loopback" else self.node_pod_gateway
        if self.network == "rootless" and self.host_dns_listen is None:
            self.host_dns_listen = ("127.0.0.1", DNS_UNPRIVILEGED_PORT)
        if self.dns_listen is None:
            # netns: the node IP, the kube-dns Service's endpoint (the proxy DNATs the ClusterIP there on every
            # node); loopback: the ClusterIP itself, which has no kernel DNAT to carry it (docs/architecture.md)
            self.dns_listen = (self.node_ip if self.plan.node_network == "netns" else self.kube_dns_ip, 53)
            if self.network == "loopback" and privileged_ports.is_privileged(53):
                self.dns_listen = (self.kube_dns_ip, DNS_UNPRIVILEGED_PORT)
        try:
            if parse_port_range(self.node_port_range)[0] == 0:
                raise ValueError
        except ValueError:
            raise SettingsError(f"--service-node-port-range {self.node_port_range!r}: want LOW-HIGH") from None
        if not self.image_dirs:
            self.image_dirs = [self.data_dir / "images"]

    @property
    def plan(self) -> AddressPlan:
        """The address plan (after fill_defaults: with the ranges given or the mode's defaults)."""
        return AddressPlan(self.network, self.service_cidr, self.pod_cidr, self.lb_pool)

    @property
    def kubernetes_ip(self) -> str:
        return self.plan.kubernetes_ip

    @property
    def kube_dns_ip(self) -> str:
        return self.plan.kube_dns_ip

    @property
    def node_pod_cidr(self) -> str:
        """The first /24 of the pod CIDR is this node's."""
        return self.plan.first_node_pod_cidr

    @property
    def node_pod_gateway(self) -> str:
        return self.plan.first_node_gateway

    @property
    def api_listen_hosts(self) -> list[str]:
        """Where the API listens. In netns mode also on the node IP (unless the API listens everywhere), so
        pods reach it through the `kubernetes` Service: 127.0.0.1 is each pod's own loopback."""
        hosts = [self.api_host]
        if self.plan.node_network == "netns" and self.api_host not in ("", "0.0.0.0") and self.node_ip != self.api_host:
            hosts.append(self.node_ip)
        return hosts

    @property
    def api_endpoint_address(self) -> str:
        """The address of the `kubernetes` Service's endpoint: one that pods and the node both reach."""
        if self.plan.node_network == "netns" or self.api_host in ("", "0.0.0.0"):
            return self.node_ip
        return self.api_host

    @property
    def local_dns_address(self) -> str | None:
        """In netns mode a DNS listen address inside the service CIDR (by default the kube-dns ClusterIP) is
        not proxied; the server makes it local on the node so the DNS server can bind it."""
        assert self.dns_listen is not None
        host = self.dns_listen[0]
        if self.plan.node_network != "netns" or host in ("", "0.0.0.0"):
            return None
        try:
            inside = ipaddress.ip_address(host) in ipaddress.ip_network(self.service_cidr, strict=False)
        except ValueError:
            return None
        return host if inside else None

    @property
    def dns_endpoint(self) -> tuple[str, int]:
        """The kube-dns Service's endpoint: where the DNS server answers for pods. A wildcard or loopback
        listen address is not one a pod can reach (127.0.0.1 is the pod's own), so then the node IP."""
        assert self.dns_listen is not None
        host, port = self.dns_listen
        if self.plan.node_network == "netns" and (host in ("", "0.0.0.0") or host.startswith("127.")):
            return self.node_ip, port
        return host, port

    @property
    def dns_listen_addresses(self) -> list[tuple[str, int]]:
        """Where the DNS server listens: the --dns-listen address, and the endpoint when that is elsewhere
        (netns mode with --dns-listen on 127.0.0.1: pods still resolve through the ClusterIP)."""
        assert self.dns_listen is not None
        endpoint = self.dns_endpoint
        if self.dns_listen[0] in ("", "0.0.0.0") or endpoint == self.dns_listen:
            return [self.dns_listen]
        return [self.dns_listen, endpoint]

    @property
    def announced_dns(self) -> tuple[str, int] | None:
        """The DNS address the ready line names: where the user reaches it from the host. In netns mode that is
        the kube-dns ClusterIP, as for pods (the host's nftables DNAT it to the server), unless --dns-listen
        put the server somewhere else."""
        if self.network == "rootless":
            return self.host_dns_listen
        if self.plan.node_network == "netns" and self.dns_listen is not None and self.dns_listen == self.dns_endpoint:
            return self.kube_dns_ip, 53
        return self.dns_listen

    def privileged_port_warning(self) -> str | None:
        """One line for a user's loopback mode, which cannot bind ports below the kernel's limit: what moved,
        what is not served, and the remedies."""
        if self.network != "loopback" or not privileged_ports.is_privileged(443):
            return None
        assert self.dns_listen is not None
        limit = privileged_ports.unprivileged_port_start()
        dns = (f"the cluster DNS listens on {self.dns_listen[0]}:{self.dns_listen[1]} instead of port 53; "
               if self.dns_listen[1] == DNS_UNPRIVILEGED_PORT else "")
        return (f"loopback mode as a non-root user cannot bind ports below {limit} "
                f"({privileged_ports.SYSCTL}={limit}): {dns}the `kubernetes` Service's port 443 and any Service "
                f"port below {limit} are not served (NodePorts and ports from {limit} up are); "
                f"{privileged_ports.REMEDIES}")

    @property
    def api_url(self) -> str:
        host = self.api_host if self.api_host not in ("0.0.0.0", "") else "127.0.0.1"
        return f"https://{host}:{self.api_port}"
