"""Nodes on several hosts (tests/multihost lab: network namespaces on a bridge, no uplink), side by side in one run.

1. pod to pod on one host vs across hosts, host-gw vs VXLAN (`--flannel-backend vxlan` forces encapsulation
   between hosts on one link): HTTP requests/s over one keep-alive connection, and new connections/s, from a
   client process in a pod's network namespace to an echo pod;
2. endpoint change -> traffic shifted, seen from each of the three hosts (ClusterIP probed from the host
   itself): p50/p99 over ROUNDS flips of a Service's selector between a pod on host 2 and one on host 3;
3. a lab of HOSTS hosts with SERVICES Services: each agent's join time (process start -> `nanokube node
   ready`, which waits for the first full proxy sync), then the time until a new NodePort Service answers on
   every node (per-node proxy sync with SERVICES Services programmed).

Run as root:  PYTHONPATH=src python3 bench/multihost_bench.py [--hosts 20] [--services 1000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402
from tests.multihost.lab import Lab, sh  # noqa: E402
from tests.polling import eventually  # noqa: E402

from bench_tools import require  # noqa: E402

CLIENT = r"""
import json, socket, sys, time
host, port, mode, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
req_ka = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
req_close = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(rest) < length:
        rest += s.recv(65536)
    return rest[length:]
n = 0
lat = []
end = time.monotonic() + seconds
if mode == "keepalive":
    s = socket.create_connection((host, port)); buf = b""
    while time.monotonic() < end:
        t = time.monotonic(); s.sendall(req_ka); buf = read_response(s, buf); lat.append(time.monotonic() - t); n += 1
else:
    while time.monotonic() < end:
        t = time.monotonic()
        with socket.create_connection((host, port)) as s:
            s.sendall(req_close); read_response(s, b"")
        lat.append(time.monotonic() - t); n += 1
