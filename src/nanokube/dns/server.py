"""UDP and TCP listeners. The UDP hit path is one dict lookup on the raw bytes, one counter increment in place
and one sendto; one hit in 64 is also timed (dns/metrics.py)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import struct
import time
from collections.abc import Awaitable

from nanokube.dns import wire
from nanokube.dns.engine import DnsEngine
from nanokube.dns.metrics import observe

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT = 10.0
UDP_RCVBUF = 4 << 20


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, engine: DnsEngine, slot: int = 0) -> None:
        self.engine = engine
        self.memo = engine.memo
        self.volatile_memo = engine.volatile_memo
        self.slot = slot
        self.hist = engine.metrics.histograms[slot]
        self.sample = engine.metrics.samples[slot]
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        key = data[2:]
        hit = self.memo.get(key)
        if hit is None:
            hit = self.volatile_memo.get(key)
        if hit is not None:
            body, cell = hit
            slot = self.slot
            n = cell[slot] = cell[slot] + 1
            if n & 63 != 2:  # SAMPLE_MASK, SAMPLE_AT as literals: this line runs for every cached answer
                self.transport.sendto(data[:2] + body, addr)  # type: ignore[union-attr]
                return
            start = time.perf_counter()  # a timed sample of the memo hits (dns/metrics.py)
            self.transport.sendto(data[:2] + body, addr)  # type: ignore[union-attr]
            observe(self.sample, time.perf_counter() - start)
            return
        start = time.perf_counter()
        try:
            out = self.engine.handle(data, tcp=False, slot=self.slot)
        except Exception:
            log.exception("dns: failed to answer a query")
            out = _servfail(data, self.engine, self.slot)
        if out is None:
            return
        if isinstance(out, bytes):
            self.transport.sendto(out, addr)  # type: ignore[union-attr]
            observe(self.hist, time.perf_counter() - start)
            return
        task = asyncio.get_running_loop().create_task(self._send_later(out, addr, start))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send_later(self, pending: Awaitable[bytes | None], addr: tuple[str, int], start: float) -> None:
        try:
            out = await pending
        except Exception:
            log.exception("dns: failed to answer a forwarded query")
            self.engine.metrics.panics += 1
            return
        if out is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)
            observe(self.hist, time.perf_counter() - start)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns: udp error: %s", exc)


def _servfail(data: bytes, engine: DnsEngine, slot: int) -> bytes | None:
    """The answer to a query whose handling raised (counted as a panic, as CoreDNS counts recovered ones)."""
    engine.metrics.panics += 1
    if len(data) < 12 or data[2] & 0x80:
        return None
    engine.metrics.count(slot, 0, wire.SERVFAIL, "")
    return wire.error_response(data, wire.SERVFAIL)


class DnsServer:
    """Listens on every (host, port) given, UDP and TCP, until `close`."""

    def __init__(self, engine: DnsEngine, listen: list[tuple[str, int]]) -> None:
        self.engine = engine
        self.listen = listen
        self.addresses: list[tuple[str, int]] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._udp_protocols: list[UdpProtocol] = []
        self._tcp: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()
        self.started = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for host, port in self.listen:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            metrics = self.engine.metrics
            udp_slot = metrics.slot(host, port, "udp")
            tcp_slot = metrics.slot(host, port, "tcp")
            for attempt in range(20):
                transport, proto = await loop.create_datagram_endpoint(
                    functools.partial(UdpProtocol, self.engine, udp_slot), local_addr=(host, port), family=family)
                bound = transport.get_extra_info("sockname")[1]
                try:  # port 0 means "any free port": TCP then takes the number UDP got
                    tcp = await asyncio.start_server(functools.partial(self._serve_tcp, slot=tcp_slot), host, bound,
                                                     family=family, reuse_address=True)
                except OSError:
                    transport.close()
                    if port != 0 or attempt == 19:
                        raise
                    continue
                break
            if port == 0:
                metrics.bound(udp_slot, bound)
                metrics.bound(tcp_slot, bound)
            self._udp.append(transport)
            self._udp_protocols.append(proto)
            self._tcp.append(tcp)
            self.addresses.append((host, bound))
        self.started.set()

    async def close(self) -> None:
        for transport in self._udp:
            transport.close()
        for proto in self._udp_protocols:
            for task in list(proto.tasks):
                task.cancel()
        for server in self._tcp:
            server.close()
        for task in list(self._connections):
            task.cancel()
        for server in self._tcp:
            await server.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, slot: int = 0) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                size = struct.unpack("!H", head)[0]
                data = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE_TIMEOUT)
                start = time.perf_counter()
                try:
                    out = self.engine.handle(data, tcp=True, slot=slot)
                    if out is not None and not isinstance(out, bytes):
                        out = await out
                except Exception:
                    log.exception("dns: failed to answer a tcp query")
                    out = _servfail(data, self.engine, slot)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                observe(self.engine.metrics.histograms[slot], time.perf_counter() - start)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError):  # the client reset the connection
                await writer.wait_closed()
