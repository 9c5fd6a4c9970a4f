"""Ingresses + Services + EndpointSlices -> virtual hosts, routes and backends (pure; no I/O).

Conflicts between Ingresses resolve as ingress-nginx does: the oldest Ingress wins a host+path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nanokube.api.meta import Obj


@dataclass
class Backend:
    service: str  # namespace/name
    port: str  # the Ingress's port: a number or a name
    servers: list[str] = field(default_factory=list)  # "ip:port" of ready endpoints
    problem: str = ""  # why there is no endpoint to send to

    @property
    def upstream(self) -> str:
        return "up_" + re.sub(r"[^A-Za-z0-9_]", "_", f"{self.service}_{self.port}")


@dataclass
class Route:
    path: str  # normalised: no trailing slash except "/" itself
    exact: bool
    backend: Backend
    ingress: str


@dataclass
class VirtualHost:
    host: str  # "" = every host (nginx's default server)
    routes: list[Route] = field(default_factory=list)
    fallback: Backend | None = None  # the Ingress's defaultBackend; else 404
    tls_secret: str | None = None  # namespace/name of a kubernetes.io/tls Secret
    ingress: str = ""


def normalise_prefix(path: str) -> str:
    """Prefix paths match element-wise: "/foo/" and "/foo" both mean the elements ["foo"]."""
    stripped = path.rstrip("/")
    return stripped or "/"


def prefix_matches(prefix: str, path: str) -> bool:
    prefix = normalise_prefix(prefix)
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def host_matches(pattern: str, host: str) -> bool:
    """Kubernetes: a wildcard covers exactly one leading DNS label."""
    if not pattern:
        return True
    if pattern.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == pattern[2:]
    return host == pattern


class BackendResolver:
    def __init__(self, services: dict[str, Obj], slices: dict[str, list[Obj]]) -> None:
        self.services = services  # namespace/name -> Service
        self.slices = slices  # namespace/name of the Service -> its EndpointSlices

    def resolve(self, namespace: str, backend: Obj) -> Backend | None:
        ref = backend.get("service")
        if not ref:
            return None  # a resource backend: not supported, treated as absent
        port_ref = ref.get("port") or {}
        port = str(port_ref["number"]) if port_ref.get("number") else str(port_ref.get("name") or "")
        out = Backend(f"{namespace}/{ref['name']}", port)
        service = self.services.get(out.service)
        if service is None:
            out.problem = f"service {out.service} not found"
            return out
        service_port = next((p for p in (service.get("spec") or {}).get("ports") or []
                             if (port_ref.get("number") and p.get("port") == port_ref["number"])
                             or (port_ref.get("name") and p.get("name") == port_ref["name"])), None)
        if service_port is None:
            out.problem = f"service {out.service} has no port {port}"
            return out
        port_name = service_port.get("name") or ""
        for eps in self.slices.get(out.service, []):
            if eps.get("addressType") not in ("IPv4", None):
                continue
            number = next((p.get("port") for p in eps.get("ports") or []
                           if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == "TCP"), None)
            if not number:
                continue
            for endpoint in eps.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                out.servers.extend(f"{address}:{number}" for address in endpoint.get("addresses") or [])
        out.servers = sorted(set(out.servers))
        if not out.servers:
            out.problem = f"service {out.service} port {port} has no ready endpoints"
        return out


def _key(obj: Obj) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def build_hosts(ingresses: list[Obj], resolver: BackendResolver) -> list[VirtualHost]:
    hosts: dict[str, VirtualHost] = {"": VirtualHost("")}
    ordered = sorted(ingresses, key=lambda i: (i["metadata"].get("creationTimestamp") or "", _key(i)))
    for ingress in ordered:
        namespace = ingress["metadata"].get("namespace", "default")
        spec = ingress.get("spec") or {}
        name = _key(ingress)
        default = resolver.resolve(namespace, spec["defaultBackend"]) if spec.get("defaultBackend") else None
        if default is not None and hosts[""].fallback is None:
            hosts[""].fallback = default
            hosts[""].ingress = hosts[""].ingress or name
        for tls in spec.get("tls") or []:
            for host in tls.get("hosts") or []:
                vhost = hosts.setdefault(host, VirtualHost(host, ingress=name))
                if vhost.tls_secret is None and tls.get("secretName"):
                    vhost.tls_secret = f"{namespace}/{tls['secretName']}"
        for rule in spec.get("rules") or []:
            host = rule.get("host") or ""
            vhost = hosts.setdefault(host, VirtualHost(host, ingress=name))
            if vhost.fallback is None and default is not None:
                vhost.fallback = default
            taken = {(r.path, r.exact) for r in vhost.routes}
            for item in (rule.get("http") or {}).get("paths") or []:
                exact = item.get("pathType") == "Exact"
                path = item.get("path") or "/"
                path = path if exact else normalise_prefix(path)
                backend = resolver.resolve(namespace, item.get("backend") or {})
                if backend is None or (path, exact) in taken:
                    continue
                taken.add((path, exact))
                vhost.routes.append(Route(path, exact, backend, name))
    return sorted(hosts.values(), key=lambda h: h.host)


def match(hosts: list[VirtualHost], host: str, path: str) -> tuple[VirtualHost, Route | None]:
    """The virtual host and route nginx picks for host+path (Exact first, then the longest prefix)."""
    vhost = next((h for h in hosts if h.host == host), None) \
        or next((h for h in hosts if h.host.startswith("*.") and host_matches(h.host, host)), None) \
        or next(h for h in hosts if h.host == "")
    exact = next((r for r in vhost.routes if r.exact and r.path == path), None)
    if exact is not None:
        return vhost, exact
    prefixes = [r for r in vhost.routes if not r.exact and prefix_matches(r.path, path)]
    return vhost, max(prefixes, key=lambda r: len(r.path), default=None)
