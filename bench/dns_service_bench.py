"""Cluster DNS through the kube-dns Service (nftables DNAT) vs straight to the DNS server, side by side in one run.

A lab of two hosts (tests/multihost: network namespaces on a bridge, no uplink): the server, with the cluster DNS
on its node IP, on host 1; an agent on host 2. From a pod on each host, a Python client sends sequential A
queries for `kubernetes.default.svc.cluster.local` over UDP, either to the kube-dns ClusterIP (DNATed by that
host's proxy to host 1's IP:53, across the link for the pod on host 2) or to host 1's IP:53 directly. Two socket
modes: `new` opens a socket per query (a new source port, so a new conntrack entry per query through the DNAT,
as glibc's stub resolver does per lookup), `same` reuses one socket (one conntrack entry). The cells alternate
round by round so load changes hit every cell alike. Reported per cell: p50 / p99 latency and queries/s.

Run as root:  PYTHONPATH=src python3 bench/dns_service_bench.py [--seconds 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.multihost.lab import Lab, sh  # noqa: E402

KUBE_DNS = "10.96.0.10"

CLIENT = r"""
import json, socket, struct, sys, time
host, mode, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
qname = b"".join(bytes([len(p)]) + p for p in b"kubernetes.default.svc.cluster.local".split(b".")) + b"\0"
lat = []
s = None
end = time.monotonic() + seconds
i = 0
bad = 0
while time.monotonic() < end:
    i = (i + 1) & 0xFFFF
    query = struct.pack("!HHHHHH", i, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    t = time.monotonic()
    if s is None or mode == "new":
        if s is not None:
            s.close()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.connect((host, 53))
    s.send(query)
    while True:
        reply = s.recv(512)
        if reply[:2] == query[:2]:
            break
    lat.append(time.monotonic() - t)
    flags, _, ancount = struct.unpack("!HHH", reply[2:8])
    if flags & 0xF or not ancount:  # rcode != NOERROR or no answer: not a resolution
        bad += 1
print(json.dumps({"n": len(lat), "lat": lat, "bad": bad}))
"""


def pinned_pod(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "echo", "image": "nanokube/echo"}]}}


def in_pod(lab: Lab, host_name: str, pod: str, *args: object) -> dict[str, Any]:
    pid = lab.host(host_name).pod_pid("default", pod)
    out = sh("nsenter", "-t", str(pid), "-n", "--", sys.executable, "-I", "-S", "-c", CLIENT, *map(str, args),
             timeout=60)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0, help="per cell and round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import yaml

    lab = Lab(hosts_count=2)
    try:
        lab.start()
        lab.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([pinned_pod("near", "h1"), pinned_pod("far", "h2")]))
        lab.kubectl("wait", "--for=condition=Ready", "pod/near", "pod/far", "--timeout=90s", timeout=100)
        cells = [(f"pod on {host} -> {label}, {mode} socket", host, pod, target, mode)
                 for host, pod in (("h1", "near"), ("h2", "far"))
                 for label, target in (("ClusterIP (DNAT)", KUBE_DNS), ("node IP (direct)", lab.server.ip))
                 for mode in ("new", "same")]
        samples: dict[str, list[float]] = {c[0]: [] for c in cells}
        for _ in range(args.rounds):
            for name, host, pod, target, mode in cells:
                got = in_pod(lab, host, pod, target, mode, args.seconds)
                assert not got["bad"], f"{name}: {got['bad']} queries without an answer"
                samples[name] += got["lat"]
        seconds = args.seconds * args.rounds
        result = {}
        for name, lat in samples.items():
            lat.sort()
            result[name] = {"queries_per_s": round(len(lat) / seconds), "p50_ms": round(lat[len(lat) // 2] * 1e3, 3),
                            "p99_ms": round(lat[int(len(lat) * .99)] * 1e3, 3),
                            "mean_ms": round(statistics.fmean(lat) * 1e3, 3)}
            print(f"{name:55s} p50 {result[name]['p50_ms']:.3f} ms  p99 {result[name]['p99_ms']:.3f} ms  "
                  f"{result[name]['queries_per_s']} q/s", flush=True)
        print(json.dumps(result))
    finally:
        problems = lab.destroy()
        assert not problems, problems


if __name__ == "__main__":
    main()
