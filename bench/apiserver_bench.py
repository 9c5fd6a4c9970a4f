"""API server benchmark, through the real `nanokube server` over HTTPS (API only: --components=).

    python bench/apiserver_bench.py [--services 1000] [--list 10000] [--watchers 50] [--start-runs 7]

Measures, each against a fresh server and data dir:
  start     process spawn -> first 200 on /readyz (fresh data dir, and restart on an existing one); also the
            server's CPU time until then. Bytecode caches are warmed first (PYTHONPYCACHEPREFIX in a temp dir),
            as an installed package has them; `cold` is one run with no bytecode cache at all.
  create    N Services (ClusterIP, every 4th NodePort) via POST, at concurrency 1 and 16: creates/s, p50/p99.
  list      a list of M Services as JSON and as a Table (Accept: as=Table), median of 5.
  watch     W watchers on services; 200 creates one after another; per event: time from the create's 201
            to each watcher receiving the ADDED event (negative: the event came first), p50/p99.
  e2e       with the controllers in the same process (--components=controllers --no-agent): N Services
            created at concurrency 16 until the EndpointSlice controller has written each one's slice
            (Service + slice writes per second, as one `nanokube server` does them end to end).
The client runs in this process (aiohttp, one event loop), so on a 2-core machine it competes with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from nanokube.testing.ports import free_port

SERVICES = "/api/v1/namespaces/default/services"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.data_dir / "pki" / "ca.crt"))

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def spawn(data_dir: Path, env: dict[str, str], port: int | None = None, components: str = ""
          ) -> tuple[Proc, float, float]:
    """Start a server; returns it, seconds from spawn to the first 200 on /readyz, and its CPU seconds then."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "nanokube", "server", "--data-dir", str(data_dir), "--api-listen",
           f"127.0.0.1:{port}", "--network", "loopback", f"--components={components}", "--no-agent"]
    unverified = ssl._create_unverified_context()  # the CA is written by the server itself
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    import http.client

    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=unverified, timeout=2)
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                break
        except OSError:
            pass
        time.sleep(0.001)
    elapsed = time.perf_counter() - began
    cpu = _cpu_seconds(proc.pid)
    return Proc(proc, data_dir, port), elapsed, cpu


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_env(cache: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if cache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def bench_start(runs: int, tmp: Path) -> dict[str, Any]:
    cache = tmp / "pycache"
    warm = server_env(cache)
    cold_env = server_env(None)
    first, _, _ = spawn(tmp / "warmup", warm)  # fills the bytecode cache
    first.stop()
    out: dict[str, Any] = {}
    p, cold, _ = spawn(tmp / "cold", cold_env)
    p.stop()
    out["cold (no bytecode cache), fresh data dir"] = [cold]
    fresh, fresh_cpu, restart, restart_cpu = [], [], [], []
    for i in range(runs):
        p, t, cpu = spawn(tmp / f"start-{i}", warm)
        p.stop()
        fresh.append(t)
        fresh_cpu.append(cpu)
        p, t, cpu = spawn(tmp / f"start-{i}", warm)
        p.stop()
        restart.append(t)
        restart_cpu.append(cpu)
    out["fresh data dir"] = fresh
    out["fresh data dir, server CPU"] = fresh_cpu
    out["restart (existing data dir)"] = restart
    out["restart, server CPU"] = restart_cpu
    return out


def service(name: str, i: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    if i % 4 == 0:
        spec["type"] = "NodePort"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"bench": "yes"}},
            "spec": spec}


