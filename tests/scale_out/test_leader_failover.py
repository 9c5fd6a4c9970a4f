"""Leader election across API servers on one etcd: kill -9 the server whose controllers lead while a
Deployment scales 10 -> 50; another server's controllers take over within the lease duration, the Deployment
reaches 50 ready pods, and no ReplicaSet or pod is created twice. Then the same cluster keeps serving with a
three-member etcd that loses a member."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable

import pytest
from tests.conftest import KUBECTL, Server
from tests.etcd_cluster import ETCD, EtcdCluster, running_etcd
from tests.polling import eventually
from tests.scale_out.conftest import LEASE, RETRY, control_plane_args, new_server, ranges

MARK = "testmark"  # an annotation the test writes last; no dots: it is a custom-columns path


def lease_holder(srv: Server) -> str:
    lease = json.loads(srv.kubectl("get", "lease", "-n", "kube-system", "kube-controller-manager",
                                   "-o", "json").stdout)
    return str(lease["spec"].get("holderIdentity") or "")


def identity(srv: Server) -> str:
    return (srv.data_dir / "identity").read_text().strip()


def sleeper(name: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "main", "image": "busybox",
                                                           "command": ["sleep", "3600"]}]}}}}


def ready_replicas(srv: Server, name: str) -> int:
    dep = json.loads(srv.kubectl("get", "deployment", name, "-o", "json").stdout)
    return int(dep.get("status", {}).get("readyReplicas") or 0)


def test_kill9_of_the_leading_server_while_scaling(etcd: EtcdCluster, start: Callable[..., Server]) -> None:
    common = [*control_plane_args(etcd), *ranges()]
    # The node (agent, proxy, DNS) runs beside the control plane: killing a controller server leaves pods alone.
    node = start(*common, "--components=agent,proxy,dns")
    candidates = [start(*common, "--components=controllers", "--no-agent") for _ in range(2)]
    by_identity = {identity(srv): srv for srv in candidates}
    holder = eventually(lambda: lease_holder(node) in by_identity and lease_holder(node), timeout=30,
                        what="a leader")
    leader = by_identity[holder]
    (other,) = [srv for srv in candidates if srv is not leader]

    added: list[str] = []  # "pod/NAME" or "replicaset/NAME", one per event
    marks: set[str] = set()  # the same, for events of objects carrying the test's mark annotation
    columns = f"custom-columns=NAME:.metadata.name,MARK:.metadata.annotations.{MARK}"
    watches = {kind: subprocess.Popen([KUBECTL, "get", f"{kind}s", "-l", "app=scale", "--watch", "-o", columns,
                                       "--no-headers"], env={**os.environ, "KUBECONFIG": str(node.kubeconfig)},
                                      stdout=subprocess.PIPE, text=True) for kind in ("pod", "replicaset")}

    def read(kind: str, watch: subprocess.Popen[str]) -> None:
        for line in watch.stdout or []:
            name, mark = line.split()
            added.append(f"{kind}/{name}")
            if mark == "done":
                marks.add(f"{kind}/{name}")
    for kind, watch in watches.items():
        threading.Thread(target=read, args=(kind, watch), daemon=True).start()
    try:
        node.apply(sleeper("scale", 10))
        eventually(lambda: ready_replicas(node, "scale") == 10, timeout=120, what="10 ready pods")
        node.kubectl("scale", "deployment", "scale", "--replicas=50")
        leader.kill9()
        killed_at = time.monotonic()
        eventually(lambda: lease_holder(node) == identity(other), timeout=LEASE * 3, interval=0.2,
                   what="a new leader")
        took = time.monotonic() - killed_at
        # the follower waits out the lease from its last observation of a renewal (≤ one retry period before
        # the kill), then retries every retry period (jitter 1.2); slack for a loaded machine
        assert took <= LEASE + 2.4 * RETRY + 3, f"takeover took {took:.1f}s"
        eventually(lambda: ready_replicas(node, "scale") == 50, timeout=240, interval=0.5, what="50 ready pods")
        pods = json.loads(node.kubectl("get", "pods", "-l", "app=scale", "-o", "json").stdout)["items"]
        replicasets = json.loads(node.kubectl("get", "replicasets", "-l", "app=scale", "-o", "json").stdout)["items"]
        assert len(replicasets) == 1
        assert len(pods) == 50 and not any(p["metadata"].get("deletionTimestamp") for p in pods)
        # A write after all that: once each watch has shown it, it has shown every earlier event (in order).
        last = {"pod": pods[0]["metadata"]["name"], "replicaset": replicasets[0]["metadata"]["name"]}
        for kind, name in last.items():
            node.kubectl("annotate", kind, name, f"{MARK}=done")
        eventually(lambda: marks == {f"{kind}/{name}" for kind, name in last.items()}, timeout=30,
                   what="the watches to catch up")
    finally:
        for watch in watches.values():
            watch.terminate()
            watch.wait(10)
    created = set(added)
    assert len([n for n in created if n.startswith("pod/")]) == 50, sorted(created)  # none created and removed
    assert len([n for n in created if n.startswith("replicaset/")]) == 1


def test_three_member_etcd_keeps_serving_when_a_member_dies() -> None:
    if ETCD is None:
        pytest.skip("etcd (Debian's etcd-server) is not installed")
    with running_etcd(3) as etcd:
        srv = new_server(*control_plane_args(etcd), *ranges(), "--components=controllers", "--no-agent")
        srv.start(timeout=60)
        try:
            srv.kubectl("create", "configmap", "before", "--from-literal=v=1")
            watch = subprocess.Popen([KUBECTL, "get", "configmaps", "--watch-only", "-o", "name"],
                                     env={**os.environ, "KUBECONFIG": str(srv.kubeconfig)}, stdout=subprocess.PIPE,
                                     text=True)
            seen: list[str] = []
            threading.Thread(target=lambda: seen.extend(line.strip() for line in watch.stdout or []),
                             daemon=True).start()
            try:
                # kubectl lists, then watches from the list's resourceVersion: a change it prints proves it watches
                pokes = iter(range(2, 1000))
                eventually(lambda: srv.kubectl("patch", "configmap", "before", "-p",
                                               json.dumps({"data": {"v": str(next(pokes))}})) and
                           "configmap/before" in seen, timeout=30, interval=0.2, what="the watch to start")
                etcd.members[0].kill()  # the member the server talks to first
                for i in range(5):
                    srv.kubectl("create", "configmap", f"after-{i}", "--from-literal=v=1", timeout=60)
                names = {item["metadata"]["name"] for item in
                         json.loads(srv.kubectl("get", "configmaps", "-o", "json").stdout)["items"]}
                assert {"before", *(f"after-{i}" for i in range(5))} <= names
                eventually(lambda: {f"configmap/after-{i}" for i in range(5)} <= set(seen), timeout=30,
                           what=f"watch events after the member died: {seen}")
            finally:
                watch.terminate()
                watch.wait(10)
        finally:
            srv.stop()
