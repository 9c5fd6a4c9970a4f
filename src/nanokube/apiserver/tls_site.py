"""The HTTPS listener, which tells a client speaking plain HTTP what it did wrong.

Go's net/http answers a TLS port's first record that looks like an HTTP request ("GET /", "POST ", ...) with
`HTTP/1.0 400 Bad Request` and "Client sent an HTTP request to an HTTPS server.", so kube-apiserver does; an
asyncio TLS server would just drop the connection. This site accepts connections itself, peeks at the first
bytes without consuming them, and hands the socket to aiohttp (with TLS) unless they are plain HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

HTTP_TO_HTTPS_REPLY = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")  # Go's tlsRecordHeaderLooksLikeHTTP
_TLS_HANDSHAKE = 0x16
_FIRST_BYTES_WAIT = 10.0
_HANDSHAKE_TIMEOUT = 30.0


def looks_like_http(head: bytes) -> bool:
    return head[:5] in _HTTP_STARTS


class _Listeners:
    """What BaseSite.stop() closes: the listening sockets, their accept loops and connections not yet handed
    over."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for sock in self.sockets:
            sock.close()


class SniffingTLSSite(web.BaseSite):
    __slots__ = ("_hosts", "_listeners", "_port")

    def __init__(self, runner: web.BaseRunner, host: str | list[str], port: int, *, ssl_context: ssl.SSLContext,
                 backlog: int = 1024) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._hosts = [host] if isinstance(host, str) else list(host)
        self._port = port
        self._listeners = _Listeners()

    @property
    def name(self) -> str:
        return f"https://{self._hosts[0]}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        try:
            for host in self._hosts:
                for family, stype, proto, _name, addr in socket.getaddrinfo(
                        host or None, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
                    sock = socket.socket(family, stype, proto)
                    self._listeners.sockets.append(sock)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.bind(addr)
                    sock.listen(self._backlog)
                    sock.setblocking(False)
        except OSError:
            self._listeners.close()
            raise
        for sock in self._listeners.sockets:
            self._spawn(loop, self._accept_loop(loop, sock))
        self._server = self._listeners  # type: ignore[assignment]  # BaseSite.stop() only calls close()

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro: Any) -> None:
        task = loop.create_task(coro)
        self._listeners.tasks.add(task)
        task.add_done_callback(self._listeners.tasks.discard)

    async def _accept_loop(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        while True:
            try:
                conn, _addr = await loop.sock_accept(sock)
            except OSError as exc:  # EMFILE and friends: don't spin
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            self._spawn(loop, self._serve(loop, conn))

    async def _serve(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        handed_over = False
        try:
            conn.setblocking(False)
            head = await _peek(loop, conn)
            if looks_like_http(head):
                with contextlib.suppress(OSError):
                    conn.recv(65536)  # what already arrived: closing with unread data would reset the reply
                    conn.send(HTTP_TO_HTTPS_REPLY)
                    conn.shutdown(socket.SHUT_WR)
                return
            if not head:
                return
            server = self._runner.server
            assert server is not None
            handed_over = True
            await loop.connect_accepted_socket(server, conn, ssl=self._ssl_context,
                                               ssl_handshake_timeout=_HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            log.debug("connection dropped before TLS: %s", exc)
        finally:
            if not handed_over:
                conn.close()


async def _peek(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
    """The first (up to 5) bytes the client sent, left unread; b"" when it closes or says nothing in time."""
    deadline = time.monotonic() + _FIRST_BYTES_WAIT
    head = b""
    while time.monotonic() < deadline:
        await _readable(loop, conn, deadline - time.monotonic())
        try:
            head = conn.recv(5, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        if not head or head[0] == _TLS_HANDSHAKE or len(head) >= 5:
            return head
        await asyncio.sleep(0.01)  # a client writing byte by byte: let more arrive
    return head


async def _readable(loop: asyncio.AbstractEventLoop, conn: socket.socket, timeout: float) -> None:
    fut: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()
    loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(fut, max(timeout, 0.0))
    finally:
        loop.remove_reader(fd)