class Client:
    def __init__(self, srv: Proc, limit: int) -> None:
        self.srv = srv
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=srv.ssl_context(), limit=limit),
            headers={"Authorization": f"Bearer {srv.token}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None))

    async def create(self, name: str, i: int) -> float:
        began = time.perf_counter()
        async with self.session.post(self.srv.url + SERVICES, data=orjson.dumps(service(name, i)),
                                     headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            assert resp.status == 201, resp.status
        return time.perf_counter() - began

    async def close(self) -> None:
        await self.session.close()


async def bench_create(srv: Proc, count: int, concurrency: int, prefix: str) -> dict[str, Any]:
    client = Client(srv, concurrency)
    latencies: list[float] = []
    names = iter(range(count))

    async def worker() -> None:
        for i in names:
            latencies.append(await client.create(f"{prefix}-{i}", i))

    cpu = _cpu_seconds(srv.proc.pid)
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    cpu = _cpu_seconds(srv.proc.pid) - cpu
    await client.close()
    return {"creates/s": count / elapsed, "p50": pct(latencies, 50), "p99": pct(latencies, 99),
            "cpu/create": cpu / count}


async def bench_list(srv: Proc, count: int) -> dict[str, Any]:
    client = Client(srv, 16)
    existing = 0
    async with client.session.get(srv.url + SERVICES + "?labelSelector=bench") as resp:
        existing = len((await resp.json())["items"])
    await _fill(client, count - existing, "list")
    out: dict[str, Any] = {}
    for label, accept in (("JSON", "application/json"), ("Table", TABLE)):
        times, size = [], 0
        for _ in range(5):
            began = time.perf_counter()
            async with client.session.get(srv.url + SERVICES, headers={"Accept": accept}) as resp:
                body = await resp.read()
            times.append(time.perf_counter() - began)
            size = len(body)
            doc = orjson.loads(body)
            assert len(doc.get("items") or doc.get("rows")) >= count, label
        out[label] = (statistics.median(times), size)
    await client.close()
    return out


async def _fill(client: Client, count: int, prefix: str) -> None:
    names = iter(range(count))

    async def worker() -> None:
        for i in names:
            await client.create(f"{prefix}-{i}", i + 1)

    await asyncio.gather(*(worker() for _ in range(16)))


async def bench_watch(srv: Proc, watchers: int, writes: int) -> dict[str, Any]:
    client = Client(srv, watchers + 2)
    async with client.session.get(srv.url + SERVICES) as resp:
        rv = (await resp.json())["metadata"]["resourceVersion"]
    received: dict[str, list[float]] = {}
    ready = asyncio.Event()
    connected = [0]

    async def watch() -> None:
        url = f"{srv.url}{SERVICES}?watch=1&resourceVersion={rv}&timeoutSeconds=600"
        async with client.session.get(url) as resp:
            connected[0] += 1
            if connected[0] == watchers:
                ready.set()
            buffer = b""
            async for chunk in resp.content.iter_any():
                now = time.perf_counter()
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    event = orjson.loads(line)
                    name = event["object"]["metadata"]["name"]
                    received.setdefault(name, []).append(now)
                    if name == "stop":
                        return

    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    await asyncio.wait_for(ready.wait(), 30)
    acked: dict[str, float] = {}
    for i in range(writes):
        name = f"w-{i}"
        await client.create(name, i + 1)
        acked[name] = time.perf_counter()
    await client.create("stop", 1)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    lags = [t - acked[name] for name in acked for t in received[name]]
    assert all(len(received[name]) == watchers for name in acked)
    await client.close()
    return {"events": len(lags), "p50": pct(lags, 50), "p99": pct(lags, 99), "max": max(lags)}


async def bench_e2e(srv: Proc, count: int) -> dict[str, Any]:
    client = Client(srv, 18)
    slices = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
    async with client.session.get(srv.url + slices) as resp:
        rv = (await resp.json())["metadata"]["resourceVersion"]
    seen: set[str] = set()
    done = asyncio.Event()

    async def watch() -> None:
        url = f"{srv.url}{slices}?watch=1&resourceVersion={rv}&timeoutSeconds=600"
        async with client.session.get(url) as resp:
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    event = orjson.loads(line)
                    owner = event["object"]["metadata"].get("labels", {}).get("kubernetes.io/service-name", "")
                    if owner.startswith("e2e-"):
                        seen.add(owner)
                if len(seen) >= count:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    began = time.perf_counter()
    await _fill(client, count, "e2e")
    created = time.perf_counter() - began
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - began
    watcher.cancel()
    await client.close()
    return {"creates done": created, "all slices": elapsed, "writes/s": 2 * count / elapsed}


async def run_phases(args: argparse.Namespace, tmp: Path) -> None:
    env = server_env(tmp / "pycache")
    srv, _, _ = spawn(tmp / "create", env)
    try:
        for concurrency in (1, 16):
            res = await bench_create(srv, args.services, concurrency, f"c{concurrency}")
            print(f"create {args.services} Services, concurrency {concurrency:2d}: {res['creates/s']:7.0f} creates/s"
                  f"  p50 {ms(res['p50'])}  p99 {ms(res['p99'])}  server CPU {ms(res['cpu/create'])}/create",
                  flush=True)
    finally:
        srv.stop()
    srv, _, _ = spawn(tmp / "list", env)
    try:
        res = await bench_list(srv, args.list)
        for label, (seconds, size) in res.items():
            print(f"list {args.list} Services as {label:5s}: {ms(seconds)}  ({size / 1e6:.1f} MB)", flush=True)
    finally:
        srv.stop()
    srv, _, _ = spawn(tmp / "watch", env)
    try:
        res = await bench_watch(srv, args.watchers, args.watch_writes)
        print(f"watch fan-out to {args.watchers} watchers, {args.watch_writes} creates: 201 -> event p50 "
              f"{ms(res['p50'])}  p99 {ms(res['p99'])}  max {ms(res['max'])}  ({res['events']} events)", flush=True)
    finally:
        srv.stop()
    if args.e2e:
        srv, _, _ = spawn(tmp / "e2e", env, components="controllers")
        try:
            res = await bench_e2e(srv, args.e2e)
            print(f"e2e {args.e2e} Services -> their EndpointSlices (controllers in-process): creates done in "
                  f"{res['creates done']:.2f} s, all slices in {res['all slices']:.2f} s: "
                  f"{res['writes/s']:.0f} Service+slice writes/s", flush=True)
        finally:
            srv.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--list", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--watch-writes", type=int, default=200)
    parser.add_argument("--start-runs", type=int, default=7)
    parser.add_argument("--e2e", type=int, default=1000, help="Services for the end-to-end phase (0: skip)")
    parser.add_argument("--skip-start", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    tmp = Path(tempfile.mkdtemp(prefix="nanokube-apibench-"))
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
        if not args.skip_start:
            for label, values in bench_start(args.start_runs, tmp).items():
                print(f"start, {label:38s}: median {ms(statistics.median(values))}  min {ms(min(values))}"
                      f"  ({len(values)} runs)", flush=True)
        asyncio.run(run_phases(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
