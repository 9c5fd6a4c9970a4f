"""How the API server calls a node's kubelet port (pods/log, exec/attach/port-forward, metrics): HTTPS to the
Node's InternalIP and `daemonEndpoints.kubeletEndpoint.Port`, the kubelet's certificate checked against the
cluster CA, and the cluster's bearer token, which the kubelet asks of every caller.

One configuration per API server process (`configure`, at start; `current()` where a call is made), like the
shared connection pool in streamproxy."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from nanokube.api import errors


@dataclass
class KubeletClient:
    token: str | None
    ca_file: str | None  # None: plain HTTP (kubelets of tests that serve no TLS)
    _ssl: ssl.SSLContext | None = field(default=None, init=False, repr=False)

    def ssl_context(self) -> ssl.SSLContext | bool:
        if self.ca_file is None:
            return False
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.ca_file)
        return self._ssl

    @property
    def scheme(self) -> str:
        return "https" if self.ca_file else "http"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def url(self, node: dict[str, Any], path: str) -> str:
        status = node.get("status") or {}
        port = status.get("daemonEndpoints", {}).get("kubeletEndpoint", {}).get("Port")
        address = next((a["address"] for a in status.get("addresses", []) if a.get("type") == "InternalIP"), None)
        if not port or not address:
            raise errors.bad_request(f"node {node.get('metadata', {}).get('name', '')} has no kubelet endpoint")
        host = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{host}:{port}{path}"


_current = KubeletClient(None, None)


def configure(token: str | None, ca_file: str | None) -> None:
    global _current
    _current = KubeletClient(token, ca_file)


def current() -> KubeletClient:
    return _current
