"""Soak: an hour of a careless cluster's life compressed into minutes, with kill -9 of the server every
--kill-every seconds (issue 14's acceptance).

One `nanokube server --network loopback` (random 127.x ranges, a data dir of its own) runs an echo Deployment
(2 replicas, readiness probe) behind a Service. For --duration seconds, at the same time and bounded in rate:
  writes      ConfigMaps created (the oldest past 200 deleted, so the data set keeps its size), one counter
              ConfigMap updated each time, Services created and deleted (ClusterIPs and NodePorts allocated
              and freed); every acknowledged write is remembered
  watch       a watch on ConfigMaps, resumed from its last resourceVersion (relisting on 410)
  rollouts    `kubectl rollout restart` of the Deployment every --rollout-every seconds
  dns         A queries for the Service's name at the cluster DNS
  traffic     HTTP on a new connection to the Service's ClusterIP
and every --kill-every seconds the server is killed with SIGKILL (its process alone, as a crash) and started
again on the same data dir. Failures while the server is down are counted, not judged. At the end:
  lost writes           an acknowledged create missing, an acknowledged delete undone, or
                        the counter ConfigMap not at its last acknowledged update          (must be 0)
  duplicate allocations two Services holding one ClusterIP or NodePort                     (must be 0)
  orphan processes      pod processes still alive after a kill, once its reaper finished,
                        and after the final clean stop                                     (must be 0)
  RSS                   each instance's RSS after --kill-every seconds under load (after a first
                        --warmup instance): the last vs the first                         (within 10 %)

    PYTHONPATH=src python bench/soak.py                      # quick: 2 minutes, a kill every 30 s
    PYTHONPATH=src python bench/soak.py --duration 600 --kill-every 60 --warmup 120   # the 10-minute run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import Server
from tests.rollout_load import NAME, manifests

from nanokube.testing.ports import free_port

CM = "/api/v1/namespaces/default/configmaps"
WINDOW = 200  # ConfigMaps kept: each create past it deletes the oldest
SVC = "/api/v1/namespaces/default/services"


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pod_processes(data_dir: Path) -> list[int]:
    marker = f"NANOKUBE_POD_DIR={data_dir}/pods/".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if marker in fh.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


class Api:
    def __init__(self, srv: Server) -> None:
        self.srv = srv
        ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))
        self.pool = urllib3.PoolManager(ssl_context=ctx, retries=False, maxsize=8)
        self.headers = {"Authorization": f"Bearer {srv.token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
        resp = self.pool.request(method, self.srv.url + path, body=json.dumps(body).encode() if body else None,
                                 headers=self.headers, timeout=timeout)
        return resp.status, json.loads(resp.data) if resp.data else None


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        octets = random.sample(range(100, 230), 3)
        data = Path(tempfile.mkdtemp(prefix="nk-soak-"))
        self.srv = Server(data_dir=data / "data", api_port=free_port(), args=[
            "--network", "loopback", "--service-cidr", f"127.{octets[0]}.0.0/16", "--pod-cidr",
            f"127.{octets[1]}.0.0/16", "--lb-pool", f"127.{octets[2]}.0.0/24", "--dns-upstream", "127.0.0.1:9",
            "--history-seconds", str(args.history_seconds)])
        self.scratch = data
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.acked: set[str] = set()  # acknowledged creates not deleted since
        self.deleted: set[str] = set()  # acknowledged deletes
        self.counter = 0  # the last acknowledged value of the counter ConfigMap
        self.cluster_ip = ""
        self.dns = ("", 0)
        self.orphans_after_kill = 0
        self.kills = 0

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    # -- the load ---------------------------------------------------------------------------------------
    def writes(self) -> None:
        """Creates, deletes (a window of WINDOW objects, so the data set stays the same size and RSS is
        comparable) and updates of one counter, each remembered once acknowledged."""
        api, n = Api(self.srv), 0
        while not self.stop.is_set():
            n += 1
            try:
                status, _ = api.call("POST", CM, {"metadata": {"name": f"soak-{n}"}, "data": {"n": str(n)}})
                if status == 201:
                    with self.lock:
                        self.acked.add(f"soak-{n}")
                    self.count("creates acknowledged")
                else:
                    self.count(f"creates answered {status}")
                if n > WINDOW:
                    status, _ = api.call("DELETE", f"{CM}/soak-{n - WINDOW}")
                    if status in (200, 404):
                        with self.lock:
                            self.acked.discard(f"soak-{n - WINDOW}")
                            self.deleted.add(f"soak-{n - WINDOW}")
                        self.count("deletes acknowledged")
                status, _ = api.call("PUT", f"{CM}/counter", {"metadata": {"name": "counter"},
                                                               "data": {"value": str(n)}})
                if status == 200:
                    self.counter = n
                    self.count("updates acknowledged")
                if n % 10 == 0:
                    spec = {"ports": [{"port": 80}], "type": "NodePort" if n % 20 == 0 else "ClusterIP"}
                    status, _ = api.call("POST", SVC, {"metadata": {"name": f"alloc-{n}"}, "spec": spec})
                    self.count("services created" if status == 201 else f"service creates answered {status}")
                    if n > 100:
                        status, _ = api.call("DELETE", f"{SVC}/alloc-{n - 100}")
                        self.count("services deleted" if status == 200 else f"service deletes answered {status}")
            except (urllib3.exceptions.HTTPError, OSError):
                self.count("writes failed (server down)")
                self.stop.wait(0.2)
            self.stop.wait(self.args.pause)

    def watch(self) -> None:
        api, rv = Api(self.srv), ""
        while not self.stop.is_set():
            try:
                if not rv:
                    _status, listed = api.call("GET", CM)
                    rv = listed["metadata"]["resourceVersion"]
                resp = api.pool.request("GET", f"{self.srv.url}{CM}?watch=1&resourceVersion={rv}&timeoutSeconds=20",
                                        headers=api.headers, preload_content=False, timeout=30)
                for line in resp.stream(65536):
                    for item in line.splitlines():
                        if not item.strip():
                            continue
                        event = json.loads(item)
                        if event["type"] == "ERROR":
                            rv = ""
                            self.count("watch relists (410)")
                            break
                        rv = event["object"]["metadata"]["resourceVersion"]
                        self.count("watch events")
                    if self.stop.is_set():
                        break
                resp.release_conn()
            except (urllib3.exceptions.HTTPError, OSError, ValueError, KeyError, TypeError):
                self.count("watch reconnects")
                self.stop.wait(0.2)

    def rollouts(self) -> None:
        while not self.stop.wait(self.args.rollout_every):
            done = self.srv.kubectl("rollout", "restart", f"deployment/{NAME}", check=False, timeout=30)
            self.count("rollouts started" if done.returncode == 0 else "rollouts refused (server down)")

    def dns_queries(self) -> None:
        name = f"{NAME}.default.svc.cluster.local."
        while not self.stop.is_set():
            try:
                answer = dns.query.udp(dns.message.make_query(name, "A"), self.dns[0], port=self.dns[1], timeout=1)
                ok = any(rd.to_text() == self.cluster_ip for rrset in answer.answer for rd in rrset)
                self.count("dns answers" if ok else "dns wrong answers")
            except (dns.exception.DNSException, OSError):
                self.count("dns unanswered")
            self.stop.wait(self.args.pause)

    def traffic(self) -> None:
        while not self.stop.is_set():
            try:
                with socket.create_connection((self.cluster_ip, 80), timeout=2) as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := sock.recv(65536):
                        data += chunk
                self.count("http ok" if data.startswith(b"HTTP/1.1 200") else "http bad answer")
            except OSError:
                self.count("http failed")
                self.stop.wait(0.05)
            self.stop.wait(self.args.pause)

    # -- the run ----------------------------------------------------------------------------------------
    def kill_and_restart(self) -> None:
        assert self.srv.proc is not None
        os.kill(self.srv.proc.pid, signal.SIGKILL)  # the server alone, as a crash
        self.srv.proc.wait(10)
        self.srv.proc = None
        self.kills += 1
        lock = self.srv.data_dir / "pods" / ".reaper.lock"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _locked(lock):
            time.sleep(0.05)
        left = pod_processes(self.srv.data_dir)
        self.orphans_after_kill += len(left)
        self.srv.start(timeout=60)

    def run(self) -> dict[str, Any]:
        srv = self.srv
        srv.data_dir.mkdir(parents=True)
        srv.start(timeout=60)
        for obj in manifests():
            srv.apply(obj)
        srv.kubectl("rollout", "status", f"deployment/{NAME}", "--timeout=120s", timeout=130)
        self.cluster_ip = json.loads(srv.kubectl("get", "svc", NAME, "-o", "json").stdout)["spec"]["clusterIP"]
        field = next(f for f in srv.ready_line.split() if f.startswith("dns="))
        host, _, port = field[4:].rpartition(":")
        self.dns = (host, int(port))
        Api(srv).call("POST", CM, {"metadata": {"name": "counter"}, "data": {"value": "0"}})
        workers = [threading.Thread(target=t, daemon=True) for t in
                   (self.writes, self.watch, self.rollouts, self.dns_queries, self.traffic)]
        for w in workers:
            w.start()
        # Instance 0 warms up (the store and its page cache grow towards their steady size), then is killed;
        # every later instance runs --kill-every seconds under load, its RSS is read, and it is killed, except
        # the last, which is stopped cleanly at the end. So every RSS is read at the same age.
        began = time.monotonic()
        time.sleep(self.args.warmup)
        self.kill_and_restart()
        rss: list[int] = []
        while True:
            time.sleep(self.args.kill_every)
            assert srv.proc is not None
            rss.append(rss_kib(srv.proc.pid))
            if time.monotonic() - began + self.args.kill_every > self.args.duration:
                break
            self.kill_and_restart()
        rss_start, rss_end = rss[0], rss[-1]
        self.stop.set()
        for w in workers:
            w.join(40)
        api = Api(srv)
        _, listed = api.call("GET", CM, timeout=60)
        present = {item["metadata"]["name"]: item for item in listed["items"]}
        lost = sorted(self.acked - set(present)) + sorted(self.deleted & set(present))
        stored_counter = int(present["counter"]["data"]["value"])
        if stored_counter != self.counter:
            lost.append(f"counter: {stored_counter}, acknowledged {self.counter}")
        _, services = api.call("GET", SVC, timeout=60)
        ips = [s["spec"].get("clusterIP") for s in services["items"] if s["spec"].get("clusterIP") not in (None, "None")]
        ports = [p["nodePort"] for s in services["items"] for p in s["spec"].get("ports") or [] if p.get("nodePort")]
        code = srv.stop()
        orphans_at_end = pod_processes(srv.data_dir)
        acknowledged = sum(self.counts.get(k, 0) for k in ("creates acknowledged", "deletes acknowledged",
                                                            "updates acknowledged"))
        return {"duration_s": self.args.duration, "kills": self.kills, "counts": dict(sorted(self.counts.items())),
                "acknowledged_writes": acknowledged, "lost_writes": len(lost), "lost_examples": lost[:5],
                "services": len(services["items"]), "duplicate_cluster_ips": len(ips) - len(set(ips)),
                "duplicate_node_ports": len(ports) - len(set(ports)),
                "orphans_after_kills": self.orphans_after_kill, "orphans_at_end": len(orphans_at_end),
                "rss_kib_per_instance": rss, "rss_start_kib": rss_start, "rss_end_kib": rss_end,
                "rss_change_pct": round(100 * (rss_end - rss_start) / max(rss_start, 1), 1), "stop_exit_code": code}


def _locked(path: Path) -> bool:
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if we took it


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=120, help="seconds of load (default 120; 600 for the full run)")
    p.add_argument("--kill-every", type=float, default=30, help="seconds between kill -9s (default 30)")
    p.add_argument("--warmup", type=float, default=60, help="seconds of load before the first kill (default 60)")
    p.add_argument("--history-seconds", type=float, default=60,
                   help="the server's watch history window (default 60: compressed like the hour, so the store "
                        "reaches its steady size within the warm-up)")
    p.add_argument("--rollout-every", type=float, default=15)
    p.add_argument("--pause", type=float, default=0.02, help="seconds each load thread waits between requests")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    soak = Soak(args)
    try:
        result = soak.run()
    finally:
        soak.stop.set()
        soak.srv.stop()
        shutil.rmtree(soak.scratch, ignore_errors=True)
        shutil.rmtree(Path(tempfile.gettempdir()) / f"nanokube-tests-{os.getpid()}", ignore_errors=True)
    for key, value in result.items():
        print(f"{key:22} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = (result["lost_writes"] == 0 and result["duplicate_cluster_ips"] == 0 and result["duplicate_node_ports"] == 0
          and result["orphans_after_kills"] == 0 and result["orphans_at_end"] == 0
          and abs(result["rss_change_pct"]) <= 10)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
