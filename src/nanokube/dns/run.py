"""Wiring: settings, informers -> cache -> engine -> listeners; `run_dns` is what `nanokube server` calls."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nanokube.api.kube_dns import KUBE_DNS_METRICS_PORT
from nanokube.dns.cache import KINDS, DnsCache
from nanokube.dns.engine import DnsEngine
from nanokube.dns.forward import Forwarder, parse_upstream, resolv_conf_upstreams
from nanokube.dns.metrics import DnsMetrics
from nanokube.dns.metrics_http import MetricsServer
from nanokube.dns.records import trim_endpointslice, trim_namespace, trim_pod, trim_service
from nanokube.dns.resolver import Resolver
from nanokube.dns.server import DnsServer

if TYPE_CHECKING:
    from nanokube.client import ApiClient

log = logging.getLogger(__name__)

POD_MODES = ("disabled", "insecure", "verified")


@dataclass
class DnsSettings:
    listen: list[tuple[str, int]]
    cluster_domain: str = "cluster.local"
    ttl: int = 5
    pods_mode: str = "verified"
    upstreams: list[str] | None = None  # None: the nameservers of /etc/resolv.conf
    dns_service: tuple[str, str] = ("kube-system", "kube-dns")  # (namespace, name) the NS record names
    check_loops: bool = True
    kinds: tuple[str, ...] = field(default=KINDS)
    # (address, port) to publish as the kube-dns Service's endpoint once listening (dns/publish.py); None: don't
    endpoint: tuple[str, int] | None = None
    node_name: str = ""
    # GET /metrics on this port of every listen address (None: not served)
    metrics_port: int | None = KUBE_DNS_METRICS_PORT

    def __post_init__(self) -> None:
        if self.pods_mode not in POD_MODES:
            raise ValueError(f"pods_mode must be one of {', '.join(POD_MODES)}")
        if not 0 <= self.ttl <= 3600:
            raise ValueError("ttl must be between 0 and 3600")


@dataclass
class DnsComponents:
    cache: DnsCache
    engine: DnsEngine
    server: DnsServer
    forwarder: Forwarder
    metrics: DnsMetrics
    metrics_server: MetricsServer | None = None
    metrics_started: asyncio.Event = field(default_factory=asyncio.Event)  # tried to listen (maybe failed)


def build_dns(settings: DnsSettings, cache: DnsCache | None = None) -> DnsComponents:
    """Everything but the informers; tests and benchmarks feed `cache` directly."""
    kinds = settings.kinds if settings.pods_mode == "verified" else tuple(k for k in settings.kinds if k != "pods")
    cache = cache or DnsCache(kinds=kinds)
    upstreams = ([parse_upstream(u) for u in settings.upstreams] if settings.upstreams is not None
                 else resolv_conf_upstreams())
    forwarder = Forwarder(upstreams, listen=settings.listen)
    metrics = DnsMetrics(settings.listen)
    metrics.cache_stats = forwarder.cache_stats
    ns_addresses = tuple(ipaddress.ip_address(h).packed for h, _ in settings.listen
                         if h not in ("", "0.0.0.0", "::"))
    resolver = Resolver(cache, zone=settings.cluster_domain, ttl=settings.ttl, pods_mode=settings.pods_mode,
                        dns_service=settings.dns_service, ns_addresses=ns_addresses)
    engine = DnsEngine(cache, resolver, forwarder, metrics)
    metrics_server = (MetricsServer(metrics, [h for h, _ in settings.listen], settings.metrics_port)
                      if settings.metrics_port is not None else None)
    return DnsComponents(cache, engine, DnsServer(engine, settings.listen), forwarder, metrics, metrics_server)


async def serve(parts: DnsComponents, *, check_loops: bool = True) -> None:
    """Listen and forward until cancelled (the informer-less half of run_dns)."""
    await parts.forwarder.start()
    try:
        await parts.server.start()
        try:
            if parts.metrics_server is not None:
                await parts.metrics_server.start()
            parts.metrics_started.set()
            if check_loops:
                await parts.forwarder.check_loops()
            else:
                parts.forwarder.loop_checked.set()
            await asyncio.Event().wait()
        finally:
            if parts.metrics_server is not None:
                await parts.metrics_server.close()
            await parts.server.close()
    finally:
        parts.forwarder.close()


async def run_dns(*, client: ApiClient, settings: DnsSettings, ready: asyncio.Event) -> None:
    """Serve cluster DNS until cancelled. `ready` is set once listening and all informers have synced.
    A failing informer or listener ends this coroutine with its error."""
    from nanokube.api.served_resources import by_kind
    from nanokube.client import Informer

    parts = build_dns(settings)
    cache = parts.cache
    slice_lost = asyncio.Event()  # the kube-dns EndpointSlice we publish was deleted or emptied
    plan = [("services", "", "Service", trim_service, cache.on_service_add, cache.on_service_update,
             cache.on_service_delete),
            ("endpointslices", "discovery.k8s.io", "EndpointSlice", trim_endpointslice, cache.on_endpointslice_add,
             cache.on_endpointslice_update, cache.on_endpointslice_delete),
            ("namespaces", "", "Namespace", trim_namespace, cache.on_namespace_add, cache.on_namespace_update,
             cache.on_namespace_delete),
            ("pods", "", "Pod", trim_pod, cache.on_pod_add, cache.on_pod_update, cache.on_pod_delete)]
    informers = []
    for kind, group, kind_name, trim, on_add, on_update, on_delete in plan:
        if settings.pods_mode != "verified" and kind == "pods":
            continue
        informer = Informer(client, by_kind(group, kind_name), transform=trim)  # type: ignore[arg-type]
        informer.add_handler(on_add=on_add, on_update=on_update, on_delete=on_delete,
                             on_synced=functools.partial(cache.mark_synced, kind))
        if kind == "endpointslices" and settings.endpoint is not None:
            from nanokube.dns.publish import lost_slice_waker

            lost_update, lost_delete = lost_slice_waker(slice_lost)
            informer.add_handler(on_update=lost_update, on_delete=lost_delete)
        informers.append(informer)

    async def announce() -> None:
        await asyncio.gather(*(i.synced.wait() for i in informers))
        await parts.server.started.wait()
        await parts.metrics_started.wait()
        ready.set()
        log.info("dns: serving %s on %s", settings.cluster_domain, parts.server.addresses)

    async with asyncio.TaskGroup() as tg:
        for informer in informers:
            tg.create_task(informer.run(), name=f"dns: {informer.resource.plural} informer")
        tg.create_task(serve(parts, check_loops=settings.check_loops), name="dns: server")
        tg.create_task(announce(), name="dns: ready")
        if settings.endpoint is not None:
            tg.create_task(_publish(client, settings, parts, slice_lost), name="dns: kube-dns endpoints")


async def _publish(client: ApiClient, settings: DnsSettings, parts: DnsComponents, wake: asyncio.Event) -> None:
    from nanokube.dns.publish import KubeDnsEndpoints

    assert settings.endpoint is not None
    await parts.server.started.wait()  # an endpoint only once it answers
    await parts.metrics_started.wait()
    host = settings.endpoint[0]
    metrics_port = parts.metrics_server.serves(host) if parts.metrics_server is not None else None
    await KubeDnsEndpoints(client, *settings.endpoint, node_name=settings.node_name,
                           metrics_port=metrics_port).run(wake)
