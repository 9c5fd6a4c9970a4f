"""Controllers benchmark: pod Ready written -> EndpointSlice updated (p50/p99), and a 1,000-replica Deployment.

Starts `nanokube server --components=controllers --no-agent` (loopback), fills it with selector Services,
creates pods bound to a fake node with IPs, then toggles one pod's Ready condition through pods/status and
times until a watch on the Service's EndpointSlices shows the new condition.

    python bench/controllers_bench.py [--services 1000,10000] [--samples 1000] [--sizes 1,100,1000]
                                      [--no-deployment] [--py-spy DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import start_server

from nanokube.api.errors import ApiError
from nanokube.api.meta import rfc3339, rfc3339_micro
from nanokube.client import ApiClient
from nanokube.controllers.resources import (
    DEPLOYMENTS,
    ENDPOINTS,
    ENDPOINTSLICES,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
)

SIZES = (1, 100, 1000)
LEASE_NS = "kube-node-lease"


async def bounded(coros: list[Any], limit: int = 48) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c
    return await asyncio.gather(*(one(c) for c in coros))


def service(name: str, app: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}}


async def make_pod(client: ApiClient, app: str, i: int, ip: str) -> None:
    name = f"{app}-{i}"
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"nodeName": "bench-node", "containers": [{"name": "c", "image": "echo"}]}}
    await client.create(PODS, body, "default")
    await set_ready(client, name, ip, True)


async def set_ready(client: ApiClient, name: str, ip: str, ready: bool) -> None:
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
              "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                              "lastTransitionTime": rfc3339()}]}
    await client.patch(PODS, name, {"status": status}, "default", subresource="status")


async def add_services(client: ApiClient, start: int, end: int) -> None:
    await bounded([client.create(SERVICES, service(f"filler-{i}", f"filler-{i}"), "default")
                   for i in range(start, end)])


async def wait_slices_settled(client: ApiClient, service_name: str, want: int) -> None:
    while True:
        data = await client.list(ENDPOINTSLICES, "default", label_selector=f"kubernetes.io/service-name={service_name}")
        if sum(len(s.get("endpoints") or []) for s in data["items"]) == want:
            return
        await asyncio.sleep(0.2)


async def wait_all_synced(client: ApiClient, services: int) -> None:
    """Every selector Service has its slices (fillers: one placeholder; bench1000: ten) and Endpoints."""
    want_slices = services + 9
    while True:
        slices = await client.list(ENDPOINTSLICES, "default",
                                   label_selector="endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io")
        endpoints = await client.list(ENDPOINTS, "default")
        if len(slices["items"]) >= want_slices and len(endpoints["items"]) >= services:
            return
        await asyncio.sleep(0.5)


async def measure(client: ApiClient, app: str, size: int, samples: int) -> list[float]:
    target = f"{app}-0"
    ip = ip_for(app, 0)
    seen: dict[bool, asyncio.Event] = {True: asyncio.Event(), False: asyncio.Event()}
    expect: list[bool] = [True]

    async def watcher() -> None:
        async for _etype, obj in client.watch(ENDPOINTSLICES, "default",
                                              label_selector=f"kubernetes.io/service-name={app}"):
            for ep in obj.get("endpoints") or []:
                if (ep.get("targetRef") or {}).get("name") == target:
                    ready = bool(ep["conditions"].get("ready"))
                    if ready == expect[0]:
                        seen[ready].set()

    task = asyncio.create_task(watcher())
    await asyncio.sleep(0.3)
    latencies = []
    state = True
    for _ in range(samples):
        state = not state
        expect[0] = state
        seen[state].clear()
        t0 = time.perf_counter()
        await set_ready(client, target, ip, state)
        await asyncio.wait_for(seen[state].wait(), 30)
        latencies.append((time.perf_counter() - t0) * 1000)
    if not state:
        await set_ready(client, target, ip, True)
    task.cancel()
    return latencies


def ip_for(app: str, i: int) -> str:
    base = {"bench1": 10, "bench100": 20, "bench1000": 30}[app]
    return f"127.{base + i // 250}.0.{i % 250 + 2}"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> None:
    server = start_server("--network", "loopback", "--components=controllers", "--no-agent",
                          "--service-cidr", "127.96.0.0/14")
    client = ApiClient(server.url, server.token, ca_file=str(server.data_dir / "pki" / "ca.crt"))
    try:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bench-node"}}
        created = await client.create(NODES, node)
        created["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        await client.update(NODES, created, subresource="status")
        renewer = asyncio.create_task(renew_lease(client))  # or node lifecycle marks the node's pods unready
        t = time.perf_counter()
        for size in SIZES:
            app = f"bench{size}"
            await client.create(SERVICES, service(app, app), "default")
            await bounded([make_pod(client, app, i, ip_for(app, i)) for i in range(size)])
        print(f"setup: {sum(SIZES)} pods in {time.perf_counter() - t:.1f}s", flush=True)
        have = 3
        for total in args.services:
            t = time.perf_counter()
            await add_services(client, have, total)
            have = total
            await wait_all_synced(client, total)
            print(f"services present: {total} (added in {time.perf_counter() - t:.1f}s)", flush=True)
            for size in args.sizes:
                app = f"bench{size}"
                await wait_slices_settled(client, app, size)
                spy = profiler(server, args.py_spy, f"{total}-{size}")
                cpu = cpu_seconds(server)
                lat = await measure(client, app, size, args.samples)
                cpu = (cpu_seconds(server) - cpu) / len(lat) * 1000
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait()
                print(f"  services={total:>6} endpoints={size:>5}: p50 {pct(lat, 50):6.1f} ms  "
                      f"p99 {pct(lat, 99):6.1f} ms  max {max(lat):6.1f} ms  server CPU {cpu:5.1f} ms/change "
                      f"(n={len(lat)})", flush=True)
        if not args.no_deployment:
            await deployment_1000(client)
        renewer.cancel()
    finally:
        await client.close()
        server.stop()


async def renew_lease(client: ApiClient) -> None:
    try:
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NS}})
    except ApiError as err:
        if err.code != 409:
            raise
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "bench-node", "namespace": LEASE_NS},
             "spec": {"holderIdentity": "bench-node", "leaseDurationSeconds": 40, "renewTime": rfc3339_micro()}}
    lease = await client.create(LEASES, lease, LEASE_NS)
    while True:
        await asyncio.sleep(5)
        lease["spec"]["renewTime"] = rfc3339_micro()
        lease = await client.update(LEASES, lease)


async def deployment_1000(client: ApiClient) -> None:
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big"},
            "spec": {"replicas": 1000, "selector": {"matchLabels": {"app": "big"}},
                     "template": {"metadata": {"labels": {"app": "big"}},
                                  "spec": {"containers": [{"name": "c", "image": "echo"}]}}}}
    t = time.perf_counter()
    await client.create(DEPLOYMENTS, body, "default")
    while True:
        try:
            data = await client.list(PODS, "default", label_selector="app=big")
        except ApiError:
            data = {"items": []}
        if len(data["items"]) >= 1000:
            break
        await asyncio.sleep(0.2)
    print(f"1,000-replica Deployment -> 1,000 pods exist in {time.perf_counter() - t:.1f}s "
          f"(pods: {len(data['items'])})", flush=True)


def cpu_seconds(server: Any) -> float:
    """User + system CPU time of the server process so far (a measure of work that other load cannot skew)."""
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profiler(server: Any, out_dir: str | None, tag: str) -> subprocess.Popen[bytes] | None:
    """py-spy (pip install py-spy) sampling the server process while one size is measured."""
    if not out_dir or server.proc is None:
        return None
    out = Path(out_dir) / f"controllers-{tag}.txt"
    return subprocess.Popen(["py-spy", "record", "--format", "raw", "--rate", "500", "-o", str(out),
                             "--pid", str(server.proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", default="1000,10000", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), type=lambda s: [int(x) for x in s.split(",")],
                        help="endpoints per measured Service, a subset of 1,100,1000")
    parser.add_argument("--py-spy", metavar="DIR", help="write a py-spy raw profile of the server per measurement")
    parser.add_argument("--no-deployment", action="store_true", help="skip the 1,000-replica Deployment")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
