"""TCP relaying on a private epoll set: the userspace proxy's TCP data path.

Why not asyncio Protocols or loop.add_reader: per connection they cost a Task, a create_connection future chain
and two transports (or a libuv poll handle per socket), and every socket event is a separate loop callback. Here
every relayed socket sits in one private epoll set whose fd is the only thing the event loop watches, so a whole
batch of socket events is one loop callback, and the per-event work is a dict lookup and a bound method call
on C-level `_socket` objects. EPOLLERR/EPOLLHUP reach the handlers directly (a libuv poll handle swallows them).

Semantics:
- back-pressure: what the destination does not take at once is kept and its source is not read (it leaves
  the epoll set) until the destination has drained;
- half-close: EOF from one side is passed on with shutdown(SHUT_WR) once the bytes before it are out; the pair
  closes when both directions have ended;
- an error or reset on either side resets the other (SO_LINGER 0), so clients see a failure, not a hang;
- the endpoint is dialled with a non-blocking connect; a refused dial tries up to two other endpoints, and if
  every one fails the client is reset at once.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import logging
import select
from collections.abc import Callable

from nanokube.proxy.forward import LINGER_RST, Route

log = logging.getLogger(__name__)

AF_INET, SOCK_STREAM = _socket.AF_INET, _socket.SOCK_STREAM
SOCK_NONBLOCK = getattr(_socket, "SOCK_NONBLOCK", 0)
IPPROTO_TCP, TCP_NODELAY = _socket.IPPROTO_TCP, _socket.TCP_NODELAY
SOL_SOCKET, SO_ERROR, SO_LINGER = _socket.SOL_SOCKET, _socket.SO_ERROR, _socket.SO_LINGER
SHUT_WR = _socket.SHUT_WR
MSG_DONTWAIT = _socket.MSG_DONTWAIT
EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR, select.EPOLLHUP
HANGUP = EPOLLHUP | select.EPOLLRDHUP
READABLE = EPOLLIN | HANGUP
EDGE_MASK = EPOLLIN | EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET

READ_SIZE = 1 << 16
ACCEPT_BATCH = 128
MAX_EVENTS = 512
DIAL_ATTEMPTS = 3
_AGAIN = (BlockingIOError, InterruptedError)
_BUF = bytearray(READ_SIZE)  # shared by every connection: the loop is single-threaded, bytes are sent on at once
_VIEW = memoryview(_BUF)

Handler = Callable[[int], None]


class Poller:
    """A private epoll set read by one event-loop reader: one loop callback per batch of socket events."""

    __slots__ = ("doomed", "ep", "handlers", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ep = select.epoll()
        self.handlers: dict[int, Handler] = {}
        self.doomed: list[_socket.socket] | None = None  # during a batch: sockets to close once it is done
        loop.add_reader(self.ep.fileno(), self._dispatch)

    def _dispatch(self) -> None:
        handlers = self.handlers
        try:
            events = self.ep.poll(0, MAX_EVENTS)
        except InterruptedError:
            return
        # Sockets closed by a handler stay open until the batch is done: otherwise an accept later in the batch
        # could get the same fd number, and that socket's handler would receive the closed one's queued event.
        doomed: list[_socket.socket] = []
        self.doomed = doomed
        try:
            for fd, ev in events:
                handler = handlers.get(fd)
                if handler is not None:
                    handler(ev)
        finally:
            self.doomed = None
            for sock in doomed:
                sock.close()

    def retire(self, sock: _socket.socket, reset: bool = False) -> None:
        """Close `sock` (with an RST when `reset`), at the end of the current batch if there is one."""
        if reset:
            try:
                sock.setsockopt(SOL_SOCKET, SO_LINGER, LINGER_RST)
            except OSError:
                pass
        if self.doomed is None:
            sock.close()
        else:
            self.doomed.append(sock)

    def close(self) -> None:
        self.loop.remove_reader(self.ep.fileno())
        self.ep.close()


class _End:
    """One socket of a relayed pair. `pending` holds bytes from the peer that this socket has not taken yet.

    Sockets are registered once, edge-triggered, for reading and writing, and never modified: a handler reads
    until the socket is drained (a short read means drained: later data raises a new edge) and otherwise
    remembers what it skipped (`hup`), so a read it postpones (peer backed up, not yet connected) is done later
    without waiting for an edge that already came."""

    __slots__ = ("eof", "fd", "hup", "pair", "passed", "peer", "pending", "sock")

    def __init__(self, pair: _Pair, sock: _socket.socket) -> None:
        self.pair = pair
        self.sock = sock
        self.fd = sock.fileno()
        self.peer: _End | None = self  # itself until the pair is connected, None once it is closed
        self.pending: bytes = b""
        self.hup = False  # the other host's FIN (or a hang-up) has been seen: read to the end, not to a short read
        self.eof = False  # this socket sent EOF (read returned 0)
        self.passed = False  # that EOF was passed on to the peer

    def on_event(self, ev: int) -> None:
        if ev & EPOLLERR:
            self.pair.close(reset=True)
            return
        if ev & HANGUP:
            self.hup = True
        if self.peer is self:
            return  # not connected yet: read once the backend is (_Pair.on_connected)
        if ev & EPOLLOUT and self.pending:
            self.flush()
        if ev & READABLE:
            self.read()

    def read(self) -> None:
        peer = self.peer
        if self.eof or peer is None or peer.pending:
            return  # at EOF, closed, or back-pressure: read again when the peer has drained (flush)
        while True:
            try:
                n = self.sock.recv_into(_BUF, READ_SIZE, MSG_DONTWAIT)
            except _AGAIN:
                return
            except OSError:
                self.pair.close(reset=True)
                return
            if not n:
                self.eof = True
                self.pass_eof()
                return
            try:
                sent = peer.sock.send(_VIEW[:n], MSG_DONTWAIT)
            except _AGAIN:
                sent = 0
            except OSError:
                self.pair.close(reset=True)
                return
            if sent < n:
                peer.pending = bytes(_VIEW[sent:n])
                return
            if n < READ_SIZE and not self.hup:
                return

    def flush(self) -> None:
        try:
            sent = self.sock.send(self.pending, MSG_DONTWAIT)
        except _AGAIN:
            return
        except OSError:
            self.pair.close(reset=True)
            return
        self.pending = self.pending[sent:]
        if self.pending:
            return
        peer = self.peer
        if peer is None:
            return
        if peer.eof:
            peer.pass_eof()
        else:
            peer.read()

    def pass_eof(self) -> None:
        peer = self.peer
        if peer is None or self.passed or peer.pending:
            return  # passed on once the bytes before it are out (flush)
        self.passed = True
        if peer.passed:
            self.pair.close()  # both directions ended: close() sends the FIN
            return
        try:
            peer.sock.shutdown(SHUT_WR)
        except OSError:
            pass


class _Pair:
    """A client connection and its backend connection. Closing breaks every reference cycle, so a closed pair is
    freed by reference counting, not by the cyclic GC."""

    __slots__ = ("addr", "backend", "client", "closed", "poller", "route", "tried")

    def __init__(self, poller: Poller, client: _socket.socket, route: Route) -> None:
        self.poller = poller
        self.route = route
        self.client: _End | None = _End(self, client)
        self.backend: _End | None = None
        self.addr: tuple[str, int] = ("", 0)
        self.tried: tuple[tuple[str, int], ...] = ()
        self.closed = False
        poller.handlers[self.client.fd] = self.client.on_event
        poller.ep.register(self.client.fd, EDGE_MASK)

    def dial(self, addr: tuple[str, int]) -> None:
        sock = _socket.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK)
        sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        code = sock.connect_ex(addr)
        if code in (0, errno.EINPROGRESS):
            self.addr = addr
            end = self.backend = _End(self, sock)
            self.poller.handlers[end.fd] = self.on_connected
            self.poller.ep.register(end.fd, EDGE_MASK)
            return
        sock.close()
        self.redial(addr, code)

    def redial(self, failed: tuple[str, int], code: int) -> None:
        """The dial to `failed` was refused: try an endpoint not tried yet, up to DIAL_ATTEMPTS in all."""
        log.debug("dial %s:%d failed: %s", failed[0], failed[1], errno.errorcode.get(code, code))
        self.tried += (failed,)
        if len(self.tried) < DIAL_ATTEMPTS:
            for ep in self.route.endpoints:
                if ep not in self.tried:
                    self.dial(ep)
                    return
        self.close(reset=True)  # every endpoint refused: the client sees a reset, not a hang

    def on_connected(self, ev: int) -> None:
        backend, client = self.backend, self.client
        if backend is None or client is None:
            return
        if ev & (EPOLLERR | EPOLLHUP):
            code = backend.sock.getsockopt(SOL_SOCKET, SO_ERROR)
            del self.poller.handlers[backend.fd]
            backend.sock.close()
            self.backend = None
            self.redial(self.addr, code)
            return
        if not ev & EPOLLOUT:
            return
        client.peer, backend.peer = backend, client
        self.poller.handlers[backend.fd] = backend.on_event
        if ev & HANGUP:
            backend.hup = True
        client.read()  # the client has usually spoken while we dialled; its edge was skipped
        if ev & READABLE:
            backend.read()  # a server that speaks first (MySQL's greeting)

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        handlers = self.poller.handlers
        for end in (self.client, self.backend):
            if end is None:
                continue
            end.peer = None
            handlers.pop(end.fd, None)
            self.poller.retire(end.sock, reset)
        self.client = self.backend = None


class TcpEpollListener:
    """One listening socket relaying to the endpoints of `route`; `close()` stops accepting only."""

    def __init__(self, poller: Poller, route: Route, host: str, port: int, *, backlog: int = 4096,
                 reuse_port: bool = False) -> None:
        self.poller = poller
        self.route = route
        sock = _socket.socket(AF_INET, SOCK_STREAM)
        try:
            sock.setsockopt(SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)  # accepted sockets inherit it (Linux): no call per client
            if reuse_port:
                sock.setsockopt(SOL_SOCKET, _socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.fd = sock.fileno()
        poller.handlers[self.fd] = self._on_accept
        poller.ep.register(self.fd, EPOLLIN)

    def _on_accept(self, ev: int) -> None:
        # socket._accept returns the bare (fd, address): no socket object for a connection relayed by fd
        accept, route, poller = self.sock._accept, self.route, self.poller  # type: ignore[attr-defined]
        for _ in range(ACCEPT_BATCH):
            try:
                fd, addr = accept()
            except _AGAIN:
                return
            except OSError as err:  # EMFILE and friends: leave it queued, try on the next wake-up
                log.warning("accept failed: %s", err)
                return
            # Left in blocking mode (no extra syscall): every recv/send on it passes MSG_DONTWAIT.
            client = _socket.socket(AF_INET, SOCK_STREAM, 0, fd)
            first = route.pick(addr[0]) if not route.sources or route.admits(addr[0]) else None
            if first is None:
                poller.retire(client, reset=True)  # no endpoint to send it to: refused at once
                continue
            _Pair(poller, client, route).dial(first)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.poller.handlers.pop(self.fd, None)
            self.sock.close()
