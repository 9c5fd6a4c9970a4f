"""A constant, bounded HTTP load on one address: new connections and keep-alive, every failure counted.

Run as a script (stdlib only, so it can run inside a test's network namespace):
    python loadgen.py HOST PORT [--new N] [--keepalive N] [--pause SECONDS] [--max-seconds S]
It sends until its stdin closes (or --max-seconds), then prints one JSON line:
    {"new": {"ok": .., "failed": ..}, "keepalive": {"ok": .., "failed": .., "reconnects": ..}, "errors": [...]}
A keep-alive client that gets `Connection: close` opens a new connection, as HTTP clients do; anything else
(refused, reset, timeout, a short or non-200 answer) is a failed request.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time

TIMEOUT = 5.0


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data = {"new": {"ok": 0, "failed": 0}, "keepalive": {"ok": 0, "failed": 0, "reconnects": 0}}
        self.errors: list[str] = []

    def add(self, kind: str, field: str, error: str = "") -> None:
        with self.lock:
            self.data[kind][field] += 1
            if error and len(self.errors) < 20:
                self.errors.append(f"{time.strftime('%H:%M:%S')} {kind}: {error}")


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} bytes")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"answer {head[:40]!r}")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return head


def new_connections(host: str, port: int, counts: Counts, stop: threading.Event, pause: float) -> None:
    request = f"GET /new HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    while not stop.is_set():
        try:
            with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
                sock.sendall(request)
                read_response(sock)
            counts.add("new", "ok")
        except (OSError, ValueError, IndexError) as err:
            counts.add("new", "failed", repr(err))
        stop.wait(pause)


def keep_alive(host: str, port: int, counts: Counts, stop: threading.Event, pause: float) -> None:
    request = f"GET /keepalive HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    sock: socket.socket | None = None
    while not stop.is_set():
        try:
            if sock is None:
                sock = socket.create_connection((host, port), timeout=TIMEOUT)
            sock.sendall(request)
            head = read_response(sock)
            counts.add("keepalive", "ok")
            if b"connection: close" in head.lower():
                sock.close()
                sock = None
                counts.add("keepalive", "reconnects")
        except (OSError, ValueError, IndexError) as err:
            counts.add("keepalive", "failed", repr(err))
            if sock is not None:
                sock.close()
            sock = None
        stop.wait(pause)
    if sock is not None:
        sock.close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--new", type=int, default=2)
    p.add_argument("--keepalive", type=int, default=2)
    p.add_argument("--pause", type=float, default=0.005)
    p.add_argument("--max-seconds", type=float, default=600)
    args = p.parse_args()
    counts, stop = Counts(), threading.Event()
    threads = [threading.Thread(target=new_connections, args=(args.host, args.port, counts, stop, args.pause))
               for _ in range(args.new)]
    threads += [threading.Thread(target=keep_alive, args=(args.host, args.port, counts, stop, args.pause))
                for _ in range(args.keepalive)]
    for t in threads:
        t.daemon = True
        t.start()
    print("loadgen started", flush=True)
    watcher = threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True)
    watcher.start()
    stop.wait(args.max_seconds)
    stop.set()
    for t in threads:
        t.join(TIMEOUT + 1)
    print(json.dumps({**counts.data, "errors": counts.errors}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
