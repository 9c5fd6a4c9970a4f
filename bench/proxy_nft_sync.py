"""Rule programming time of the nftables proxy with the real `nft`, inside a scratch network namespace.

Measures: full sync of N Services x 3 endpoints (N = 1,000 and 10,000), then on top of 10,000 an
incremental one-Service change (an endpoint replaced), one Service added and one deleted; with counters on, one
read of the per-endpoint connection counters of all 1,000 / 10,000 Services (what a /metrics scrape costs when
the cache is cold).
Each time is wall time of the backend call (render + `nft -f -` + commit). `--counters both` runs everything
with the counters on, then off (NetConfig.counters; the counter set adds one element per frontend and
endpoint). Run as root:

    python bench/proxy_nft_sync.py [--runs 3] [--counters on|off|both]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import subprocess
import time

from bench_tools import require
from nanokube.proxy.commands import Commands
from nanokube.proxy.model import Endpoint, ServicePortInfo, ServicePortName
from nanokube.proxy.nftables import NftablesBackend
from nanokube.proxy.nftrules import NetConfig
from nanokube.proxy.state import ProxyState

CFG = NetConfig(pod_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12", lb_pool="10.250.0.0/24")


def service(i: int, generation: int = 0) -> tuple[str, dict, dict]:
    name = ServicePortName("bench", f"svc-{i}", "http", "TCP")
    info = ServicePortInfo(cluster_ip=f"10.96.{i // 250}.{i % 250 + 1}", port=80, node_port=0, external_ips=(),
                           lb_ips=(), external_local=False, internal_local=False, affinity_timeout=0)
    eps = tuple(Endpoint(f"10.244.{(3 * i + k) // 250 % 250}.{(3 * i + k) % 250 + 1 + generation}", 8080,
                         True, True, False, "node") for k in range(3))
    return name.service_key, {name: info}, {("http", "TCP"): eps}


def plans_for(n: int) -> dict:
    state = ProxyState(node_name="node", nodeport_ips=())
    svcs, epss = {}, {}
    for i in range(n):
        key, ports, eps = service(i)
        svcs[key] = ({}, ports)
        epss[key] = ({}, eps)
    state.apply(svcs, epss)
    return state


async def timed(coro) -> float:
    t0 = time.perf_counter()
    await coro
    return time.perf_counter() - t0


async def read_counters(backend: NftablesBackend, n: int, runs: int) -> None:
    reads = []
    for _ in range(runs):
        backend.counter_reader.forget()
        reads.append(await timed(backend.counters()))
    print(f"read counters {n:>6} svc x 3 ep: median {statistics.median(reads) * 1000:8.1f} ms  "
          f"runs {' / '.join(f'{t * 1000:.0f}' for t in reads)}  (netlink: {not backend.counters_via_nft})")


async def measure(ns: str, runs: int, cfg: NetConfig = CFG) -> None:
    if True:
        print(f"-- counters {'on' if cfg.counters else 'off'}")
        commands = Commands(ns)
        for n in (1000, 10000):
            times = []
            for _ in range(runs):
                state = plans_for(n)
                backend = NftablesBackend(cfg=cfg, hostnet=None, commands=commands)
                times.append(await timed(backend.full_sync(state.plans)))
            print(f"full sync {n:>6} svc x 3 ep: median {statistics.median(times) * 1000:8.1f} ms  "
                  f"runs {' / '.join(f'{t * 1000:.0f}' for t in times)}  ({len(backend.mirror)} elements)")
            if cfg.counters:
                await read_counters(backend, n, runs)
        # state/backend now hold the 10,000-Service table
        change, add, delete = [], [], []
        for r in range(max(runs, 5)):
            key, ports, eps = service(r * 7, generation=1)
            changes = state.apply({}, {key: ({}, eps)})
            change.append(await timed(backend.apply(changes)))
            key, ports, eps = service(20000 + r)
            changes = state.apply({key: ({}, ports)}, {key: ({}, eps)})
            add.append(await timed(backend.apply(changes)))
            changes = state.apply({key: (ports, {})}, {key: (eps, {})})
            delete.append(await timed(backend.apply(changes)))
        for label, times in (("endpoint change", change), ("add 1 service", add), ("delete 1 service", delete)):
            print(f"incremental on 10000, {label:<16}: median {statistics.median(times) * 1000:6.1f} ms  "
                  f"runs {' / '.join(f'{t * 1000:.1f}' for t in times)}")
        await backend.stop()
        t0 = time.perf_counter()
        await commands.run(["nft", "add", "table", "ip", "floor"])
        print(f"process floor (nft add table): {(time.perf_counter() - t0) * 1000:.1f} ms")


def main(runs: int, counters: str) -> None:
    require("ip", "nft", root="it makes a network namespace")
    ns = f"nk-proxybench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for on in {"on": (True,), "off": (False,), "both": (True, False)}[counters]:
            asyncio.run(measure(ns, runs, dataclasses.replace(CFG, counters=on)))
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--counters", choices=("on", "off", "both"), default="on")
    args = parser.parse_args()
    main(args.runs, args.counters)
