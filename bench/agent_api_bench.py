"""Node agent through the API: a real `nanokube server` (control plane) and the node agent in a process of its
own (max pods raised to fit the burst), pods created over HTTPS, readiness seen through a watch.

    python bench/agent_api_bench.py [--mode loopback|netns] [--sequential 50] [--burst 200]

1. sequential: create one nanokube/echo pod at a time; latency = from sending the create until a watch event
   shows it phase Running with condition Ready=True (p50/p90/max); this includes the scheduler's binding;
2. burst: create --burst pods at once (20 requests in flight); time until all are Running+Ready, the agent
   process's RSS growth per pod, the pods' own RSS (median per pod), then time to delete them all.
netns mode re-executes itself inside `unshare --net --mount` (a fresh network namespace, private /run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from agent_bench import rss_kib  # bench/ is on sys.path when a bench script runs
from bench_tools import require
from nanokube.api.served_resources import by_kind
from nanokube.client import ApiClient, Informer, client_from_kubeconfig
from nanokube.testing.ports import free_port

PODS = by_kind("", "Pod")
NAMESPACES = by_kind("", "Namespace")
NS = "bench"


def pod_pids(data_dir: Path, mode: str) -> dict[str, list[int]]:
    """pod uid -> pids, by the pod directory the agent names in each loopback container's environment, or by
    the network namespace (netns mode: /run/netns/<name> made by the agent)."""
    marker = f"NANOKUBE_POD_DIR={data_dir}/pods/".encode()
    netns = {}
    if mode == "netns" and os.path.isdir("/run/netns"):  # our private /run (see main)
        for name in os.listdir("/run/netns"):
            st = os.stat(f"/run/netns/{name}")
            netns[(st.st_dev, st.st_ino)] = name
    out: dict[str, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = open(f"/proc/{entry}/environ", "rb").read()
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        at = env.find(marker)
        if at >= 0:
            out.setdefault(env[at + len(marker):].split(b"\0", 1)[0].decode(), []).append(int(entry))
        elif (st.st_dev, st.st_ino) in netns:
            out.setdefault(netns[(st.st_dev, st.st_ino)], []).append(int(entry))
    return out


def wait_line(proc: subprocess.Popen[bytes], prefix: bytes, log: Path) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        if raw.startswith(prefix):
            return
    raise SystemExit(f"{prefix.decode()!r} never came:\n{log.read_text()[-3000:]}")


def start_control_plane(data_dir: Path, mode: str) -> tuple[subprocess.Popen[bytes], list[str]]:
    cmd = [sys.executable, "-m", "nanokube", "server", "--data-dir", str(data_dir), "--api-listen",
           f"127.0.0.1:{free_port()}", "--network", mode, "--components", "controllers", "--no-agent"]
    log = data_dir.parent / "server.log"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "wb"), start_new_session=True)
    wait_line(proc, b"nanokube ready", log)
    return proc, cmd


def start_agent(data_dir: Path, mode: str, max_pods: int) -> tuple[subprocess.Popen[bytes], list[str]]:
    """The node agent in a process of its own (what `nanokube agent` will be), so its memory is its own."""
    cmd = [sys.executable, __file__, "--run-agent", "--mode", mode, "--max-pods", str(max_pods), "--data-dir",
           str(data_dir)]
    log = data_dir.parent / "agent.log"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "wb"), start_new_session=True)
    wait_line(proc, b"agent ready", log)
    return proc, cmd


async def run_agent_process(mode: str, max_pods: int, data_dir: Path) -> None:
    import logging
    import signal

    from nanokube.agent import AgentSettings, run_agent

    logging.basicConfig(level=logging.INFO)
    netns = mode == "netns"
    settings = AgentSettings(node_name="bench-node", node_ip="10.244.0.1" if netns else "127.0.0.1", network=mode,
                             data_dir=data_dir / "agent", pod_cidr="10.244.0.0/24" if netns else "127.244.90.0/24",
                             cluster_dns="10.96.0.10" if netns else "127.96.0.10", max_pods=max_pods)
    client = client_from_kubeconfig(str(data_dir / "kubeconfig.yaml"))
    ready = asyncio.Event()
    task = asyncio.ensure_future(run_agent(client=client, settings=settings, ready=ready))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    await ready.wait()
    print("agent ready", flush=True)
    try:
        await task
    except asyncio.CancelledError:
        pass
    await client.close()


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def echo_pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": [{"name": "echo", "image": "nanokube/echo"}]}}


def is_ready(pod: dict) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


class Watcher:
    """Records when each pod is first seen Running+Ready and when it is gone."""

    def __init__(self, client: ApiClient) -> None:
        self.informer = Informer(client, PODS, NS)
        self.ready_at: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.informer.add_handler(on_add=self._seen, on_update=lambda _o, n: self._seen(n),
                                  on_delete=lambda _o: self.changed.set())

    def _seen(self, pod: dict) -> None:
        name = pod["metadata"]["name"]
        if name not in self.ready_at and is_ready(pod):
            self.ready_at[name] = time.perf_counter()
            self.changed.set()

    async def until(self, predicate) -> None:  # type: ignore[no-untyped-def]
        while not predicate():
            self.changed.clear()
            await self.changed.wait()


async def bench(mode: str, sequential: int, burst: int, data_dir: Path) -> dict:
    server, server_cmd = start_control_plane(data_dir, mode)
    agent = None
    try:
        agent, agent_cmd = start_agent(data_dir, mode, max_pods=burst + 10)
        client = client_from_kubeconfig(str(data_dir / "kubeconfig.yaml"))
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        watcher = Watcher(client)
        task = asyncio.ensure_future(watcher.informer.run())
        await watcher.informer.synced.wait()
        latencies = []
        for i in range(sequential):
            name = f"seq-{i}"
            began = time.perf_counter()
            await client.create(PODS, echo_pod(name), NS)
            await watcher.until(lambda name=name: name in watcher.ready_at)
            latencies.append((watcher.ready_at[name] - began) * 1000)
        progress(f"sequential: p50 {statistics.median(latencies):.1f} ms")
        for i in range(sequential):
            await client.delete(PODS, f"seq-{i}", NS)
        await watcher.until(lambda: not watcher.informer.list())
        await asyncio.sleep(1)  # let freed memory settle before the baseline
        rss_before = rss_kib(agent.pid)
        gate = asyncio.Semaphore(20)

        async def create(name: str) -> None:
            async with gate:
                await client.create(PODS, echo_pod(name), NS)

        names = [f"burst-{i}" for i in range(burst)]
        began = time.perf_counter()
        await asyncio.gather(*(create(n) for n in names))
        created = time.perf_counter() - began
        progress(f"burst: {burst} created in {created:.2f} s")
        await watcher.until(lambda: all(n in watcher.ready_at for n in names))
        all_ready = max(watcher.ready_at[n] for n in names) - began
        rss_after = rss_kib(agent.pid)
        per_pod = [sum(rss_kib(p) for p in pids) for pids in pod_pids(data_dir / "agent", mode).values()]
        began = time.perf_counter()
        await asyncio.gather(*(client.delete(PODS, n, NS) for n in names))
        await watcher.until(lambda: not watcher.informer.list())
        deleted = time.perf_counter() - began
        task.cancel()
        await client.close()
        q = statistics.quantiles(latencies, n=20)
        return {
            "mode": mode, "server": " ".join(server_cmd[1:]), "agent": " ".join(agent_cmd[1:]),
            "create_to_running_ready_ms": {"n": sequential, "p50": round(statistics.median(latencies), 1),
                                           "p90": round(q[17], 1), "max": round(max(latencies), 1)},
            "burst": {"pods": burst, "create_calls_s": round(created, 2), "all_running_ready_s": round(all_ready, 2),
                      "delete_all_s": round(deleted, 2)},
            "agent_rss_kib": {"before": rss_before, "with_pods": rss_after,
                               "growth_per_pod": round((rss_after - rss_before) / burst, 1)},
            "pod_rss_kib_median": int(statistics.median(per_pod)) if per_pod else None,
            "pods_measured": len(per_pod),
        }
    finally:
        for proc in (agent, server):
            if proc is not None:
                proc.terminate()
                proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["loopback", "netns"], default="loopback")
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-agent", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-pods", type=int, default=110, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.run_agent:
        asyncio.run(run_agent_process(opts.mode, opts.max_pods, opts.data_dir))
        return
    if opts.mode == "netns" and not opts.inside:
        require("unshare", "ip", "nft", root="pods get network namespaces")
        cmd = ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c",
               'mount -t tmpfs nk-bench /run && ip link set lo up && exec "$@"', "sh", sys.executable, __file__,
               "--inside", "--mode", "netns", "--sequential", str(opts.sequential), "--burst", str(opts.burst)]
        sys.exit(subprocess.call(cmd))
    with tempfile.TemporaryDirectory(prefix="nk-agent-api-bench-") as tmp:
        print(json.dumps(asyncio.run(bench(opts.mode, opts.sequential, opts.burst, Path(tmp) / "data")), indent=1))


if __name__ == "__main__":
    main()
