"""nanokube/echo: the built-in echo server, the workhorse of the Service tests.

HTTP on 8080: every request is answered with JSON naming the pod, its IP and the client's address and
port (keep-alive supported). UDP on 8081: every datagram is answered with the same JSON.
Arguments: --http-port N, --udp-port N, --bind ADDR.

Environment: NANOKUBE_POD_NAME / NANOKUBE_POD_NAMESPACE / NANOKUBE_POD_IP (filled in from the catalogue
entry), NANOKUBE_BIND (the address to listen on; loopback mode gives the pod IP, default 0.0.0.0).

On SIGTERM it drains, as a well-behaved server behind a Service does: it answers every request it gets with
`Connection: close` (so keep-alive clients move to another endpoint after their current response) and keeps
accepting while connections still arrive (the proxy takes a moment to stop sending new ones), stops accepting
once none came for QUIET seconds (or after DRAIN_MAX), closes idle connections, finishes requests in flight,
then exits 0.

Every pod of it is a Python process, so it is kept to the interpreter's floor: started with ``python -I -S``
and importing only C modules (``_socket``, ``select``, ``_signal``) and ``os`` -- no socket/selectors/signal
(they pull in enum), json (re) or argparse (gettext, re). That is about 9 MB of RSS instead of 12.5 MB.
"""

import _signal
import _socket
import os
import select
import sys
import time

MAX_REQUEST = 65536
QUIET = 0.5  # draining: stop accepting once no connection came for this long
DRAIN_MAX = 10.0  # draining: exit after this long whatever is still open
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def json_string(value: str) -> str:
    """The same text as json.dumps(value) (ensure_ascii)."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return '"' + value + '"'
    out = []
    for ch in value:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def json_object(fields: dict) -> str:
    """json.dumps of a flat dict of str/int values, with json.dumps' default separators."""
    return "{" + ", ".join(json_string(k) + ": " + (str(v) if isinstance(v, int) else json_string(v))
                           for k, v in fields.items()) + "}"


