"""kubectl exec / attach / run -i in netns mode: the command sees the pod's view (hostname, resolv.conf, the
volumes at their mountPath, the pod's network), with the container's environment."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.netns.cluster import NetnsCluster

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "viewer"},  # /srv-nk-i13: not on the host
       "spec": {"terminationGracePeriodSeconds": 1,
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "containers": [{"name": "main", "image": "busybox", "workingDir": "/srv-nk-i13",
                                "env": [{"name": "GREETING", "value": "from-spec"}],
                                "command": ["sh", "-c", "echo seeded > /srv-nk-i13/seed; sleep 3600"],
                                "volumeMounts": [{"name": "scratch", "mountPath": "/srv-nk-i13"}]}]}}


def test_exec_sees_the_pods_view(cluster: NetnsCluster) -> None:
    cluster.apply([POD])
    cluster.kubectl("wait", "--for=condition=Ready", "pod/viewer", "--timeout=60s", timeout=90)
    assert cluster.kubectl("exec", "viewer", "--", "hostname").stdout == "viewer\n"
    resolv = cluster.kubectl("exec", "viewer", "--", "cat", "/etc/resolv.conf").stdout
    assert resolv == cluster.in_pod("viewer", "cat", "/etc/resolv.conf").stdout
    assert "svc.cluster.local" in resolv
    assert cluster.kubectl("exec", "viewer", "--", "ls", "/srv-nk-i13").stdout.split() == ["seed"]
    assert cluster.kubectl("exec", "viewer", "--", "pwd").stdout == "/srv-nk-i13\n"
    env = cluster.kubectl("exec", "viewer", "--", "env").stdout.splitlines()
    assert "GREETING=from-spec" in env and "HOSTNAME=viewer" in env
    pod_ip = cluster.get("pod", "viewer")["status"]["podIP"]
    addrs = cluster.kubectl("exec", "viewer", "--", "ip", "-o", "-4", "addr", "show").stdout
    assert pod_ip in addrs
    code = cluster.kubectl("exec", "viewer", "--", "sh", "-c", "exit 9", check=False)
    assert code.returncode == 9 and "command terminated with exit code 9" in code.stderr


def test_exec_stdin_round_trip_and_run_rm(cluster: NetnsCluster) -> None:
    cluster.apply([POD])
    cluster.kubectl("wait", "--for=condition=Ready", "pod/viewer", "--timeout=60s", timeout=90)
    data = os.urandom(1 << 20).hex()  # text: the cluster's run() speaks str
    out = cluster.kubectl("exec", "-i", "viewer", "--", "cat", input=data, timeout=60).stdout
    assert out == data
    done = cluster.kubectl("run", "tmp", "--rm", "-i", "--image=busybox", "--restart=Never", "--",
                           "sh", "-c", "hostname; cat /etc/hostname", input="", timeout=60)
    assert "tmp\ntmp\n" in done.stdout, done.stderr
    deadline = time.monotonic() + 30
    while "tmp" in _names(cluster) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "tmp" not in _names(cluster)


def _names(cluster: NetnsCluster) -> list[str]:
    return [p["metadata"]["name"] for p in cluster.get("pods")["items"]]


def test_port_forward_reaches_a_port_bound_to_the_pods_localhost(cluster: NetnsCluster) -> None:
    cluster.apply([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "local-only"},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                        {"name": "main", "image": "busybox",
                         "command": ["python3", "-m", "http.server", "--bind", "127.0.0.1", "8000",
                                     "--directory", "/etc"]}]}}])
    cluster.kubectl("wait", "--for=condition=Ready", "pod/local-only", "--timeout=60s", timeout=90)
    deadline = time.monotonic() + 30  # a refused first connection would end kubectl's forwarding (as upstream)
    while cluster.in_pod("local-only", "curl", "-s", "http://127.0.0.1:8000/hostname", check=False).returncode:
        assert time.monotonic() < deadline, "the pod's server never listened"
        time.sleep(0.1)
    proc = subprocess.Popen(["ip", "netns", "exec", cluster.name, "kubectl", "--kubeconfig", str(cluster.kubeconfig),
                             "port-forward", "pod/local-only", "18080:8000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"Forwarding from")
        got = cluster.run("curl", "-s", "http://127.0.0.1:18080/hostname", check=False)
        assert got.stdout == "local-only\n", got
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_kubectl_cp_both_ways(cluster: NetnsCluster, tmp_path: Path) -> None:
    cluster.apply([POD])
    cluster.kubectl("wait", "--for=condition=Ready", "pod/viewer", "--timeout=60s", timeout=90)
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(10 << 20))
    cluster.kubectl("cp", str(source), "viewer:/tmp/copied.bin", timeout=120)
    # inside the pod's own /tmp (a private tmpfs), not the node's
    assert cluster.in_pod("viewer", "ls", "-l", "/tmp/copied.bin").returncode == 0
    assert not os.path.exists("/tmp/copied.bin")
    back = tmp_path / "out.bin"
    cluster.kubectl("cp", "viewer:/tmp/copied.bin", str(back), timeout=120)
    assert back.read_bytes() == source.read_bytes()


def test_debug_container_sees_the_targets_network(cluster: NetnsCluster) -> None:
    cluster.apply([POD])
    cluster.kubectl("wait", "--for=condition=Ready", "pod/viewer", "--timeout=60s", timeout=90)
    pod_ip = cluster.get("pod", "viewer")["status"]["podIP"]
    done = cluster.kubectl("debug", "viewer", "-i", "--image=busybox", "--target=main", "--container=netdbg", "--",
                           "sh", "-c", "sleep 1; ip -o -4 addr show; hostname", input="", timeout=60)
    assert pod_ip in done.stdout and "viewer" in done.stdout.split(), done


def test_memory_limit_and_top_in_netns_mode(cluster: NetnsCluster) -> None:
    hog = "import time; b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)"
    cluster.apply([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nshog"},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                        {"name": "hog", "image": "busybox", "command": ["python3", "-c", hog],
                         "resources": {"limits": {"memory": "64Mi"}}}]}},
                   {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nsbusy"},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                        {"name": "spin", "image": "busybox", "command": ["sh", "-c", "while :; do :; done"]}]}}])
    deadline = time.monotonic() + 60
    while True:
        cs = (cluster.get("pod", "nshog").get("status") or {}).get("containerStatuses") or [{}]
        last = (cs[0].get("lastState") or {}).get("terminated") or {}
        if last.get("reason") == "OOMKilled" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert last.get("reason") == "OOMKilled" and last.get("exitCode") == 137, cs
    deadline = time.monotonic() + 40
    while True:
        top = cluster.kubectl("top", "pod", "nsbusy", "--no-headers", check=False)
        fields = top.stdout.split()
        if (top.returncode == 0 and len(fields) >= 2 and fields[1].rstrip("m").isdigit()
                and int(fields[1].rstrip("m")) > 0) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert top.returncode == 0 and int(fields[1].rstrip("m")) > 0, top
    cluster.kubectl("delete", "pod", "nshog", "nsbusy", "--wait=false")
