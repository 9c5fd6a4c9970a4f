"""The controllers inside a real `nanokube server --no-agent`, driven by the real kubectl, with the test
playing kubelet through the API (kubelet.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from tests.conftest import Server, module_server
from tests.polling import eventually

pytestmark = pytest.mark.timeout(120)


# The default node grace period (40 s): the test's kubelet renews its Lease every 0.3 s, but a heavily loaded
# machine can stall that for more than a short grace, and its node would turn Unknown mid-test
# (the lease expiry test has a server of its own: test_node_lease_e2e.py).
server = module_server("--network", "loopback", "--components=controllers", "--no-agent",
                       "--lb-pool", "127.240.0.1-127.240.0.2")



def get(server: Server, *args: str) -> Any:
    return json.loads(server.kubectl("get", *args, "-o", "json").stdout)


def deployment(name: str, replicas: int, image: str = "nginx:1", **spec: Any) -> str:
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": image,
                                                           "ports": [{"name": "http", "containerPort": 8080}]}]}},
                     **spec}}
    return yaml.safe_dump(body)


def pods_of(server: Server, app: str) -> list[dict]:
    return get(server, "pods", "-l", f"app={app}")["items"]


def with_ip(pods: list[dict]) -> list[dict]:
    """Pods the kubelet has started (so our own readiness writes are not overtaken by its first one)."""
    return [p for p in pods if p.get("status", {}).get("podIP")]


def test_deployment_scale_rollout_status_and_undo(server, kubelet):
    server.apply(deployment("web", 3))
    server.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    pods = pods_of(server, "web")
    assert len(pods) == 3
    rs_name = pods[0]["metadata"]["ownerReferences"][0]["name"]
    assert all(p["metadata"]["name"].startswith(rs_name + "-") and len(p["metadata"]["name"]) == len(rs_name) + 6
               for p in pods)
    assert all(p["metadata"]["ownerReferences"][0]["controller"] for p in pods)

    server.kubectl("scale", "deployment/web", "--replicas=5")
    server.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert len(pods_of(server, "web")) == 5
    server.kubectl("scale", "deployment/web", "--replicas=1")
    eventually(lambda: len([p for p in pods_of(server, "web") if not p["metadata"].get("deletionTimestamp")]) == 1)

    server.kubectl("scale", "deployment/web", "--replicas=4")
    server.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    server.kubectl("set", "image", "deployment/web", "main=nginx:2")
    server.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    d = get(server, "deployment", "web")
    assert d["status"]["updatedReplicas"] == 4 and d["status"]["availableReplicas"] == 4
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    conds = {c["type"]: c["reason"] for c in d["status"]["conditions"]}
    assert conds == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    images = {p["spec"]["containers"][0]["image"] for p in pods_of(server, "web")
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"nginx:2"}
    history = server.kubectl("rollout", "history", "deployment/web").stdout
    assert "1 " in history and "2 " in history

    server.kubectl("rollout", "undo", "deployment/web")
    server.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    d = get(server, "deployment", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    rss = get(server, "rs", "-l", "app=web")["items"]
    assert len(rss) == 2  # the old ReplicaSet came back, no third one
    events = server.kubectl("get", "events", "--field-selector", "involvedObject.name=web").stdout
    assert "ScalingReplicaSet" in events


def test_rolling_update_respects_surge_and_unavailable(server, kubelet):
    kubelet.auto_ready = False
    try:
        server.apply(deployment("roll", 4, strategy={"type": "RollingUpdate",
                                                     "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
        pods = eventually(lambda: (p := with_ip(pods_of(server, "roll"))) and len(p) == 4 and p)
        for p in pods:
            kubelet.ready(p["metadata"]["name"])
        server.kubectl("rollout", "status", "deployment/roll", "--timeout=30s")
        server.kubectl("set", "image", "deployment/roll", "main=nginx:2")
        for _ in range(4):  # one new pod at a time: surge 1, nothing may become unavailable
            def one_new_pending() -> list[dict]:
                live = [p for p in pods_of(server, "roll") if not p["metadata"].get("deletionTimestamp")]
                assert len(live) <= 5
                ready = [p for p in live if any(c["type"] == "Ready" and c["status"] == "True"
                                                for c in (p.get("status") or {}).get("conditions") or [])]
                assert len(ready) >= 4
                return with_ip([p for p in live if p["spec"]["containers"][0]["image"] == "nginx:2" and p not in ready])
            fresh = eventually(one_new_pending)
            assert len(fresh) == 1
            kubelet.ready(fresh[0]["metadata"]["name"])
        server.kubectl("rollout", "status", "deployment/roll", "--timeout=30s")
    finally:
        kubelet.auto_ready = True


def test_endpointslices_follow_readiness_named_port_and_250_pods(server, kubelet):
    server.apply(deployment("eps", 2))
    server.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "eps"},
                  "spec": {"selector": {"app": "eps"}, "ports": [{"port": 80, "targetPort": "http"}]}})
    server.kubectl("rollout", "status", "deployment/eps", "--timeout=30s")

    def slice_endpoints() -> dict[str, dict]:
        slices = get(server, "endpointslices", "-l", "kubernetes.io/service-name=eps")["items"]
        return {e["targetRef"]["name"]: {**e, "port": s["ports"][0]["port"]}
                for s in slices for e in s.get("endpoints") or []}

    eps = eventually(lambda: (e := slice_endpoints()) and len(e) == 2 and e)
    assert {e["port"] for e in eps.values()} == {8080}
    victim = sorted(eps)[0]
    kubelet.ready(victim, False)
    eventually(lambda: slice_endpoints()[victim]["conditions"] == {"ready": False, "serving": False,
                                                                   "terminating": False})
    ep = get(server, "endpoints", "eps")
    assert [a["targetRef"]["name"] for a in ep["subsets"][0]["notReadyAddresses"]] == [victim]
    kubelet.ready(victim, True)
    eventually(lambda: slice_endpoints()[victim]["conditions"]["ready"])

    server.kubectl("scale", "deployment/eps", "--replicas=250")
    server.kubectl("rollout", "status", "deployment/eps", "--timeout=60s", timeout=90)

    def three_slices() -> bool:
        slices = get(server, "endpointslices", "-l", "kubernetes.io/service-name=eps")["items"]
        return sorted(len(s.get("endpoints") or []) for s in slices) == [50, 100, 100]
    eventually(three_slices, timeout=30)


def test_load_balancer_pool_exhaustion_and_release(server, kubelet):
    def lb(name: str) -> dict:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"type": "LoadBalancer", "selector": {"app": "db"}, "ports": [{"port": 3306}]}}

    for name in ("svc-mariadb-loadbalancer", "lb-two", "lb-three"):
        server.apply(lb(name))

    def ip(name: str) -> str | None:
        ingress = get(server, "svc", name)["status"].get("loadBalancer", {}).get("ingress") or []
        return ingress[0]["ip"] if ingress else None

    first = eventually(lambda: ip("svc-mariadb-loadbalancer"))
    second = eventually(lambda: ip("lb-two"))
    assert {first, second} == {"127.240.0.1", "127.240.0.2"}
    assert get(server, "svc", "lb-two")["status"]["loadBalancer"]["ingress"][0]["ipMode"] == "VIP"
    assert first in server.kubectl("get", "svc", "svc-mariadb-loadbalancer").stdout
    assert "<pending>" in server.kubectl("get", "svc", "lb-three").stdout
    eventually(lambda: "AllocationFailed" in server.kubectl("get", "events", "--field-selector",
                                                             "involvedObject.name=lb-three").stdout)
    server.kubectl("delete", "svc", "lb-two")
    assert eventually(lambda: ip("lb-three")) == second
    other = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb-other"},
             "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/other", "ports": [{"port": 1}]}}
    server.apply(other)
    # The controller works its queue in order with one worker: once it has handled a Service applied after
    # lb-other (the pool is full, so it posts AllocationFailed), it has handled lb-other too.
    server.apply(lb("lb-marker"))
    eventually(lambda: "AllocationFailed" in server.kubectl("get", "events", "--field-selector",
                                                             "involvedObject.name=lb-marker").stdout)
    assert ip("lb-other") is None
    server.kubectl("delete", "svc", "lb-marker")


def test_garbage_collection_background_orphan_and_namespace(server, kubelet):
    server.apply(deployment("gone", 2))
    server.kubectl("rollout", "status", "deployment/gone", "--timeout=30s")
    server.kubectl("delete", "deployment", "gone")
    eventually(lambda: not get(server, "rs", "-l", "app=gone")["items"] and not pods_of(server, "gone"))

    server.apply(deployment("kept", 2))
    server.kubectl("rollout", "status", "deployment/kept", "--timeout=30s")
    server.kubectl("delete", "deployment", "kept", "--cascade=orphan")
    rss = eventually(lambda: (r := get(server, "rs", "-l", "app=kept")["items"]) and
                     not r[0]["metadata"].get("ownerReferences") and r)
    assert len(rss) == 1 and len(pods_of(server, "kept")) == 2
    assert get(server, "deployments")["items"] == [] or all(
        d["metadata"]["name"] != "kept" for d in get(server, "deployments")["items"])

    server.kubectl("create", "namespace", "scratch")
    server.kubectl("apply", "-n", "scratch", "-f", "-", input=deployment("inner", 2))
    server.kubectl("rollout", "status", "-n", "scratch", "deployment/inner", "--timeout=30s")
    server.kubectl("delete", "namespace", "scratch", "--timeout=30s", timeout=40)
    assert "scratch" not in server.kubectl("get", "namespaces").stdout
