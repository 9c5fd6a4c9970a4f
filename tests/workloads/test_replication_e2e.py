"""ReplicationControllers through a real `nanokube server --no-agent` (the test plays kubelet), created with the
official Python client and scaled with the real kubectl."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tests.conftest import Server, module_server
from tests.controllers.kubelet import FakeKubelet
from tests.polling import eventually

pytestmark = pytest.mark.timeout(120)

server = module_server("--network", "loopback", "--components=controllers", "--no-agent")


@pytest.fixture(scope="module")
def kubelet(server: Server) -> Iterator[FakeKubelet]:
    with FakeKubelet(server) as k:
        yield k


def pods(server: Server, selector: str) -> list[dict]:
    out = json.loads(server.kubectl("get", "pods", "-l", selector, "-o", "json").stdout)["items"]
    return [p for p in out if not p["metadata"].get("deletionTimestamp")]


def test_rc_keeps_replicas_scales_and_reports_status(server, kubelet):
    client, api_client = server.client()
    core = client.CoreV1Api(api_client)
    body = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc"},
            "spec": {"replicas": 3, "selector": {"app": "rc"},
                     "template": {"metadata": {"labels": {"app": "rc"}},
                                  "spec": {"containers": [{"name": "main", "image": "echo"}]}}}}
    core.create_namespaced_replication_controller("default", body)
    running = eventually(lambda: (p := pods(server, "app=rc")) and len(p) == 3 and p)
    assert all(p["metadata"]["name"].startswith("rc-") for p in running)
    refs = {(r["kind"], r["apiVersion"], r["controller"]) for p in running for r in p["metadata"]["ownerReferences"]}
    assert refs == {("ReplicationController", "v1", True)}
    eventually(lambda: core.read_namespaced_replication_controller("rc", "default").status.ready_replicas == 3)
    server.kubectl("scale", "rc/rc", "--replicas=1")
    eventually(lambda: len(pods(server, "app=rc")) == 1)
    status = eventually(lambda: (s := core.read_namespaced_replication_controller("rc", "default").status)
                        .replicas == 1 and s)
    assert status.observed_generation == 2
    row = server.kubectl("get", "rc", "rc").stdout.splitlines()[1].split()
    assert row[:4] == ["rc", "1", "1", "1"]
    core.delete_namespaced_replication_controller("rc", "default")
    eventually(lambda: not pods(server, "app=rc"), timeout=60)


def test_rc_does_not_adopt_pods_another_controller_owns(server, kubelet):
    server.apply({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "owner"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "shared"}},
                           "template": {"metadata": {"labels": {"app": "shared"}},
                                        "spec": {"containers": [{"name": "main", "image": "echo"}]}}}})
    eventually(lambda: len(pods(server, "app=shared")) == 1)
    server.apply({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "greedy"},
                  "spec": {"replicas": 2, "selector": {"app": "shared"},
                           "template": {"metadata": {"labels": {"app": "shared"}},
                                        "spec": {"containers": [{"name": "main", "image": "echo"}]}}}})
    eventually(lambda: len(pods(server, "app=shared")) == 3)
    kinds = sorted(p["metadata"]["ownerReferences"][0]["kind"] for p in pods(server, "app=shared"))
    assert kinds == ["ReplicaSet", "ReplicationController", "ReplicationController"]


def test_cluster_info_dump_lists_replication_controllers(server, kubelet, tmp_path):
    """`kubectl cluster-info dump` walks replicationcontrollers in every namespace it dumps."""
    out = server.kubectl("cluster-info", "dump", "--namespaces=default,kube-system",
                         f"--output-directory={tmp_path}", timeout=60)
    assert "Cluster info dumped to" in out.stdout, out.stderr
    for ns in ("default", "kube-system"):
        dumped = json.loads((tmp_path / ns / "replication-controllers.json").read_text())
        assert dumped["kind"] == "ReplicationControllerList"
    assert json.loads((tmp_path / "nodes.json").read_text())["kind"] == "NodeList"
