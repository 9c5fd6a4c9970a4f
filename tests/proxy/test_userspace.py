"""The userspace backend with real sockets on 127.x: spread, refusal, endpoint change, affinity, UDP, half-close."""

from __future__ import annotations

import asyncio
import socket
import time

from tests.proxy.objects import endpoint, endpoint_slice, service

from nanokube.proxy.proxier import Proxier
from nanokube.proxy.state import ProxyState
from nanokube.proxy.userspace import UserspaceBackend

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


def make() -> Proxier:
    p = Proxier(state=ProxyState(node_name="node-a", nodeport_ips=("127.0.0.1",)),
                backend=UserspaceBackend(udp_idle_timeout=5))
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


async def test_spread_refusal_and_endpoint_change() -> None:
    servers = await start_backends()
    p = make()
    try:
        p.on_service_add(service("web", "127.96.0.10", WEB))
        await p.sync()
        t0 = time.monotonic()
        try:
            await asyncio.open_connection("127.96.0.10", 8080)
            raise AssertionError("connected to a service without endpoints")
        except ConnectionRefusedError:
            assert time.monotonic() - t0 < 0.5
        first = slice_of(BACKENDS)
        p.on_endpointslice_add(first)
        await p.sync()
        seen: dict[str, int] = {}
        for _ in range(300):
            server = await ask("127.96.0.10", 8080)
            seen[server] = seen.get(server, 0) + 1
        assert set(seen) == set(BACKENDS) and max(seen.values()) <= 180
        # an established connection survives an endpoint change; new connections use the new set at once
        reader, writer = await asyncio.open_connection("127.96.0.10", 8080)
        writer.write(b"1\n")
        old_server = (await reader.readline()).decode().split()[0]
        p.on_endpointslice_update(first, slice_of(BACKENDS[2:], rv="2"))
        await p.sync()
        assert {await ask("127.96.0.10", 8080) for _ in range(10)} == {BACKENDS[2]}
        writer.write(b"2\n")
        assert (await reader.readline()).decode().split()[0] == old_server
        writer.close()
        p.on_endpointslice_delete(slice_of(BACKENDS[2:], rv="2"))
        await p.sync()
        try:
            await asyncio.open_connection("127.96.0.10", 8080)
            raise AssertionError("connected after scale to zero")
        except ConnectionRefusedError:
            pass
    finally:
        await p.backend.stop()
        for s in servers:
            s.close()


async def test_half_close_node_port_and_affinity() -> None:
    servers = await start_backends()
    p = make()
    try:
        p.on_service_add(service("web", "127.96.0.11", [{"name": "http", "port": 8080, "targetPort": 9090,
                                                          "nodePort": 31111}], type="LoadBalancer",
                                 lb_ips=("127.240.0.5",), affinity_timeout=60))
        p.on_endpointslice_add(slice_of(BACKENDS))
        await p.sync()
        assert len({await ask("127.96.0.11", 8080) for _ in range(20)}) == 1  # ClientIP affinity
        assert await ask("127.240.0.5", 8080) in BACKENDS
        assert await ask("127.0.0.1", 31111) in BACKENDS
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
