"""run_proxy: informers on Services, EndpointSlices and this Node feeding a Proxier with one backend."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass

from nanokube.api.meta import Obj
from nanokube.api.served_resources import BY_KIND
from nanokube.client import ApiClient, Informer
from nanokube.proxy.commands import Commands
from nanokube.proxy.forward import COUNTING
from nanokube.proxy.healthcheck import ServiceHealthServer
from nanokube.proxy.hostnet import HostNetwork, nft_pool_expr, pool_networks
from nanokube.proxy.nftables import NftablesBackend
from nanokube.proxy.nftrules import NetConfig
from nanokube.proxy.proxier import Backend, Proxier
from nanokube.proxy.state import ProxyState
from nanokube.proxy.status import DEFAULT_STATUS_PORT, ProxyStatus, StatusServer
from nanokube.proxy.userspace import UserspaceBackend
from nanokube.proxy.worker_pool import WorkerPoolBackend, default_workers

log = logging.getLogger(__name__)


@dataclass
class ProxySettings:
    mode: str  # "nftables" | "userspace"
    node_name: str
    node_ips: list[str]
    service_cidr: str
    pod_cidr: str
    lb_pool: str  # CIDR or A-B range
    nodeport_addresses: list[str] | None = None  # CIDRs/IPs; None = the node IPs
    bridge: str = "nk0"
    min_sync_interval: float = 0.0
    max_sync_interval: float = 30.0
    netns: str | None = None  # nftables mode: program this named network namespace instead of our own
    udp_idle_timeout: float = 30.0
    status_port: int = DEFAULT_STATUS_PORT  # /healthz, /livez, /services, /status; 0 = no status endpoint
    status_address: str = "127.0.0.1"
    status_token: str | None = None  # what the status endpoint asks of callers (all but /healthz, /livez)
    status_socket: str | None = None  # a 0600 Unix socket serving the same endpoints to local callers
    frontend_kinds: tuple[str, ...] | None = None  # userspace mode: serve only these kinds (e.g. ("nodeport",))
    # userspace mode: forwarding processes; None = $NANOKUBE_PROXY_WORKERS or min(2, CPUs); 1 = in this process
    userspace_workers: int | None = None


def nodeport_ips(settings: ProxySettings) -> tuple[str, ...]:
    ips = [ip for ip in settings.node_ips if ipaddress.ip_address(ip).version == 4]
    if settings.nodeport_addresses is None:
        return tuple(ips)
    nets = [ipaddress.ip_network(c, strict=False) for c in settings.nodeport_addresses]
    chosen = {ip for ip in ips if any(ipaddress.ip_address(ip) in n for n in nets)}
    chosen |= {str(n.network_address) for n in nets if n.prefixlen == 32}
    return tuple(sorted(chosen))


def make_backend(settings: ProxySettings) -> Backend:
    if settings.mode == "userspace":
        workers = settings.userspace_workers or default_workers()
        if workers > 1:
            return WorkerPoolBackend(workers=workers, udp_idle_timeout=settings.udp_idle_timeout,
                                     kinds=settings.frontend_kinds)
        return UserspaceBackend(udp_idle_timeout=settings.udp_idle_timeout, kinds=settings.frontend_kinds)
    if settings.mode != "nftables":
        raise ValueError(f"unknown proxy mode {settings.mode!r}")
    commands = Commands(settings.netns)
    cfg = NetConfig(pod_cidr=settings.pod_cidr, service_cidr=settings.service_cidr,
                    lb_pool=nft_pool_expr(settings.lb_pool), counters=COUNTING)
    hostnet = HostNetwork(commands, bridge=settings.bridge,
                          route_cidrs=[settings.service_cidr, *pool_networks(settings.lb_pool)],
                          lb_pool=settings.lb_pool)
    return NftablesBackend(cfg=cfg, hostnet=hostnet, commands=commands)


def make_proxier(settings: ProxySettings, backend: Backend, status: ProxyStatus | None = None) -> Proxier:
    node_ip = next((ip for ip in settings.node_ips if ipaddress.ip_address(ip).version == 4), "")
    state = ProxyState(node_name=settings.node_name, nodeport_ips=nodeport_ips(settings), node_ip=node_ip)
    status = status or ProxyStatus()
    status.mode = settings.mode
    status.node_ips = list(settings.node_ips)
    status.health_timeout = 2 * settings.max_sync_interval  # as kube-proxy: twice its sync period
    return Proxier(state=state, backend=backend, status=status, min_sync_interval=settings.min_sync_interval,
                   max_sync_interval=settings.max_sync_interval)


async def run_proxy(*, client: ApiClient, settings: ProxySettings, ready: asyncio.Event,
                    status: ProxyStatus | None = None) -> None:
    """Run until cancelled; `ready` is set after the first successful sync; cleans up on the way out."""
    backend = make_backend(settings)
    proxier = make_proxier(settings, backend, status)
    services = Informer(client, BY_KIND["", "Service"])
    slices = Informer(client, BY_KIND["discovery.k8s.io", "EndpointSlice"])
    node = Informer(client, BY_KIND["", "Node"], field_selector=f"metadata.name={settings.node_name}")
    services.add_handler(on_add=proxier.on_service_add, on_update=proxier.on_service_update,
                         on_delete=proxier.on_service_delete, on_synced=proxier.on_services_synced)
    slices.add_handler(on_add=proxier.on_endpointslice_add, on_update=proxier.on_endpointslice_update,
                       on_delete=proxier.on_endpointslice_delete, on_synced=proxier.on_endpointslices_synced)

    def node_changed(old: Obj, new: Obj) -> None:
        proxier.status.sync_node(new)
        if (old.get("metadata", {}).get("labels") or {}) != (new.get("metadata", {}).get("labels") or {}):
            proxier.request_full_sync()  # kube-proxy does the same: labels feed topology

    node.add_handler(on_add=proxier.status.sync_node, on_update=node_changed,
                     on_delete=lambda _: setattr(proxier.status, "node_eligible", False))
    status_server = StatusServer(proxier.status, settings.status_address, settings.status_port,
                                 full_sync=proxier.request_full_sync, token=settings.status_token,
                                 unix_socket=settings.status_socket, counters=getattr(backend, "counters", None))
    health = ServiceHealthServer(proxy_healthy=proxier.status.healthy, netns=settings.netns)
    proxier.after_sync.append(lambda: health.sync(proxier.state.health_checks, proxier.state.nodeport_ips))

    async def mark_ready() -> None:
        await proxier.synced_once.wait()
        ready.set()

    try:
        if isinstance(backend, WorkerPoolBackend):
            await backend.start()
        if settings.status_port:
            await status_server.start()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(services.run(), name="proxy: services informer")
            tg.create_task(slices.run(), name="proxy: endpointslices informer")
            tg.create_task(node.run(), name="proxy: node informer")
            tg.create_task(proxier.run(), name="proxy: sync runner")
            tg.create_task(mark_ready(), name="proxy: ready")
    finally:
        for close in (health.close, status_server.close, backend.stop):  # each one even if another fails
            try:
                await asyncio.shield(close())
            except Exception:
                log.exception("proxy: %s failed while stopping", close.__qualname__)