lat.sort()
print(json.dumps({"rate": n / seconds, "p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[int(len(lat) * .99)] * 1e3}))
"""

PROBE = r"""
import json, socket, sys, time
host, port, want, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
end = time.monotonic() + seconds
streak, first = 0, None
while time.monotonic() < end and streak < 5:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        pod = json.loads(data.split(b"\r\n\r\n", 1)[1])["pod"]
    except OSError:
        pod = ""
    if pod == want:
        first = first if streak else time.time()
        streak += 1
    else:
        streak = 0
print(json.dumps({"at": first}))
"""


def pinned_pod(name: str, node: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "echo", "image": "nanokube/echo", "ports": [{"containerPort": 8080}]}]}}


def svc(name: str, selector: dict[str, str], node_port: int | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"port": 80, "targetPort": 8080}
    spec: dict[str, Any] = {"selector": selector, "ports": [port]}
    if node_port:
        spec["type"] = "NodePort"
        port["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def pod_ip(lab: Lab, name: str) -> str:
    return str(lab.get("pod", name)["status"]["podIP"])


def in_pod(lab: Lab, host_name: str, pod: str, script: str, *args: object, timeout: float = 60) -> dict[str, Any]:
    host = lab.host(host_name)
    pid = host.pod_pid("default", pod)
    out = sh("nsenter", "-t", str(pid), "-n", "--", sys.executable, "-I", "-S", "-c", script, *map(str, args),
             timeout=timeout)
    return json.loads(out.stdout)


def datapath(backend: str, seconds: float) -> dict[str, Any]:
    lab = Lab(hosts_count=2, backend=backend)
    try:
        lab.start()
        lab.apply([pinned_pod("srv", "h2"), pinned_pod("near", "h2"), pinned_pod("far", "h1")])
        lab.kubectl("wait", "--for=condition=Ready", "pod/srv", "pod/near", "pod/far", "--timeout=90s", timeout=100)
        target = pod_ip(lab, "srv")
        out: dict[str, Any] = {}
        for label, host, pod in (("same host", "h2", "near"), ("across hosts", "h1", "far")):
            for mode in ("keepalive", "new"):
                out[f"{label}, {mode}"] = in_pod(lab, host, pod, CLIENT, target, 8080, mode, seconds)
        return out
    finally:
        problems = lab.destroy()
        assert not problems, problems


def shift(rounds: int) -> dict[str, Any]:
    lab = Lab(hosts_count=3, backend="auto")
    try:
        lab.start()
        lab.apply([pinned_pod("a", "h2", {"app": "shift", "id": "a"}), pinned_pod("b", "h3", {"app": "shift", "id": "b"}),
                   svc("shift", {"id": "a"})])
        lab.kubectl("wait", "--for=condition=Ready", "pod/a", "pod/b", "--timeout=90s", timeout=100)
        cluster_ip = lab.get("svc", "shift")["spec"]["clusterIP"]
        delays: dict[str, list[float]] = {h.name: [] for h in lab.hosts}
        kubectl_s: list[float] = []
        want = "a"
        for host in lab.hosts:  # every host answers from a first
            eventually(lambda host=host: json.loads(host.run(sys.executable, "-c", PROBE, cluster_ip, "80", "a", "10")
                                                    .stdout)["at"], timeout=30)
        for _ in range(rounds):
            want = "b" if want == "a" else "a"
            import subprocess

            probes = [subprocess.Popen(["ip", "netns", "exec", h.netns, sys.executable, "-c", PROBE, cluster_ip, "80",
                                        want, "30"], stdout=subprocess.PIPE, text=True) for h in lab.hosts]
            time.sleep(0.3)  # the probes are connecting (to the old endpoint)
            began = time.time()
            lab.kubectl("patch", "svc", "shift", "-p", json.dumps({"spec": {"selector": {"id": want}}}))
            written = time.time()  # kubectl has returned: the API has stored the change
            kubectl_s.append(written - began)
            for host, probe in zip(lab.hosts, probes, strict=True):
                at = json.loads(probe.communicate(timeout=40)[0])["at"]
                if at is not None:
                    delays[host.name].append(max(0.0, at - written))
        out: dict[str, Any] = {name: {"n": len(d), "p50_ms": statistics.median(d) * 1e3,
                                      "p99_ms": sorted(d)[min(len(d) - 1, int(len(d) * .99))] * 1e3}
                               for name, d in delays.items() if d}
        out["kubectl patch itself (not included above)"] = {"p50_ms": statistics.median(kubectl_s) * 1e3}
        return out
    finally:
        problems = lab.destroy()
        assert not problems, problems


def scale(hosts: int, services: int) -> dict[str, Any]:
    lab = Lab(hosts_count=hosts, backend="auto")
    try:
        lab.build()
        lab.start_server(timeout=120)
        objs = [svc(f"s{i}", {"app": f"none{i}"}) for i in range(services)]
        began = time.monotonic()
        for i in range(0, len(objs), 100):
            lab.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs[i:i + 100]), timeout=300)
        create_s = time.monotonic() - began
        joins = []
        for host in lab.hosts[1:]:
            began = time.monotonic()
            lab.start_agent(host, timeout=180)
            joins.append(time.monotonic() - began)
        eventually(lambda: lab.ready_nodes() == {h.name for h in lab.hosts}, timeout=60)
        lab.apply([pinned_pod("web", "h1"), svc("web", {"app": "web"}, node_port=31500)])
        lab.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=90s", timeout=100)
        # a second Service in front of the ready pod: how long until every node programmed it
        lab.apply([svc("web2", {"app": "web"}, node_port=31501)])
        began = time.time()  # kubectl has returned: the Service is stored
        import subprocess

        probes = [subprocess.Popen(["ip", "netns", "exec", lab.client_ns, sys.executable, "-c", PROBE, h.ip, "31501",
                                    "web", "60"], stdout=subprocess.PIPE, text=True) for h in lab.hosts]
        sync = []
        for probe in probes:
            at = json.loads(probe.communicate(timeout=90)[0])["at"]
            sync.append((at - began) if at is not None else float("nan"))
        return {"hosts": hosts, "services": services, "create_services_s": create_s,
                "join_s": {"median": statistics.median(joins), "max": max(joins)},
                "new_service_on_every_node_s": {"median": statistics.median(sync), "max": max(sync)}}
    finally:
        problems = lab.destroy()
        assert not problems, problems


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--skip", default="", help="comma list of datapath,shift,scale")
    args = ap.parse_args()
    require("ip", "nft", root="the lab builds network namespaces")
    skip = set(args.skip.split(","))
    result: dict[str, Any] = {}
    if "datapath" not in skip:
        result["datapath"] = {b: datapath(b, args.seconds) for b in ("host-gw", "vxlan")}
        print(json.dumps(result["datapath"], indent=1), flush=True)
    if "shift" not in skip:
        result["shift"] = shift(args.rounds)
        print(json.dumps(result["shift"], indent=1), flush=True)
    if "scale" not in skip:
        result["scale"] = scale(args.hosts, args.services)
        print(json.dumps(result["scale"], indent=1), flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
