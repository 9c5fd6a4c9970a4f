"""Health-check node ports through real sockets (kube-proxy pkg/proxy/healthcheck/service_health.go): the exact
reply, listeners following the proxy state, a taken port retried, and the counts the proxy state derives."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest
from tests.proxy.objects import endpoint, endpoint_slice, service

from nanokube.proxy.commands import enter_netns
from nanokube.proxy.healthcheck import ServiceHealthServer, health_body
from nanokube.proxy.model import ServiceHealth
from nanokube.proxy.state import ProxyState
from nanokube.proxy.trackers import EndpointsChangeTracker, ServiceChangeTracker
from nanokube.testing.ports import free_port

HOST = "127.0.0.1"


async def get(port: int, request: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request or b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)).decode()
    status, *lines = head.strip().split("\r\n")
    headers = {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}
    body = await reader.readexactly(int(headers["Content-Length"]))
    return int(status.split()[1]), headers, body


def test_body_is_kube_proxys_byte_for_byte() -> None:
    assert health_body("ns1/web", 2, True) == (
        b'{\n\t"service": {\n\t\t"namespace": "ns1",\n\t\t"name": "web"\n\t},\n'
        b'\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}')


async def test_answers_follow_counts_and_proxy_health() -> None:
    healthy = [True]
    hs = ServiceHealthServer(proxy_healthy=lambda: healthy[0])
    port = free_port()
    try:
        await hs.sync({"default/web": ServiceHealth(port, 1)}, (HOST,))
        code, headers, body = await get(port)
        assert code == 200 and body == health_body("default/web", 1, True)
        assert headers["Content-Type"] == "application/json" and headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Load-Balancing-Endpoint-Weight"] == "1"
        code, headers, body = await get(port, b"GET /healthz?x=1 HTTP/1.0\r\n\r\n")  # any path, HTTP/1.0 too
        assert code == 200 and headers["Connection"] == "close"
        await hs.sync({"default/web": ServiceHealth(port, 0)}, (HOST,))
        code, headers, body = await get(port)
        assert code == 503 and b'"localEndpoints": 0' in body and headers["X-Load-Balancing-Endpoint-Weight"] == "0"
        await hs.sync({"default/web": ServiceHealth(port, 3)}, (HOST,))
        healthy[0] = False  # the proxy is behind on its syncs: no node is a good target
        code, _, body = await get(port)
        assert code == 503 and body.endswith(b'"localEndpoints": 3,\n\t"serviceProxyHealthy": false\n}')
        healthy[0] = True
        # keep-alive: several requests on one connection, the last one HEAD (headers only)
        reader, writer = await asyncio.open_connection(HOST, port)
        for _ in range(3):
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[0] == 200
        writer.write(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = await asyncio.wait_for(reader.read(), 3)
        assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")
        writer.close()
    finally:
        await hs.close()
    with pytest.raises(ConnectionRefusedError):
        await get(port)


async def test_listeners_open_and_close_with_the_services() -> None:
    hs = ServiceHealthServer()
    a, b = free_port(), free_port()
    try:
        await hs.sync({"default/a": ServiceHealth(a, 1), "default/b": ServiceHealth(b, 0)}, (HOST,))
        assert (await get(a))[0] == 200 and (await get(b))[0] == 503
        reader, writer = await asyncio.open_connection(HOST, b)  # an idle kept-alive client of b
        await hs.sync({"default/a": ServiceHealth(a, 1)}, (HOST,))
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed with its listener
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await get(b)
        c = free_port()
        await hs.sync({"default/a": ServiceHealth(c, 1)}, (HOST,))  # the port changed: moved
        assert (await get(c))[0] == 200
        with pytest.raises(ConnectionRefusedError):
            await get(a)
        assert hs.listening() == {"default/a": (c, (HOST,))}
    finally:
        await hs.close()


async def test_taken_port_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    hs = ServiceHealthServer(retry_initial=0.05, retry_max=0.2)
    blocker = socket.socket()
    blocker.bind((HOST, 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    other = free_port()
    try:
        with caplog.at_level(logging.WARNING, logger="nanokube.proxy.healthcheck"):
            await hs.sync({"default/web": ServiceHealth(port, 1), "default/ok": ServiceHealth(other, 1)}, (HOST,))
        assert "default/web not started on port" in caplog.text
        assert (await get(other))[0] == 200  # the others are served meanwhile
        assert "default/web" not in hs.listening()
        blocker.close()
        for _ in range(100):
            if "default/web" in hs.listening():
                break
            await asyncio.sleep(0.02)
        assert (await get(port))[0] == 200  # picked up without another sync
        assert caplog.text.count("not started") == 1  # logged once, not on every retry
    finally:
        blocker.close()
        await hs.close()


@pytest.fixture
def node_ns() -> Iterator[str]:
    ns = f"nk-hctest-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "addr", "add", "192.168.77.2/24", "dev", "lo"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace")
async def test_listens_inside_the_named_network_namespace(node_ns: str) -> None:
    ns = node_ns
    hs = ServiceHealthServer(netns=ns)
    try:
        port = free_port()
        # 192.168.77.2 exists only in that namespace: the bind itself proves where the socket lives
        await hs.sync({"default/web": ServiceHealth(port, 2)}, ("192.168.77.2",))
        assert hs.listening() == {"default/web": (port, ("192.168.77.2",))}
        out: list[bytes] = []

        def ask() -> None:  # a client inside the namespace
            enter_netns(ns)
            with socket.create_connection(("192.168.77.2", port), timeout=3) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                while chunk := s.recv(4096):
                    out.append(chunk)

        t = threading.Thread(target=ask)
        t.start()
        await asyncio.to_thread(t.join)
        assert b"".join(out).startswith(b"HTTP/1.1 200 OK") and b'"localEndpoints": 2' in b"".join(out)
    finally:
        await hs.close()


def test_state_counts_local_ready_endpoints_by_ip() -> None:
    state = ProxyState(node_name="node-a", nodeport_ips=("192.168.50.2",))
    services, slices = ServiceChangeTracker(), EndpointsChangeTracker()
    ports = [{"name": "http", "port": 80, "nodePort": 31111}, {"name": "https", "port": 443, "nodePort": 31112}]
    svc = service("web", "10.96.0.10", ports, type="LoadBalancer", etp="Local")
    svc["spec"]["healthCheckNodePort"] = 32000
    services.update(None, svc)
    sl = endpoint_slice("web", [endpoint("10.244.0.11"), endpoint("10.244.0.12", ready=False, serving=True,
                                                                  terminating=True),
                                endpoint("10.244.1.13", node="node-b")],
                        [{"name": "http", "port": 8080}, {"name": "https", "port": 8443}])
    slices.update(None, sl)
    state.apply(services.checkout(), slices.checkout())
    # one pod on two ports counts once; terminating and other nodes' endpoints never count
    assert state.health_checks == {"default/web": ServiceHealth(32000, 1)}
    slices.update(sl, None)
    state.apply(services.checkout(), slices.checkout())
    assert state.health_checks == {"default/web": ServiceHealth(32000, 0)}
    cluster = service("web", "10.96.0.10", ports, type="LoadBalancer", etp="Cluster", rv="2")
    services.update(svc, cluster)
    state.apply(services.checkout(), slices.checkout())
    assert state.health_checks == {}
