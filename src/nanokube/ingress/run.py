"""Wiring: informers -> routes -> nginx.conf -> nginx; the controller's LoadBalancer Service and the Ingresses'
status. `run_ingress` is what `nanokube server` calls."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanokube.aio.runner import BoundedFrequencyRunner
from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.api.served_resources import by_kind
from nanokube.client import Informer
from nanokube.ingress.classes import default_ingress_class, is_ours
from nanokube.ingress.nginx import Nginx, NginxError, nginx_binary
from nanokube.ingress.nginxconf import Listen, render
from nanokube.ingress.routes import BackendResolver, VirtualHost, build_hosts

if TYPE_CHECKING:
    from nanokube.client import ApiClient

log = logging.getLogger(__name__)

INGRESSES = by_kind("networking.k8s.io", "Ingress")
INGRESS_CLASSES = by_kind("networking.k8s.io", "IngressClass")
SERVICES = by_kind("", "Service")
ENDPOINT_SLICES = by_kind("discovery.k8s.io", "EndpointSlice")
SECRETS = by_kind("", "Secret")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"


@dataclass
class IngressSettings:
    data_dir: Path
    listen_address: str  # where nginx listens; the Service's endpoints point here
    node_name: str
    http_port: int = 0  # 0: a free port
    https_port: int = 0
    service_namespace: str = "kube-system"
    service_name: str = "nanokube-ingress"
    min_interval: float = 0.1


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _trim_secret(secret: Obj) -> Obj:
    """Keep only TLS Secrets' key pair; the informer's cache holds nothing else."""
    if secret.get("type") != "kubernetes.io/tls":
        return {"metadata": {"name": secret["metadata"]["name"], "namespace": secret["metadata"]["namespace"]}}
    data = secret.get("data") or {}
    return {"metadata": secret["metadata"], "type": secret["type"],
            "data": {k: data.get(k, "") for k in ("tls.crt", "tls.key")}}


def _valid_key_pair(cert_b64: str, key_b64: str) -> bool:
    """A bad Secret must not make nginx reject the whole config (and so every other change)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        x509.load_pem_x509_certificate(base64.b64decode(cert_b64))
        load_pem_private_key(base64.b64decode(key_b64), password=None)
    except (ValueError, TypeError):
        return False
    return True


