"""`nanokube agent` joins a second node to a loopback server: its own /24 of the pod CIDR, pods scheduled
onto it and reached through the server's ClusterIP, its NodePort on its own node IP; when it stops, its
pods stop, and once its Lease expires the node turns NotReady and its pods leave the endpoints."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import Server, start_server
from tests.loopback.conftest import _free_octets, echo_deployment, http_get, kubectl_json, manifest, service
from tests.polling import eventually

from nanokube.testing.ports import free_port

NODE2 = "node2"
NODE2_IP = "127.0.0.2"
NODE_PORT = 31234


@dataclass
class Agent:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def start_agent(srv: Server, *extra: str, timeout: float = 20.0) -> Agent:
    data_dir = Path(tempfile.mkdtemp(prefix="nanokube-agent-"))
    log_path = data_dir.with_suffix(".log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nanokube", "agent", "--server", srv.url,
             "--token-file", str(srv.data_dir / "token"), "--data-dir", str(data_dir), "--network", "loopback",
             "--node-name", NODE2, "--node-ip", NODE2_IP, "--node-lease-duration-seconds", "2",
             "--proxy-status-port", "0", *extra],
            stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    agent = Agent(proc, data_dir, log_path)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"agent exited with {proc.returncode}:\n{agent.logs()[-3000:]}")
        try:
            buf += os.read(proc.stdout.fileno(), 65536)
        except BlockingIOError:
            pass
        if b"nanokube node ready" in buf:
            return agent
        time.sleep(0.02)
    stop_agent(agent, signal.SIGKILL)
    raise AssertionError(f"agent not ready in {timeout}s:\n{agent.logs()[-3000:]}")


def stop_agent(agent: Agent, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    if agent.proc.poll() is None:
        agent.proc.send_signal(sig)
        try:
            agent.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(agent.proc.pid, signal.SIGKILL)
            agent.proc.wait(5)
    if agent.proc.stdout:
        agent.proc.stdout.close()
    return agent.proc.returncode


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Server, Agent, dict[str, str]]]:
    svc, pod, lb = _free_octets(3)
    cidrs = {"--service-cidr": f"127.{svc}.0.0/16", "--pod-cidr": f"127.{pod}.0.0/16",
             "--lb-pool": f"127.{lb}.0.0/24"}
    flat = [x for kv in cidrs.items() for x in kv]
    srv = start_server("--network", "loopback", *flat, "--dns-upstream", "127.0.0.1:9",
                       "--node-monitor-grace-period", "3", "--node-name", "server1")
    agent = None
    try:
        agent = start_agent(srv, *flat)
        yield srv, agent, cidrs
    finally:
        if agent is not None:
            stop_agent(agent, signal.SIGKILL)
            shutil.rmtree(agent.data_dir, ignore_errors=True)
            agent.log_path.unlink(missing_ok=True)
        srv.stop()


def nodes(srv: Server) -> dict[str, dict]:
    return {n["metadata"]["name"]: n for n in kubectl_json(srv, "nodes")["items"]}


def is_ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions") or [])


def pods_by_node(srv: Server, selector: str) -> dict[str, dict[str, str]]:
    """node -> {pod name: pod IP} of the Running, Ready pods."""
    out: dict[str, dict[str, str]] = {}
    for pod in kubectl_json(srv, "pods", "-l", selector)["items"]:
        conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions") or []}
        if conds.get("Ready") == "True" and not pod["metadata"].get("deletionTimestamp"):
            out.setdefault(pod["spec"]["nodeName"], {})[pod["metadata"]["name"]] = pod["status"]["podIP"]
    return out


def processes_with_env(entry: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.encode() in env:
            found.append(int(pid))
    return found


def test_two_ready_nodes_with_their_own_pod_ranges(cluster: tuple[Server, Agent, dict[str, str]]) -> None:
    srv, _agent, cidrs = cluster
    listed = eventually(lambda: (n := nodes(srv)) and len(n) == 2 and all(map(is_ready, n.values())) and n,
                        what="2 Ready nodes")
    assert set(listed) == {"server1", NODE2}
    pod_net = ipaddress.ip_network(cidrs["--pod-cidr"])
    first, second = list(pod_net.subnets(new_prefix=24))[:2]
    assert listed["server1"]["spec"]["podCIDR"] == str(first)  # the server's node keeps the first /24
    assert listed[NODE2]["spec"]["podCIDR"] == str(second)
    assert listed[NODE2]["spec"]["podCIDRs"] == [str(second)]
    table = srv.kubectl("get", "nodes").stdout
    row = next(line.split() for line in table.splitlines() if line.startswith(NODE2))
    assert row[1:3] == ["Ready", "<none>"], table  # no control-plane role
    addresses = {a["type"]: a["address"] for a in listed[NODE2]["status"]["addresses"]}
    assert addresses["InternalIP"] == NODE2_IP


def test_exec_and_port_forward_reach_pods_on_both_nodes(cluster: tuple[Server, Agent, dict[str, str]]) -> None:
    """The server's own node is served in-process; the joined agent's through its kubelet port (the relay)."""
    srv, _agent, _cidrs = cluster
    for node in ("server1", NODE2):
        srv.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"on-{node}", "labels": {"pin": node}},
                   "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "echo", "image": "nanokube/echo"}]}})
    for node in ("server1", NODE2):
        srv.kubectl("wait", "--for=condition=Ready", f"pod/on-{node}", "--timeout=60s", timeout=90)
        done = srv.kubectl("exec", f"on-{node}", "--", "sh", "-c", "echo $NANOKUBE_POD_NAME; exit 3", check=False)
        assert done.returncode == 3 and done.stdout.strip() == f"on-{node}", (done.stdout, done.stderr)
        local = free_port()
        proc = subprocess.Popen(["kubectl", "--kubeconfig", str(srv.kubeconfig), "port-forward", f"pod/on-{node}",
                                 f"{local}:8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None and proc.stdout.readline().startswith(b"Forwarding from")
            for i in range(5):
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/n{i}", timeout=30) as reply:
                    assert f'"pod": "on-{node}"'.encode() in reply.read()
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
        srv.kubectl("delete", "pod", f"on-{node}", "--wait=false")


def test_pods_spread_over_both_nodes_and_the_service_reaches_them_then_the_node_goes(
        cluster: tuple[Server, Agent, dict[str, str]]) -> None:
    srv, agent, _cidrs = cluster
    srv.apply(manifest(echo_deployment("spread", 4),
                       service("spread", {"app": "spread"},
                               [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": NODE_PORT}],
                               type="NodePort")))
    placed = eventually(lambda: (p := pods_by_node(srv, "app=spread")) and sum(map(len, p.values())) == 4 and p,
                        what="4 ready pods")
    assert {len(v) for v in placed.values()} == {2} and set(placed) == {"server1", NODE2}, placed
    cidr = {name: ipaddress.ip_network(node["spec"]["podCIDR"]) for name, node in nodes(srv).items()}
    for node_name, pods in placed.items():
        assert all(ipaddress.ip_address(ip) in cidr[node_name] for ip in pods.values()), (node_name, pods)

    ip = srv.kubectl("get", "svc", "spread", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    every_pod = {name for pods in placed.values() for name in pods}
    seen = eventually(lambda: (s := {http_get(ip, 80)["pod"] for _ in range(40)}) == every_pod and s,
                      what="the ClusterIP reaching pods on both nodes")
    assert seen == every_pod
    # the joined node's proxy serves the node port on its own node IP (the server's on 127.0.0.1)
    assert eventually(lambda: http_get(NODE2_IP, NODE_PORT)["pod"] in every_pod, what="NodePort on node2")
    assert http_get("127.0.0.1", NODE_PORT)["pod"] in every_pod

    node2_ips = set(placed[NODE2].values())
    assert all(processes_with_env(f"POD_IP={pod_ip}") for pod_ip in node2_ips)
    t0 = time.monotonic()
    assert stop_agent(agent) == 0, agent.logs()[-3000:]
    assert time.monotonic() - t0 < 10
    for pod_ip in node2_ips:  # its pods stopped with it, nothing left running
        assert processes_with_env(f"POD_IP={pod_ip}") == []
        with pytest.raises(OSError):
            http_get(pod_ip, 8080, timeout=1)

    # The Lease runs out (grace 3 s): NotReady, and the node's pods leave the endpoints.
    eventually(lambda: not is_ready(nodes(srv)[NODE2]), timeout=15, what="node2 NotReady")
    row = next(line.split() for line in srv.kubectl("get", "nodes").stdout.splitlines() if line.startswith(NODE2))
    assert row[1] == "NotReady"

    def endpoints_left() -> bool:
        slices = kubectl_json(srv, "endpointslices", "-l", "kubernetes.io/service-name=spread")["items"]
        ready = {addr for s in slices for ep in s.get("endpoints") or []
                 if (ep.get("conditions") or {}).get("ready") for addr in ep["addresses"]}
        return ready == set(placed["server1"].values())

    eventually(endpoints_left, timeout=10, what="node2's pods out of the endpoints")
    served = {http_get(ip, 80)["pod"] for _ in range(20)}
    assert served == set(placed["server1"]), served
