"""Rolling updates under constant load: how many requests fail (issue 14's goal: 0).

An echo Deployment (2 replicas, readiness probe on /healthz) behind a ClusterIP Service; a load generator
(tests/loadgen.py: --new threads opening a new connection per request, --keepalive threads reusing one until
told `Connection: close`, each pausing --pause s between requests) sends to the ClusterIP while
`kubectl rollout restart`, `set image` and `set env` run one after another, --rounds times, each waited for
with `rollout status`. Both network modes in one run: loopback (a server on random 127.x ranges, the userspace
proxy) and netns (a server in a fresh network namespace `nk-e2e-<random>`, nftables; the load runs inside it,
so no packet leaves it). Prints the counts per mode; --json writes them.

    sudo PYTHONPATH=src python bench/rollout_zero_downtime.py [--mode both|loopback|netns] [--rounds 3]
                                                               [--new 2] [--keepalive 2] [--pause 0.005]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import start_server
from tests.netns.cluster import NetnsCluster
from tests.rollout_load import NAME, manifests, run_changes, start_load, stop_load

from bench_tools import require


def scenario(apply: Any, kubectl: Any, get: Any, prefix: list[str], args: argparse.Namespace) -> dict[str, Any]:
    apply(manifests())
    kubectl("rollout", "status", f"deployment/{NAME}", "--timeout=120s", timeout=130)
    cluster_ip = get("svc", NAME)["spec"]["clusterIP"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        slices = get("endpointslices", "-l", f"kubernetes.io/service-name={NAME}")["items"]
        if slices and len(slices[0].get("endpoints") or []) == 2:
            break
        time.sleep(0.1)
    load = start_load(prefix, cluster_ip, new=args.new, keepalive=args.keepalive, pause=args.pause)
    began = time.monotonic()
    rollouts: list[tuple[str, float]] = []
    try:
        time.sleep(1)
        for round_no in range(args.rounds):
            rollouts += run_changes(kubectl, round_no=round_no)
    finally:
        counts = stop_load(load)
    counts["seconds"] = round(time.monotonic() - began, 1)
    counts["rollouts"] = [(what, round(took, 2)) for what, took in rollouts]
    return counts


def loopback(args: argparse.Namespace) -> dict[str, Any]:
    svc, pod, lb = random.sample(range(100, 230), 3)
    srv = start_server("--network", "loopback", "--service-cidr", f"127.{svc}.0.0/16", "--pod-cidr",
                       f"127.{pod}.0.0/16", "--lb-pool", f"127.{lb}.0.0/24", "--dns-upstream", "127.0.0.1:9")
    try:
        def get(*a: str) -> Any:
            return json.loads(srv.kubectl("get", *a, "-o", "json").stdout)

        def apply(objs: list[dict[str, Any]]) -> None:
            for obj in objs:
                srv.apply(obj)

        return scenario(apply, srv.kubectl, get, [], args)
    finally:
        srv.stop()


def netns(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="nk-e2e-"))
    cluster = NetnsCluster(name=f"nk-e2e-{secrets.token_hex(4)}", data_dir=tmp / "data", log_path=tmp / "log")
    try:
        cluster.start()
        return scenario(cluster.apply, cluster.kubectl, cluster.get, ["ip", "netns", "exec", cluster.name], args)
    finally:
        problems = cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
        if problems:
            print(f"netns clean-up problems: {problems}", file=sys.stderr)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["both", "loopback", "netns"], default="both")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--new", type=int, default=2)
    p.add_argument("--keepalive", type=int, default=2)
    p.add_argument("--pause", type=float, default=0.005)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    require("kubectl", *(["ip"] if args.mode != "loopback" else []),
            root="netns mode builds network namespaces" if args.mode != "loopback" else "")
    results = {}
    for mode, run in (("loopback", loopback), ("netns", netns)):
        if args.mode in ("both", mode):
            results[mode] = run(args)
            r = results[mode]
            print(f"{mode:8} {r['seconds']:6.1f} s, {len(r['rollouts'])} rollouts: "
                  f"new connections {r['new']['ok']} ok / {r['new']['failed']} failed; "
                  f"keep-alive {r['keepalive']['ok']} ok / {r['keepalive']['failed']} failed "
                  f"({r['keepalive']['reconnects']} told to reconnect)", flush=True)
            for err in r["errors"][:5]:
                print(f"         {err}")
    shutil.rmtree(Path(tempfile.gettempdir()) / f"nanokube-tests-{os.getpid()}", ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    failed = sum(r["new"]["failed"] + r["keepalive"]["failed"] for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
