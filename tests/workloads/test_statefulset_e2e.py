"""The StatefulSet controller through a real `nanokube server --no-agent` and the real kubectl; the test plays
kubelet and decides when each pod becomes Ready, so the order of OrderedReady creation is observable."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tests.conftest import Server, module_server
from tests.controllers.kubelet import FakeKubelet
from tests.polling import eventually

pytestmark = pytest.mark.timeout(180)

server = module_server("--network", "loopback", "--components=controllers", "--no-agent")


@pytest.fixture(scope="module")
def kubelet(server: Server) -> Iterator[FakeKubelet]:
    with FakeKubelet(server, auto_ready=False) as k:
        yield k


def get(server: Server, *what: str) -> dict:
    return json.loads(server.kubectl("get", *what, "-o", "json").stdout)


def pods(server: Server, app: str) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in get(server, "pods", "-l", f"app={app}")["items"]}


def statefulset(name: str, replicas: int, *, policy: str = "OrderedReady", claims: bool = True,
                image: str = "echo", **spec: object) -> dict:
    body: dict = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
                  "spec": {"serviceName": f"{name}-svc", "replicas": replicas, "podManagementPolicy": policy,
                           "selector": {"matchLabels": {"app": name}},
                           "template": {"metadata": {"labels": {"app": name}},
                                        "spec": {"containers": [{"name": "main", "image": image}]}}, **spec}}
    if claims:
        body["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
    return body


def ready_all(server: Server, kubelet: FakeKubelet, app: str, names: list[str]) -> None:
    for name in names:
        eventually(lambda n=name: pods(server, app).get(n, {}).get("spec", {}).get("nodeName"))
        kubelet.ready(name)


def test_ordered_ready_creates_one_at_a_time_with_identity_and_claims(server, kubelet):
    server.apply(statefulset("web", 3))
    eventually(lambda: set(pods(server, "web")) == {"web-0"})
    pod = pods(server, "web")["web-0"]
    assert pod["spec"]["hostname"] == "web-0" and pod["spec"]["subdomain"] == "web-svc"
    labels = pod["metadata"]["labels"]
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-0" and labels["apps.kubernetes.io/pod-index"] == "0"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}} in pod["spec"]["volumes"]
    assert get(server, "pvc", "data-web-0")["metadata"]["labels"] == {"app": "web"}
    eventually(lambda: pods(server, "web")["web-0"].get("spec", {}).get("nodeName"))
    assert set(pods(server, "web")) == {"web-0"}  # -1 waits for -0 to be Ready
    kubelet.ready("web-0")
    eventually(lambda: "web-1" in pods(server, "web"))
    assert set(pods(server, "web")) == {"web-0", "web-1"}
    ready_all(server, kubelet, "web", ["web-1", "web-2"])
    sts = eventually(lambda: (s := get(server, "sts", "web"))["status"].get("readyReplicas") == 3 and s)
    status = sts["status"]
    assert status["replicas"] == status["currentReplicas"] == status["updatedReplicas"] == 3
    assert status["currentRevision"] == status["updateRevision"] == labels["controller-revision-hash"]
    revisions = get(server, "controllerrevisions")["items"]
    assert [r["metadata"]["name"] for r in revisions] == [status["updateRevision"]] and revisions[0]["revision"] == 1
    out = server.kubectl("rollout", "status", "sts/web", "--timeout=20s").stdout
    assert "partitioned roll out complete: 3 new pods have been updated" in out  # rollingUpdate defaulted
    assert server.kubectl("get", "sts", "web").stdout.split("\n")[1].split()[:2] == ["web", "3/3"]


def test_scale_down_in_reverse_order_keeps_claims_and_scale_up_reuses_them(server, kubelet):
    uid = get(server, "pvc", "data-web-2")["metadata"]["uid"]
    server.kubectl("scale", "sts/web", "--replicas=1")
    eventually(lambda: set(pods(server, "web")) == {"web-0"})
    assert {p["metadata"]["name"] for p in get(server, "pvc")["items"]} >= {"data-web-0", "data-web-1", "data-web-2"}
    server.kubectl("scale", "sts/web", "--replicas=3")
    ready_all(server, kubelet, "web", ["web-1", "web-2"])
    eventually(lambda: get(server, "sts", "web")["status"].get("readyReplicas") == 3)
    assert get(server, "pvc", "data-web-2")["metadata"]["uid"] == uid


def test_deleted_pod_comes_back_with_the_same_name_and_claim(server, kubelet):
    old = pods(server, "web")["web-1"]["metadata"]["uid"]
    server.kubectl("delete", "pod", "web-1", "--wait=false")
    eventually(lambda: (p := pods(server, "web").get("web-1")) and p["metadata"]["uid"] != old)
    kubelet.ready("web-1") if eventually(lambda: pods(server, "web")["web-1"]["spec"].get("nodeName")) else None
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}} in \
        pods(server, "web")["web-1"]["spec"]["volumes"]


def test_rolling_update_with_partition_updates_only_the_ordinals_above(server, kubelet):
    eventually(lambda: get(server, "sts", "web")["status"].get("readyReplicas") == 3)
    before = {n: p["metadata"]["labels"]["controller-revision-hash"] for n, p in pods(server, "web").items()}
    server.kubectl("patch", "sts/web", "--type=merge", "-p", json.dumps({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        "template": {"metadata": {"annotations": {"rev": "2"}}}}}))
    sts = eventually(lambda: (s := get(server, "sts", "web"))["status"].get("updateRevision") !=
                     s["status"].get("currentRevision") and s)
    new_rev = sts["status"]["updateRevision"]
    eventually(lambda: pods(server, "web").get("web-2", {}).get("metadata", {}).get("labels", {})
               .get("controller-revision-hash") == new_rev)
    ready_all(server, kubelet, "web", ["web-2"])
    sts = eventually(lambda: (s := get(server, "sts", "web"))["status"].get("updatedReplicas") == 1 and
                     s["status"].get("readyReplicas") == 3 and s)
    now = {n: p["metadata"]["labels"]["controller-revision-hash"] for n, p in pods(server, "web").items()}
    assert now["web-0"] == before["web-0"] and now["web-1"] == before["web-1"] and now["web-2"] == new_rev
    assert sts["status"]["currentRevision"] == before["web-0"]
    assert pods(server, "web")["web-2"]["metadata"]["annotations"]["rev"] == "2"
    history = server.kubectl("rollout", "history", "sts/web").stdout
    assert "1" in history and "2" in history
    server.kubectl("rollout", "undo", "sts/web")  # back to revision 1's template: that revision is reused
    sts = eventually(lambda: (s := get(server, "sts", "web"))["status"].get("updateRevision") == before["web-0"]
                     and s)
    assert "rev" not in (sts["spec"]["template"]["metadata"].get("annotations") or {})
    numbers = {r["metadata"]["name"]: r["revision"] for r in get(server, "controllerrevisions")["items"]}
    assert numbers[before["web-0"]] == 3 and len(numbers) == 2
    eventually(lambda: pods(server, "web").get("web-2", {}).get("metadata", {}).get("labels", {})
               .get("controller-revision-hash") == before["web-0"])
    ready_all(server, kubelet, "web", ["web-2"])


def test_parallel_creates_all_at_once_and_on_delete_does_not_roll(server, kubelet):
    server.apply(statefulset("par", 3, policy="Parallel", claims=False,
                             updateStrategy={"type": "OnDelete"}))
    eventually(lambda: set(pods(server, "par")) == {"par-0", "par-1", "par-2"})
    ready_all(server, kubelet, "par", ["par-0", "par-1", "par-2"])
    eventually(lambda: get(server, "sts", "par")["status"].get("readyReplicas") == 3)
    rev = pods(server, "par")["par-0"]["metadata"]["labels"]["controller-revision-hash"]
    server.kubectl("set", "image", "sts/par", "main=echo:2")
    new_rev = eventually(lambda: (r := get(server, "sts", "par")["status"].get("updateRevision")) != rev and r)
    assert all(p["metadata"]["labels"]["controller-revision-hash"] == rev for p in pods(server, "par").values())
    server.kubectl("delete", "pod", "par-1", "--wait=false")
    eventually(lambda: pods(server, "par").get("par-1", {}).get("metadata", {}).get("labels", {})
               .get("controller-revision-hash") == new_rev)
    assert pods(server, "par")["par-1"]["spec"]["containers"][0]["image"] == "echo:2"


def claim_names(server: Server, app: str) -> set[str]:
    return {c["metadata"]["name"] for c in get(server, "pvc", "-l", f"app={app}")["items"]
            if not c["metadata"].get("deletionTimestamp")}


def test_claim_retention_policy_delete_when_scaled_and_when_deleted(server, kubelet):
    """persistentVolumeClaimRetentionPolicy: whenScaled=Delete removes the claims of the ordinals scaled away,
    whenDeleted=Delete removes every claim with the StatefulSet; the Retain default is the other tests'."""
    server.apply(statefulset("ret", 3, policy="Parallel", persistentVolumeClaimRetentionPolicy={
        "whenScaled": "Delete", "whenDeleted": "Delete"}))
    eventually(lambda: set(pods(server, "ret")) == {"ret-0", "ret-1", "ret-2"})
    ready_all(server, kubelet, "ret", ["ret-0", "ret-1", "ret-2"])
    assert claim_names(server, "ret") == {"data-ret-0", "data-ret-1", "data-ret-2"}
    owners = get(server, "pvc", "data-ret-0")["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"]) for o in owners] == [("StatefulSet", "ret")]
    server.kubectl("scale", "sts/ret", "--replicas=1")
    eventually(lambda: set(pods(server, "ret")) == {"ret-0"}, 30)
    eventually(lambda: claim_names(server, "ret") == {"data-ret-0"}, 30, what="the scaled-away claims deleted")
    server.kubectl("delete", "sts", "ret")
    eventually(lambda: not claim_names(server, "ret") and not pods(server, "ret"), 30,
               what="every claim deleted with the StatefulSet")
