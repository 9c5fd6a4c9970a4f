"""Composition root of `nanokube server`: store -> API -> controllers, node agent, proxy, DNS.

Start-up is a chain of ready signals (never sleeps); the first component to fail stops the rest.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import socket
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson

from nanokube.aio import gcpause, memtrim
from nanokube.aio.tasks import run_root_tasks, run_until_signalled
from nanokube.apiserver.bootstrap import BootstrapSpec
from nanokube.apiserver.certs import apiserver_spec, ensure_issued, kubelet_spec, server_context
from nanokube.apiserver.run import ApiServerSettings, run_apiserver
from nanokube.client import ApiClient
from nanokube.datastore import open_store
from nanokube.nodenet import NodeNetwork
from nanokube.settings import ServerSettings, SettingsError

log = logging.getLogger("nanokube")

DATA_DIR_MARKER = ".nanokube"


def prepare_data_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    marker = path / DATA_DIR_MARKER
    if not marker.exists():
        if any(p for p in path.iterdir() if p.name not in ("kubeconfig.yaml",)):
            raise SettingsError(f"data dir {path} is not empty and not a nanokube data dir")
        marker.write_text("nanokube data dir\n")
    os.chmod(path, 0o700)


def load_token(path: Path) -> str:
    token_file = path / "token"
    if token_file.exists():
        return token_file.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def write_kubeconfig(path: Path, server: str, token: str, ca_file: Path) -> Path:
    ca_data = base64.b64encode(ca_file.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "nanokube", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": "nanokube", "user": {"token": token}}],
        "contexts": [{"name": "nanokube", "context": {"cluster": "nanokube", "user": "nanokube",
                                                      "namespace": "default"}}],
        "current-context": "nanokube",
    }
    target = path / "kubeconfig.yaml"
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        # JSON is YAML too, and needs no YAML library on the start path.
        fh.write(orjson.dumps(config, option=orjson.OPT_INDENT_2).decode() + "\n")
    os.replace(tmp, target)
    return target


# More components a caller runs with the others (rootless mode's port forwarder): name -> start(client, ready).
ExtraComponents = dict[str, Callable[[ApiClient, asyncio.Event], Coroutine[Any, Any, Any]]]


def reserve_api_port(hosts: list[str]) -> tuple[int, list[socket.socket]]:
    """`--api-listen HOST:0`: a port the kernel picks that is free on every listen address, held (bound with
    SO_REUSEADDR, not listening) until the API server's own sockets bind it, so the kernel hands it to no one
    else meanwhile. The ready line and the kubeconfig name it."""
    for _ in range(20):
        held: list[socket.socket] = []
        port = 0
        try:
            for host in hosts:
                sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host or "0.0.0.0", port))
                port = sock.getsockname()[1]
            return port, held
        except OSError:
            for sock in held:
                sock.close()
    raise SettingsError(f"--api-listen port 0: no port free on all of {', '.join(hosts)}")


async def run_server(settings: ServerSettings, *, stop: asyncio.Event,
                     components: tuple[str, ...] = ("controllers", "agent", "proxy", "dns"),
                     extra: ExtraComponents | None = None) -> None:
    gcpause.install()  # caches of every component grow large; full GC passes would stall the one event loop
    settings.fill_defaults()
    prepare_data_dir(settings.data_dir)
    warning = settings.privileged_port_warning()
    if warning:
        log.warning("%s", warning)
    token = load_token(settings.data_dir)
    reserved: list[socket.socket] = []
    if settings.api_port == 0:
        settings.api_port, reserved = reserve_api_port(settings.api_listen_hosts)
    node_network = (NodeNetwork(settings.node_pod_cidr, dns_address=settings.local_dns_address)
                    if settings.plan.node_network == "netns" else None)
    try:
        if node_network is not None:
            await node_network.setup()
        await _run_cluster(settings, token, stop, components, extra or {}, reserved)
    finally:
        for sock in reserved:
            sock.close()
        if node_network is not None:
            await node_network.teardown()


async def _run_cluster(settings: ServerSettings, token: str, stop: asyncio.Event,
                       components: tuple[str, ...], extra: ExtraComponents,
                       reserved: list[socket.socket]) -> None:
    plane = settings.control_plane
    store = open_store(settings.data_dir, plane)
    await store.start()
    shared_lease = None
    if plane.shared_store:
        from nanokube.apiserver.cluster_secrets import share_cluster_secrets
        from nanokube.elected import identity

        token = await share_cluster_secrets(store, settings.data_dir, token)
        shared_lease = (identity(settings), plane.advertise_address or settings.api_endpoint_address,
                        settings.api_port, plane.apiserver_lease_duration)
    api_ready = asyncio.Event()
    extra_ips, extra_names = plane.san_addresses()
    specs = [apiserver_spec(
        ip_sans=sorted({"127.0.0.1", settings.node_ip, settings.kubernetes_ip, *extra_ips}
                       | ({settings.api_host} if settings.api_host not in ("", "0.0.0.0") else set())),
        dns_sans=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                  f"kubernetes.default.svc.{settings.cluster_domain}", settings.node_name, *extra_names])]
    if "agent" in components:  # issued now, in the same child: later the process has threads and needs an exec
        specs.append(kubelet_spec(settings.node_name, sorted({settings.node_ip, "127.0.0.1"})))
    issued = ensure_issued(settings.data_dir / "pki", *specs)
    ca_file, cert_file, key_file = issued[0]
    kubelet_tls = issued[1][1:] if len(issued) > 1 else None
    hosts = settings.api_listen_hosts
    # the components reach the API over a Unix socket (no TLS to ourselves) unless the data dir's path is too
    # long for one (sun_path holds 107 bytes)
    unix_socket = str(settings.data_dir.resolve() / "api.sock")
    if len(os.fsencode(unix_socket)) > 107:
        unix_socket = ""
    api_settings = ApiServerSettings(
        # aiohttp hands the host to loop.create_server, which also takes a list of addresses
        host=hosts[0] if len(hosts) == 1 else hosts,  # type: ignore[arg-type]
        port=settings.api_port, token=token, service_cidr=settings.service_cidr,
        node_port_range=settings.node_port_range, ssl_context=server_context(cert_file, key_file),
        unix_socket=unix_socket or None, kubelet_ca_file=str(ca_file), pki_dir=settings.data_dir / "pki",
        compact_keep_revisions=settings.compact_keep_revisions, compact_keep_seconds=settings.compact_keep_seconds,
        compact_interval=min(60.0, max(0.2, settings.compact_keep_seconds / 5)),
        bootstrap=BootstrapSpec(kubernetes_ip=settings.kubernetes_ip,
                                api_address=settings.api_endpoint_address,
                                api_port=settings.api_port, kube_dns_ip=settings.kube_dns_ip,
                                dns_address=settings.dns_endpoint[0]),
        shared_lease=shared_lease)
    client = ApiClient("http://localhost", token, user_agent="nanokube-server", unix_socket=unix_socket) \
        if unix_socket else ApiClient(settings.api_url, token, ca_file=str(ca_file), user_agent="nanokube-server")
    api_settings.mounted["/ui/"] = _ui_app(settings, client, token)
    tasks: dict[str, Coroutine[Any, Any, Any]] = {
        "apiserver": run_apiserver(store=store, settings=api_settings, ready=api_ready)}
    readies: dict[str, asyncio.Event] = {}
    try:
        async def after_api() -> None:
            await api_ready.wait()
            for sock in reserved:  # the API's own sockets hold the port now
                sock.close()
            kubeconfig = write_kubeconfig(settings.data_dir, settings.api_url, token, ca_file)
            starters = _component_starters(settings, client, components, readies, kubelet_tls)
            for name, start in extra.items():
                readies[name] = asyncio.Event()
                starters[name] = start(client, readies[name])
            sub = {name: coro for name, coro in starters.items()}
            waiter = asyncio.create_task(_announce(settings, kubeconfig, readies, token))
            try:
                await run_root_tasks(sub, stop=asyncio.Event())
            finally:
                waiter.cancel()

        tasks["components"] = after_api()
        tasks["memtrim"] = memtrim.trim_periodically()
        await run_root_tasks(tasks, stop=stop)
    finally:
        await client.close()
        await store.close()


async def _announce(settings: ServerSettings, kubeconfig: Path, readies: dict[str, asyncio.Event], token: str) -> None:
    from nanokube.ui.auth import login_url

    for event in readies.values():
        await event.wait()
    dns_listen = settings.announced_dns
    dns = f"{dns_listen[0]}:{dns_listen[1]}" if dns_listen else "-"
    print(f"nanokube ready kubeconfig={kubeconfig} api={settings.api_url} dns={dns} "
          f"network={settings.network} node={settings.node_name} ui={login_url(settings.api_url, token)}", flush=True)
    print(f"export KUBECONFIG={kubeconfig}", flush=True)  # to copy into another shell


def _ui_app(settings: ServerSettings, client: ApiClient, token: str) -> Any:
    from nanokube.ui.app import build_ui_app
    from nanokube.ui.traffic import proxy_counters

    traffic = proxy_counters(socket=local_socket(settings.data_dir, "proxy.sock"),
                             url=f"http://127.0.0.1:{settings.proxy_status_port}", token=token) \
        if settings.proxy_status_port else None
    return build_ui_app(client, token, cluster_domain=settings.cluster_domain, traffic=traffic)


def local_socket(data_dir: Path, name: str) -> str | None:
    """DATA_DIR/name for a Unix socket, or None when the path is too long for one (sun_path holds 107 bytes)."""
    path = str(data_dir.resolve() / name)
    return path if len(os.fsencode(path)) <= 107 else None


def _component_starters(settings: ServerSettings, client: ApiClient, components: tuple[str, ...],
                        readies: dict[str, asyncio.Event], kubelet_tls: tuple[Path, Path] | None
                        ) -> dict[str, Coroutine[Any, Any, Any]]:
    """One coroutine per component, each importing its component when its task first runs. The proxy, the
    ingress and the agent start processes (proxy workers, nginx, the pod reaper) in their first step; the
    controllers and the DNS let them take it first, so those processes boot while the rest is imported."""
    from nanokube import component_settings as derive

    node = derive.NodeIdentity(plan=settings.plan, node_name=settings.node_name, node_ip=settings.node_ip,
                               data_dir=settings.data_dir, joining=False)
    out: dict[str, Coroutine[Any, Any, Any]] = {}
    if "controllers" in components:
        readies["controllers"] = asyncio.Event()

        async def controllers() -> None:
            await asyncio.sleep(0)
            from nanokube.controllers import run_controllers

            await run_controllers(client=client, ready=readies["controllers"], settings=(
                derive.controller_settings(node, node_monitor_grace_period=settings.node_monitor_grace_period)))

        out["controllers"] = controllers()
        if settings.control_plane.leader_election.enabled:
            from nanokube.elected import elected

            out["controllers"] = elected(settings, client, out["controllers"], readies["controllers"])
    if "dns" in components:
        readies["dns"] = asyncio.Event()
        assert settings.dns_listen is not None

        async def dns() -> None:
            await asyncio.sleep(0)
            from nanokube.dns import run_dns

            await run_dns(client=client, ready=readies["dns"], settings=derive.dns_settings(
                settings.dns_listen_addresses, cluster_domain=settings.cluster_domain, ttl=settings.dns_ttl,
                pods_mode=settings.dns_pods, upstreams=settings.dns_upstreams, endpoint=settings.dns_endpoint,
                node_name=settings.node_name))

        out["dns"] = dns()
    if "proxy" in components:
        readies["proxy"] = asyncio.Event()

        async def proxy() -> None:
            from nanokube.proxy import run_proxy

            await run_proxy(client=client, ready=readies["proxy"], settings=derive.proxy_settings(
                node, status_port=settings.proxy_status_port, status_token=client.token,
                status_socket=local_socket(settings.data_dir, "proxy.sock")))

        out["proxy"] = proxy()
    if "ingress" in components:
        readies["ingress"] = asyncio.Event()

        async def ingress() -> None:
            from nanokube.ingress import IngressSettings, run_ingress

            await run_ingress(client=client, ready=readies["ingress"], settings=IngressSettings(
                data_dir=settings.data_dir, listen_address=settings.node_ip, node_name=settings.node_name))

        out["ingress"] = ingress()
    if "agent" in components:
        readies["agent"] = asyncio.Event()
        assert kubelet_tls is not None
        kubelet_cert, kubelet_key = kubelet_tls

        async def agent() -> None:
            from nanokube.agent import run_agent
            from nanokube.agent.streaming import in_process
            from nanokube.apiserver import streamproxy

            streamproxy.serve_in_process(in_process)  # exec/attach/port-forward to this node skip the kubelet hop

            await run_agent(client=client, ready=readies["agent"], settings=derive.agent_settings(
                node, kubelet_cert=kubelet_cert, kubelet_key=kubelet_key, kubelet_token=client.token,
                cluster_dns=settings.kube_dns_ip, cluster_domain=settings.cluster_domain,
                image_dirs=settings.image_dirs, backoff_base=settings.backoff_base, max_pods=settings.max_pods,
                lease_duration_seconds=derive.lease_duration(settings.node_monitor_grace_period)))

        out["agent"] = agent()
        if settings.network == "netns" and settings.node_ip != settings.node_pod_gateway:
            # a node IP on a real link: other hosts may join (`nanokube agent`); route to their pods
            from nanokube.agent.podroutes import PodRoutes

            out["routes"] = PodRoutes(client, node_name=settings.node_name, node_ip=settings.node_ip,
                                      backend=settings.flannel_backend).run()
    return out


def main_server(settings: ServerSettings, components: tuple[str, ...], extra: ExtraComponents | None = None) -> int:
    try:
        run_until_signalled(lambda stop: run_server(settings, stop=stop, components=components, extra=extra))
    except SettingsError as exc:
        print(f"nanokube: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from nanokube.apiserver.run import PortInUse

        cause = exc.__cause__ if isinstance(exc.__cause__, (PortInUse, SettingsError)) else exc
        print(f"nanokube: {cause}", file=sys.stderr)
        return 1
    return 0
