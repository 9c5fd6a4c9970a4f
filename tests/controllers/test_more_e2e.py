"""More controllers through a real `nanokube server --no-agent` and the real kubectl: local-path volumes,
Endpoints mirroring, foreground deletion, nodeSelector scheduling, terminating and per-pod named ports in
EndpointSlices, and the events `kubectl describe` shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.conftest import Server, module_server
from tests.controllers.test_controllers_e2e import deployment, get, pods_of
from tests.polling import eventually

pytestmark = pytest.mark.timeout(120)
LB_IP = "127.240.1.1"


server = module_server("--network", "loopback", "--components=controllers", "--no-agent", "--lb-pool", LB_IP)


def pod(name: str, labels: dict[str, str], ports: list[dict] | None = None, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "main", "image": "echo", "ports": ports or []}], **spec}}


def describe_events(server: Server, *what: str) -> str:
    """The Events section of `kubectl describe`."""
    out = server.kubectl("describe", *what).stdout
    return out.split("\nEvents:", 1)[1] if "\nEvents:" in out else ""


def slice_endpoints(server: Server, service: str) -> dict[str, dict]:
    slices = get(server, "endpointslices", "-l", f"kubernetes.io/service-name={service}")["items"]
    return {e["targetRef"]["name"]: {**e, "ports": s.get("ports")} for s in slices for e in s.get("endpoints") or []}


def test_local_path_claim_binds_and_reclaim_policy_decides(server, kubelet):
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}}
    server.apply(claim)
    pvc = eventually(lambda: (c := get(server, "pvc", "data")).get("status", {}).get("phase") == "Bound" and c)
    volume = pvc["spec"]["volumeName"]
    assert volume == f"pvc-{pvc['metadata']['uid']}" and pvc["spec"]["storageClassName"] == "local-path"
    pv = get(server, "pv", volume)
    path = Path(pv["spec"]["hostPath"]["path"])
    assert path.parent == server.data_dir / "storage" and path.is_dir()
    assert pv["status"]["phase"] == "Bound" and pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    table = server.kubectl("get", "pvc", "data").stdout.splitlines()
    header = re.split(r"\s{2,}", table[0].strip())
    row = dict(zip(header, re.split(r"\s{2,}", table[1].strip()), strict=False))
    assert {k: row.get(k) for k in ("STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS")} == {
        "STATUS": "Bound", "VOLUME": volume, "CAPACITY": "2Gi", "ACCESS MODES": "RWO", "STORAGECLASS": "local-path"}

    server.kubectl("delete", "pvc", "data", "--timeout=20s")  # reclaimPolicy Delete (the class default)
    eventually(lambda: not path.exists() and
               volume not in server.kubectl("get", "pv", "-o", "name").stdout)

    server.apply({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local-retain"},
                  "provisioner": "nanokube.io/local-path", "reclaimPolicy": "Retain"})
    server.apply({**claim, "metadata": {"name": "kept"}, "spec": {**claim["spec"], "storageClassName": "local-retain"}})
    pvc = eventually(lambda: (c := get(server, "pvc", "kept")).get("status", {}).get("phase") == "Bound" and c)
    volume = pvc["spec"]["volumeName"]
    pv = get(server, "pv", volume)
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain" and pv["spec"]["storageClassName"] == "local-retain"
    path = Path(pv["spec"]["hostPath"]["path"])
    (path / "file").write_text("survives")
    server.kubectl("delete", "pvc", "kept", "--timeout=20s")
    eventually(lambda: get(server, "pv", volume).get("status", {}).get("phase") == "Released")
    assert (path / "file").read_text() == "survives"


def test_user_endpoints_of_selectorless_service_are_mirrored(server, kubelet):
    server.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "external-db"},
                  "spec": {"ports": [{"name": "mysql", "port": 3306}]}})
    endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "external-db"},
                 "subsets": [{"addresses": [{"ip": "127.250.0.5"}], "notReadyAddresses": [{"ip": "127.250.0.6"}],
                              "ports": [{"name": "mysql", "port": 3307}]}]}
    server.apply(endpoints)

    def mirrored() -> list[dict]:
        return get(server, "endpointslices", "-l", "kubernetes.io/service-name=external-db")["items"]

    slices = eventually(lambda: (s := mirrored()) and len(s[0].get("endpoints") or []) == 2 and s)
    assert len(slices) == 1
    s = slices[0]
    assert s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslicemirroring-controller.k8s.io"
    assert s["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert s["ports"] == [{"name": "mysql", "port": 3307, "protocol": "TCP"}]
    assert {e["addresses"][0]: e["conditions"]["ready"] for e in s["endpoints"]} == {
        "127.250.0.5": True, "127.250.0.6": False}

    endpoints["subsets"][0]["addresses"].append({"ip": "127.250.0.7"})
    server.apply(endpoints)
    eventually(lambda: sorted(e["addresses"][0] for e in mirrored()[0]["endpoints"]) ==
               ["127.250.0.5", "127.250.0.6", "127.250.0.7"])
    server.kubectl("delete", "endpoints", "external-db")
    eventually(lambda: not mirrored())


def test_foreground_deletion_keeps_owner_until_dependents_are_gone(server, kubelet):
    server.apply(deployment("fg", 2))
    server.kubectl("rollout", "status", "deployment/fg", "--timeout=30s")
    held = pods_of(server, "fg")[0]["metadata"]["name"]
    server.kubectl("patch", "pod", held, "--type=merge", "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    server.kubectl("delete", "deployment", "fg", "--cascade=foreground", "--wait=false")

    def owner_waiting() -> bool:
        d = get(server, "deployment", "fg")
        rss = get(server, "rs", "-l", "app=fg")["items"]
        return bool(d["metadata"].get("deletionTimestamp")) and \
            "foregroundDeletion" in d["metadata"].get("finalizers", []) and \
            all(r["metadata"].get("deletionTimestamp") for r in rss) and \
            [p["metadata"]["name"] for p in pods_of(server, "fg")] == [held]
    eventually(owner_waiting, 30)
    # The ReplicaSet, deleting in the foreground too, still blocks the Deployment: so the Deployment cannot go
    # before the held pod (the collector unblocked it before deleting it, and the Deployment went within a second).
    rs = get(server, "rs", "-l", "app=fg")["items"][0]
    assert [r["blockOwnerDeletion"] for r in rs["metadata"]["ownerReferences"]] == [True]
    assert get(server, "deployment", "fg")["metadata"].get("deletionTimestamp")  # still there while the pod is
    server.kubectl("patch", "pod", held, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    eventually(lambda: "fg" not in server.kubectl("get", "deployments", "-o", "name").stdout and
               not get(server, "rs", "-l", "app=fg")["items"] and not pods_of(server, "fg"))


def test_node_selector_unschedulable_then_scheduled(server, kubelet):
    server.apply(pod("picky", {"app": "picky"}, nodeSelector={"disktype": "ssd"}))

    def unschedulable() -> dict | None:
        p = get(server, "pod", "picky")
        cond = [c for c in p["status"].get("conditions") or [] if c["type"] == "PodScheduled"]
        return cond[0] if cond and cond[0]["status"] == "False" else None
    cond = eventually(unschedulable)
    assert cond["reason"] == "Unschedulable"
    message = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    assert cond["message"] == message
    p = get(server, "pod", "picky")
    assert p["status"]["phase"] == "Pending" and not p["spec"].get("nodeName")
    events = eventually(lambda: (e := describe_events(server, "pod", "picky")) and "FailedScheduling" in e and e)
    assert "Warning" in events and message in events and "default-scheduler" in events
    server.kubectl("label", "node", kubelet.node, "disktype=ssd")
    try:
        assert eventually(lambda: get(server, "pod", "picky")["spec"].get("nodeName")) == kubelet.node
    finally:
        server.kubectl("label", "node", kubelet.node, "disktype-")
    server.kubectl("delete", "pod", "picky", "--wait=false")


def test_endpointslice_terminating_and_named_port_per_pod(server, kubelet):
    server.apply(pod("np-a", {"app": "np"}, [{"name": "web", "containerPort": 8080}]))
    server.apply(pod("np-b", {"app": "np"}, [{"name": "web", "containerPort": 9090}],
                 terminationGracePeriodSeconds=30))
    server.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
                  "spec": {"selector": {"app": "np"}, "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}})
    eps = eventually(lambda: (e := slice_endpoints(server, "np")) and len(e) == 2 and
                     all(x["conditions"]["ready"] for x in e.values()) and e)
    assert {n: [p["port"] for p in e["ports"]] for n, e in eps.items()} == {"np-a": [8080], "np-b": [9090]}
    slices = get(server, "endpointslices", "-l", "kubernetes.io/service-name=np")["items"]
    assert len(slices) == 2  # one slice per distinct resolved port list
    assert sorted(s["ports"][0]["port"] for s in slices) == [8080, 9090]

    server.kubectl("patch", "pod", "np-b", "--type=merge", "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    server.kubectl("delete", "pod", "np-b", "--wait=false")
    eventually(lambda: slice_endpoints(server, "np")["np-b"]["conditions"] ==
               {"ready": False, "serving": True, "terminating": True})
    assert slice_endpoints(server, "np")["np-a"]["conditions"] == {"ready": True, "serving": True,
                                                                   "terminating": False}
    ep = get(server, "endpoints", "np")
    assert [a["targetRef"]["name"] for s in ep["subsets"] for a in s.get("addresses") or []] == ["np-a"]
    assert not any(s.get("notReadyAddresses") for s in ep["subsets"])  # terminating pods leave Endpoints
    server.kubectl("patch", "pod", "np-b", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    eventually(lambda: list(slice_endpoints(server, "np")) == ["np-a"])


def test_events_in_kubectl_describe(server, kubelet):
    def lb(name: str) -> dict:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"type": "LoadBalancer", "selector": {"app": "db"}, "ports": [{"port": 3306}]}}

    server.apply(lb("lb-ok"))
    eventually(lambda: get(server, "svc", "lb-ok")["status"].get("loadBalancer", {}).get("ingress"))
    events = eventually(lambda: (e := describe_events(server, "svc", "lb-ok")) and "EnsuredLoadBalancer" in e and e)
    assert re.search(r"Normal\s+EnsuringLoadBalancer\s+.*Ensuring load balancer", events)
    assert re.search(r"Normal\s+EnsuredLoadBalancer\s+.*Ensured load balancer", events)
    assert f"LoadBalancer Ingress:     {LB_IP}" in server.kubectl("describe", "svc", "lb-ok").stdout

    server.apply(lb("lb-starved"))
    events = eventually(lambda: (e := describe_events(server, "svc", "lb-starved")) and "AllocationFailed" in e and e)
    assert re.search(r"Warning\s+AllocationFailed\s+", events)
    assert "<pending>" in server.kubectl("get", "svc", "lb-starved").stdout

    server.apply(deployment("ev", 2))
    server.kubectl("rollout", "status", "deployment/ev", "--timeout=30s")
    rs = get(server, "rs", "-l", "app=ev")["items"][0]["metadata"]["name"]
    events = eventually(lambda: (e := describe_events(server, "deployment", "ev")) and "ScalingReplicaSet" in e and e)
    assert f"Scaled up replica set {rs} from 0 to 2" in events
    events = eventually(lambda: (e := describe_events(server, "rs", rs)) and e.count("SuccessfulCreate") >= 1 and e)
    assert re.search(rf"Normal\s+SuccessfulCreate\s+.*Created pod: {rs}-", events)
