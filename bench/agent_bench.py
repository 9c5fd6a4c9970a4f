"""Node agent benchmark: pod start -> listening for nanokube/echo, and memory per pod.

    sudo python bench/agent_bench.py [--pods 50] [--mode netns|loopback]

netns mode re-executes itself inside `unshare --net --mount` (a fresh network namespace, private /run), so
nothing touches the host's network. Start latency = from handing the pod to its worker until a TCP connect
to podIP:8080 succeeds (sequential pods). Memory = RSS of each pod's processes and the agent's RSS growth
with all pods running at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_tools import require
from nanokube.agent import netns
from nanokube.agent.nodecontext import NodeRuntime
from nanokube.agent.settings import AgentSettings
from nanokube.agent.worker import PodWorker
from nanokube.images.catalogue import Catalogue


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def can_connect(ip: str) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        try:
            s.connect((ip, 8080))
            return True
        except OSError:
            return False


async def wait_listening(worker: PodWorker) -> None:
    while worker.sandbox is None:
        await asyncio.sleep(0.001)
    ip = worker.sandbox.ip
    while not can_connect(ip):
        await asyncio.sleep(0.002)


def make(i: int) -> dict:
    return {"metadata": {"name": f"echo-{i}", "namespace": "bench", "uid": str(uuid.uuid4())},
            "spec": {"containers": [{"name": "echo", "image": "nanokube/echo"}], "terminationGracePeriodSeconds": 2}}


async def bench(mode: str, pods: int, data_dir: Path) -> dict:
    cidr = "10.244.0.0/24" if mode == "netns" else "127.244.77.0/24"
    settings = AgentSettings(node_name="bench", node_ip="10.244.0.1" if mode == "netns" else "127.0.0.1",
                             network=mode, data_dir=data_dir, pod_cidr=cidr, cluster_dns="10.96.0.10")
    rt = NodeRuntime(settings=settings, pod_cidr=cidr, catalogue=Catalogue())
    if mode == "netns":
        await netns.ensure_bridge(cidr)
    agent_before = rss_kib(os.getpid())
    latencies = []
    workers = []
    for i in range(pods):
        w = PodWorker(rt, make(i))
        t0 = time.perf_counter()
        w.start()
        await wait_listening(w)
        latencies.append((time.perf_counter() - t0) * 1000)
        workers.append(w)
    pod_rss = [sum(rss_kib(c.proc.pid) for c in w.containers.values() if c.proc) for w in workers]
    agent_after = rss_kib(os.getpid())
    t0 = time.perf_counter()
    for w in workers:
        meta = dict(w.pod["metadata"], deletionTimestamp="now")
        w.update(dict(w.pod, metadata=meta))
    await asyncio.gather(*(w.finished.wait() for w in workers))
    delete_all = time.perf_counter() - t0
    if mode == "netns":
        await netns.remove_bridge()
    q = statistics.quantiles(latencies, n=20)
    return {"mode": mode, "pods": pods, "start_to_listening_ms": {
        "p50": round(statistics.median(latencies), 1), "p90": round(q[17], 1), "max": round(max(latencies), 1)},
        "pod_rss_kib_median": int(statistics.median(pod_rss)),
        "agent_rss_growth_kib_per_pod": round((agent_after - agent_before) / pods, 1),
        "delete_all_s": round(delete_all, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--mode", choices=["netns", "loopback"], default="netns")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.mode == "netns" and not opts.inside:
        require("unshare", "ip", "nft", root="pods get network namespaces")
        cmd = ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c",
               'mount -t tmpfs nk-bench /run && ip link set lo up && exec "$@"', "sh", sys.executable,
               __file__, "--inside", "--mode", "netns", "--pods", str(opts.pods)]
        sys.exit(subprocess.call(cmd))
    with tempfile.TemporaryDirectory(prefix="nk-agent-bench-") as tmp:
        print(json.dumps(asyncio.run(bench(opts.mode, opts.pods, Path(tmp)))))


if __name__ == "__main__":
    main()
