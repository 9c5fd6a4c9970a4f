"""Time-to-ready of `nanokube server`, phase by phase from the command being run, and its idle memory.

Phases (as minikube's time-to-k8s, measured from the moment the command is executed):
  api         GET /readyz answers 200
  kubernetes  the `kubernetes` Service exists
  dns         the cluster DNS answers kubernetes.default.svc.cluster.local with its ClusterIP
  running     an echo Deployment (applied as soon as the API answers) has a Running pod
  clusterip   the echo answers HTTP through its ClusterIP
  nodeport    ... through <node IP>:<nodePort>
  lb          ... through its LoadBalancer address
Then (first run only) the article's objects are applied and, after --idle seconds, the RSS of the whole
process tree (server + pods) is summed (also PSS, which does not count shared pages twice).

Every run happens in a fresh network namespace (`unshare --net`, root), so the default addresses never
collide with another server on the host and nothing leaks. Usage:
    python bench/time_to_ready.py [--mode loopback|netns] [--runs 5] [--idle 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_tools import require

REPO = Path(__file__).resolve().parent.parent
PHASES = ["api", "kubernetes", "dns", "running", "clusterip", "nodeport", "lb"]
PUBLISHED = {"k3d v5.8": 19.9, "kind v0.29": 33.0, "minikube v1.36 (docker)": 50.8}
ECHO = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers: [{name: echo, image: nanokube/echo, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
"""


# --- inside the fresh network namespace ----------------------------------------------------------------------

def http_get(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


def dns_answers(server: str, name: str, want: str) -> bool:
    import dns.exception
    import dns.message
    import dns.query

    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=0.2)
    except (dns.exception.DNSException, OSError):
        return False
    return any(rd.to_text() == want for rr in reply.answer for rd in rr)


