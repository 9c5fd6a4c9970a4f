"""The userspace data path: TCP relaying with asyncio Protocols and UDP sessions. No cluster knowledge.

TCP: each accepted connection gets a backend connection; bytes go `data_received -> peer.write` with
back-pressure both ways (a side whose peer's write buffer is full stops reading) and half-close (EOF is
passed on with write_eof; the pair closes when both directions ended or either side is lost).
UDP: one connected socket per client address ("session") to the chosen endpoint, read with add_reader;
sessions end after an idle timeout or at once when their endpoint is removed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

Addr = tuple[str, int]
# Counting new connections per endpoint (Route.counts; in netns mode the nft set endpoint-connections, see
# nftrules.py); NANOKUBE_PROXY_COUNTERS=0 turns it off in both modes, to measure its cost.
COUNTING = os.environ.get("NANOKUBE_PROXY_COUNTERS", "1") != "0"
LINGER_RST = struct.pack("ii", 1, 0)


class Route:
    """Endpoints of one frontend and the endpoint choice: round-robin, sticky per client with affinity.

    `sources` (loadBalancerSourceRanges of an LB address; empty = anyone) limits who may use it: `admits`."""

    __slots__ = ("_next", "affinity", "affinity_timeout", "counts", "endpoints", "sources")

    def __init__(self, endpoints: list[Addr], affinity_timeout: int = 0, source_ranges: tuple[str, ...] = ()) -> None:
        self.endpoints = endpoints
        self.affinity_timeout = affinity_timeout
        self.affinity: dict[str, tuple[Addr, float]] = {}
        self.sources = _networks(source_ranges)
        self._next = 0
        # new connections (UDP: sessions) sent to each endpoint, for the status endpoint's /metrics
        self.counts: dict[Addr, int] = dict.fromkeys(endpoints, 0)

    def admits(self, client_ip: str) -> bool:
        try:
            addr = int.from_bytes(socket.inet_aton(client_ip), "big")
        except OSError:
            return False
        return any(addr & mask == net for net, mask in self.sources)

    def update(self, endpoints: list[Addr], affinity_timeout: int, source_ranges: tuple[str, ...] = ()) -> None:
        self.endpoints = endpoints
        self.affinity_timeout = affinity_timeout
        self.sources = _networks(source_ranges)
        self.counts = {ep: self.counts.get(ep, 0) for ep in endpoints}  # a removed endpoint's series ends
        if not affinity_timeout:
            self.affinity.clear()
        else:
            alive = set(endpoints)
            self.affinity = {c: v for c, v in self.affinity.items() if v[0] in alive}

    def pick(self, client_ip: str) -> Addr | None:
        eps = self.endpoints
        if not eps:
            return None
        if self.affinity_timeout:
            now = time.monotonic()
            hit = self.affinity.get(client_ip)
            if hit is not None and hit[1] > now and hit[0] in eps:
                ep = hit[0]
            else:
                ep = self._round_robin(eps)
            self.affinity[client_ip] = (ep, now + self.affinity_timeout)
        else:
            ep = self._round_robin(eps)
        if COUNTING:
            counts = self.counts
            counts[ep] = counts.get(ep, 0) + 1
        return ep

    def _round_robin(self, eps: list[Addr]) -> Addr:
        i = self._next % len(eps)
        self._next = i + 1
        return eps[i]


def _networks(ranges: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """CIDRs as (network, netmask) integers, so a check per connection is two integer operations per range."""
    nets = (ipaddress.IPv4Network(r, strict=False) for r in ranges)
    return tuple((int(n.network_address), int(n.netmask)) for n in nets)


def _reset(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        except OSError:
            pass
    transport.abort()  # type: ignore[attr-defined]


class _Side(asyncio.Protocol):
    __slots__ = ("early", "eof", "peer", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.eof = False
        self.early: list[bytes] = []  # data that arrived before the peer connection existed

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None:
            self.early.append(data)
        else:
            peer.transport.write(data)  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None or peer.transport is None:
            return False
        if peer.eof:
            peer.transport.close()
            return False
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True  # keep our write side open until the peer finishes

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.eof:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            if exc is not None:
                _reset(peer.transport)
            else:
                peer.transport.close()



_P = TypeVar("_P", bound=asyncio.BaseProtocol)


def _factory(protocol: _P) -> Callable[[], _P]:
    """create_connection's protocol factory for a protocol made beforehand."""
    return lambda: protocol


