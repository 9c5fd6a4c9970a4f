"""UDP and TCP listeners. The UDP hit path is one dict lookup on the raw bytes and one sendto."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable

from nanokube.dns import wire
from nanokube.dns.engine import DnsEngine

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT = 10.0
UDP_RCVBUF = 4 << 20


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, engine: DnsEngine) -> None:
        self.engine = engine
        self.memo = engine.memo
        self.volatile_memo = engine.volatile_memo
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
            self.transport.sendto(data[:2] + hit, addr)  # type: ignore[union-attr]
            return
        try:
            out = self.engine.handle(data, tcp=False)
        except Exception:
            log.exception("dns: failed to answer a query")
            out = _servfail(data)
        if out is None:
            return
        if isinstance(out, bytes):
            self.transport.sendto(out, addr)  # type: ignore[union-attr]
            return
        task = asyncio.get_running_loop().create_task(self._send_later(out, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send_later(self, pending: Awaitable[bytes | None], addr: tuple[str, int]) -> None:
        try:
            out = await pending
        except Exception:
            log.exception("dns: failed to answer a forwarded query")
            return
        if out is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns: udp error: %s", exc)


def _servfail(data: bytes) -> bytes | None:
    if len(data) < 12 or data[2] & 0x80:
        return None
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
            for attempt in range(20):
                transport, proto = await loop.create_datagram_endpoint(
                    lambda: UdpProtocol(self.engine), local_addr=(host, port), family=family)
                bound = transport.get_extra_info("sockname")[1]
                try:  # port 0 means "any free port": TCP then takes the number UDP got
                    tcp = await asyncio.start_server(self._serve_tcp, host, bound, family=family,
                                                     reuse_address=True)
                except OSError:
                    transport.close()
                    if port != 0 or attempt == 19:
                        raise
                    continue
                break
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

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                size = struct.unpack("!H", head)[0]
                data = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE_TIMEOUT)
                try:
                    out = self.engine.handle(data, tcp=True)
                    if out is not None and not isinstance(out, bytes):
                        out = await out
                except Exception:
                    log.exception("dns: failed to answer a tcp query")
                    out = _servfail(data)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError):  # the client reset the connection
                await writer.wait_closed()
