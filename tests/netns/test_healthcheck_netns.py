"""Health-check node ports and loadBalancerSourceRanges through the real server in netns mode: kubectl makes the
objects, curl on the node asks the health-check port on the node IP, pods are the allowed and blocked clients
of an LB IP (nftables drops the others before DNAT)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.netns.cluster import NetnsCluster
from tests.netns.manifests import echo_deployment, service
from tests.polling import eventually


@pytest.fixture(scope="module")
def setup(cluster: NetnsCluster) -> dict[str, Any]:
    local = service("web-local", "web", type="LoadBalancer")
    local["spec"]["externalTrafficPolicy"] = "Local"
    cluster.apply([echo_deployment("web", 1), echo_deployment("client", 2), local])
    cluster.kubectl("rollout", "status", "deployment/web", "deployment/client", "--timeout=30s")
    node = cluster.get("node", "nk-e2e")
    return {"node_ip": next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")}


def health(cluster: NetnsCluster, ip: str, port: int) -> tuple[int, dict[str, str], dict] | None:
    """(status, headers, JSON body) from the health-check port, or None when nothing listens there."""
    out = cluster.run("curl", "-sS", "--max-time", "2", "-D", "-", f"http://{ip}:{port}/", check=False)
    if out.returncode == 7:  # connection refused
        return None
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition("\n\n")  # text mode: CRLF arrives as LF
    status, *lines = head.split("\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status.split()[1]), headers, json.loads(body)


def hc_port(cluster: NetnsCluster, name: str) -> int:
    return int(cluster.get("svc", name)["spec"].get("healthCheckNodePort") or 0)


def test_health_check_node_port_follows_local_endpoints(cluster: NetnsCluster, setup: dict[str, Any]) -> None:
    ip, port = setup["node_ip"], hc_port(cluster, "web-local")
    assert 30000 <= port <= 32767

    def answers(code: int, count: int) -> Any:
        got = health(cluster, ip, port)
        return got if got and got[0] == code and got[2]["localEndpoints"] == count else None

    _, headers, body = eventually(lambda: answers(200, 1), what="200 with one local endpoint")
    assert body == {"service": {"namespace": "default", "name": "web-local"}, "localEndpoints": 1,
                    "serviceProxyHealthy": True}
    assert headers["content-type"] == "application/json" and headers["x-content-type-options"] == "nosniff"
    assert headers["x-load-balancing-endpoint-weight"] == "1"
    cluster.kubectl("scale", "deployment/web", "--replicas=0")
    _, headers, _ = eventually(lambda: answers(503, 0), what="503 after scaling to zero")
    assert headers["x-load-balancing-endpoint-weight"] == "0"
    cluster.kubectl("scale", "deployment/web", "--replicas=2")
    eventually(lambda: answers(200, 2), what="200 with two local endpoints")
    # Cluster policy: no health check any more, the port closes
    cluster.kubectl("patch", "svc", "web-local", "-p", '{"spec":{"externalTrafficPolicy":"Cluster"}}')
    assert hc_port(cluster, "web-local") == 0
    eventually(lambda: health(cluster, ip, port) is None, what="port closed after the switch to Cluster")
    cluster.kubectl("patch", "svc", "web-local", "-p", '{"spec":{"externalTrafficPolicy":"Local"}}')
    port = hc_port(cluster, "web-local")
    assert port
    eventually(lambda: answers(200, 2), what="200 on the new port")
    cluster.kubectl("delete", "svc", "web-local")
    eventually(lambda: health(cluster, ip, port) is None, what="port closed after the delete")


def test_load_balancer_source_ranges_admit_only_listed_pods(cluster: NetnsCluster, setup: dict[str, Any]) -> None:
    allowed, blocked = cluster.pod_names("app=client")
    allowed_ip = cluster.get("pod", allowed)["status"]["podIP"]
    svc = service("web-fw", "web", type="LoadBalancer")
    svc["spec"]["loadBalancerSourceRanges"] = [f"{allowed_ip}/32"]
    cluster.apply([svc])
    lb_ip = eventually(lambda: ((cluster.get("svc", "web-fw").get("status") or {}).get("loadBalancer") or {})
                       .get("ingress", [{}])[0].get("ip"), what="an LB IP")
    node_port = cluster.get("svc", "web-fw")["spec"]["ports"][0]["nodePort"]
    eventually(lambda: cluster.pod_client(allowed, "tcp", lb_ip, 80, 1)["result"] == "ok", what="allowed pod")
    assert cluster.pod_client(blocked, "tcp", lb_ip, 80, 0.5)["result"] == "timeout"  # dropped silently
    assert cluster.client("tcp", lb_ip, 80, 0.5)["result"] == "timeout"  # the node's IP is not in the range
    assert cluster.pod_client(blocked, "tcp", setup["node_ip"], node_port, 2)["result"] == "ok"  # node port: open
    cluster.kubectl("patch", "svc", "web-fw", "--type=json",
                    "-p", '[{"op":"remove","path":"/spec/loadBalancerSourceRanges"}]')
    eventually(lambda: cluster.pod_client(blocked, "tcp", lb_ip, 80, 0.5)["result"] == "ok",
               what="open to all without ranges")