class _BackendSide(_Side):
    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]


class TcpClientSide(_Side):
    """Protocol of an accepted client connection; dials an endpoint chosen by the route."""

    __slots__ = ("route",)

    def __init__(self, route: Route) -> None:
        super().__init__()
        self.route = route

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        client_ip = peer[0] if peer else ""
        ep = self.route.pick(client_ip) if not self.route.sources or self.route.admits(client_ip) else None
        if ep is None:
            _reset(transport)
            return
        transport.pause_reading()  # type: ignore[attr-defined]
        asyncio.get_running_loop().create_task(self._dial(ep))

    async def _dial(self, first: Addr) -> None:
        loop = asyncio.get_running_loop()
        candidates = [first] + [ep for ep in self.route.endpoints if ep != first]
        for ep in candidates[:3]:
            if self.transport is None or self.transport.is_closing():
                return
            backend = _BackendSide()
            try:
                await loop.create_connection(_factory(backend), ep[0], ep[1])
            except OSError as err:
                log.debug("dial %s:%d failed: %s", ep[0], ep[1], err)
                continue
            backend.peer, self.peer = self, backend
            if backend.early:  # a server that speaks first (MySQL's greeting) may beat this task's resumption
                self.transport.write(b"".join(backend.early))
                backend.early.clear()
            if self.early:
                backend.transport.write(b"".join(self.early))  # type: ignore[union-attr]
                self.early.clear()
            if self.transport.is_closing():
                backend.transport.close()  # type: ignore[union-attr]
                return
            if self.eof:
                backend.transport.write_eof()  # type: ignore[union-attr]
            else:
                self.transport.resume_reading()
            return
        if self.transport is not None:
            _reset(self.transport)  # every endpoint refused: the client sees a reset, not a hang


class UdpSession:
    __slots__ = ("client", "endpoint", "fd", "last", "listener", "sock")

    def __init__(self, listener: UdpListener, client: Addr, endpoint: Addr) -> None:
        self.listener = listener
        self.client = client
        self.endpoint = endpoint
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect(endpoint)
        self.fd = self.sock.fileno()
        self.last = time.monotonic()
        asyncio.get_running_loop().add_reader(self.fd, self._readable)

    def send(self, data: bytes) -> None:
        self.last = time.monotonic()
        try:
            self.sock.send(data)
        except (BlockingIOError, ConnectionRefusedError):
            pass  # UDP: a lost datagram, as on the wire

    def _readable(self) -> None:
        transport = self.listener.transport
        while True:
            try:
                data = self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP error from the endpoint; keep the session, the client may retry
            self.last = time.monotonic()
            if transport is not None:
                transport.sendto(data, self.client)

    def close(self) -> None:
        try:
            asyncio.get_running_loop().remove_reader(self.fd)
        except RuntimeError:
            pass
        self.sock.close()


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, route: Route, idle_timeout: float) -> None:
        self.route = route
        self.idle_timeout = idle_timeout
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[Addr, UdpSession] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._schedule_sweep()

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        session = self.sessions.get(addr)
        if session is None:
            if self.route.sources and not self.route.admits(addr[0]):
                return  # loadBalancerSourceRanges: dropped, as kube-proxy's firewall does
            ep = self.route.pick(addr[0])
            if ep is None:
                return
            session = self.sessions[addr] = UdpSession(self, addr, ep)
        session.send(data)

    def forget_endpoints(self, alive: set[Addr]) -> None:
        for addr, session in list(self.sessions.items()):
            if session.endpoint not in alive:
                session.close()
                del self.sessions[addr]

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(max(self.idle_timeout / 2, 0.05), self._sweep)

    def _sweep(self) -> None:
        cutoff = time.monotonic() - self.idle_timeout
        for addr, session in list(self.sessions.items()):
            if session.last < cutoff:
                session.close()
                del self.sessions[addr]
        self._schedule_sweep()

    def close(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()
        if self.transport:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._sweeper:
            self._sweeper.cancel()


def tcp_factory(route: Route) -> Callable[[], TcpClientSide]:
    return lambda: TcpClientSide(route)
