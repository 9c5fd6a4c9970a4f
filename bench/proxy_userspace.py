"""Userspace proxy vs direct, side by side in one run, with wrk (loopback mode, any user).

Backends ("pods"): nginx (one worker each, `return 200 "ok\\n"`, as bench/proxy_datapath.py uses) on
127.250.0.11-13:8080 when nginx is installed, else a minimal uvloop HTTP responder (`--target python`).
Proxies: the nanokube userspace backend in its own process(es), one per TCP data path under test, each
with a ClusterIP on 127.251.0.<n>:80 over the three backends. Optionally HAProxy (tcp mode, 1 thread) as the
reference users compare with. wrk -t2 -c64 against one backend directly, then against each proxy;
keep-alive and `Connection: close` (a new connection per request). Usage:

    python bench/proxy_userspace.py [--duration 10] [--runs 3] [--paths pool*2,pool:protocol*2,epoll,protocol]
                                    [--target nginx|python] [--haproxy] [--no-close]

A path with "-nocount" (e.g. "pool-nocount*2") runs with the per-endpoint connection counters off
(NANOKUBE_PROXY_COUNTERS=0), to put their cost next to the same path counting.
A path is a TCP data path of the userspace backend ("epoll", the default on Linux, or "protocol") run in one
process. A path "X*N" runs N proxy processes sharing the listening port with SO_REUSEPORT (hand-started, for comparison);
"pool*N" is what the server runs: one proxy (Proxier) process with a WorkerPoolBackend of N worker processes
(worker_pool.py; "pool:protocol*N" on the Protocol path); its CPU column counts the workers and the parent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_tools import require

BACKENDS = ["127.250.0.11", "127.250.0.12", "127.250.0.13"]
PORT = 8080
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"
RESPONSE_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
NGINX_CONF = """worker_processes 1;
daemon off;
error_log {dir}/error-{n}.log;
pid {dir}/nginx-{n}.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body-{n};
    proxy_temp_path {dir}/proxy-{n};
    fastcgi_temp_path {dir}/fastcgi-{n};
    keepalive_requests 1000000;
    server {{ listen {ip}:{port} reuseport backlog=4096; return 200 "ok\\n"; }}
}}
"""
HAPROXY_CONF = """global
    nbthread 1
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend f
    bind {ip}:{port}
    default_backend b
