"""DaemonSets on three loopback nodes: the server's own node plus two `nanokube agent` nodes, the real kubectl.
One pod per node; taints, nodeSelector and nodes leaving change where they run; a new template rolls."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator

import pytest
from tests.conftest import Server, start_server
from tests.loopback.conftest import _free_octets
from tests.multinode.test_join import Agent, start_agent, stop_agent
from tests.polling import eventually

pytestmark = pytest.mark.timeout(300)
NODES = {"server1": None, "dsnode2": "127.0.0.12", "dsnode3": "127.0.0.13"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Server, dict[str, Agent]]]:
    svc, pod, lb = _free_octets(3)
    flat = ["--service-cidr", f"127.{svc}.0.0/16", "--pod-cidr", f"127.{pod}.0.0/16"]
    srv = start_server("--network", "loopback", *flat, "--lb-pool", f"127.{lb}.0.0/24",
                       "--dns-upstream", "127.0.0.1:9", "--node-monitor-grace-period", "3", "--node-name", "server1")
    agents: dict[str, Agent] = {}
    try:
        for name, ip in NODES.items():
            if ip:
                agents[name] = start_agent(srv, *flat, "--node-name", name, "--node-ip", ip)
        yield srv, agents
    finally:
        for agent in agents.values():
            stop_agent(agent, signal.SIGKILL)
            shutil.rmtree(agent.data_dir, ignore_errors=True)
            agent.log_path.unlink(missing_ok=True)
        srv.stop()


def get(srv: Server, *what: str) -> dict:
    return json.loads(srv.kubectl("get", *what, "-o", "json").stdout)


def daemonset(name: str, **pod_spec: object) -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"ds": name}},
                     "template": {"metadata": {"labels": {"ds": name}},
                                  "spec": {"terminationGracePeriodSeconds": 2,
                                           "containers": [{"name": "main", "image": "nanokube/echo"}], **pod_spec}}}}


def placement(srv: Server, name: str) -> dict[str, str]:
    """node -> phase of the live pods of the DaemonSet."""
    pods = get(srv, "pods", "-l", f"ds={name}")["items"]
    return {p["spec"].get("nodeName", "?"): p["status"].get("phase", "") for p in pods
            if not p["metadata"].get("deletionTimestamp")}


def running_on(srv: Server, name: str, nodes: set[str]) -> bool:
    where = placement(srv, name)
    return set(where) == nodes and all(phase == "Running" for phase in where.values())


def test_one_pod_per_node_with_daemon_tolerations(cluster):
    srv, _agents = cluster
    eventually(lambda: len(get(srv, "nodes")["items"]) == 3, timeout=60)
    srv.apply(daemonset("every"))
    eventually(lambda: running_on(srv, "every", set(NODES)), timeout=90)
    status = eventually(lambda: (s := get(srv, "ds", "every")["status"]).get("numberReady") == 3 and s, timeout=60)
    assert status["desiredNumberScheduled"] == status["currentNumberScheduled"] == status["updatedNumberScheduled"] == 3
    pod = get(srv, "pods", "-l", "ds=every")["items"][0]
    assert {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"} in \
        pod["spec"]["tolerations"]
    term = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchFields"][0]["values"] == [pod["spec"]["nodeName"]]
    row = srv.kubectl("get", "ds", "every").stdout.splitlines()[1].split()
    assert row[:6] == ["every", "3", "3", "3", "3", "3"]


def test_node_selector_and_taints(cluster):
    srv, _agents = cluster
    srv.apply(daemonset("edge", nodeSelector={"role": "edge"}))
    srv.kubectl("label", "node", "dsnode2", "role=edge")
    eventually(lambda: running_on(srv, "edge", {"dsnode2"}), timeout=90)
    srv.kubectl("taint", "node", "dsnode2", "only=me:NoSchedule")
    srv.kubectl("label", "node", "dsnode3", "role=edge")
    # NoSchedule keeps the running pod (counted as misscheduled); the newly labelled node gets one
    eventually(lambda: running_on(srv, "edge", {"dsnode2", "dsnode3"}) and
               (s := get(srv, "ds", "edge")["status"]).get("desiredNumberScheduled") == 1 and
               s.get("numberMisscheduled") == 1, timeout=90)
    srv.kubectl("taint", "node", "dsnode2", "only=me:NoSchedule-", "only=me:NoExecute")
    eventually(lambda: running_on(srv, "edge", {"dsnode3"}), timeout=90)
    srv.kubectl("taint", "node", "dsnode2", "only=me:NoExecute-")


def test_rolling_update_replaces_every_pod(cluster):
    srv, _agents = cluster
    eventually(lambda: running_on(srv, "every", set(NODES)), timeout=90)
    before = {p["metadata"]["uid"] for p in get(srv, "pods", "-l", "ds=every")["items"]}
    srv.kubectl("set", "env", "ds/every", "ROUND=2")
    srv.kubectl("rollout", "status", "ds/every", "--timeout=120s")
    pods = [p for p in get(srv, "pods", "-l", "ds=every")["items"] if not p["metadata"].get("deletionTimestamp")]
    assert not before & {p["metadata"]["uid"] for p in pods}
    assert all({"name": "ROUND", "value": "2"} in p["spec"]["containers"][0]["env"] for p in pods)
    assert len({p["metadata"]["labels"]["controller-revision-hash"] for p in pods}) == 1
    assert running_on(srv, "every", set(NODES))


def test_node_leaving_removes_its_pod(cluster):
    srv, agents = cluster
    gone = agents.pop("dsnode3")
    stop_agent(gone)
    shutil.rmtree(gone.data_dir, ignore_errors=True)
    gone.log_path.unlink(missing_ok=True)
    srv.kubectl("delete", "node", "dsnode3")
    eventually(lambda: set(placement(srv, "every")) == {"server1", "dsnode2"}, timeout=90)
    eventually(lambda: get(srv, "ds", "every")["status"].get("desiredNumberScheduled") == 2, timeout=30)


def test_a_joining_node_gets_its_pod(cluster):
    """A node that joins after the DaemonSet exists gets its pod (the node from the test before, joined again)."""
    srv, agents = cluster
    at = srv.args.index("--service-cidr")
    flat = srv.args[at:at + 4]  # the fixture's --service-cidr X --pod-cidr Y
    agents["dsnode3"] = start_agent(srv, *flat, "--node-name", "dsnode3", "--node-ip", NODES["dsnode3"])
    eventually(lambda: running_on(srv, "every", set(NODES)), timeout=90)
    eventually(lambda: get(srv, "ds", "every")["status"].get("numberReady") == 3, timeout=60)
