"""exec and port-forward through the API, side by side with the direct way, in one run (loopback mode).

    python bench/exec_portforward.py [--execs 30] [--duration 5] [--connections 10]

1. exec round trip: `kubectl exec POD -- true` (kubectl start, TLS, WebSocket upgrade, API server -> kubelet
   port hop, spawn, Status) against `nsenter -t <the pod's pid> -n -u -m -i -- true` and a bare `true`; the
   Python client's stream() (no process start) as well; also `kubectl get pod POD` to show kubectl's own cost.
2. port-forward: `kubectl port-forward svc/web L:80` then wrk keep-alive req/s and new-connection req/s
   through it, against wrk straight to the pod's address; and one 64 MiB download (a pod running
   `python3 -m http.server`) through port-forward against direct. For the keep-alive runs, the CPU each
   process on the path used per request (the server, kubectl, the echo pod), from /proc: where the time goes.
   `--execs 0` skips part 1.
Needs kubectl and wrk. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_tools import require
from nanokube.testing.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        octets = random.sample(range(100, 230), 3)
        self.log = open(tmp / "server.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nanokube", "server", "--network", "loopback", "--data-dir", str(tmp / "data"),
             "--api-listen", f"127.0.0.1:{free_port()}", "--service-cidr", f"127.{octets[0]}.0.0/16",
             "--pod-cidr", f"127.{octets[1]}.0.0/16", "--lb-pool", f"127.{octets[2]}.0.0/24",
             "--dns-listen", f"127.0.0.1:{free_port()}", "--dns-upstream", "127.0.0.1:9"],
            stdout=subprocess.PIPE, stderr=self.log, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith(b"nanokube ready"), line
        self.kubeconfig = tmp / "data" / "kubeconfig.yaml"

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], input=input, text=True,
                              capture_output=True, check=True, timeout=120).stdout

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def timed(argv: list[str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        began = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append((time.perf_counter() - began) * 1000)
    return out


def wrk(url: str, duration: int, connections: int, close: bool = False) -> float:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url]
    if close:
        argv[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def download(url: str) -> float:
    began = time.perf_counter()
    subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=True)
    return time.perf_counter() - began


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def pod_process(pod_ip: str) -> int:
    """The pid of the echo process serving on ``pod_ip`` (its environment names the pod IP)."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"echo.py" in Path(f"/proc/{entry}/cmdline").read_bytes() and \
                    f"NANOKUBE_POD_IP={pod_ip}".encode() in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                return int(entry)
        except OSError:
            continue
    raise LookupError(f"no echo process for {pod_ip}")