def one_run(mode: str, idle: float) -> dict:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    load = os.getloadavg()[0]
    data = Path(tempfile.mkdtemp(prefix="nanokube-ttr-"))
    log = open(data.parent / (data.name + ".log"), "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "nanokube", "server", "--network", mode, "--data-dir", str(data)],
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        result = asyncio.run(measure(mode, data, t0))
        result["loadavg_1m_at_start"] = round(load, 2)
        if idle:
            subprocess.run(["kubectl", "--kubeconfig", str(data / "kubeconfig.yaml"), "apply", "-f",
                            str(REPO / "examples/article")], check=True, capture_output=True)
            time.sleep(idle)
            result["idle"] = tree_memory(proc.pid)
            result["idle"]["seconds"] = idle
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


async def measure(mode: str, data: Path, t0: float) -> dict:
    from nanokube.client import ApiClient

    times: dict[str, float] = {}
    mark = lambda phase: times.setdefault(phase, round(time.perf_counter() - t0, 3))  # noqa: E731
    while not (data / "token").exists() or not (data / "pki" / "ca.crt").exists():
        await asyncio.sleep(0.005)
    client = ApiClient("https://127.0.0.1:6443", (data / "token").read_text().strip(),
                       ca_file=str(data / "pki" / "ca.crt"))
    while True:
        try:
            await client.request("GET", "/readyz")
            break
        except Exception:  # not listening yet
            await asyncio.sleep(0.005)
    mark("api")
    while True:
        try:
            svc = await client.request("GET", "/api/v1/namespaces/default/services/kubernetes")
            break
        except Exception:
            await asyncio.sleep(0.005)
    mark("kubernetes")
    kubeconfig = data / "kubeconfig.yaml"
    while not kubeconfig.exists():
        await asyncio.sleep(0.005)
    apply = await asyncio.create_subprocess_exec("kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", "-",
                                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    await apply.communicate(ECHO.encode())
    kube_ip = svc["spec"]["clusterIP"]
    dns_server = "10.96.0.10" if mode == "netns" else "127.96.0.10"
    echo_ip = lb_ip = node_ip = ""
    while len(times) < len(PHASES):
        if "dns" not in times and dns_answers(dns_server, "kubernetes.default.svc.cluster.local", kube_ip):
            mark("dns")
        if "running" not in times:
            pods = await client.request("GET", "/api/v1/namespaces/default/pods", params={"labelSelector": "app=echo"})
            if any((p.get("status") or {}).get("phase") == "Running" for p in pods.get("items") or []):
                mark("running")
        if not (echo_ip and lb_ip and node_ip):
            try:
                echo = await client.request("GET", "/api/v1/namespaces/default/services/echo")
                echo_ip = echo["spec"].get("clusterIP", "")
                lb_ip = ((echo.get("status") or {}).get("loadBalancer", {}).get("ingress") or [{}])[0].get("ip", "")
                node = (await client.request("GET", "/api/v1/nodes")).get("items") or []
                node_ip = node[0]["status"]["addresses"][0]["address"] if node else ""
            except Exception:  # not there yet
                pass
        if echo_ip and "clusterip" not in times and http_get(echo_ip, 80):
            mark("clusterip")
        if node_ip and "nodeport" not in times and http_get(node_ip, 30080):
            mark("nodeport")
        if lb_ip and "lb" not in times and http_get(lb_ip, 80):
            mark("lb")
        if time.perf_counter() - t0 > 60:
            raise RuntimeError(f"not ready after 60 s: {times}")
        await asyncio.sleep(0.005)
    await client.close()
    return {"mode": mode, "phases": times}


def tree_memory(root: int) -> dict:
    """Sum of VmRSS and Pss over the process and all its descendants (kB -> MB)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            rest = stat[stat.rindex(")") + 2:].split()
            children.setdefault(int(rest[1]), []).append(int(entry))
            names[int(entry)] = stat[stat.index("(") + 1:stat.rindex(")")]
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    rss = pss = 0
    per: list[dict] = []
    for pid in tree:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        rss += kb
        pss += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
        words = [a.decode(errors="replace") for a in argv if a]
        words = words[:1] + [w for w in words[1:] if not w.startswith("-")][:2]  # program, first operands
        what = "nanokube server" if pid == root else " ".join(w.rsplit("/", 1)[-1] for w in words)
        per.append({"pid": pid, "process": what[:60], "rss_mb": round(kb / 1024, 1)})
    return {"processes": len(per), "rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1),
            "server_rss_mb": next((p["rss_mb"] for p in per if p["pid"] == root), 0.0), "by_process": per}


# --- outside: one fresh network namespace per run ------------------------------------------------------------

def run_isolated(mode: str, idle: float) -> dict:
    cmd = ["unshare", "--net", sys.executable, __file__, "--inner", "--mode", mode, "--idle", str(idle)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="loopback", choices=["loopback", "netns"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--idle", type=float, default=60.0, help="seconds idle before measuring memory (run 1)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        print(json.dumps(one_run(args.mode, args.idle)))
        return 0
    require("unshare", *(["ip", "nft"] if args.mode == "netns" else []),
            root="each run gets a fresh network namespace")
    runs = [run_isolated(args.mode, args.idle if i == 0 else 0) for i in range(args.runs)]
    medians = {p: round(statistics.median(r["phases"][p] for r in runs), 3) for p in PHASES}
    print(f"nanokube server --network {args.mode}: median of {len(runs)} runs, seconds from the command")
    print("  " + "  ".join(f"{p}={medians[p]}" for p in PHASES))
    for i, r in enumerate(runs, 1):
        print(f"  run {i}: " + " ".join(f"{p}={r['phases'][p]}" for p in PHASES)
              + f"  (load average {r.get('loadavg_1m_at_start', '?')} on {os.cpu_count()} CPUs)")
    print("published (app + DNS ready): " + ", ".join(f"{k} {v} s" for k, v in PUBLISHED.items()))
    if "idle" in runs[0]:
        m = runs[0]["idle"]
        print(f"idle after {m['seconds']:.0f} s with the article applied: process tree RSS {m['rss_mb']} MB "
              f"(PSS {m['pss_mb']} MB) over {m['processes']} processes; nanokube server alone {m['server_rss_mb']} MB")
        for p in m["by_process"]:
            print(f"    {p['rss_mb']:>7} MB  {p['process']}")
        print(f"goal (issue 7, whole tree under 100 MB of RSS): {'met' if m['rss_mb'] < 100 else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"mode": args.mode, "runs": runs, "median": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
