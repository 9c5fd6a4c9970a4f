"""The echo image drains on SIGTERM (issue 14): requests in flight and those still arriving are answered,
keep-alive connections get `Connection: close` with their next response, then it exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tests.images.test_images import IMAGES_DIR, read_response


def start_echo() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(IMAGES_DIR / "echo.py"), "--http-port", "0",
                             "--udp-port=0", "--bind", "127.0.0.1"], env=dict(os.environ),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    words = proc.stdout.readline().split()  # "... listening on 127.0.0.1 http <port> udp <port>"
    return proc, int(words[words.index("http") + 1])


def test_sigterm_answers_everything_then_exits() -> None:
    proc, port = start_echo()
    failures: list[str] = []
    counts = {"new": 0, "keepalive": 0}
    closes: list[float] = []
    stop = threading.Event()

    def new_connections() -> None:  # stops once the server stops listening: nothing routes here any more
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    c.sendall(b"GET /n HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    head, _ = read_response(c)
                    assert head.startswith(b"HTTP/1.1 200")
                    counts["new"] += 1
            except ConnectionRefusedError:
                return
            except (OSError, AssertionError) as err:
                failures.append(f"new: {err!r}")

    def keep_alive() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            while True:
                c.sendall(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    head, _ = read_response(c)
                except (OSError, AssertionError) as err:
                    failures.append(f"keep-alive: {err!r}")
                    return
                counts["keepalive"] += 1
                if b"Connection: close" in head:
                    closes.append(time.monotonic())
                    return

    threads = [threading.Thread(target=new_connections) for _ in range(3)]
    threads += [threading.Thread(target=keep_alive) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)  # the load goes on for a while after SIGTERM, as before a proxy update
    stop.set()
    code = proc.wait(15)
    for t in threads:
        t.join(10)
    assert failures == [], failures[:5]
    assert code == 0
    assert len(closes) == 3 and all(c - sent < 1.0 for c in closes)  # keep-alive clients told to go
    assert counts["new"] > 10 and counts["keepalive"] > 10, counts


def test_sigterm_with_an_idle_keep_alive_connection_exits_promptly() -> None:
    proc, port = start_echo()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(c)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - began < 3
        assert c.recv(100) == b""  # closed, not reset