backend b
    balance roundrobin
{servers}
"""


def python_backend_main() -> None:
    import uvloop

    class Http(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def data_received(self, data: bytes) -> None:
            n = data.count(b"\r\n\r\n")
            if b"onnection: close" in data:
                self.t.write(RESPONSE_CLOSE)  # type: ignore[attr-defined]
                self.t.close()
            elif n:
                self.t.write(RESPONSE * n)  # type: ignore[attr-defined]

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for ip in BACKENDS:
            await loop.create_server(Http, ip, PORT, reuse_address=True, backlog=4096)
        print("ready", flush=True)
        await asyncio.Event().wait()

    uvloop.run(serve())


def proxy_main(vip: str, tcp: str, reuse_port: bool, workers: int = 1) -> None:
    import uvloop

    from nanokube.proxy.proxier import Backend, Proxier
    from nanokube.proxy.state import ProxyState
    from nanokube.proxy.userspace import DEFAULT_TCP, UserspaceBackend
    from nanokube.proxy.worker_pool import WorkerPoolBackend

    async def serve() -> None:
        backend: Backend = (WorkerPoolBackend(workers=workers, tcp=tcp.partition(":")[2] or DEFAULT_TCP)
                            if tcp.startswith("pool")
                            else UserspaceBackend(tcp=tcp, reuse_port=reuse_port))
        p = Proxier(state=ProxyState(node_name="n", nodeport_ips=()), backend=backend)
        p.on_services_synced()
        p.on_endpointslices_synced()
        p.on_service_add({"metadata": {"name": "web", "namespace": "default"},
                          "spec": {"clusterIP": vip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        p.on_endpointslice_add({"metadata": {"name": "web-1", "namespace": "default",
                                             "labels": {"kubernetes.io/service-name": "web"}},
                                "addressType": "IPv4",
                                "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in BACKENDS],
                                "ports": [{"name": "http", "port": PORT, "protocol": "TCP"}]})
        await p.sync()
        print("ready", *getattr(backend, "pids", ()), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await backend.stop()

    uvloop.run(serve())


def wrk(url: str, duration: int, close: bool) -> tuple[float, str, str]:
    argv = ["wrk", "-t2", "-c64", f"-d{duration}s", "--latency", url]
    if close:
        argv[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.M)[1]  # type: ignore[index]
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M)[1]  # type: ignore[index]
    return rps, p50, p99


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def wait_ready(proc: subprocess.Popen[str]) -> list[int]:
    """Waits for the "ready [worker pids...]" line; returns the worker pids."""
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        raise RuntimeError(f"{proc.args} did not start: {line!r}")
    return [int(pid) for pid in line[1:]]


def wait_listening(ip: str, port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {ip}:{port}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--paths", default="pool*2,pool:protocol*2,epoll")
    parser.add_argument("--target", default="nginx" if shutil.which("nginx") else "python")
    parser.add_argument("--haproxy", action="store_true")
    parser.add_argument("--no-close", action="store_true", help="keep-alive only")
    args = parser.parse_args()
    require("wrk", *(["nginx"] if args.target == "nginx" else []), *(["haproxy"] if args.haproxy else []))
    tmp = Path(tempfile.mkdtemp(prefix="nk-bench-proxy-"))
    procs: list[subprocess.Popen[str]] = []
    proxies: dict[str, tuple[str, list[int]]] = {}  # label -> (url, pids)
    try:
        if args.target == "nginx":
            for n, ip in enumerate(BACKENDS):
                conf = tmp / f"nginx-{n}.conf"
                conf.write_text(NGINX_CONF.format(dir=tmp, n=n, ip=ip, port=PORT))
                procs.append(subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], text=True,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        else:
            procs.append(subprocess.Popen([sys.executable, __file__, "backend"], stdout=subprocess.PIPE, text=True))
            wait_ready(procs[-1])
        for ip in BACKENDS:
            wait_listening(ip, PORT)
        for i, path in enumerate(p for p in args.paths.split(",") if p):
            tcp, _, workers = path.partition("*")
            # "-nocount": the same path with the per-endpoint connection counters off (their cost, side by side)
            env = {**os.environ, "NANOKUBE_PROXY_COUNTERS": "0" if "-nocount" in tcp else "1"}
            tcp = tcp.replace("-nocount", "")
            vip = f"127.251.0.{10 + i}"
            pids = []
            if tcp.startswith("pool"):
                procs.append(subprocess.Popen([sys.executable, __file__, "proxy", vip, tcp, "0", workers or "2"],
                                              stdout=subprocess.PIPE, text=True, env=env))
                pids += [procs[-1].pid, *wait_ready(procs[-1])]
            for _ in range(int(workers or 1) if not tcp.startswith("pool") else 0):
                procs.append(subprocess.Popen([sys.executable, __file__, "proxy", vip, tcp, "1" if workers else "0"],
                                              stdout=subprocess.PIPE, text=True, env=env))
                wait_ready(procs[-1])
                pids.append(procs[-1].pid)
            proxies[path] = (f"http://{vip}/", pids)
        if args.haproxy:
            vip = "127.251.0.99"
            servers = "\n".join(f"    server s{n} {ip}:{PORT}" for n, ip in enumerate(BACKENDS))
            conf = tmp / "haproxy.cfg"
            conf.write_text(HAPROXY_CONF.format(ip=vip, port=80, servers=servers))
            procs.append(subprocess.Popen(["haproxy", "-f", str(conf), "-db"], text=True,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_listening(vip, 80)
            proxies["haproxy-1t"] = (f"http://{vip}/", [procs[-1].pid])
        targets = [("direct", f"http://{BACKENDS[0]}:{PORT}/", [])] + [(k, u, p) for k, (u, p) in proxies.items()]
        results: dict[tuple[str, str], list[tuple[float, str, str, float]]] = {}
        kinds = ("ka",) if args.no_close else ("ka", "close")
        for _ in range(args.runs):
            for kind in kinds:
                for label, url, pids in targets:
                    c0, t0 = cpu_seconds(pids), time.monotonic()
                    rps, p50, p99 = wrk(url, args.duration, kind == "close")
                    cpu = (cpu_seconds(pids) - c0) / (time.monotonic() - t0)
                    results.setdefault((label, kind), []).append((rps, p50, p99, cpu))
                    time.sleep(1)
        print(f"target {args.target}; wrk -t2 -c64 -d{args.duration}s; median of {args.runs} runs; "
              f"{os.cpu_count()} CPUs")
        print("| path | kind | req/s (runs) | p50 | p99 | proxy CPU (cores) | vs direct |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for (label, kind), rows in results.items():
            med = statistics.median(r[0] for r in rows)
            row = min(rows, key=lambda r: abs(r[0] - med))
            runs = " / ".join(f"{r[0]:.0f}" for r in rows)
            direct = statistics.median(r[0] for r in results[("direct", kind)])
            print(f"| {label} | {kind} | {med:,.0f} ({runs}) | {row[1]} | {row[2]} | "
                  f"{row[3]:.2f} | {med / direct:.2f} |")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "backend":
        python_backend_main()
    elif len(sys.argv) > 1 and sys.argv[1] == "proxy":
        proxy_main(sys.argv[2], sys.argv[3], sys.argv[4] == "1", int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    else:
        main()
