"""A StatefulSet behind a headless Service in netns mode, seen from another pod (issue 16's acceptance): through
`kubectl exec` into a client pod, with that pod's own resolv.conf, each `web-N.web.default.svc.cluster.local`
resolves to web-N's address (glibc's getent and Python's getaddrinfo), answers there, and follows the pod when it
is replaced. And a program in a pod uses the official Python client's in-cluster configuration (the projected
ServiceAccount token at /var/run/secrets/kubernetes.io/serviceaccount) against the `kubernetes` Service."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.netns.cluster import NetnsCluster
from tests.polling import eventually

pytestmark = pytest.mark.timeout(300)
FQDN = "web-{}.web.default.svc.cluster.local"
GETADDRINFO = "import socket, sys; print(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 8080)}))"
IN_CLUSTER = """
from kubernetes import client, config
config.load_incluster_config()
api = client.ApiClient()
review = client.AuthenticationV1Api(api).create_self_subject_review({"kind": "SelfSubjectReview"})
try:
    client.CoreV1Api(api).list_namespaced_pod("default")
except client.ApiException as err:
    print(review.status.user_info.username, err.status)
"""

HEADLESS = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}
STATEFULSET = {
    "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
    "spec": {"serviceName": "web", "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                 "terminationGracePeriodSeconds": 2,
                 "containers": [{"name": "echo", "image": "nanokube/echo",
                                 "ports": [{"name": "http", "containerPort": 8080}],
                                 "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}}
CLIENT = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "asker"},
          "spec": {"terminationGracePeriodSeconds": 1,
                   "containers": [{"name": "main", "image": "python", "command": ["sleep", "3600"]}]}}


@pytest.fixture(scope="module")
def web(cluster: NetnsCluster) -> dict[str, str]:
    cluster.apply([HEADLESS, STATEFULSET, CLIENT])
    cluster.kubectl("rollout", "status", "statefulset/web", "--timeout=120s", timeout=150)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/asker", "--timeout=60s", timeout=90)
    return pod_ips(cluster)


def pod_ips(cluster: NetnsCluster) -> dict[str, str]:
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in cluster.get("pods", "-l", "app=web")["items"]}


def exec_in(cluster: NetnsCluster, *argv: str) -> Any:
    return cluster.kubectl("exec", "asker", "--", *argv, check=False)


def getent(cluster: NetnsCluster, name: str) -> list[str]:
    out = exec_in(cluster, "getent", "ahostsv4", name)
    return sorted({line.split()[0] for line in out.stdout.splitlines()}) if out.returncode == 0 else []


def test_each_pod_resolves_by_its_stable_name_from_another_pod(cluster: NetnsCluster, web: dict[str, str]) -> None:
    assert sorted(web) == ["web-0", "web-1", "web-2"]
    for n in range(3):
        assert getent(cluster, FQDN.format(n)) == [web[f"web-{n}"]], n
        found = exec_in(cluster, "python3", "-c", GETADDRINFO, FQDN.format(n))
        assert found.returncode == 0 and found.stdout.strip() == repr([web[f"web-{n}"]]), found.stderr
        answer = exec_in(cluster, "curl", "-sS", "--max-time", "5", f"http://{FQDN.format(n)}:8080/")
        assert answer.returncode == 0 and json.loads(answer.stdout)["pod"] == f"web-{n}", answer.stderr
    assert getent(cluster, "web-1.web") == [web["web-1"]]  # through the client's search list
    assert getent(cluster, "web.default.svc.cluster.local") == sorted(web.values())
    assert getent(cluster, "web-7.web.default.svc.cluster.local") == []
    assert cluster.kubectl("exec", "web-1", "--", "hostname").stdout == "web-1\n"


def test_a_replaced_pod_keeps_its_name_in_dns(cluster: NetnsCluster, web: dict[str, str]) -> None:
    before = cluster.get("pod", "web-1")["metadata"]["uid"]
    cluster.kubectl("delete", "pod", "web-1", "--wait=true", timeout=60)
    eventually(lambda: cluster.get("pod", "web-1")["metadata"]["uid"] != before, 60, what="a new web-1")
    cluster.kubectl("wait", "--for=condition=Ready", "pod/web-1", "--timeout=60s", timeout=90)
    now = cluster.get("pod", "web-1")["status"]["podIP"]
    assert eventually(lambda: getent(cluster, FQDN.format(1)) == [now], 30, what="web-1's new address")


def test_official_client_in_cluster_config_from_a_pod(cluster: NetnsCluster, web: dict[str, str]) -> None:
    token = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert exec_in(cluster, "ls", token).stdout.split() == ["ca.crt", "namespace", "token"]
    out = exec_in(cluster, "python3", "-c", IN_CLUSTER)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["system:serviceaccount:default:default", "403"]  # authenticated, RBAC says no
