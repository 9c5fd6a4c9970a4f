"""The API server component: store + registry + HTTP, started and stopped as one task."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from nanokube.apiserver import crds, kubelet_client, strategies
from nanokube.apiserver.allocators import ServiceAllocator
from nanokube.apiserver.app import ApiServerState, build_app
from nanokube.apiserver.bootstrap import BootstrapSpec, bootstrap
from nanokube.apiserver.key_migration import migrate_legacy_keys
from nanokube.apiserver.registry import Registry
from nanokube.apiserver.services import repair_allocations
from nanokube.apiserver.tls_site import SniffingTLSSite
from nanokube.apiserver.tokens import TokenSigner
from nanokube.store import run_compactor
from nanokube.store.base import Store

log = logging.getLogger(__name__)


@dataclass
class ApiServerSettings:
    host: str | list[str]
    port: int
    token: str | None
    service_cidr: str
    node_port_range: str
    bootstrap: BootstrapSpec
    ssl_context: ssl.SSLContext | None = None
    # Plain HTTP on a Unix socket (mode 0600, bearer token still required) for the server's own components:
    # TLS to the process itself costs each of their ~30 connections a TLS session and a 256 KB buffer per side.
    unix_socket: str | None = None
    pki_dir: Path | None = None  # where the ServiceAccount token key lives (no TokenRequest without one)
    # History kept for watches (older resourceVersions get 410 Gone): revisions and seconds.
    compact_keep_revisions: int = 10_000
    compact_keep_seconds: float = 300.0
    compact_interval: float = 60.0
    # Set when other API servers share the store (etcd): (identity, advertised address, port, lease seconds)
    # for the `kubernetes` endpoints, and this server follows their Service allocations.
    shared_lease: tuple[str, str, int, float] | None = None
    # The CA that signs kubelets' serving certificates (None: kubelets serve plain HTTP, as in some tests)
    kubelet_ca_file: str | None = None
    # Served beside the API on its port, prefix -> application (the web UI); each checks its own credentials.
    mounted: dict[str, web.Application] = field(default_factory=dict)


class PortInUse(Exception):
    pass


def _load_schema() -> None:
    from nanokube.api import openapi_schemas

    openapi_schemas.kind_schema("", "v1", "Service")


async def _listen_unix(runner: web.AppRunner, path: str) -> None:
    try:
        os.unlink(path)  # left by a server that was killed
    except FileNotFoundError:
        pass
    await web.UnixSite(runner, path).start()
    os.chmod(path, 0o600)  # the data dir holding it is 0700 already


async def run_apiserver(*, store: Store, settings: ApiServerSettings, ready: asyncio.Event) -> None:
    await migrate_legacy_keys(store)
    allocator = ServiceAllocator(settings.service_cidr, settings.node_port_range)
    repaired_at = await repair_allocations(store, allocator)
    registry = Registry(store, strategies.table(allocator))
    await crds.load(store)
    await bootstrap(registry, settings.bootstrap)
    shared: list[asyncio.Task[None]] = []
    if settings.shared_lease is not None:
        from nanokube.apiserver.allocation_sync import follow_allocations, mark
        from nanokube.apiserver.apiserver_leases import ApiServerLease

        registry.allocation_taken = lambda key: mark(allocator, key, True)
        lease = ApiServerLease(registry, *settings.shared_lease)
        await lease.renew()
        await lease.reconcile()
        shared = [asyncio.create_task(lease.run(), name="apiserver lease"),
                  asyncio.create_task(follow_allocations(store, allocator, repaired_at), name="allocation sync")]
    kubelet_client.configure(settings.token, settings.kubelet_ca_file)
    state = ApiServerState(registry=registry, token=settings.token,
                           signer=TokenSigner(settings.pki_dir) if settings.pki_dir else None, mounted=settings.mounted)
    app = build_app(state)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site: web.BaseSite
    if settings.ssl_context is not None:  # answers plain HTTP with Go's 400 instead of a dropped connection
        site = SniffingTLSSite(runner, settings.host, settings.port, ssl_context=settings.ssl_context)
    else:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise PortInUse(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from exc
    if settings.unix_socket:
        await _listen_unix(runner, settings.unix_socket)
    state.ready.set()
    ready.set()
    # The schema every create/update is checked against takes ~0.1 s to load: load it now, off the loop,
    # instead of in the first write request (and not before listening, which would delay readiness).
    warm = asyncio.get_running_loop().run_in_executor(None, _load_schema)
    finalizer = asyncio.create_task(crds.run_finalizer(registry, store), name="apiserver: crd finalizer")
    try:
        await run_compactor(store, keep_revisions=settings.compact_keep_revisions,
                            keep_seconds=settings.compact_keep_seconds, interval=settings.compact_interval)
    finally:
        finalizer.cancel()
        warm.cancel()
        for task in shared:
            task.cancel()
        await asyncio.gather(*shared, return_exceptions=True)
        await runner.cleanup()
        if settings.unix_socket:
            try:
                os.unlink(settings.unix_socket)
            except OSError:
                pass