def cpu_per_request(pids: dict[str, int], run: Callable[[], float], duration: int) -> tuple[float, dict[str, str]]:
    """Run a wrk measurement; its req/s and each process's user+system CPU microseconds per request."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    rate = run()
    requests = rate * duration
    out = {}
    for name, pid in pids.items():
        (u0, s0), (u1, s1) = before[name], cpu_seconds(pid)
        out[name] = f"{(u1 - u0) / requests * 1e6:.0f}+{(s1 - s0) / requests * 1e6:.0f}"
    return rate, out


def exec_with_client(kubeconfig: Path, pod: str, n: int) -> list[float]:
    from kubernetes import client, config
    from kubernetes.stream import stream

    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    out = []
    for _ in range(n):
        began = time.perf_counter()
        stream(core.connect_get_namespaced_pod_exec, pod, "default", command=["true"], stdout=True, stderr=True)
        out.append((time.perf_counter() - began) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execs", type=int, default=30)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=10)
    args = parser.parse_args()
    require("kubectl", "wrk", "curl")
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="nk-bench-streaming-"))
    files = tmp / "files"
    files.mkdir()
    (files / "big.bin").write_bytes(os.urandom(64 << 20))
    cluster = Cluster(tmp)
    rows = []
    try:
        cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
             "spec": {"containers": [{"name": "echo", "image": "nanokube/echo",
                                      "ports": [{"containerPort": 8080}]}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "files"},
             "spec": {"containers": [{"name": "http", "image": "busybox",
                                      "command": ["sh", "-c", f"exec python3 -m http.server 8090 --bind $POD_IP "
                                                              f"--directory {files}"]}]}}]}))
        cluster.kubectl("wait", "--for=condition=Ready", "pod/web", "pod/files", "--timeout=60s")
        pods = json.loads(cluster.kubectl("get", "pods", "-o", "json"))["items"]
        ip = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
        time.sleep(1.0)  # the http.server binds after Ready
        pid = int(cluster.kubectl("exec", "web", "--", "sh", "-c", "echo $PPID").strip())
        kubectl = ["kubectl", "--kubeconfig", str(cluster.kubeconfig)]
        n = args.execs
        results = {} if not n else {
            "kubectl exec web -- true": timed([*kubectl, "exec", "web", "--", "true"], n),
            "Python client stream(exec true)": exec_with_client(cluster.kubeconfig, "web", n),
            "nsenter -t PID -n -u -m -i -- true": timed(["nsenter", "-t", str(pid), "-n", "-u", "-m", "-i", "--",
                                                         "true"], n),
            "true (spawn only)": timed(["true"], n),
            "kubectl get pod web (kubectl's own cost)": timed([*kubectl, "get", "pod", "web"], n),
        }
        for name, values in results.items():
            rows.append((name, f"{statistics.median(values):.1f} ms", f"{sorted(values)[int(len(values) * 0.9)]:.1f} ms"))
        local = free_port()
        pf = subprocess.Popen([*kubectl, "port-forward", "svc/web", f"{local}:80"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
        assert pf.stdout is not None and pf.stdout.readline().startswith(b"Forwarding")
        files_local = free_port()
        pf2 = subprocess.Popen([*kubectl, "port-forward", "pod/files", f"{files_local}:8090"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert pf2.stdout is not None and pf2.stdout.readline().startswith(b"Forwarding")
        try:
            d, c = args.duration, args.connections
            echo = pod_process(ip["web"])
            direct_ka, direct_cpu = cpu_per_request({"echo": echo}, lambda: wrk(f"http://{ip['web']}:8080/", d, c), d)
            pf_ka, pf_cpu = cpu_per_request({"server": cluster.proc.pid, "kubectl": pf.pid, "echo": echo},
                                            lambda: wrk(f"http://127.0.0.1:{local}/", d, c), d)
            direct_new, direct_new_cpu = cpu_per_request(
                {"echo": echo}, lambda: wrk(f"http://{ip['web']}:8080/", d, c, close=True), d)
            pf_new, pf_new_cpu = cpu_per_request({"server": cluster.proc.pid, "kubectl": pf.pid, "echo": echo},
                                                 lambda: wrk(f"http://127.0.0.1:{local}/", d, c, close=True), d)
            direct_dl = download(f"http://{ip['files']}:8090/big.bin")
            # CPU per MiB of the download: "requests" of 1 MiB over a 1 s "duration"
            pf_dl_rate, pf_dl_cpu = cpu_per_request(
                {"server": cluster.proc.pid, "kubectl": pf2.pid},
                lambda: 64 / download(f"http://127.0.0.1:{files_local}/big.bin"), 1)
            pf_dl = 64 / pf_dl_rate
        finally:
            for proc in (pf, pf2):
                proc.terminate()
                proc.wait(10)
        rows += [
            (f"keep-alive req/s, {c} connections: port-forward / direct",
             f"{pf_ka:,.0f} / {direct_ka:,.0f}", f"ratio {pf_ka / direct_ka:.2f}"),
            ("CPU µs (user+sys) per keep-alive request through port-forward: server / kubectl / echo",
             f"{pf_cpu['server']} / {pf_cpu['kubectl']} / {pf_cpu['echo']}", f"direct: echo {direct_cpu['echo']}"),
            (f"new connection per request req/s, {c} connections: port-forward / direct",
             f"{pf_new:,.0f} / {direct_new:,.0f}", f"ratio {pf_new / direct_new:.2f}"),
            ("CPU µs (user+sys) per new-connection request through port-forward: server / kubectl / echo",
             f"{pf_new_cpu['server']} / {pf_new_cpu['kubectl']} / {pf_new_cpu['echo']}",
             f"direct: echo {direct_new_cpu['echo']}"),
            ("64 MiB download MiB/s: port-forward / direct", f"{64 / pf_dl:,.0f} / {64 / direct_dl:,.0f}",
             f"ratio {direct_dl / pf_dl:.2f}"),
            ("CPU µs (user+sys) per MiB downloaded through port-forward: server / kubectl",
             f"{pf_dl_cpu['server']} / {pf_dl_cpu['kubectl']}", ""),
        ]
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}")
    print("| what | median / value | p90 / ratio |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
