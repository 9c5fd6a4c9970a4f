"""The userspace backend with real sockets on 127.x: spread, refusal, endpoint change, affinity, UDP, half-close."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import struct
import time

import pytest
from tests.proxy.objects import endpoint, endpoint_slice, service

from nanokube.proxy.proxier import Proxier
from nanokube.proxy.state import ProxyState
from nanokube.proxy.userspace import UserspaceBackend
from nanokube.testing.ports import free_port

BACKENDS = ["127.244.0.11", "127.244.0.12", "127.244.0.13"]
WEB = [{"name": "http", "port": 8080, "targetPort": 9090}]
EPP = [{"name": "http", "port": 9090}]


class Echo(asyncio.Protocol):
    """Answers every line with "<server ip> <client ip>"; on EOF writes "bye" and closes (half-close check)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        me, peer = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        self.reply = f"{me[0]} {peer[0]}\n".encode()

    def data_received(self, data: bytes) -> None:
        for _ in range(data.count(b"\n")):
            self.t.write(self.reply)  # type: ignore[attr-defined]

    def eof_received(self) -> bool:
        self.t.write(b"bye\n")  # type: ignore[attr-defined]
        self.t.close()
        return True


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.me = transport.get_extra_info("sockname")[0]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.t.sendto(self.me.encode(), addr)  # type: ignore[attr-defined]


async def start_backends(port: int = 9090) -> list[asyncio.BaseTransport | asyncio.AbstractServer]:
    loop = asyncio.get_running_loop()
    out: list = []
    for ip in BACKENDS:
        out.append(await loop.create_server(Echo, ip, port, reuse_address=True))
        out.append((await loop.create_datagram_endpoint(UdpEcho, local_addr=(ip, port)))[0])
    return out


TCP_MODES = pytest.mark.parametrize("tcp", ["epoll", "protocol"])


def make(tcp: str = "epoll") -> Proxier:
    p = Proxier(state=ProxyState(node_name="node-a", nodeport_ips=("127.0.0.1",)),
                backend=UserspaceBackend(udp_idle_timeout=5, tcp=tcp))
    p.on_services_synced()
    p.on_endpointslices_synced()
    return p


async def ask(ip: str, port: int) -> str:
    reader, writer = await asyncio.open_connection(ip, port)
    writer.write(b"hi\n")
    line = await asyncio.wait_for(reader.readline(), 2)
    writer.close()
    return line.decode().split()[0]


def slice_of(ips: list[str], rv: str = "1", ports: list[dict] = EPP) -> dict:
    return endpoint_slice("web", [endpoint(ip) for ip in ips], ports, rv=rv)


async def refused(ip: str, port: int) -> bool:
    """The connection is refused at once (not left hanging)."""
    t0 = time.monotonic()
    try:
        _, writer = await asyncio.open_connection(ip, port)
    except ConnectionRefusedError:
        return time.monotonic() - t0 < 0.5
    writer.close()
    return False


async def spread_then_shift(p: Proxier, vip: str, port: int = 8080) -> None:
    """Endpoints BACKENDS arrive: 300 new connections reach all three, none more than 60 %. Then the slice
    shrinks to BACKENDS[2]: once the sync returns every new connection goes there, while a connection
    established before runs on to its old endpoint."""
    first = slice_of(BACKENDS)
    p.on_endpointslice_add(first)
    await p.sync()
    seen: dict[str, int] = {}
    for _ in range(300):
        server = await ask(vip, port)
        seen[server] = seen.get(server, 0) + 1
    assert set(seen) == set(BACKENDS) and max(seen.values()) <= 180
    reader, writer = await asyncio.open_connection(vip, port)
    writer.write(b"1\n")
    old_server = (await reader.readline()).decode().split()[0]
    p.on_endpointslice_update(first, slice_of(BACKENDS[2:], rv="2"))
    await p.sync()
    assert {await ask(vip, port) for _ in range(20)} == {BACKENDS[2]}
    writer.write(b"2\n")
    assert (await reader.readline()).decode().split()[0] == old_server
    writer.close()


@TCP_MODES
async def test_spread_refusal_and_endpoint_change(tcp: str) -> None:
    servers = await start_backends()
    p = make(tcp)
    try:
        p.on_service_add(service("web", "127.96.0.10", WEB))
        await p.sync()
        assert await refused("127.96.0.10", 8080)
        await spread_then_shift(p, "127.96.0.10")
        p.on_endpointslice_delete(slice_of(BACKENDS[2:], rv="2"))
        await p.sync()
        assert await refused("127.96.0.10", 8080)  # scaled to zero
    finally:
        await p.backend.stop()
        for s in servers:
            s.close()


