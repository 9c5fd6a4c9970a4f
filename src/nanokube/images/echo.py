"""nanokube/echo: the built-in echo server, the workhorse of the Service tests.

HTTP on 8080: every request is answered with JSON naming the pod, its IP and the client's address and
port (keep-alive supported). UDP on 8081: every datagram is answered with the same JSON.
Stdlib only and started with ``python -I -S`` so a pod is listening within a few milliseconds.

Environment: NANOKUBE_POD_NAME / NANOKUBE_POD_NAMESPACE / NANOKUBE_POD_IP (filled in from the catalogue
entry), NANOKUBE_BIND (the address to listen on; loopback mode gives the pod IP, default 0.0.0.0).
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import sys

MAX_REQUEST = 65536


class Echo:
    def __init__(self, bind: str, http_port: int, udp_port: int) -> None:
        self.pod = os.environ.get("NANOKUBE_POD_NAME") or os.environ.get("POD_NAME") or socket.gethostname()
        self.namespace = os.environ.get("NANOKUBE_POD_NAMESPACE") or os.environ.get("POD_NAMESPACE") or ""
        self.pod_ip = os.environ.get("NANOKUBE_POD_IP") or os.environ.get("POD_IP") or ""
        self.hostname = socket.gethostname()
        self.sel = selectors.DefaultSelector()
        self.buffers: dict[socket.socket, bytearray] = {}
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self.tcp = socket.socket(family, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((bind, http_port))
        self.tcp.listen(1024)
        self.tcp.setblocking(False)
        self.udp = socket.socket(family, socket.SOCK_DGRAM)
        self.udp.bind((bind, udp_port))
        self.udp.setblocking(False)
        self.sel.register(self.tcp, selectors.EVENT_READ, self._accept)
        self.sel.register(self.udp, selectors.EVENT_READ, self._datagram)

    def answer(self, local: tuple, peer: tuple, extra: dict | None = None) -> bytes:
        body = {"pod": self.pod, "namespace": self.namespace, "podIP": self.pod_ip or local[0],
                "hostname": self.hostname, "clientIP": peer[0], "clientPort": peer[1]}
        if extra:
            body.update(extra)
        return json.dumps(body).encode() + b"\n"

    def _accept(self, sock: socket.socket) -> None:
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffers[conn] = bytearray()
        self.sel.register(conn, selectors.EVENT_READ, self._read)

    def _close(self, conn: socket.socket) -> None:
        self.buffers.pop(conn, None)
        try:
            self.sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()

    def _read(self, conn: socket.socket) -> None:
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
        buf = self.buffers[conn]
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
            keep = conn_header != "close" and (version == "HTTP/1.1" or conn_header == "keep-alive")
            try:
                local, peer = conn.getsockname(), conn.getpeername()
            except OSError:
                self._close(conn)
                return
            if path.startswith("/healthz"):
                status, body, ctype = "200 OK", b"ok\n", "text/plain"
            elif path.startswith("/hostname"):
                status, body, ctype = "200 OK", self.hostname.encode() + b"\n", "text/plain"
            else:
                status, body, ctype = "200 OK", self.answer(local, peer, {"method": method, "path": path}), \
                    "application/json"
            response = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
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

    def _datagram(self, sock: socket.socket) -> None:
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
        while True:
            for key, _ in self.sel.select():
                key.data(key.fileobj)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nanokube-echo")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--udp-port", type=int, default=8081)
    parser.add_argument("--bind", default=os.environ.get("NANOKUBE_BIND") or "0.0.0.0")
    opts = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    echo = Echo(opts.bind, opts.http_port, opts.udp_port)
    print(f"echo: pod {echo.pod} listening on {opts.bind} http {opts.http_port} udp {opts.udp_port}", flush=True)
    try:
        echo.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
