"""Composition root of `nanokube agent`: one more node for a running server (kubelet + kube-proxy).

The node talks to the server only through the API. It runs the node agent (registers the Node without a
control-plane role, takes the pod range the server's node IPAM gives it in spec.podCIDR, runs the pods bound
to it, renews its Lease) and the service proxy for this node:

* netns mode: the nftables proxy, as on the server's node;
* loopback mode: every address lives on the host's `lo`, and the server's userspace proxy already listens on
  every ClusterIP and LB address (forwarding to pods on every node), so this node's proxy listens only on
  the node ports of its own node IP (give each node its own, e.g. `--node-ip 127.0.0.2`);
* `--no-proxy`: no proxy at all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanokube.aio import gcpause, memtrim
from nanokube.aio.tasks import run_root_tasks, run_until_signalled
from nanokube.api.address_plan import AddressPlan
from nanokube.api.errors import ApiError
from nanokube.api.kube_dns import KUBE_DNS_SERVICE, KUBE_SYSTEM
from nanokube.client import ApiClient
from nanokube.client.rest import client_from_kubeconfig, wait_until_ready
from nanokube.settings import SettingsError

log = logging.getLogger("nanokube")

@dataclass
class NodeSettings:
    data_dir: Path
    network: str  # "netns" | "loopback"
    server: str = ""  # API URL (with token_file), or use kubeconfig
    token_file: Path | None = None
    ca_file: Path | None = None
    kubeconfig: Path | None = None
    node_name: str = field(default_factory=lambda: socket.gethostname().split(".")[0].lower())
    node_ip: str = ""
    service_cidr: str = ""  # as the server's; "" = the address plan of the network mode
    pod_cidr: str = ""
    lb_pool: str = ""
    proxy: bool = True
    proxy_status_port: int = 10256  # on the node IP; 0 = off
    kubelet_port: int = 0  # 0: a free port
    cluster_domain: str = "cluster.local"
    image_dirs: list[Path] = field(default_factory=list)
    backoff_base: float = 10.0
    max_pods: int = 110
    pod_cidr_wait: float = 30.0
    node_lease_duration: float = 40.0  # the Lease is renewed every quarter of it, as kubelet does
    flannel_backend: str = "auto"  # netns mode: pod routes to the other nodes (agent/podroutes.py)

    def fill_defaults(self) -> None:
        if self.kubeconfig is None:
            if not self.server or self.token_file is None:
                raise SettingsError("give --server URL and --token-file FILE (or --kubeconfig FILE)")
            if not self.token_file.is_file():
                raise SettingsError(f"--token-file {self.token_file}: no such file")
            if self.ca_file is None:
                # The server writes DATA_DIR/token next to DATA_DIR/pki/ca.crt.
                guess = self.token_file.parent / "pki" / "ca.crt"
                if guess.is_file():
                    self.ca_file = guess
            if self.server.startswith("https:") and self.ca_file is None:
                raise SettingsError("--ca-file: the server's CA (DATA_DIR/pki/ca.crt of the server) is needed")
        elif not self.kubeconfig.is_file():
            raise SettingsError(f"--kubeconfig {self.kubeconfig}: no such file")
        plan = AddressPlan.of(self.network, self.service_cidr, self.pod_cidr, self.lb_pool)
        self.service_cidr, self.pod_cidr, self.lb_pool = plan.service_cidr, plan.pod_cidr, plan.lb_pool
        if not self.node_ip:
            self.node_ip = "127.0.0.1" if self.network == "loopback" else ""
        if not self.node_ip:
            raise SettingsError("--node-ip: the address of this node is needed in netns mode")
        if not self.image_dirs:
            self.image_dirs = [self.data_dir / "images"]

    @property
    def plan(self) -> AddressPlan:
        return AddressPlan(self.network, self.service_cidr, self.pod_cidr, self.lb_pool)

    def client(self) -> ApiClient:
        if self.kubeconfig is not None:
            return client_from_kubeconfig(str(self.kubeconfig), user_agent=f"nanokube-agent/{self.node_name}")
        assert self.token_file is not None
        token = self.token_file.read_text().strip()
        return ApiClient(self.server.rstrip("/"), token, ca_file=str(self.ca_file) if self.ca_file else None,
                         user_agent=f"nanokube-agent/{self.node_name}")


def default_agent_data_dir() -> Path:
    import os

    if os.geteuid() == 0:
        return Path("/var/lib/nanokube-agent")
    return Path(os.path.expanduser("~/.local/share/nanokube-agent"))


async def cluster_dns_address(client: ApiClient, plan: AddressPlan) -> str:
    """The kube-dns Service's ClusterIP as the server made it (the plan's when missing)."""
    from nanokube.api.served_resources import by_kind

    try:
        svc = await client.get(by_kind("", "Service"), KUBE_DNS_SERVICE, KUBE_SYSTEM)
        dns_ip = (svc.get("spec") or {}).get("clusterIP") or ""
    except ApiError as err:
        if err.code != 404:
            raise
        dns_ip = ""
    return dns_ip or plan.kube_dns_ip


def kubelet_certificate(settings: NodeSettings) -> tuple[Path, Path]:
    """The kubelet port's certificate: issued by the cluster CA when its key is at hand (the server's data dir
    beside the token file or kubeconfig, as on one machine); otherwise by a CA of this node's own, which the API server will
    not trust (then `kubectl logs` of its pods fails with a certificate error: see docs/cli.md)."""
    from nanokube.apiserver.certs import ensure_kubelet_cert

    beside = settings.token_file or settings.kubeconfig  # the server writes both into its data dir
    cluster_pki = beside.resolve().parent / "pki" if beside else None
    pki = cluster_pki if cluster_pki and os.access(cluster_pki / "ca.key", os.R_OK) else settings.data_dir / "pki"
    _ca, cert, key = ensure_kubelet_cert(pki, settings.node_name, sorted({settings.node_ip, "127.0.0.1"}))
    return cert, key


async def run_node(settings: NodeSettings, stop: asyncio.Event) -> None:
    """Run the node agent and the proxy of this node until `stop`; the first to fail stops the other."""
    from nanokube import component_settings as derive
    from nanokube.agent import run_agent
    from nanokube.proxy import run_proxy

    gcpause.install()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    client = settings.client()
    node = derive.NodeIdentity(plan=settings.plan, node_name=settings.node_name, node_ip=settings.node_ip,
                               data_dir=settings.data_dir, joining=True)
    try:
        await wait_until_ready(client, timeout=30.0)
        cluster_dns = await cluster_dns_address(client, settings.plan)
        readies = {"agent": asyncio.Event()}
        kubelet_cert, kubelet_key = kubelet_certificate(settings)
        tasks: dict[str, Coroutine[Any, Any, Any]] = {"agent": run_agent(
            client=client, ready=readies["agent"], settings=derive.agent_settings(
                node, kubelet_cert=kubelet_cert, kubelet_key=kubelet_key, kubelet_token=client.token,
                cluster_dns=cluster_dns, cluster_domain=settings.cluster_domain,
                image_dirs=settings.image_dirs, backoff_base=settings.backoff_base, max_pods=settings.max_pods,
                lease_duration_seconds=settings.node_lease_duration, kubelet_port=settings.kubelet_port,
                pod_cidr_wait=settings.pod_cidr_wait))}
        if settings.proxy:
            readies["proxy"] = asyncio.Event()
            proxy_socket = settings.data_dir.resolve() / "proxy.sock"
            tasks["proxy"] = run_proxy(client=client, ready=readies["proxy"], settings=derive.proxy_settings(
                node, status_port=settings.proxy_status_port, status_token=client.token,
                status_socket=str(proxy_socket) if len(str(proxy_socket)) <= 107 else None))
        if settings.network == "netns":
            tasks.update(_netns_tasks(settings, client, readies))
        tasks["announce"] = _announce(settings, readies)
        tasks["memtrim"] = memtrim.trim_periodically()
        await run_root_tasks(tasks, stop=stop)
    finally:
        await client.close()


def _netns_tasks(settings: NodeSettings, client: ApiClient, readies: dict[str, asyncio.Event]
                 ) -> dict[str, Coroutine[Any, Any, Any]]:
    """Pod routes to the other nodes. (Cluster DNS is the kube-dns Service, which this node's proxy DNATs to
    the DNS server's endpoint like any other Service: no DNS server of its own.)"""
    from nanokube.agent.podroutes import PodRoutes

    readies["routes"] = asyncio.Event()
    return {"routes": PodRoutes(client, node_name=settings.node_name, node_ip=settings.node_ip,
                                backend=settings.flannel_backend).run(readies["routes"])}


async def _announce(settings: NodeSettings, readies: dict[str, asyncio.Event]) -> None:
    for event in readies.values():
        await event.wait()
    proxy = "off" if not settings.proxy else ("nodeports" if settings.network == "loopback" else "nftables")
    print(f"nanokube node ready node={settings.node_name} ip={settings.node_ip} network={settings.network} "
          f"proxy={proxy}", flush=True)
    await asyncio.Event().wait()  # until cancelled: a root task that ends on its own stops the node


def main_node(settings: NodeSettings) -> int:
    try:
        run_until_signalled(lambda stop: run_node(settings, stop))
    except SettingsError as exc:
        print(f"nanokube: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"nanokube: {exc.__cause__ or exc}", file=sys.stderr)
        return 1
    return 0
