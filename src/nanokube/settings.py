"""Settings of `nanokube server`: flags, the data dir, and the address plan of each network mode."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nanokube.api.validation import parse_port_range
from nanokube.control_plane import ControlPlane

ADDRESS_PLAN = {
    "netns": {"service_cidr": "10.96.0.0/12", "pod_cidr": "10.244.0.0/16", "lb_pool": "10.250.0.0/24"},
    "loopback": {"service_cidr": "127.96.0.0/16", "pod_cidr": "127.244.0.0/16", "lb_pool": "127.240.0.0/24"},
}


class SettingsError(Exception):
    """A bad flag or environment; the CLI prints it on one line and exits non-zero."""


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/nanokube")
    return Path(os.path.expanduser("~/.local/share/nanokube"))


def resolve_network(requested: str) -> str:
    can_netns = sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("nft") is not None
    if requested == "auto":
        return "netns" if can_netns else "loopback"
    if requested == "netns" and not can_netns:
        if os.geteuid() != 0:
            raise SettingsError("--network netns needs root (run as root or use --network loopback)")
        raise SettingsError("--network netns needs Linux with the nft command (apt-get install nftables)")
    if requested not in ("netns", "loopback"):
        raise SettingsError(f"--network must be auto, netns or loopback, not {requested!r}")
    return requested


def nth_ip(cidr: str, n: int) -> str:
    return str(ipaddress.ip_network(cidr, strict=False).network_address + n)


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
        plan = ADDRESS_PLAN[self.network]
        self.service_cidr = self.service_cidr or plan["service_cidr"]
        self.pod_cidr = self.pod_cidr or plan["pod_cidr"]
        self.lb_pool = self.lb_pool or plan["lb_pool"]
        for flag, value in (("--service-cidr", self.service_cidr), ("--pod-cidr", self.pod_cidr)):
            try:
                net = ipaddress.ip_network(value, strict=False)
            except ValueError as exc:
                raise SettingsError(f"{flag}: {exc}") from exc
            if net.version != 4:
                raise SettingsError(f"{flag}: only IPv4 is supported")
        if not self.node_ip:
            self.node_ip = "127.0.0.1" if self.network == "loopback" else self.node_pod_gateway
        if self.dns_listen is None:
            self.dns_listen = (self.kube_dns_ip, 53)
        try:
            if parse_port_range(self.node_port_range)[0] == 0:
                raise ValueError
        except ValueError:
            raise SettingsError(f"--service-node-port-range {self.node_port_range!r}: want LOW-HIGH") from None
        if not self.image_dirs:
            self.image_dirs = [self.data_dir / "images"]

    @property
    def kubernetes_ip(self) -> str:
        return nth_ip(self.service_cidr, 1)

    @property
    def kube_dns_ip(self) -> str:
        return nth_ip(self.service_cidr, 10)

    @property
    def node_pod_cidr(self) -> str:
        """The first /24 of the pod CIDR is this node's."""
        net = ipaddress.ip_network(self.pod_cidr, strict=False)
        if net.prefixlen >= 24:
            return str(net)
        return str(next(net.subnets(new_prefix=24)))

    @property
    def node_pod_gateway(self) -> str:
        return nth_ip(self.node_pod_cidr, 1)

    @property
    def api_listen_hosts(self) -> list[str]:
        """Where the API listens. In netns mode also on the node IP (unless the API listens everywhere), so
        pods reach it through the `kubernetes` Service: 127.0.0.1 is each pod's own loopback."""
        hosts = [self.api_host]
        if self.network == "netns" and self.api_host not in ("", "0.0.0.0") and self.node_ip != self.api_host:
            hosts.append(self.node_ip)
        return hosts

    @property
    def api_endpoint_address(self) -> str:
        """The address of the `kubernetes` Service's endpoint: one that pods and the node both reach."""
        if self.network == "netns" or self.api_host in ("", "0.0.0.0"):
            return self.node_ip
        return self.api_host

    @property
    def local_dns_address(self) -> str | None:
        """In netns mode a DNS listen address inside the service CIDR (by default the kube-dns ClusterIP) is
        not proxied; the server makes it local on the node so the DNS server can bind it."""
        assert self.dns_listen is not None
        host = self.dns_listen[0]
        if self.network != "netns" or host in ("", "0.0.0.0"):
            return None
        try:
            inside = ipaddress.ip_address(host) in ipaddress.ip_network(self.service_cidr, strict=False)
        except ValueError:
            return None
        return host if inside else None

    @property
    def api_url(self) -> str:
        host = self.api_host if self.api_host not in ("0.0.0.0", "") else "127.0.0.1"
        return f"https://{host}:{self.api_port}"
