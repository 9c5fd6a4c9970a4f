"""Virtual hosts -> nginx.conf text (pure). Backends are upstreams of endpoint addresses, not the ClusterIP."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nanokube.ingress.routes import Backend, Route, VirtualHost


@dataclass
class Listen:
    address: str
    http_port: int
    https_port: int


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def server_name(host: str) -> str:
    if not host:
        return "_"
    if host.startswith("*."):
        return _q("~^[^.]+" + re.escape(host[1:]) + "$")
    return _q(host)


def _send(backend: Backend | None) -> str:
    if backend is None:
        return "return 404;"
    if not backend.servers:
        return "return 503;"
    return f"proxy_pass http://{backend.upstream};"


def _locations(vhost: VirtualHost) -> list[str]:
    out: list[str] = []
    exact_paths = {r.path for r in vhost.routes if r.exact}
    has_root = False
    for route in vhost.routes:
        send = _send(route.backend)
        if route.exact:
            out.append(f"    location = {_q(route.path)} {{ {send} }}")
        elif route.path == "/":
            has_root = True
            out.append(f"    location / {{ {send} }}")
        else:
            if route.path not in exact_paths:
                out.append(f"    location = {_q(route.path)} {{ {send} }}")
            out.append(f"    location {_q(route.path + '/')} {{ {send} }}")
    if not has_root:
        out.append(f"    location / {{ {_send(vhost.fallback)} }}")
    return out


def _upstreams(hosts: list[VirtualHost]) -> list[str]:
    seen: dict[str, Backend] = {}
    for vhost in hosts:
        backends = [r.backend for r in vhost.routes] + ([vhost.fallback] if vhost.fallback else [])
        for backend in backends:
            if backend.servers:
                seen.setdefault(backend.upstream, backend)
    out: list[str] = []
    for name, backend in sorted(seen.items()):
        out.append(f"  upstream {name} {{")
        out.extend(f"    server {server} max_fails=0;" for server in backend.servers)
        out.append("    keepalive 32;")
        out.append("  }")
    return out


def render(hosts: list[VirtualHost], listen: Listen, prefix: Path,
           certificates: dict[str, tuple[Path, Path]] | None = None) -> str:
    """`certificates`: TLS Secret namespace/name -> (cert file, key file) already written."""
    certificates = certificates or {}
    lines = [
        "daemon off;",
        "worker_processes 1;",
        f"pid {prefix / 'nginx.pid'};",
        f"error_log {prefix / 'error.log'} warn;",
        "events { worker_connections 4096; }",
        "http {",
        "  access_log off;",
        "  server_tokens off;",
        "  server_names_hash_bucket_size 128;",
        f"  client_body_temp_path {prefix / 'tmp' / 'body'};",
        f"  proxy_temp_path {prefix / 'tmp' / 'proxy'};",
        f"  fastcgi_temp_path {prefix / 'tmp' / 'fastcgi'};",
        f"  uwsgi_temp_path {prefix / 'tmp' / 'uwsgi'};",
        f"  scgi_temp_path {prefix / 'tmp' / 'scgi'};",
        # the workers may run as nobody, who cannot enter the data dir: never spill to temp files
        "  proxy_max_temp_file_size 0;",
        "  proxy_request_buffering off;",
        "  client_body_buffer_size 1m;",
        "  client_max_body_size 100m;",
        "  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }",
        "  proxy_http_version 1.1;",
        "  proxy_set_header Host $host;",
        "  proxy_set_header Upgrade $http_upgrade;",
        "  proxy_set_header Connection $connection_upgrade;",
        "  proxy_set_header X-Real-IP $remote_addr;",
        "  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "  proxy_set_header X-Forwarded-Host $host;",
        # nginx listens on ports of its own behind the controller Service's 80/443: forward the Service's port
        f"  map $server_port $forwarded_port {{ {listen.https_port} 443; default 80; }}",
        "  proxy_set_header X-Forwarded-Port $forwarded_port;",
        "  proxy_set_header X-Forwarded-Proto $scheme;",
        "  proxy_next_upstream error timeout http_502 http_503;",
        "  proxy_connect_timeout 5s;",
        "  proxy_read_timeout 3600s;",
        *_upstreams(hosts),
    ]
    for vhost in hosts:
        default = " default_server" if not vhost.host else ""
        lines.append("  server {")
        lines.append(f"    listen {listen.address}:{listen.http_port}{default};")
        cert = certificates.get(vhost.tls_secret or "")
        if cert is not None or not vhost.host:
            lines.append(f"    listen {listen.address}:{listen.https_port} ssl http2{default};")
        if cert is not None:
            lines.append(f"    ssl_certificate {cert[0]};")
            lines.append(f"    ssl_certificate_key {cert[1]};")
        elif not vhost.host:
            # no certificate: refuse the handshake on the catch-all rather than serve a wrong one
            lines.append("    ssl_reject_handshake on;")
        lines.append(f"    server_name {server_name(vhost.host)};")
        lines.extend(_locations(vhost))
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


__all__ = ["Listen", "Route", "render", "server_name"]
