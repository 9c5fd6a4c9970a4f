"""Connection counters per Service port and endpoint: real worker processes, real sockets, the status endpoint's
/counters and Prometheus /metrics (behind the token, as the rest of the status endpoint)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections import Counter

import pytest
from tests.proxy.objects import service
from tests.proxy.test_status_auth import TOKEN
from tests.proxy.test_userspace import BACKENDS, WEB, ask, slice_of, start_backends

from nanokube.proxy.proxier import Proxier
from nanokube.proxy.state import ProxyState
from nanokube.proxy.status import StatusServer
from nanokube.proxy.worker_pool import WorkerPoolBackend

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreading is Linux")
VIP = "127.96.1.20"
N = 90


async def http(port: int, path: str, token: str | None) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


async def test_counts_per_endpoint_summed_over_workers_and_exported() -> None:
    servers = await start_backends()
    p = Proxier(state=ProxyState(node_name="node-a", nodeport_ips=("127.0.0.1",)),
                backend=WorkerPoolBackend(workers=2, udp_idle_timeout=5))
    p.on_services_synced()
    p.on_endpointslices_synced()
    status_server = StatusServer(p.status, "127.0.0.1", 0, token=TOKEN, counters=p.backend.counters)  # type: ignore
    await status_server.start()
    try:
        p.on_service_add(service("web", VIP, WEB))
        p.on_endpointslice_add(slice_of(BACKENDS))
        await p.sync()
        seen = Counter([await ask(VIP, 8080) for _ in range(N)])  # each backend answers with its own IP
        assert sum(seen.values()) == N and len(seen) == 3

        counts = await p.backend.counters()  # type: ignore[attr-defined]
        assert {ep[0]: n for ep, n in counts[(VIP, "TCP", 8080)].items()} == dict(seen)

        code, body = await http(status_server.port, "/metrics", None)
        assert code == 401 and "nanokube_proxy" not in body
        code, body = await http(status_server.port, "/metrics", TOKEN)
        assert code == 200
        series = {m[0]: int(m[1]) for m in re.findall(
            r'^nanokube_proxy_endpoint_connections_total\{service="default/web",port="http",'
            r'endpoint="([\d.]+):9090"\} (\d+)$', body, re.M)}
        assert series == dict(seen)
        code, body = await http(status_server.port, "/counters", TOKEN)
        assert code == 200 and f'"{BACKENDS[0]}:9090"' in body
    finally:
        await status_server.close()
        await p.backend.stop()
        for s in servers:
            s.close()
