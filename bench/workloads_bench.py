"""Workload controllers through the real agent (loopback): a Parallel StatefulSet of N pods -> all Running and
Ready, and an N-completion Job -> Complete.

    python bench/workloads_bench.py [--pods 1000] [--completions 1000] [--parallelism 100]

A node has one /24 of the pod range, so the StatefulSet is spread over the server's node plus enough
`nanokube agent` nodes (loopback, 127.0.0.2x) of 250 pods each. Pods are busybox `sleep` (the host's
coreutils: about 1 MB each); Job pods run `true`. Times are from the create to the condition, read by
polling the API every 0.5 s (list of pods / the object's status), so they are rounded up to that.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nanokube.testing.cluster import Cluster

PODS_PER_NODE = 250


def start_agent(cluster: Cluster, index: int, data_dir: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nanokube", "agent", "--server", cluster.api_url,
         "--token-file", str(cluster.data_dir / "token"), "--data-dir", data_dir, "--network", "loopback",
         "--node-name", f"bench-node{index}", "--node-ip", f"127.0.0.{20 + index}", "--max-pods", str(PODS_PER_NODE),
         "--pod-cidr", cluster.pod_cidr, "--service-cidr", cluster.service_cidr, "--proxy-status-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline and b"nanokube node ready" not in buf:
        try:
            buf += os.read(proc.stdout.fileno(), 65536)
        except BlockingIOError:
            time.sleep(0.05)
    if b"nanokube node ready" not in buf:
        raise RuntimeError("agent not ready in 60 s")
    return proc


def count_ready(cluster: Cluster, selector: str) -> int:
    out = cluster.kubectl("get", "pods", "-l", selector, "-o",
                          "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
                          timeout=120).stdout
    return sum(1 for line in out.splitlines() if line == "True")


def bench_statefulset(cluster: Cluster, pods: int) -> float:
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "big"},
           "spec": {"replicas": pods, "podManagementPolicy": "Parallel", "serviceName": "big",
                    "selector": {"matchLabels": {"app": "big"}},
                    "template": {"metadata": {"labels": {"app": "big"}},
                                 "spec": {"terminationGracePeriodSeconds": 1,
                                          "containers": [{"name": "main", "image": "busybox",
                                                          "command": ["sleep", "3600"]}]}}}}
    start = time.monotonic()
    cluster.apply(sts)
    while True:
        status = cluster.get("statefulset", "big").get("status") or {}
        print(f"{time.monotonic() - start:6.1f}s statefulset {status}", file=sys.stderr)
        if status.get("readyReplicas") == pods:
            elapsed = time.monotonic() - start
            break
        time.sleep(0.5)
    assert count_ready(cluster, "app=big") == pods
    cluster.kubectl("delete", "statefulset", "big", "--wait=false")
    return elapsed


def bench_job(cluster: Cluster, completions: int, parallelism: int) -> float:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "many"},
           "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": 100,
                    "template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                                          "containers": [{"name": "main", "image": "busybox",
                                                          "command": ["true"]}]}}}}
    start = time.monotonic()
    cluster.apply(job)
    while True:
        got = cluster.get("job", "many")
        print(f"{time.monotonic() - start:6.1f}s job {got.get('status')}", file=sys.stderr)
        if any(c["type"] == "Complete" and c["status"] == "True" for c in got.get("status", {}).get("conditions") or []):
            return time.monotonic() - start
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--completions", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=100)
    args = parser.parse_args()
    agents: list[subprocess.Popen[bytes]] = []
    scratch = tempfile.mkdtemp(prefix="nanokube-bench-agents-")
    with Cluster(args=["--max-pods", str(PODS_PER_NODE)], ready_timeout=120) as cluster:
        try:
            for i in range(max(0, math.ceil(args.pods / PODS_PER_NODE) - 1)):
                agents.append(start_agent(cluster, i + 1, os.path.join(scratch, str(i + 1))))
            result: dict[str, object] = {"pods": args.pods, "nodes": 1 + len(agents),
                                         "load_before": os.getloadavg()[0]}
            if args.pods:
                result["statefulset_all_ready_s"] = round(bench_statefulset(cluster, args.pods), 1)
                deadline = time.monotonic() + 300
                while cluster.get("pods").get("items") and time.monotonic() < deadline:
                    time.sleep(1)
            if args.completions:
                result["job_complete_s"] = round(bench_job(cluster, args.completions, args.parallelism), 1)
                result.update(completions=args.completions, parallelism=args.parallelism)
            result["load_after"] = os.getloadavg()[0]
            print(json.dumps(result))
        finally:
            for proc in agents:
                proc.send_signal(signal.SIGTERM)
            for proc in agents:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
