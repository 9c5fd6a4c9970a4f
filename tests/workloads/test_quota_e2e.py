"""ResourceQuota and LimitRange admission through a real server and the real kubectl: counts of pods and
Services, services.nodeports / services.loadbalancers, cpu requests, LimitRange defaults and max, with
kube-apiserver's Forbidden messages; the quota controller's status.used."""

from __future__ import annotations

import json

import pytest
from tests.conftest import Server, module_server
from tests.polling import eventually

pytestmark = pytest.mark.timeout(120)

server = module_server("--network", "loopback", "--components=controllers", "--no-agent")


def pod(name: str, ns: str, **resources: object) -> dict:
    container: dict = {"name": "main", "image": "echo"}
    if resources:
        container["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [container]}}


def svc(name: str, ns: str, kind: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"type": kind, "selector": {"app": name}, "ports": [{"port": 80}]}}


def refused(server: Server, obj: dict) -> str:
    proc = server.kubectl("create", "-f", "-", input=json.dumps(obj), check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr.strip()


def test_counts_nodeports_and_loadbalancers(server):
    server.kubectl("create", "namespace", "q")
    server.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "counts", "namespace": "q"},
                  "spec": {"hard": {"pods": "2", "services": "2", "services.nodeports": "1",
                                    "services.loadbalancers": "0"}}})
    eventually(lambda: json.loads(server.kubectl("get", "quota", "counts", "-n", "q", "-o", "json").stdout)
               .get("status", {}).get("hard"))
    server.apply(pod("a", "q"))
    server.apply(pod("b", "q"))
    assert refused(server, pod("c", "q")) == ('Error from server (Forbidden): error when creating "STDIN": pods "c" is '
                                              'forbidden: exceeded quota: counts, requested: pods=1, used: pods=2, '
                                              'limited: pods=2')
    server.apply(svc("np", "q", "NodePort"))
    assert refused(server, svc("lb", "q", "LoadBalancer")).endswith(
        'services "lb" is forbidden: exceeded quota: counts, requested: services.loadbalancers=1,'
        'services.nodeports=1, used: services.loadbalancers=0,services.nodeports=1, limited: '
        'services.loadbalancers=0,services.nodeports=1')
    server.apply(svc("plain", "q", "ClusterIP"))
    assert "exceeded quota: counts, requested: services=1, used: services=2, limited: services=2" in \
        refused(server, svc("third", "q", "ClusterIP"))
    used = eventually(lambda: (s := json.loads(server.kubectl("get", "quota", "counts", "-n", "q", "-o", "json")
                                               .stdout).get("status", {}).get("used")) and s.get("pods") == "2" and s)
    assert used == {"pods": "2", "services": "2", "services.nodeports": "1", "services.loadbalancers": "0"}
    server.kubectl("delete", "pod", "a", "-n", "q", "--grace-period=0", "--force")
    eventually(lambda: json.loads(server.kubectl("get", "quota", "counts", "-n", "q", "-o", "json").stdout)
               ["status"]["used"]["pods"] == "1")
    server.apply(pod("c", "q"))


def test_limit_range_defaults_max_and_cpu_quota(server):
    server.kubectl("create", "namespace", "lr")
    server.apply({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits", "namespace": "lr"},
                  "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"},
                                       "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]}})
    server.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute", "namespace": "lr"},
                  "spec": {"hard": {"requests.cpu": "1", "limits.memory": "1Gi"}}})
    server.apply(pod("small", "lr"))
    resources = json.loads(server.kubectl("get", "pod", "small", "-n", "lr", "-o", "json").stdout)[
        "spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert refused(server, pod("huge", "lr", limits={"cpu": "2"})).endswith(
        'pods "huge" is forbidden: maximum cpu usage per Container is 1, but limit is 2')
    assert refused(server, pod("big", "lr", requests={"cpu": "1"}, limits={"cpu": "1"})).endswith(
        'pods "big" is forbidden: exceeded quota: compute, requested: requests.cpu=1, used: requests.cpu=100m, '
        'limited: requests.cpu=1')
    used = eventually(lambda: json.loads(server.kubectl("get", "quota", "compute", "-n", "lr", "-o", "json").stdout)
                      .get("status", {}).get("used"))
    assert used == {"requests.cpu": "100m", "limits.memory": "128Mi"}