@TCP_MODES
async def test_half_close_node_port_and_affinity(tcp: str) -> None:
    node_port = free_port()  # not a fixed number: other servers on this machine may hold one
    servers = await start_backends()
    p = make(tcp)
    try:
        p.on_service_add(service("web", "127.96.0.11", [{"name": "http", "port": 8080, "targetPort": 9090,
                                                          "nodePort": node_port}], type="LoadBalancer",
                                 lb_ips=("127.240.0.5",), affinity_timeout=60))
        p.on_endpointslice_add(slice_of(BACKENDS))
        await p.sync()
        assert len({await ask("127.96.0.11", 8080) for _ in range(20)}) == 1  # ClientIP affinity
        assert await ask("127.240.0.5", 8080) in BACKENDS
        assert await ask("127.0.0.1", node_port) in BACKENDS
        reader, writer = await asyncio.open_connection("127.96.0.11", 8080)
        writer.write(b"x\n")
        writer.write_eof()  # half-close: the answer and the server's own goodbye still arrive
        data = await asyncio.wait_for(reader.read(), 2)
        assert data.decode().splitlines()[-1] == "bye" and len(data.decode().splitlines()) == 2
        writer.close()
        assert p.status.service("default", "web") is not None
    finally:
        await p.backend.stop()
        for s in servers:
            s.close()


async def test_udp_sessions_follow_endpoint_changes() -> None:
    servers = await start_backends()
    p = make()
    loop = asyncio.get_running_loop()
    udp_svc = [{"name": "dns", "port": 5353, "targetPort": 9090, "protocol": "UDP"}]
    udp_ports = [{"name": "dns", "port": 9090, "protocol": "UDP"}]
    try:
        p.on_service_add(service("web", "127.96.0.53", udp_svc))
        first = slice_of(BACKENDS[:1], ports=udp_ports)
        p.on_endpointslice_add(first)
        await p.sync()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect(("127.96.0.53", 5353))
        for _ in range(3):
            await loop.sock_sendall(s, b"q")
            assert (await asyncio.wait_for(loop.sock_recv(s, 100), 2)).decode() == BACKENDS[0]
        p.on_endpointslice_update(first, slice_of(BACKENDS[1:2], rv="2", ports=udp_ports))
        await p.sync()
        await loop.sock_sendall(s, b"q")  # same client port: the session to the removed endpoint is gone
        assert (await asyncio.wait_for(loop.sock_recv(s, 100), 2)).decode() == BACKENDS[1]
        s.close()
    finally:
        await p.backend.stop()
        for t in servers:
            t.close()


class Sink(asyncio.Protocol):
    """Counts what it receives; at EOF answers with the count and a checksum, then closes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t, self.n, self.h = transport, 0, hashlib.sha256()

    def data_received(self, data: bytes) -> None:
        self.n += len(data)
        self.h.update(data)

    def eof_received(self) -> bool:
        self.t.write(f"{self.n} {self.h.hexdigest()}\n".encode())  # type: ignore[attr-defined]
        self.t.close()
        return True


class Source(asyncio.Protocol):
    """Sends BLOB as fast as the socket takes it (respecting pause_writing), then closes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(BLOB)  # type: ignore[attr-defined]
        transport.close()


BLOB = os.urandom(8 << 20)


@TCP_MODES
async def test_large_transfers_both_ways_with_back_pressure(tcp: str) -> None:
    loop = asyncio.get_running_loop()
    sink = await loop.create_server(Sink, BACKENDS[0], 9191, reuse_address=True)
    source = await loop.create_server(Source, BACKENDS[1], 9192, reuse_address=True)
    p = make(tcp)
    try:
        p.on_service_add(service("up", "127.96.0.12", [{"name": "", "port": 81, "targetPort": 9191}]))
        p.on_service_add(service("down", "127.96.0.13", [{"name": "", "port": 82, "targetPort": 9192}]))
        p.on_endpointslice_add(endpoint_slice("up", [endpoint(BACKENDS[0])], [{"name": "", "port": 9191}]))
        p.on_endpointslice_add(endpoint_slice("down", [endpoint(BACKENDS[1])], [{"name": "", "port": 9192}]))
        await p.sync()

        reader, writer = await asyncio.open_connection("127.96.0.12", 81)
        writer.write(BLOB)
        await writer.drain()
        writer.write_eof()
        line = await asyncio.wait_for(reader.readline(), 10)
        assert line.decode().split() == [str(len(BLOB)), hashlib.sha256(BLOB).hexdigest()]
        writer.close()

        reader, writer = await asyncio.open_connection("127.96.0.13", 82, limit=1 << 16)
        got = bytearray()
        while chunk := await asyncio.wait_for(reader.read(1 << 14), 10):
            got += chunk
            if len(got) < len(BLOB) // 2:
                await asyncio.sleep(0)  # a slow reader at first: the proxy must hold back, not buffer it all
        assert len(got) == len(BLOB) and hashlib.sha256(got).digest() == hashlib.sha256(BLOB).digest()
        writer.close()
    finally:
        await p.backend.stop()
        sink.close()
        source.close()