class IngressController:
    def __init__(self, client: ApiClient, settings: IngressSettings) -> None:
        self.client = client
        self.settings = settings
        self.prefix = settings.data_dir / "ingress"
        self.nginx = Nginx(self.prefix)
        self.http_port = settings.http_port or _free_port(settings.listen_address)
        self.https_port = settings.https_port or _free_port(settings.listen_address)
        self.ingresses = Informer(client, INGRESSES)
        self.classes = Informer(client, INGRESS_CLASSES)
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, ENDPOINT_SLICES)
        self.secrets = Informer(client, SECRETS, transform=_trim_secret)
        self.informers = [self.ingresses, self.classes, self.services, self.slices, self.secrets]
        for informer in self.informers:
            informer.add_handler(on_add=self._changed, on_update=lambda _o, _n: self._changed(_n),
                                 on_delete=self._changed)
        self.runner = BoundedFrequencyRunner(self.sync, name="ingress", min_interval=settings.min_interval,
                                             max_interval=60.0)
        self.applied: str | None = None
        self.hosts: list[VirtualHost] = []
        self.synced = asyncio.Event()

    def _changed(self, _obj: Obj) -> None:
        if all(i.synced.is_set() for i in self.informers):
            self.runner.request()

    @property
    def service_key(self) -> str:
        return f"{self.settings.service_namespace}/{self.settings.service_name}"

    def lb_address(self) -> str | None:
        service = self.services.cache.get(self.service_key) or {}
        for entry in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if entry.get("ip"):
                return str(entry["ip"])
        return None

    def our_ingresses(self) -> list[Obj]:
        classes = self.classes.list()
        return [i for i in self.ingresses.list() if is_ours(i, classes)]

    def _write_certificates(self, hosts: list[VirtualHost]) -> dict[str, tuple[Path, Path]]:
        out: dict[str, tuple[Path, Path]] = {}
        for vhost in hosts:
            key = vhost.tls_secret
            if not key or key in out:
                continue
            secret = self.secrets.cache.get(key)
            data = (secret or {}).get("data") or {}
            if not data.get("tls.crt") or not data.get("tls.key"):
                continue
            if not _valid_key_pair(data["tls.crt"], data["tls.key"]):
                log.warning("ingress: Secret %s does not hold a PEM certificate and key; its hosts get no TLS", key)
                continue
            base = self.prefix / "certs" / key.replace("/", "_")
            files = (base.with_suffix(".crt"), base.with_suffix(".key"))
            for path, field in zip(files, ("tls.crt", "tls.key"), strict=True):
                content = base64.b64decode(data[field])
                if not path.exists() or path.read_bytes() != content:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(content)
            out[key] = files
        return out

    async def sync(self) -> None:
        ingresses = self.our_ingresses()
        slices: dict[str, list[Obj]] = defaultdict(list)
        for eps in self.slices.list():
            service = (eps["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
            if service:
                slices[f"{eps['metadata']['namespace']}/{service}"].append(eps)
        hosts = build_hosts(ingresses, BackendResolver(self.services.cache, slices))
        self.prefix.mkdir(parents=True, exist_ok=True)
        (self.prefix / "certs").mkdir(mode=0o700, exist_ok=True)
        text = render(hosts, Listen(self.settings.listen_address, self.http_port, self.https_port), self.prefix,
                      self._write_certificates(hosts))
        if text != self.applied:
            await self.nginx.apply(text)
            self.applied = text
        self.hosts = hosts
        await self._write_statuses(ingresses)
        self.synced.set()

    async def _write_statuses(self, ours: list[Obj]) -> None:
        address = self.lb_address()
        wanted = [{"ip": address}] if address else []
        our_keys = {f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in ours}
        for ingress in self.ingresses.list():
            key = f"{ingress['metadata']['namespace']}/{ingress['metadata']['name']}"
            current = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            target = wanted if key in our_keys else [e for e in current if e.get("ip") != address]
            if current == target or (key not in our_keys and not address):
                continue
            body = dict(ingress)
            body["status"] = {"loadBalancer": {"ingress": target} if target else {}}
            try:
                await self.client.update(INGRESSES, body, subresource="status")
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise
                self.runner.request()  # stale copy: try again with the informer's next one

    async def ensure_objects(self) -> None:
        await self._create_or_keep(INGRESS_CLASSES, default_ingress_class())
        ns, name = self.settings.service_namespace, self.settings.service_name
        service: Obj = {"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": ns,
                                     "labels": {"app.kubernetes.io/name": "nanokube-ingress"}},
                        "spec": {"type": "LoadBalancer",
                                 "ports": [{"name": "http", "port": 80, "targetPort": self.http_port, "protocol": "TCP"},
                                           {"name": "https", "port": 443, "targetPort": self.https_port,
                                            "protocol": "TCP"}]}}
        current = await self._create_or_keep(SERVICES, service)
        if current is not None:
            node_ports = {p.get("name"): p.get("nodePort") for p in current["spec"].get("ports") or []}
            ports = [dict(p, nodePort=node_ports[p["name"]]) if node_ports.get(p["name"]) else p
                     for p in service["spec"]["ports"]]
            if current["spec"].get("ports") != ports:  # new listener ports after a restart
                current["spec"]["ports"] = ports
                await self.client.update(SERVICES, current)
        eps: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": name, "namespace": ns,
                                 "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: "nanokube-ingress-nginx"}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [self.settings.listen_address], "nodeName": self.settings.node_name,
                                   "conditions": {"ready": True, "serving": True, "terminating": False}}],
                    "ports": [{"name": "http", "port": self.http_port, "protocol": "TCP"},
                              {"name": "https", "port": self.https_port, "protocol": "TCP"}]}
        current = await self._create_or_keep(ENDPOINT_SLICES, eps)
        if current is not None:
            eps["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self.client.update(ENDPOINT_SLICES, eps)

    async def _create_or_keep(self, resource: Any, obj: Obj) -> Obj | None:
        """Create obj; if it exists, return the stored one (None when just created)."""
        try:
            await self.client.create(resource, obj)
            return None
        except ApiError as exc:
            if exc.code != 409:
                raise
        return await self.client.get(resource, obj["metadata"]["name"], obj["metadata"].get("namespace"))


async def run_ingress(*, client: ApiClient, settings: IngressSettings, ready: asyncio.Event) -> None:
    """Serve Ingresses until cancelled; `ready` is set once nginx runs the first config of synced informers."""
    try:
        nginx_binary()
    except NginxError as exc:
        # the rest of the cluster still works without nginx: say so once and serve no Ingresses
        log.warning("ingress: %s", exc)
        ready.set()
        await asyncio.Event().wait()
    controller = IngressController(client, settings)
    await controller.ensure_objects()

    async def announce() -> None:
        await asyncio.gather(*(i.synced.wait() for i in controller.informers))
        controller.runner.request()
        await controller.synced.wait()
        ready.set()
        log.info("ingress: nginx on %s:%d/%d", settings.listen_address, controller.http_port, controller.https_port)

    async def supervise() -> None:
        while True:
            status = await controller.nginx.wait()
            log.warning("ingress: nginx exited with status %s; starting it again", status)
            controller.applied = None
            controller.runner.request()
            await asyncio.sleep(1)

    try:
        async with asyncio.TaskGroup() as tg:
            for informer in controller.informers:
                tg.create_task(informer.run(), name=f"ingress: {informer.resource.plural} informer")
            tg.create_task(controller.runner.run(), name="ingress: sync")
            tg.create_task(announce(), name="ingress: ready")
            tg.create_task(supervise(), name="ingress: nginx")
    finally:
        await asyncio.shield(controller.nginx.stop())
