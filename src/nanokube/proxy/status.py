"""The proxy's status endpoint (like kube-proxy's healthz port, default 127.0.0.1:10256), read by `nanokube explain`.

GET /healthz and GET /livez — kube-proxy's shape plus what nanokube adds; 200 when healthy, 503 when not:

    {"lastUpdated": "2026-01-01T10:00:00.123456Z", "currentTime": "2026-01-01T10:00:00.200000Z",
     "nodeEligible": true, "mode": "userspace", "nodeIPs": ["127.0.0.1"], "syncs": 12,
     "lastFullSync": "2026-01-01T09:59:00.000000Z", "lastError": ""}

  As in kube-proxy (pkg/proxy/healthcheck/proxy_health.go): healthy unless a change has been queued for longer
  than the health timeout without a sync applying it (healthy while starting up); /healthz is also 503 when
  the node is not eligible (deleted, or tainted ToBeDeletedByClusterAutoscaler); when healthy, lastUpdated
  is the current time. /livez has no nodeEligible. Times are RFC 3339, UTC, microseconds.

GET /services — every Service the proxy has programmed, keyed "<namespace>/<name>":

    {"default/web": {
       "programmed_at": "2026-01-01T10:00:00.123456Z",       # the sync that last changed it
       "ports": [{"name": "http", "protocol": "TCP", "port": 80, "clusterIP": "127.96.0.5",
                  "frontends": [{"address": "127.96.0.5:80", "kind": "cluster",   # cluster|external|nodeport
                                 "endpoints": ["127.244.0.2:8080", "127.244.0.3:8080"],
                                 "noEndpoints": ""}]}],              # "" | "reject" | "drop"
                               # + "error": "Address already in use" and "reason": "port-taken" (or
                               #   "privileged-port": a port < 1024 for a non-root user) on a frontend the
                               #   proxy cannot serve
                               # + "sourceRanges": ["192.168.0.0/24"] on an LB IP with loadBalancerSourceRanges
       "endpoints": ["127.244.0.2:8080", "127.244.0.3:8080"]}}      # every endpoint any frontend uses

  A Service whose ports all went away (deleted, made headless) is dropped from the map.

GET /status — {"mode", "nodeIPs", "syncs", "lastSync", "lastFullSync", "lastError", "services": <as above>}.

GET /counters — new connections per Service, endpoint and Service port, since each frontend opened (userspace
mode: counted by the workers) or since the endpoint was added to the frontend (netns mode: the kernel's counters
of set endpoint-connections; a full sync rebuilds the table and restarts them at 0, as a Prometheus counter reset):

    {"services": {"default/web": {"127.244.0.2:8080": {"connections": 12, "ports": {"http": 12}}}}}

GET /metrics — the same as Prometheus text, one series per Service port and endpoint:

    nanokube_proxy_endpoint_connections_total{service="default/web",port="http",endpoint="127.244.0.2:8080"} 12

POST /full-sync — queue a full sync (every rule rebuilt from the current state); 202. Only from a loopback client.

Who may ask: /healthz and /livez are open, as kube-proxy's are (load balancers probe them). Everything else
shows every Service and endpoint or changes state, so it needs the cluster's bearer token
(`Authorization: Bearer ...`, else 401), or a connection over the status Unix socket (mode 0600, in the data
dir: `DATA_DIR/proxy.sock`), which is what `nanokube explain` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from nanokube.aio.onerequest import answer_once
from nanokube.api.meta import rfc3339_micro
from nanokube.api.privileged_ports import PRIVILEGED_PORT_ERROR
from nanokube.proxy.plan import ServicePortPlan

log = logging.getLogger(__name__)

DEFAULT_STATUS_PORT = 10256
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"


@dataclass
class ServiceProgramState:
    programmed_at: float  # time.time() of the sync that last programmed this Service
    ports: list[dict[str, Any]]  # JSON-ready entries, see the module docstring
    endpoints: list[str]  # "ip:port" of every endpoint its frontends use

    @classmethod
    def of(cls, plans: tuple[ServicePortPlan, ...], now: float) -> ServiceProgramState:
        ports = []
        for plan in plans:
            frontends = [{"address": f"{fe.ip}:{fe.port}", "kind": fe.kind,
                          "endpoints": [f"{ep.ip}:{ep.port}" for ep in fe.endpoints], "noEndpoints": fe.no_endpoints,
                          **({"sourceRanges": list(fe.source_ranges)} if fe.source_ranges else {})}
                         for fe in plan.frontends]
            cluster_port = next((fe.port for fe in plan.frontends if fe.kind == "cluster"), 0)
            ports.append({"name": plan.name.port_name, "protocol": plan.name.protocol, "port": cluster_port,
                          "clusterIP": plan.cluster_ip, "frontends": frontends})
        endpoints = sorted({f"{ep.ip}:{ep.port}" for plan in plans for fe in plan.frontends for ep in fe.endpoints})
        return cls(programmed_at=now, ports=ports, endpoints=endpoints)

    def to_json(self) -> dict[str, Any]:
        return {"programmed_at": rfc3339_micro(self.programmed_at), "ports": self.ports, "endpoints": self.endpoints}


@dataclass
class ProxyStatus:
    """What `nanokube explain` shows about the proxy: per Service, when it was last programmed, and health."""

    mode: str = ""
    node_ips: list[str] = field(default_factory=list)
    services: dict[str, ServiceProgramState] = field(default_factory=dict)
    last_sync: float = 0.0
    last_full_sync: float = 0.0
    last_error: str = ""
    syncs: int = 0
    queued_since: float = 0.0  # monotonic time of the oldest change not yet applied (0 = none)
    node_eligible: bool = True
    health_timeout: float = 60.0
    unserved: dict[tuple[str, str, int], str] = field(default_factory=dict)  # frontend -> why it is not served
    monotonic: Callable[[], float] = field(default=time.monotonic, repr=False)  # the health timeout's clock

    def service(self, namespace: str, name: str) -> ServiceProgramState | None:
        return self.services.get(f"{namespace}/{name}")

    def queued(self) -> None:
        if not self.queued_since:
            self.queued_since = self.monotonic()

    def updated(self, now: float) -> None:
        self.queued_since = 0.0
        self.last_sync = now

    def sync_node(self, node: dict[str, Any] | None) -> None:
        if not node or node.get("metadata", {}).get("deletionTimestamp"):
            self.node_eligible = node is None  # unknown node: eligible, as kube-proxy before its first event
            return
        taints = (node.get("spec") or {}).get("taints") or []
        self.node_eligible = not any(t.get("key") == TO_BE_DELETED_TAINT for t in taints)

    def healthy(self) -> bool:
        if not self.last_sync or not self.queued_since:
            return True  # starting up, or fully synced
        return self.monotonic() - self.queued_since < self.health_timeout

    def healthz(self, *, with_node: bool = True) -> tuple[int, dict[str, Any]]:
        now = time.time()
        ok = self.healthy() and (self.node_eligible or not with_node)
        body: dict[str, Any] = {"lastUpdated": rfc3339_micro(now if ok else self.last_sync), "currentTime": rfc3339_micro(now)}
        if with_node:
            body["nodeEligible"] = self.node_eligible
        body.update(mode=self.mode, nodeIPs=self.node_ips, syncs=self.syncs,
                    lastFullSync=rfc3339_micro(self.last_full_sync) if self.last_full_sync else None,
                    lastError=self.last_error)
        return (200 if ok else 503), body

    def services_json(self) -> dict[str, Any]:
        out = {key: state.to_json() for key, state in sorted(self.services.items())}
        if self.unserved:  # copies: the recorded entries are shared with later calls
            for state in out.values():
                state["ports"] = [{**port, "frontends": [self._with_error(fe, port["protocol"])
                                                         for fe in port["frontends"]]} for port in state["ports"]]
        return out

    def _with_error(self, fe: dict[str, Any], protocol: str) -> dict[str, Any]:
        ip, _, number = fe["address"].rpartition(":")
        reason = self.unserved.get((ip, protocol, int(number)))
        if not reason:
            return fe
        return {**fe, "error": reason, "reason": "privileged-port" if reason == PRIVILEGED_PORT_ERROR else "port-taken"}

    def status_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "nodeIPs": self.node_ips, "syncs": self.syncs,
                "lastSync": rfc3339_micro(self.last_sync) if self.last_sync else None,
                "lastFullSync": rfc3339_micro(self.last_full_sync) if self.last_full_sync else None,
                "lastError": self.last_error, "services": self.services_json()}


FrontendKey = tuple[str, str, int]
Counters = dict[FrontendKey, dict[tuple[str, int], int]]


def service_counts(services: dict[str, ServiceProgramState], counts: Counters) -> dict[str, Any]:
    """Counters per Service -> endpoint -> Service port name (a port's frontends - cluster IP, node port, LB -
    summed), for the Services the proxy has programmed."""
    where: dict[FrontendKey, tuple[str, str]] = {}
    for key, state in services.items():
        for port in state.ports:
            for fe in port.get("frontends") or []:
                ip, _, number = fe["address"].rpartition(":")
                where[(ip, port["protocol"], int(number))] = (key, port.get("name") or "")
    out: dict[str, dict[str, Any]] = {}
    for frontend, per_endpoint in counts.items():
        owner = where.get(frontend)
        if owner is None:
            continue
        svc = out.setdefault(owner[0], {})
        for (ep_ip, ep_port), n in per_endpoint.items():
            entry = svc.setdefault(f"{ep_ip}:{ep_port}", {"connections": 0, "ports": {}})
            entry["connections"] += n
            entry["ports"][owner[1]] = entry["ports"].get(owner[1], 0) + n
    return {"services": out}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(by_service: dict[str, Any]) -> str:
    lines = ["# HELP nanokube_proxy_endpoint_connections_total New connections the proxy sent to an endpoint, "
             "per Service port.", "# TYPE nanokube_proxy_endpoint_connections_total counter"]
    for svc, endpoints in sorted(by_service["services"].items()):
        for endpoint, entry in sorted(endpoints.items()):
            for port, n in sorted(entry["ports"].items()):
                lines.append(f'nanokube_proxy_endpoint_connections_total{{service="{_label(svc)}",'
                             f'port="{_label(port)}",endpoint="{_label(endpoint)}"}} {n}')
    return "\n".join(lines) + "\n"


class StatusServer:
    """A tiny HTTP/1.1 server for the endpoints above (one request per connection)."""

    def __init__(self, status: ProxyStatus, host: str = "127.0.0.1", port: int = DEFAULT_STATUS_PORT, *,
                 full_sync: Callable[[], None] | None = None, token: str | None = None,
                 unix_socket: str | None = None, counters: Callable[[], Awaitable[Counters]] | None = None) -> None:
        self.status = status
        self.counters = counters  # the backend's per-endpoint connection counts
        self.full_sync = full_sync  # what POST /full-sync calls (the proxier's request_full_sync)
        self.host, self.port = host, port
        self.server: asyncio.AbstractServer | None = None
        # None: no token configured, every caller is trusted (only for tests of the routes themselves)
        self.token = token
        self.unix_socket = unix_socket
        self.unix_server: asyncio.AbstractServer | None = None

    async def start(self) -> bool:
        """Listen; a taken port is logged and skipped (the proxy runs on without its TCP status endpoint, the
        Unix socket still answers)."""
        listening = True
        try:
            self.server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        except OSError as err:
            log.warning("proxy status endpoint not started on %s:%d: %s", self.host, self.port,
                        err.strerror or err)
            listening = False
        else:
            self.port = self.server.sockets[0].getsockname()[1]
            log.info("proxy status on http://%s:%d/ (healthz, livez, services, status)", self.host, self.port)
        if self.unix_socket:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_socket)  # left by a process that was killed
            old_mask = os.umask(0o177)  # never reachable by others, not even between bind and chmod
            try:
                self.unix_server = await asyncio.start_unix_server(self._handle_local, self.unix_socket)
            finally:
                os.umask(old_mask)
            os.chmod(self.unix_socket, 0o600)
        return listening

    def authorized(self, head: bytes) -> bool:
        """Whether the request head carries the cluster's bearer token."""
        if self.token is None:
            return True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"authorization":
                given = value.strip()
                return given.startswith(b"Bearer ") and hmac.compare_digest(given[7:].strip(), self.token.encode())
        return False

    def route(self, method: str, path: str, peer: str = "127.0.0.1", *, authorized: bool = True) -> tuple[int, Any]:
        path = path.split("?", 1)[0]
        if not authorized and path not in ("/healthz", "/livez"):
            return 401, {"error": "Unauthorized: give the cluster's bearer token, or use the status Unix socket"}
        if method == "POST" and path == "/full-sync":
            if not peer.startswith("127.") or self.full_sync is None:
                return 403, {"error": "POST /full-sync is only for local clients of a running proxy"}
            self.full_sync()
            return 202, {"queued": "full sync"}
        if method not in ("GET", "HEAD"):
            return 405, {"error": "only GET (and POST /full-sync)"}
        if path == "/healthz":
            return self.status.healthz()
        if path == "/livez":
            return self.status.healthz(with_node=False)
        if path == "/services":
            return 200, self.status.services_json()
        if path == "/status":
            return 200, self.status.status_json()
        return 404, {"error": f"no {path}; try /healthz, /livez, /services, /status, /counters, /metrics"}

    async def _handle_local(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._handle(reader, writer, local=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local: bool = False) -> None:
        peer = "127.0.0.1" if local else (writer.get_extra_info("peername") or ("",))[0]

        async def respond(head: bytes, request_line: list[str]) -> tuple[int, str, bytes]:
            authorized = local or self.authorized(head)
            method, target = request_line[0], request_line[1]
            path = target.split("?", 1)[0]
            if authorized and method in ("GET", "HEAD") and path in ("/counters", "/metrics"):
                counts = await self.counters() if self.counters is not None else {}
                counted = service_counts(self.status.services, counts)
                if path == "/metrics":
                    return 200, "text/plain; version=0.0.4", metrics_text(counted).encode()
                return 200, "application/json", orjson.dumps(counted) + b"\n"
            code, body = self.route(method, target, peer, authorized=authorized)
            return code, "application/json", orjson.dumps(body) + b"\n"

        await answer_once(reader, writer, respond)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        if self.unix_server is not None:
            self.unix_server.close()
            await self.unix_server.wait_closed()
            self.unix_server = None
            with contextlib.suppress(OSError):
                os.unlink(self.unix_socket or "")