@TCP_MODES
async def test_backend_reset_resets_the_client(tcp: str) -> None:
    class Resetter(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def data_received(self, data: bytes) -> None:
            sock = self.t.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.t.abort()  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Resetter, BACKENDS[2], 9193, reuse_address=True)
    p = make(tcp)
    try:
        p.on_service_add(service("rst", "127.96.0.14", [{"name": "", "port": 83, "targetPort": 9193}]))
        p.on_endpointslice_add(endpoint_slice("rst", [endpoint(BACKENDS[2])], [{"name": "", "port": 9193}]))
        await p.sync()
        reader, writer = await asyncio.open_connection("127.96.0.14", 83)
        writer.write(b"boom\n")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 2)
        writer.close()
    finally:
        await p.backend.stop()
        server.close()


async def ask_from(source: str, ip: str, port: int) -> str:
    reader, writer = await asyncio.open_connection(ip, port, local_addr=(source, 0))
    try:
        writer.write(b"hi\n")
        return (await asyncio.wait_for(reader.readline(), 2)).decode().split()[0]
    finally:
        writer.close()


def udp_ask_from(source: str, ip: str, port: int, timeout: float = 0.5) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(timeout)
        s.sendto(b"q", (ip, port))
        try:
            return s.recv(100).decode()
        except TimeoutError:
            return None


@TCP_MODES
async def test_load_balancer_source_ranges(tcp: str) -> None:
    """Only sources in loadBalancerSourceRanges reach the LB address (TCP and UDP); the ClusterIP and the node
    port of the same Service stay open to everyone, as in kube-proxy."""
    node_port = free_port()
    servers = await start_backends()
    p = make(tcp)
    ports = [{"name": "http", "port": 8080, "targetPort": 9090, "nodePort": node_port},
             {"name": "dns", "port": 8080, "targetPort": 9090, "protocol": "UDP"}]
    eps = [{"name": "http", "port": 9090}, {"name": "dns", "port": 9090, "protocol": "UDP"}]
    svc = service("fw", "127.96.0.15", ports, type="LoadBalancer", lb_ips=("127.240.0.6",))
    svc["spec"]["loadBalancerSourceRanges"] = ["127.0.0.5/32", "127.1.0.0/16"]
    try:
        p.on_service_add(svc)
        p.on_endpointslice_add(endpoint_slice("fw", [endpoint(ip) for ip in BACKENDS], eps))
        await p.sync()
        assert await ask_from("127.0.0.5", "127.240.0.6", 8080) in BACKENDS
        assert await ask_from("127.1.2.3", "127.240.0.6", 8080) in BACKENDS
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await ask_from("127.0.0.6", "127.240.0.6", 8080)
        assert await ask_from("127.0.0.6", "127.96.0.15", 8080) in BACKENDS
        assert await ask_from("127.0.0.6", "127.0.0.1", node_port) in BACKENDS
        assert await asyncio.to_thread(udp_ask_from, "127.0.0.5", "127.240.0.6", 8080) in BACKENDS
        assert await asyncio.to_thread(udp_ask_from, "127.0.0.6", "127.240.0.6", 8080) is None
        # widening the ranges applies to the next connection
        wider = dict(svc, spec=dict(svc["spec"], loadBalancerSourceRanges=["127.0.0.0/24"]))
        p.on_service_update(svc, wider)
        await p.sync()
        assert await ask_from("127.0.0.6", "127.240.0.6", 8080) in BACKENDS
    finally:
        await p.backend.stop()
        for s in servers:
            s.close()
