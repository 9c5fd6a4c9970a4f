"""Requests per second through the built-in Ingress (nginx) vs straight to one pod vs through the ClusterIP,
side by side in one run, with keep-alive and with a new connection per request (wrk); and how long an Ingress
change takes to serve (apply -> first 200 on the new host), p50/p99. Loopback mode: the load goes to 127.x only.

    PYTHONPATH=src python bench/ingress_bench.py [--seconds 5] [--connections 16] [--changes 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_tools import require
from tests.conftest import start_server
from tests.loopback.conftest import echo_deployment, service

HOST = "bench.example.test"


def ingress(name: str, host: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                "service": {"name": "bench", "port": {"name": "web"}}}}]}}]}}


def wrk(url: str, host: str | None, seconds: int, connections: int, new_connections: bool) -> float:
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s"]
    if host:
        cmd += ["-H", f"Host: {host}"]
    if new_connections:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    line = next(x for x in out.splitlines() if x.startswith("Requests/sec:"))
    return float(line.split()[1])


def status(address: str, host: str) -> int:
    req = urllib.request.Request(f"http://{address}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--changes", type=int, default=20)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    require("wrk", "nginx")
    svc, pod, lb = random.sample(range(100, 230), 3)
    srv = start_server("--network", "loopback", "--service-cidr", f"127.{svc}.0.0/16", "--pod-cidr",
                       f"127.{pod}.0.0/16", "--lb-pool", f"127.{lb}.0.0/24", "--dns-upstream", "127.0.0.1:9")
    try:
        def get(*a: str) -> Any:
            return json.loads(srv.kubectl("get", *a, "-o", "json").stdout)

        srv.apply(echo_deployment("bench", 1))
        srv.apply(service("bench", {"app": "bench"}, [{"name": "web", "port": 80, "targetPort": 8080}]))
        srv.apply(ingress("bench", HOST))
        srv.kubectl("rollout", "status", "deployment/bench", "--timeout=120s", timeout=130)
        deadline = time.monotonic() + 60
        address = ""
        while time.monotonic() < deadline:
            lbs = (get("ingress", "bench").get("status") or {}).get("loadBalancer", {}).get("ingress") or []
            address = lbs[0]["ip"] if lbs else ""
            if address and status(address, HOST) == 200:
                break
            time.sleep(0.2)
        pod_ip = get("pods", "-l", "app=bench")["items"][0]["status"]["podIP"]
        cluster_ip = get("svc", "bench")["spec"]["clusterIP"]
        targets = {"ingress (nginx)": (f"http://{address}/", HOST), "pod directly": (f"http://{pod_ip}:8080/", None),
                   "ClusterIP (userspace proxy)": (f"http://{cluster_ip}/", None)}
        results: dict[str, Any] = {"rps": {}}
        for label, (url, host) in targets.items():
            results["rps"][label] = {
                "keep-alive": wrk(url, host, args.seconds, args.connections, False),
                "new connections": wrk(url, host, args.seconds, args.connections, True)}
        took: list[float] = []
        for i in range(args.changes):
            host = f"n{i}.example.test"
            began = time.monotonic()
            srv.apply(ingress(f"change-{i}", host))
            while status(address, host) != 200:
                if time.monotonic() - began > 30:
                    raise SystemExit(f"{host} not served after 30 s")
                time.sleep(0.01)
            took.append(time.monotonic() - began)
        took.sort()
        results["change_to_serving_s"] = {"n": len(took), "p50": round(statistics.median(took), 3),
                                          "p99": round(took[min(len(took) - 1, int(len(took) * 0.99))], 3)}
    finally:
        srv.stop()
    print(f"{'target':30} {'keep-alive req/s':>18} {'new conn req/s':>16}")
    for label, rps in results["rps"].items():
        print(f"{label:30} {rps['keep-alive']:>18.0f} {rps['new connections']:>16.0f}")
    c = results["change_to_serving_s"]
    print(f"Ingress change -> new host serving (kubectl apply included): n={c['n']} p50={c['p50']}s p99={c['p99']}s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
