"""Userspace proxy vs direct, side by side in one run, with wrk (loopback mode, any user).

Backend: a minimal HTTP responder (uvloop, asyncio Protocol, fixed 200 "ok") on 127.244.0.11-13:8080, in
its own process. Proxy: the nanokube userspace backend in its own process with a ClusterIP 127.96.0.10:80
over the three backends. wrk -t2 -c64 against one backend directly, then against the ClusterIP; keep-alive
and `Connection: close` (new connection per request). Usage:

    python bench/proxy_userspace.py [--duration 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time

BACKENDS = ["127.244.0.11", "127.244.0.12", "127.244.0.13"]
VIP = "127.96.0.10"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"
RESPONSE_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


def backend_main() -> None:
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
            await loop.create_server(Http, ip, 8080, reuse_address=True, backlog=4096)
        print("ready", flush=True)
        await asyncio.Event().wait()

    uvloop.run(serve())


def proxy_main() -> None:
    import uvloop

    from nanokube.proxy.proxier import Proxier
    from nanokube.proxy.state import ProxyState
    from nanokube.proxy.userspace import UserspaceBackend

    async def serve() -> None:
        p = Proxier(state=ProxyState(node_name="n", nodeport_ips=()), backend=UserspaceBackend())
        p.on_services_synced()
        p.on_endpointslices_synced()
        p.on_service_add({"metadata": {"name": "web", "namespace": "default"},
                          "spec": {"clusterIP": VIP, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        p.on_endpointslice_add({"metadata": {"name": "web-1", "namespace": "default",
                                             "labels": {"kubernetes.io/service-name": "web"}},
                                "addressType": "IPv4",
                                "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in BACKENDS],
                                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
        await p.sync()
        print("ready", flush=True)
        await asyncio.Event().wait()

    uvloop.run(serve())


def wrk(url: str, duration: int, close: bool) -> tuple[float, str, str]:
    argv = ["wrk", "-t2", "-c64", f"-d{duration}s", "--latency", url]
    if close:
        argv[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = re.search(r"50%\s+(\S+)", out)[1]  # type: ignore[index]
    p99 = re.search(r"99%\s+(\S+)", out)[1]  # type: ignore[index]
    return rps, p50, p99


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    procs = [subprocess.Popen([sys.executable, __file__, role], stdout=subprocess.PIPE, text=True)
             for role in ("backend", "proxy")]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        results: dict[str, list[tuple[float, str, str, float]]] = {}
        for _ in range(args.runs):
            for close in (False, True):
                for label, url in (("direct", f"http://{BACKENDS[0]}:8080/"), ("userspace", f"http://{VIP}/")):
                    key = f"{label:<9} {'close' if close else 'ka':<5}"
                    c0, t0 = cpu_seconds(procs[1].pid), time.monotonic()
                    rps, p50, p99 = wrk(url, args.duration, close)
                    cpu = (cpu_seconds(procs[1].pid) - c0) / (time.monotonic() - t0)
                    results.setdefault(key, []).append((rps, p50, p99, cpu))
                    time.sleep(1)
        print(f"wrk -t2 -c64 -d{args.duration}s, median of {args.runs} runs")
        for key, rows in results.items():
            med = statistics.median(r[0] for r in rows)
            row = min(rows, key=lambda r: abs(r[0] - med))
            runs = " / ".join(f"{r[0]:.0f}" for r in rows)
            kind = key.split()[1]
            direct = statistics.median(r[0] for r in results[f"{'direct':<9} {kind:<5}"])
            print(f"{key}  {med:9.0f} req/s ({runs})  p50 {row[1]:>8} p99 {row[2]:>8}  proxy cpu {row[3]:.2f}  "
                  f"{med / direct:5.2f} of direct")
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "backend":
        backend_main()
    elif len(sys.argv) > 1 and sys.argv[1] == "proxy":
        proxy_main()
    else:
        main()
