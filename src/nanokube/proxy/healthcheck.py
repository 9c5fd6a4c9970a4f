"""Health-check node ports: kube-proxy's service health server (pkg/proxy/healthcheck/service_health.go).

A Service of type LoadBalancer with externalTrafficPolicy Local has `spec.healthCheckNodePort`; on every node
address the proxy serves node ports on, that port answers any HTTP request with

    200 (this node has ready endpoints of the Service and the proxy is healthy) or 503 (otherwise)
    Content-Type: application/json
    X-Content-Type-Options: nosniff
    X-Load-Balancing-Endpoint-Weight: <local endpoints>

    {"service": {"namespace": "default", "name": "web"}, "localEndpoints": 1, "serviceProxyHealthy": true}

(pretty-printed with tabs and no trailing newline, byte for byte as kube-proxy prints it). Listeners follow
the proxy's syncs: opened for new Services, closed when a Service goes away or changes policy or port. A port
that cannot be opened (taken) is logged and retried with backoff; kube-proxy retries on its next sync.
Counts change without reopening.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import threading
from collections.abc import Callable
from email.utils import formatdate

from nanokube.proxy.commands import enter_netns
from nanokube.proxy.model import ServiceHealth

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 60.0  # seconds a kept-alive connection may sit between requests
RETRY_INITIAL = 0.5
RETRY_MAX = 30.0


def health_body(service_key: str, local_endpoints: int, proxy_healthy: bool) -> bytes:
    namespace, _, name = service_key.partition("/")
    return (f'{{\n\t"service": {{\n\t\t"namespace": {json.dumps(namespace)},\n\t\t"name": {json.dumps(name)}\n\t}},\n'
            f'\t"localEndpoints": {local_endpoints},\n\t"serviceProxyHealthy": {str(proxy_healthy).lower()}\n}}'
            ).encode()


def health_response(service_key: str, local_endpoints: int, proxy_healthy: bool, *, head: bool = False,
                    keep_alive: bool = True) -> bytes:
    ok = local_endpoints != 0 and proxy_healthy
    body = health_body(service_key, local_endpoints, proxy_healthy)
    lines = ["HTTP/1.1 200 OK" if ok else "HTTP/1.1 503 Service Unavailable",
             "Content-Type: application/json", "X-Content-Type-Options: nosniff",
             f"X-Load-Balancing-Endpoint-Weight: {local_endpoints}",
             f"Date: {formatdate(usegmt=True)}", f"Content-Length: {len(body)}"]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else body)


def listening_socket(ip: str, port: int, netns: str | None = None) -> socket.socket:
    """A non-blocking TCP listener on ip:port, created inside network namespace `netns` when given (in a
    short-lived thread that entered it, so this process's other threads stay where they are)."""
    def make() -> socket.socket:
        if netns:
            enter_netns(netns)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's net.Listen
            sock.bind((ip, port))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    if not netns:
        return make()
    box: list[socket.socket | BaseException] = []

    def run() -> None:
        try:
            box.append(make())
        except BaseException as err:  # handed to the caller
            box.append(err)

    thread = threading.Thread(target=run, name="healthcheck-listen")
    thread.start()
    thread.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


class ServiceHealthServer:
    """One set of listeners per Service that needs a health check; `sync` makes them match the proxy state."""

    def __init__(self, *, proxy_healthy: Callable[[], bool] = lambda: True, netns: str | None = None,
                 retry_initial: float = RETRY_INITIAL, retry_max: float = RETRY_MAX) -> None:
        self.proxy_healthy = proxy_healthy
        self.netns = netns
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.counts: dict[str, int] = {}  # Service key -> local endpoints, read on every request
        self.servers: dict[str, tuple[int, tuple[str, ...], list[asyncio.Server]]] = {}  # key -> port, addrs
        self._connections: dict[str, set[asyncio.StreamWriter]] = {}  # closed with their listeners, as Go's
        self._wanted: dict[str, ServiceHealth] = {}
        self._addresses: tuple[str, ...] = ()
        self._failures: dict[str, int] = {}  # Service key -> consecutive failed opens
        self._lock = asyncio.Lock()
        self._retry: asyncio.TimerHandle | None = None
        self._retry_task: asyncio.Task[None] | None = None
        self._closed = False

    def listening(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        return {key: (port, addrs) for key, (port, addrs, _) in self.servers.items()}

    async def sync(self, wanted: dict[str, ServiceHealth], addresses: tuple[str, ...]) -> None:
        """Open/close listeners for `wanted` on `addresses` (all addresses when empty); never raises for a port
        that cannot be opened: that one is retried later."""
        self._wanted = dict(wanted)
        self._addresses = addresses or ("0.0.0.0",)
        for key, health in wanted.items():
            self.counts[key] = health.local_endpoints
        await self._reconcile()

    async def _reconcile(self) -> None:
        async with self._lock:
            if self._closed:
                return
            for key in list(self.servers):
                health = self._wanted.get(key)
                port, addrs, _ = self.servers[key]
                if health is None or (health.port, self._addresses) != (port, addrs):
                    await self._close(key)
            for key in [k for k in self.counts if k not in self._wanted]:
                del self.counts[key]
            self._failures = {k: n for k, n in self._failures.items() if k in self._wanted}
            for key, health in self._wanted.items():
                if key not in self.servers:
                    await self._open(key, health.port)
            self._schedule_retry()

    async def _open(self, key: str, port: int) -> None:
        servers: list[asyncio.Server] = []
        try:
            for ip in self._addresses:
                sock = listening_socket(ip, port, self.netns)
                try:
                    servers.append(await asyncio.start_server(functools.partial(self._serve, key), sock=sock))
                except BaseException:
                    sock.close()
                    raise
        except OSError as err:
            for server in servers:  # all or nothing, as kube-proxy: a retry starts clean
                server.close()
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            (log.warning if failures == 1 else log.debug)(
                "health check for %s not started on port %d: %s (retrying)", key, port, err.strerror or err)
            return
        self._failures.pop(key, None)
        self.servers[key] = (port, self._addresses, servers)
        log.info("health check for %s on port %d (%s)", key, port, ", ".join(self._addresses))

    async def _close(self, key: str) -> None:
        _, _, servers = self.servers.pop(key)
        for server in servers:
            server.close()
        for writer in self._connections.pop(key, set()):
            writer.close()
        for server in servers:
            await server.wait_closed()

    def _schedule_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if not self._failures:
            return
        delay = min(self.retry_max, self.retry_initial * 2 ** (max(self._failures.values()) - 1))
        self._retry = asyncio.get_running_loop().call_later(delay, self._kick)

    def _kick(self) -> None:
        self._retry = None
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.create_task(self._reconcile(), name="proxy: health check retry")

    async def _serve(self, key: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections = self._connections.setdefault(key, set())
        connections.add(writer)
        try:
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
                request, *header_lines = head.decode("latin-1").split("\r\n")
                parts = request.split()
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    break
                headers = {}
                for line in header_lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip().lower()
                length = int(headers.get("content-length") or 0)
                if length:
                    await reader.readexactly(length)
                connection = headers.get("connection", "")
                keep_alive = ("close" not in connection if parts[2] == "HTTP/1.1" else "keep-alive" in connection)
                keep_alive = keep_alive and "transfer-encoding" not in headers
                count = self.counts.get(key)
                if count is None:  # closed under us
                    break
                writer.write(health_response(key, count, self.proxy_healthy(), head=parts[0] == "HEAD",
                                             keep_alive=keep_alive))
                await writer.drain()
                if not keep_alive:
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass
        finally:
            connections.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            if self._retry is not None:
                self._retry.cancel()
            for key in list(self.servers):
                await self._close(key)
        if self._retry_task is not None and not self._retry_task.done():
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
