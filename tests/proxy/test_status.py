"""The proxy status endpoint (/healthz, /livez, /services, /status) over a real socket, fed by a real Proxier."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import datetime

from tests.proxy.objects import endpoint, endpoint_slice, service

from nanokube.proxy.proxier import Proxier
from nanokube.proxy.state import ProxyState
from nanokube.proxy.status import ProxyStatus, StatusServer
from nanokube.proxy.userspace import UserspaceBackend


async def get(port: int, path: str, method: str = "GET") -> tuple[int, dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 2)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def parse_time(text: str) -> datetime:
    assert text.endswith("Z")
    return datetime.fromisoformat(text[:-1] + "+00:00")


async def test_services_and_healthz_follow_syncs() -> None:
    clock = [1000.0]
    status = ProxyStatus(mode="userspace", node_ips=["127.0.0.1"], health_timeout=0.2, monotonic=lambda: clock[0])
    p = Proxier(state=ProxyState(node_name="node-a", nodeport_ips=("127.0.0.1",)),
                backend=UserspaceBackend(), status=status)
    server = StatusServer(status, "127.0.0.1", 0)
    assert await server.start()
    port = server.port
    try:
        code, body = await get(port, "/healthz")
        assert code == 200 and body["nodeEligible"] is True and body["mode"] == "userspace"
        assert body["nodeIPs"] == ["127.0.0.1"]
        assert set(body) >= {"lastUpdated", "currentTime", "nodeEligible"}
        assert await get(port, "/services") == (200, {})

        p.on_services_synced()
        p.on_endpointslices_synced()
        p.on_service_add(service("web", "127.96.0.20", [{"name": "http", "port": 8080, "targetPort": 9090}]))
        p.on_endpointslice_add(endpoint_slice("web", [endpoint("127.244.0.21"), endpoint("127.244.0.22")],
                                              [{"name": "http", "port": 9090}]))
        await p.sync()
        code, services = await get(port, "/services")
        web = services["default/web"]
        parse_time(web["programmed_at"])
        assert web["endpoints"] == ["127.244.0.21:9090", "127.244.0.22:9090"]
        assert web["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080, "clusterIP": "127.96.0.20",
                                 "frontends": [{"address": "127.96.0.20:8080", "kind": "cluster",
                                                "endpoints": ["127.244.0.21:9090", "127.244.0.22:9090"],
                                                "noEndpoints": ""}]}]
        first = web["programmed_at"]

        # A change queued but not applied within the health timeout: unhealthy (503), as kube-proxy.
        p.on_endpointslice_update(None, endpoint_slice("web", [endpoint("127.244.0.21")],
                                                       [{"name": "http", "port": 9090}], rv="2"))
        clock[0] += 0.19
        assert (await get(port, "/healthz"))[0] == 200  # queued, not late yet
        clock[0] += 0.02
        code, body = await get(port, "/healthz")
        assert code == 503 and parse_time(body["lastUpdated"]) < parse_time(body["currentTime"])
        await p.sync()
        assert (await get(port, "/healthz"))[0] == 200
        web = (await get(port, "/services"))[1]["default/web"]
        assert web["endpoints"] == ["127.244.0.21:9090"] and web["programmed_at"] > first

        # The node tainted for deletion: /healthz 503 with nodeEligible false; /livez still 200.
        status.sync_node({"metadata": {"name": "node-a"},
                          "spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]}})
        code, body = await get(port, "/healthz")
        assert code == 503 and body["nodeEligible"] is False
        code, body = await get(port, "/livez")
        assert code == 200 and "nodeEligible" not in body

        p.on_service_delete(service("web", "127.96.0.20", [{"name": "http", "port": 8080}]))
        await p.sync()
        assert await get(port, "/services") == (200, {})
        code, body = await get(port, "/status")
        assert body["mode"] == "userspace" and body["syncs"] == 3 and body["services"] == {}
        assert (await get(port, "/nope"))[0] == 404
    finally:
        await server.close()
        await p.backend.stop()


async def test_a_taken_port_is_logged_not_fatal(caplog) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = StatusServer(ProxyStatus(), "127.0.0.1", taken.getsockname()[1])
        assert await server.start() is False
        await server.close()
    assert "proxy status endpoint not started" in caplog.text


async def test_post_full_sync_rebuilds_everything_on_demand() -> None:
    p = Proxier(state=ProxyState(node_name="node-a", nodeport_ips=()), backend=UserspaceBackend())
    server = StatusServer(p.status, "127.0.0.1", 0, full_sync=p.request_full_sync)
    await server.start()
    try:
        p.on_services_synced()
        p.on_endpointslices_synced()
        await p.sync()
        first = p.status.last_full_sync
        assert first and not p.need_full
        assert (await get(server.port, "/full-sync", "POST")) == (202, {"queued": "full sync"})
        assert p.need_full
        await p.sync()
        assert p.status.last_full_sync > first and not p.need_full
        assert (await get(server.port, "/status", "POST"))[0] == 405
        assert server.route("POST", "/full-sync", "10.0.0.7")[0] == 403  # not from a remote client
    finally:
        await server.close()
        await p.backend.stop()
