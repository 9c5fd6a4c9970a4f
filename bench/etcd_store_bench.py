"""The API on its three stores, side by side in one run: SQLite (default), etcd with 1 member, etcd with 3.

    PYTHONPATH=src python3 bench/etcd_store_bench.py [--services 10000] [--writers 16] [--watchers 100]

For each store: a fresh control-plane-only `nanokube server` (`--components= --no-agent`, loopback), on a fresh
etcd (Debian's etcd-server, data on /dev/shm) when it is an etcd case. Measured through the HTTP API:
- creates/s of ClusterIP Services by `--writers` concurrent clients, with p50/p99 latency;
- one unpaginated list of all of them (median of 3);
- watch fan-out: `--watchers` watches on services, then 200 creates one at a time; the delay from sending
  each create to its event reaching each watcher (p50/p99 over all deliveries; includes the write itself);
- the server's RSS at the end (VmRSS, and what `import nanokube.store.etcd` adds to a bare interpreter).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench_tools import require
from nanokube.testing.ports import free_port

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.etcd_cluster import running_etcd  # noqa: E402

SERVICES = "/api/v1/namespaces/default/services"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_server(data: Path, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "nanokube", "server", "--data-dir", str(data), "--api-listen",
                             f"127.0.0.1:{port}", "--network", "loopback", "--components=", "--no-agent",
                             "--service-cidr", "127.199.0.0/16", *extra],
                            stdout=subprocess.PIPE, stderr=open(data.parent / "server.log", "ab"))
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(b"nanokube ready"):
            return proc
    raise RuntimeError(f"server did not start: {(data.parent / 'server.log').read_text()[-2000:]}")


def svc(name: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"b": "1"}},
                         "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": name}}})


async def measure(base: str, token: str, ca: Path, args: argparse.Namespace) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(ca))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(base, headers=headers, connector=aiohttp.TCPConnector(ssl=ctx, limit=0),
                                     timeout=aiohttp.ClientTimeout(total=None)) as http:
        latencies: list[float] = []
        queue = list(range(args.services))

        async def writer() -> None:
            while queue:
                i = queue.pop()
                t0 = time.perf_counter()
                async with http.post(SERVICES, data=svc(f"s-{i:06d}")) as resp:
                    await resp.read()
                    assert resp.status == 201, resp.status
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(args.writers)))
        took = time.perf_counter() - t0
        latencies.sort()
        out["creates_per_s"] = args.services / took
        out["create_p50_ms"] = latencies[len(latencies) // 2] * 1000
        out["create_p99_ms"] = latencies[int(len(latencies) * 0.99)] * 1000

        lists = []
        for _ in range(3):
            t0 = time.perf_counter()
            async with http.get(SERVICES) as resp:
                body = await resp.read()
            lists.append(time.perf_counter() - t0)
        out["list_items"] = len(orjson.loads(body)["items"])
        out["list_ms"] = statistics.median(lists) * 1000
        rv = orjson.loads(body)["metadata"]["resourceVersion"]

        acked: dict[str, float] = {}
        delays: list[float] = []
        ready = asyncio.Event()
        opened = [0]

        async def watcher() -> None:
            async with http.get(SERVICES, params={"watch": "1", "resourceVersion": rv}) as resp:
                opened[0] += 1
                if opened[0] == args.watchers:
                    ready.set()
                seen = 0
                async for line in resp.content:
                    now = time.perf_counter()
                    name = orjson.loads(line)["object"]["metadata"]["name"]
                    if name.startswith("w-"):
                        delays.append(now - acked.get(name, now))
                        seen += 1
                        if seen == 200:
                            return

        watchers = [asyncio.create_task(watcher()) for _ in range(args.watchers)]
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(0.5)
        for i in range(200):
            acked[f"w-{i:04d}"] = time.perf_counter()
            async with http.post(SERVICES, data=svc(f"w-{i:04d}")) as resp:
                await resp.read()
            await asyncio.sleep(0.005)
        await asyncio.wait_for(asyncio.gather(*watchers), 120)
        delays.sort()
        out["fanout_p50_ms"] = delays[len(delays) // 2] * 1000
        out["fanout_p99_ms"] = delays[int(len(delays) * 0.99)] * 1000
    return out


def run_case(name: str, members: int, args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="nanokube-etcd-bench-"))
    data = root / "data"

    def go(extra: list[str]) -> dict[str, Any]:
        port = free_port()
        proc = start_server(data, port, extra)
        try:
            token = (data / "token").read_text().strip()
            result = asyncio.run(measure(f"https://127.0.0.1:{port}", token, data / "pki" / "ca.crt", args))
            result["server_rss_mib"] = rss_kib(proc.pid) / 1024
            return result
        finally:
            proc.terminate()
            proc.wait(15)

    try:
        if members == 0:
            result = go([])
        else:
            with running_etcd(members) as etcd:
                result = go(["--datastore-endpoint", etcd.endpoints])
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    result["case"] = name
    return result


def import_cost() -> tuple[float, float]:
    """RSS (MiB) of `import nanokube.server` alone, and with the etcd store's modules too."""
    probe = ("import sys, resource; import nanokube.server; a = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
             " import nanokube.store.etcd; b = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; print(a, b)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ}).stdout.split()
    return int(out[0]) / 1024, int(out[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--watchers", type=int, default=100)
    args = parser.parse_args()
    require("etcd")
    rows = [run_case("SQLite", 0, args), run_case("etcd, 1 member", 1, args), run_case("etcd, 3 members", 3, args)]
    print(f"| store | creates/s | create p50 / p99 ms | list {args.services} ms | watch fan-out p50 / p99 ms "
          f"({args.watchers} watchers) | server RSS MiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['creates_per_s']:.0f} | {r['create_p50_ms']:.1f} / {r['create_p99_ms']:.1f} | "
              f"{r['list_ms']:.0f} ({r['list_items']} items) | {r['fanout_p50_ms']:.1f} / {r['fanout_p99_ms']:.1f} | "
              f"{r['server_rss_mib']:.0f} |")
    base, with_etcd = import_cost()
    print(f"\nimport nanokube.server: {base:.1f} MiB max RSS; + nanokube.store.etcd: {with_etcd:.1f} MiB")


if __name__ == "__main__":
    main()