class Echo:
    def __init__(self, bind: str, http_port: int, udp_port: int) -> None:
        env = os.environ
        self.hostname = _socket.gethostname()
        self.pod = env.get("NANOKUBE_POD_NAME") or env.get("POD_NAME") or self.hostname
        self.namespace = env.get("NANOKUBE_POD_NAMESPACE") or env.get("POD_NAMESPACE") or ""
        self.pod_ip = env.get("NANOKUBE_POD_IP") or env.get("POD_IP") or ""
        self.family = _socket.AF_INET6 if ":" in bind else _socket.AF_INET
        self.tcp = _socket.socket(self.family, _socket.SOCK_STREAM)
        self.tcp.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        self.tcp.bind((bind, http_port))
        self.tcp.listen(1024)
        self.tcp.setblocking(False)
        self.udp = _socket.socket(self.family, _socket.SOCK_DGRAM)
        self.udp.bind((bind, udp_port))
        self.udp.setblocking(False)
        self.poll = select.epoll()
        # fd -> (socket, handler, request buffer)
        self.conns: dict[int, tuple[_socket.socket, object, bytearray]] = {}
        for sock, handler in ((self.tcp, self._accept), (self.udp, self._datagram)):
            self.conns[sock.fileno()] = (sock, handler, bytearray())
            self.poll.register(sock.fileno(), select.EPOLLIN)
        self.draining = 0.0  # monotonic time SIGTERM came (0: serving)
        self.listening = True
        self.last_accept = 0.0
        # SIGTERM wakes the poll through this pipe (a Python signal handler alone would not interrupt it)
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        _signal.set_wakeup_fd(wake_w)
        self.poll.register(self.wake_r, select.EPOLLIN)

    def answer(self, local: tuple, peer: tuple, extra: dict | None = None) -> bytes:
        body = {"pod": self.pod, "namespace": self.namespace, "podIP": self.pod_ip or local[0],
                "hostname": self.hostname, "clientIP": peer[0], "clientPort": peer[1]}
        if extra:
            body.update(extra)
        return json_object(body).encode() + b"\n"

    def _accept(self, sock: _socket.socket, _buf: bytearray) -> None:
        try:
            fd, _ = sock._accept()
        except (BlockingIOError, InterruptedError):
            return
        conn = _socket.socket(self.family, _socket.SOCK_STREAM, 0, fd)
        conn.setblocking(False)
        conn.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self.conns[fd] = (conn, self._read, bytearray())
        self.poll.register(fd, select.EPOLLIN)
        self.last_accept = time.monotonic()

    def _close(self, conn: _socket.socket) -> None:
        fd = conn.fileno()
        if self.conns.pop(fd, None) is not None:
            self.poll.unregister(fd)
        conn.close()

    def _read(self, conn: _socket.socket, buf: bytearray) -> None:
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_REQUEST:
                    self._close(conn)
                return
            head = bytes(buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if len(buf) < end + 4 + length:
                return
            del buf[:end + 4 + length]
            method = parts[0] if parts else ""
            path = parts[1] if len(parts) > 1 else "/"
            version = parts[2] if len(parts) > 2 else "HTTP/1.0"
            conn_header = headers.get("connection", "").lower()
            keep = conn_header != "close" and (version == "HTTP/1.1" or conn_header == "keep-alive") \
                and not self.draining
            try:
                local, peer = conn.getsockname(), conn.getpeername()
            except OSError:
                self._close(conn)
                return
            if path.startswith("/healthz"):
                body, ctype = b"ok\n", "text/plain"
            elif path.startswith("/hostname"):
                body, ctype = self.hostname.encode() + b"\n", "text/plain"
            else:
                body, ctype = self.answer(local, peer, {"method": method, "path": path}), "application/json"
            response = (f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                        f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n").encode() + body
            try:
                conn.setblocking(True)
                conn.sendall(response)
                conn.setblocking(False)
            except OSError:
                self._close(conn)
                return
            if not keep:
                self._close(conn)
                return

    def _datagram(self, sock: _socket.socket, _buf: bytearray) -> None:
        for _ in range(64):
            try:
                _data, peer = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                sock.sendto(self.answer(sock.getsockname(), peer), peer)
            except OSError:
                pass

    def serve(self) -> None:
        """Until drained after SIGTERM."""
        while True:
            for fd, _ in self.poll.poll(0.05 if self.draining else -1):
                if fd == self.wake_r:
                    self._woken()
                    continue
                entry = self.conns.get(fd)
                if entry is not None:
                    entry[1](entry[0], entry[2])
            if self.draining and self._drained():
                return

    def _woken(self) -> None:
        try:
            signals = os.read(self.wake_r, 64)
        except BlockingIOError:
            return
        if _signal.SIGTERM in signals and not self.draining:
            self.draining = time.monotonic()

    def _drained(self) -> bool:
        now = time.monotonic()
        if now - self.draining > DRAIN_MAX:
            return True
        if self.listening:
            if now - max(self.last_accept, self.draining) < QUIET:
                return False
            while self.tcp.fileno() >= 0 and len(self.conns) < 1 << 16:  # what is queued still gets answers
                before = len(self.conns)
                self._accept(self.tcp, bytearray())
                if len(self.conns) == before:
                    break
            self.conns.pop(self.tcp.fileno(), None)
            self.poll.unregister(self.tcp.fileno())
            self.tcp.close()
            self.listening = False
        busy = False
        for conn, handler, buf in list(self.conns.values()):
            if handler == self._read:
                if buf:
                    busy = True  # a request half received: let it finish
                else:
                    self._close(conn)  # idle keep-alive: nothing in flight
        return not busy


USAGE = "usage: nanokube-echo [-h] [--http-port HTTP_PORT] [--udp-port UDP_PORT] [--bind BIND]"


def usage_error(message: str) -> None:
    print(f"{USAGE}\nnanokube-echo: error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv: list[str]) -> dict[str, str]:
    """--http-port/--udp-port/--bind, as 'NAME VALUE' or 'NAME=VALUE' (what argparse accepted)."""
    opts = {"http-port": "8080", "udp-port": "8081", "bind": os.environ.get("NANOKUBE_BIND") or "0.0.0.0"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            print(USAGE)
            sys.exit(0)
        name, eq, value = arg.partition("=")
        if not name.startswith("--") or name[2:] not in opts:
            usage_error(f"unrecognized arguments: {arg}")
        if not eq:
            i += 1
            if i == len(argv):
                usage_error(f"argument {name}: expected one argument")
            value = argv[i]
        if name != "--bind" and not value.isdigit():
            usage_error(f"argument {name}: invalid int value: {value!r}")
        opts[name[2:]] = value
        i += 1
    return opts


def _noted(_signum: int, _frame: object) -> None:
    """SIGTERM is read from the wakeup fd by the serve loop (draining); the handler only has to exist."""


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    _signal.signal(_signal.SIGTERM, _noted)
    echo = Echo(opts["bind"], int(opts["http-port"]), int(opts["udp-port"]))
    # The ports bound, so a caller may ask for port 0 and read which ones it got.
    print(f"echo: pod {echo.pod} listening on {opts['bind']} http {echo.tcp.getsockname()[1]} "
          f"udp {echo.udp.getsockname()[1]}", flush=True)
    try:
        echo.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
