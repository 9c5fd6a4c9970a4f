"""kubectl top pod|node through metrics.k8s.io, and the agent's /metrics/resource in Prometheus text."""

from __future__ import annotations

import json
import ssl
import urllib.request

from tests.conftest import Server
from tests.polling import eventually
from tests.streaming.conftest import kubectl_run


def _cpu_of(cluster: Server, pod: str) -> int | None:
    done = kubectl_run(cluster, "top", "pod", pod, "--no-headers")
    if done.returncode != 0:
        return None
    fields = done.stdout.decode().split()
    return int(fields[1].rstrip("m")) if len(fields) >= 3 and fields[1].endswith("m") else None


def test_top_pod_shows_a_busy_pod_and_top_node(cluster: Server) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "busy", "labels": {"load": "yes"}},
                   "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                       {"name": "spin", "image": "busybox", "command": ["sh", "-c", "while :; do :; done"],
                        "resources": {"limits": {"cpu": "300m"}}}]}})
    cluster.kubectl("wait", "--for=condition=Ready", "pod/busy", "--timeout=60s", timeout=90)
    cpu = eventually(lambda: (_cpu_of(cluster, "busy") or 0) > 0 and _cpu_of(cluster, "busy"), 30,
                   what="non-zero CPU for the busy pod")
    assert cpu <= 400, cpu  # the 300m quota holds (with the sampling window's slack)
    by_label = kubectl_run(cluster, "top", "pod", "-l", "load=yes", "--no-headers").stdout.decode()
    assert by_label.split()[0] == "busy"
    node = kubectl_run(cluster, "top", "node", "--no-headers")
    assert node.returncode == 0 and node.stdout.decode().split()[0], node.stderr
    raw = json.loads(cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/busy")
                     .stdout)
    assert raw["kind"] == "PodMetrics" and raw["containers"][0]["name"] == "spin"
    cluster.kubectl("delete", "pod", "busy", "--wait=false")


def test_kubelet_resource_metrics_endpoint(cluster: Server, sleeper: str) -> None:
    node = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")

    # the kubelet port speaks TLS from the cluster CA and wants the cluster's token (as the API server sends it)
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    request = urllib.request.Request(f"https://{address}:{port}/metrics/resource",
                                     headers={"Authorization": f"Bearer {cluster.token}"})

    def scrape() -> str | None:
        text = urllib.request.urlopen(request, timeout=10, context=ctx).read().decode()
        return text if f'pod="{sleeper}"' in text else None

    text = eventually(scrape, 30, what="the sleeper pod in /metrics/resource")
    assert "# TYPE container_cpu_usage_seconds_total counter" in text
    assert any(line.startswith("node_memory_working_set_bytes ") for line in text.splitlines())
    assert "scrape_error 0" in text
