"""The metrics listener: GET /metrics on port 9153 of each DNS listen address, as CoreDNS's `prometheus :9153`.

Open to every client, as CoreDNS's is (the kube-dns Service publishes it as port `metrics`): the numbers are
query counts by type and rcode, no names. One request per connection; Prometheus copes with that.
"""

from __future__ import annotations

import asyncio
import logging

from nanokube.aio.onerequest import answer_once
from nanokube.dns.metrics import DnsMetrics

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
READ_TIMEOUT = 10.0
MAX_HEAD = 16 << 10


class MetricsServer:
    def __init__(self, metrics: DnsMetrics, hosts: list[str], port: int) -> None:
        self.metrics = metrics
        self.hosts = list(dict.fromkeys(hosts))  # one listener per distinct address
        self.port = port
        self.servers: list[asyncio.AbstractServer] = []
        self.addresses: list[tuple[str, int]] = []

    async def start(self) -> None:
        """Listen on every host; one that cannot be bound is logged and skipped: DNS answers matter more."""
        for host in self.hosts:
            try:
                server = await asyncio.start_server(self._handle, host, self.port, reuse_address=True,
                                                    limit=MAX_HEAD)
            except OSError as err:
                log.warning("dns: metrics not served on %s:%d: %s", host, self.port, err.strerror or err)
                continue
            self.servers.append(server)
            self.addresses.append((host, server.sockets[0].getsockname()[1]))
        if self.addresses:
            log.info("dns: metrics on %s", ", ".join(f"http://{h}:{p}/metrics" for h, p in self.addresses))

    def serves(self, host: str) -> int | None:
        """The metrics port reachable at `host` (a listener on it or on every address), else None."""
        for bound, port in self.addresses:
            if bound in (host, "", "0.0.0.0", "::"):
                return port
        return None

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()

    def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        path = path.split("?", 1)[0]
        if path != "/metrics":
            return 404, "text/plain; charset=utf-8", b"404 page not found\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"method not allowed\n"
        return 200, CONTENT_TYPE, self.metrics.render().encode()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_once(reader, writer, self._respond, READ_TIMEOUT)

    async def _respond(self, _head: bytes, request_line: list[str]) -> tuple[int, str, bytes]:
        return self.respond(request_line[0], request_line[1])
