"""TCP relaying on raw non-blocking sockets driven by loop.add_reader/add_writer (no transports, no tasks).

Why not asyncio Protocols: per connection they cost a Task, a create_connection future chain and two
transports; per read a Python call into data_received and back into transport.write. Here the listener
accepts a batch of connections per wake-up, dials with a non-blocking connect, and each readable event
is one callback doing recv + send (or, with `splice=True` on Linux, two os.splice calls through a pipe, so
the payload never enters Python).

Semantics, identical to the Protocol path in forward.py:
- back-pressure: when the destination cannot take everything, the rest is kept (in the pipe, or as a
  memoryview) and the source is not read until the destination has drained;
- half-close: EOF from one side is passed on with shutdown(SHUT_WR) once its pending bytes are out; the
  pair closes when both directions have ended;
- a reset or error on either side resets the other (SO_LINGER 0), so clients see a failure, not a hang;
- no endpoint, or every dial failing (up to 3 endpoints), resets the client at once.

Experimental, not the default: under uvloop, add_reader is a libuv uv_poll, which on POLLERR (a peer's RST)
stops the watcher and reports the error to the loop instead of calling the reader, so a reset backend would
leave its client hanging. It is correct on the default asyncio loop. Measured (bench/RESULTS-proxy.md) it is no
faster than the Protocol path for keep-alive traffic; a dispatcher reading a private epoll fd (one loop
callback per batch of events, with EPOLLERR visible) is the way to keep it and fix both.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket

from nanokube.proxy.forward import LINGER_RST, Route

log = logging.getLogger(__name__)

READ_SIZE = 1 << 16
ACCEPT_BATCH = 128
DIAL_ATTEMPTS = 3
SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
HAVE_SPLICE = hasattr(os, "splice")
_AGAIN = (BlockingIOError, InterruptedError)
_BUF = bytearray(READ_SIZE)
_VIEW = memoryview(_BUF)


def _reset_close(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    except OSError:
        pass
    sock.close()


class _Direction:
    """Bytes flowing src -> dst. `pending` is what dst has not taken yet (pipe bytes or a memoryview)."""

    __slots__ = ("conn", "done", "dst", "dst_fd", "eof", "loop", "pending", "pipe_r", "pipe_w", "src", "src_fd")

    def __init__(self, conn: _Connection, src: socket.socket, dst: socket.socket, splice: bool) -> None:
        self.conn = conn
        self.loop = conn.loop
        self.src, self.dst = src, dst
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.eof = False  # src has sent EOF
        self.done = False  # EOF passed on to dst
        self.pending: memoryview | int = 0
        self.pipe_r = self.pipe_w = -1
        if splice:
            self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def start(self) -> None:
        self.loop.add_reader(self.src_fd, self.on_readable_splice if self.pipe_r >= 0 else self.on_readable)

    # -- recv/send path -------------------------------------------------------------------------------
    def on_readable(self) -> None:
        # One shared buffer for every connection (the loop is single-threaded and the bytes are sent on
        # before returning); only what the destination does not take at once is copied out.
        try:
            n = self.src.recv_into(_BUF)
        except _AGAIN:
            return
        except OSError as err:
            self.conn.fail(err)
            return
        if not n:
            self._src_eof()
            return
        try:
            sent = self.dst.send(_VIEW[:n])
        except _AGAIN:
            sent = 0
        except OSError as err:
            self.conn.fail(err)
            return
        if sent < n:
            self.pending = memoryview(_BUF[sent:n])
            self._wait_for_dst()

    def on_writable(self) -> None:
        pending = self.pending
        if isinstance(pending, memoryview):
            try:
                sent = self.dst.send(pending)
            except _AGAIN:
                return
            except OSError as err:
                self.conn.fail(err)
                return
            self.pending = pending[sent:] if sent < len(pending) else 0
        else:
            try:
                while self.pending:
                    self.pending -= os.splice(self.pipe_r, self.dst_fd, self.pending, flags=SPLICE_FLAGS)
            except _AGAIN:
                return
            except OSError as err:
                self.conn.fail(err)
                return
        if not self.pending:
            self.loop.remove_writer(self.dst_fd)
            if self.eof:
                self._pass_eof()
            elif not self.conn.closed:
                self.start()

    # -- splice path ----------------------------------------------------------------------------------
    def on_readable_splice(self) -> None:
        try:
            n = os.splice(self.src_fd, self.pipe_w, READ_SIZE, flags=SPLICE_FLAGS)
        except _AGAIN:
            return
        except OSError as err:
            self.conn.fail(err)
            return
        if n == 0:
            self._src_eof()
            return
        try:
            while n:
                n -= os.splice(self.pipe_r, self.dst_fd, n, flags=SPLICE_FLAGS)
        except _AGAIN:
            pass
        except OSError as err:
            self.conn.fail(err)
            return
        if n:
            self.pending = n
            self._wait_for_dst()

    # -- shared ---------------------------------------------------------------------------------------
    def _wait_for_dst(self) -> None:
        self.loop.remove_reader(self.src_fd)
        self.loop.add_writer(self.dst_fd, self.on_writable)

    def _src_eof(self) -> None:
        self.eof = True
        self.loop.remove_reader(self.src_fd)
        if not self.pending:
            self._pass_eof()

    def _pass_eof(self) -> None:
        self.done = True
        try:
            self.dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.conn.direction_done()

    def stop(self) -> None:
        self.loop.remove_reader(self.src_fd)
        self.loop.remove_writer(self.dst_fd)
        if self.pipe_r >= 0:
            os.close(self.pipe_r)
            os.close(self.pipe_w)
            self.pipe_r = self.pipe_w = -1


class _Connection:
    __slots__ = ("backend", "candidates", "client", "closed", "directions", "loop", "splice")

    def __init__(self, loop: asyncio.AbstractEventLoop, client: socket.socket, candidates: list,
                 splice: bool) -> None:
        self.loop = loop
        self.client = client
        self.candidates = candidates
        self.splice = splice
        self.backend: socket.socket | None = None
        self.directions: tuple[_Direction, _Direction] | None = None
        self.closed = False

    def dial(self) -> None:
        while self.candidates:
            ip, port = self.candidates.pop(0)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex((ip, port))
            if code == 0:
                self.backend = sock
                self._relay(sock)
                return
            if code == errno.EINPROGRESS:
                self.backend = sock
                self.loop.add_writer(sock.fileno(), self.on_connected)
                return
            log.debug("dial %s:%d failed: %s", ip, port, os.strerror(code))
            sock.close()
        self.closed = True
        _reset_close(self.client)  # every endpoint refused: the client sees a reset, not a hang

    def on_connected(self) -> None:
        sock = self.backend
        assert sock is not None
        self.loop.remove_writer(sock.fileno())
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            log.debug("dial %s failed: %s", sock, os.strerror(code))
            sock.close()
            self.backend = None
            self.dial()
            return
        self._relay(sock)

    def _relay(self, sock: socket.socket) -> None:
        up = _Direction(self, self.client, sock, self.splice)
        down = _Direction(self, sock, self.client, self.splice)
        self.directions = (up, down)
        up.start()
        down.start()
        # The client usually spoke while we dialled: forward it now rather than after another loop turn.
        if up.pipe_r >= 0:
            up.on_readable_splice()
        else:
            up.on_readable()

    def direction_done(self) -> None:
        if self.directions and all(d.done for d in self.directions):
            self.close()

    def fail(self, err: OSError) -> None:
        log.debug("relay error: %s", err)
        self.close(reset=True)

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if self.directions:
            for d in self.directions:
                d.stop()
        for sock in (self.client, self.backend):
            if sock is not None:
                if reset:
                    _reset_close(sock)
                else:
                    sock.close()


class TcpRelayServer:
    """One listening socket relaying to the endpoints of `route`; `close()` stops accepting only."""

    def __init__(self, route: Route, host: str, port: int, *, backlog: int = 4096, splice: bool = False,
                 reuse_port: bool = False) -> None:
        self.route = route
        self.splice = splice and HAVE_SPLICE
        self.loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.loop.add_reader(sock.fileno(), self._on_accept)

    def _on_accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                client, addr = self.sock.accept()
            except _AGAIN:
                return
            except OSError as err:  # EMFILE and friends: leave it queued, try on the next wake-up
                log.warning("accept failed: %s", err)
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            first = self.route.pick(addr[0])
            if first is None:
                _reset_close(client)
                continue
            others = [ep for ep in self.route.endpoints if ep != first]
            _Connection(self.loop, client, [first, *others[:DIAL_ATTEMPTS - 1]], self.splice).dial()

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
