"""Services for real in netns mode: echo pods behind a ClusterIP, a NodePort and a LoadBalancer address, reached
from the node (a plain process in the namespace) and from pods, through the kernel (nftables DNAT)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest
from tests.netns.cluster import NetnsCluster
from tests.netns.manifests import echo_deployment, service

NODE_PORT = 31111
UNKNOWN_SERVICE_IP = "10.96.123.45"  # inside the service CIDR, never allocated here


@pytest.fixture(scope="module")
def echo(cluster: NetnsCluster) -> dict[str, Any]:
    began = time.monotonic()
    cluster.apply([echo_deployment("echo", 3), echo_deployment("solo", 1),
                   service("echo", "echo"), service("solo", "solo"),
                   service("echo-np", "echo", type="NodePort", node_port=NODE_PORT),
                   service("echo-lb", "echo", type="LoadBalancer")])
    cluster.kubectl("rollout", "status", "deployment/echo", "deployment/solo", "--timeout=30s")
    node = cluster.get("node", "nk-e2e")
    info = {"cluster_ip": cluster.get("svc", "echo")["spec"]["clusterIP"],
            "solo_ip": cluster.get("svc", "solo")["spec"]["clusterIP"],
            "node_ip": next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"),
            "pods": cluster.pod_names("app=echo"), "solo": cluster.pod_names("app=solo")[0]}
    # the proxy follows the EndpointSlices within milliseconds; wait until every pod answered once
    seen = cluster.client("until", info["cluster_ip"], 80, 10, 3)
    assert seen["pods"] == info["pods"], seen
    info["ready_after"] = time.monotonic() - began
    return info


def test_each_pod_answers_from_its_own_ip_with_its_own_name(cluster: NetnsCluster, echo: dict[str, Any]) -> None:
    pods = cluster.get("pods", "-l", "app=echo")["items"]
    assert len(pods) == 3
    ips = set()
    for pod in pods:
        name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
        assert ip.startswith("10.244.0.") and ip != "10.244.0.1"
        ips.add(ip)
        answer = cluster.client("http", ip, 8080, 1)["answers"][name]
        assert (answer["pod"], answer["podIP"], answer["hostname"]) == (name, ip, name)
        assert cluster.in_pod(name, "hostname").stdout.strip() == name
        # every pod listens on 0.0.0.0:8080 in its own network namespace
        assert "0.0.0.0:8080" in cluster.in_pod(name, "ss", "-ltnH").stdout
    assert len(ips) == 3


def test_kubectl_logs_reach_the_node_agent(cluster: NetnsCluster, echo: dict[str, Any]) -> None:
    # the API server asks the agent's log server on the node IP (which the server makes exist before it starts)
    out = cluster.kubectl("logs", echo["solo"], "--tail=5", check=False)
    assert out.returncode == 0, out.stderr


def test_cluster_ip_spreads_over_the_pods_from_a_node_process(cluster: NetnsCluster, echo: dict[str, Any]) -> None:
    out = cluster.client("http", echo["cluster_ip"], 80, 300)
    counts = out["pods"]
    assert sorted(counts) == echo["pods"], counts
    assert sum(counts.values()) == 300
    assert max(counts.values()) <= 180, counts  # none above 60%
    # a node process reaches pods from the node's address on the bridge (no masquerade needed)
    assert {a["clientIP"] for a in out["answers"].values()} == {echo["node_ip"]}


def test_node_port_on_the_node_ip(cluster: NetnsCluster, echo: dict[str, Any]) -> None:
    svc = cluster.get("svc", "echo-np")
    assert svc["spec"]["ports"][0]["nodePort"] == NODE_PORT
    out = cluster.run("curl", "-sS", "--max-time", "3", f"http://{echo['node_ip']}:{NODE_PORT}/")
    assert json.loads(out.stdout)["pod"] in echo["pods"]
    seen = cluster.client("until", echo["node_ip"], NODE_PORT, 5, 3)
    assert seen["pods"] == echo["pods"]


def test_load_balancer_address_from_external_ip(cluster: NetnsCluster, echo: dict[str, Any]) -> None:
    deadline = time.monotonic() + 10
    while True:
        row = cluster.kubectl("get", "svc", "echo-lb", "--no-headers").stdout.split()
        # NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE
        if row[3] not in ("<pending>", "<none>") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    lb_ip = row[3]
    assert lb_ip.startswith("10.250.0."), row
    out = cluster.run("curl", "-sS", "--max-time", "3", f"http://{lb_ip}/")
    assert json.loads(out.stdout)["pod"] in echo["pods"]
    # the address is made local on the node, on the bridge
    addrs = {a["local"] for link in json.loads(cluster.run("ip", "-j", "addr", "show", "dev", "nk0").stdout)
             for a in link["addr_info"]}
    assert lb_ip in addrs
    # and reached from a pod as well
    assert cluster.pod_client(echo["pods"][0], "http", lb_ip, 80, 5)["pods"]


def test_hairpin_a_pod_reaches_itself_through_its_service(cluster: NetnsCluster, echo: dict[str, Any]) -> None:
    out = cluster.pod_client(echo["solo"], "http", echo["solo_ip"], 80, 5)
    assert out["pods"] == {echo["solo"]: 5}
    # the hairpin connection is masqueraded to the node's bridge address, so the reply finds its way back
    assert out["answers"][echo["solo"]]["clientIP"] == echo["node_ip"]


def test_pod_to_pod_through_cluster_ip_keeps_the_client_address(cluster: NetnsCluster, echo: dict[str, Any]) -> None:
    solo_ip = cluster.get("pod", echo["solo"])["status"]["podIP"]
    out = cluster.pod_client(echo["solo"], "until", echo["cluster_ip"], 80, 5, 3)
    assert out["pods"] == echo["pods"]
    assert {a["clientIP"] for a in out["answers"].values()} == {solo_ip}


def test_pods_reach_the_api_through_the_kubernetes_service(cluster: NetnsCluster, echo: dict[str, Any]) -> None:
    kubernetes = cluster.get("svc", "kubernetes")["spec"]["clusterIP"]
    assert kubernetes == "10.96.0.1"
    for run in (cluster.run, lambda *argv: cluster.in_pod(echo["solo"], *argv)):
        out = run("curl", "-sSk", "--max-time", "3", f"https://{kubernetes}/version")
        assert '"gitVersion"' in out.stdout or '"kind": "Status"' in out.stdout or '"kind":"Status"' in out.stdout, \
            out.stdout


def _neighbour_entries(cluster: NetnsCluster, ip: str) -> str:
    return cluster.run("ip", "neigh", "show", "to", ip).stdout.strip()


def test_unknown_service_cidr_address_dies_locally(cluster: NetnsCluster, echo: dict[str, Any]) -> None:
    # from the node: the nft drop in the output hook fails a datagram at once and a SYN never leaves
    assert cluster.client("udp", UNKNOWN_SERVICE_IP, 53)["result"] == "EPERM"
    assert cluster.client("tcp", UNKNOWN_SERVICE_IP, 80, 0.3)["result"] == "timeout"
    # from a pod: forwarded by the node, dropped there
    assert cluster.pod_client(echo["solo"], "tcp", UNKNOWN_SERVICE_IP, 80, 0.3)["result"] == "timeout"
    # had a packet been routed out of nk0, the node would have tried to resolve the address on the link
    assert _neighbour_entries(cluster, UNKNOWN_SERVICE_IP) == ""
    # an allocated ClusterIP on a port it does not expose is rejected at once instead
    out = cluster.client("tcp", echo["cluster_ip"], 81, 2)
    assert out["result"] == "refused" and out["elapsed"] < 0.5, out


def _proxy(cluster: NetnsCluster, path: str) -> str:
    """GET from the proxy's status endpoint over its Unix socket (what the UI and `nanokube explain` use)."""
    return cluster.run("curl", "-sS", "--max-time", "5", "--unix-socket", str(cluster.data_dir / "proxy.sock"),
                       f"http://localhost{path}").stdout


def _echo_counts(cluster: NetnsCluster) -> dict[str, int]:
    return {ep: c["connections"] for ep, c in
            json.loads(_proxy(cluster, "/counters"))["services"].get("default/echo", {}).items()}


def test_traffic_counters_per_endpoint_match_the_pods_own_counts(cluster: NetnsCluster, echo: dict[str, Any]) -> None:
    """The kernel counts each new connection per endpoint; /counters, /metrics and the UI's live feed show it."""
    ips = {p["status"]["podIP"] + ":8080": p["metadata"]["name"] for p in cluster.get("pods", "-l", "app=echo")["items"]}
    before = _echo_counts(cluster)
    assert set(before) == set(ips), before  # every endpoint listed, counted since it was added
    time.sleep(1.1)  # the proxy serves one kernel read per second: the next read must be a fresh one
    made = cluster.client("http", echo["cluster_ip"], 80, 60)["pods"]
    assert sum(made.values()) == 60
    deadline = time.monotonic() + 10
    while True:
        after = _echo_counts(cluster)
        delta = {ep: after.get(ep, 0) - before.get(ep, 0) for ep in ips}
        if sum(delta.values()) >= 60 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {ips[ep]: n for ep, n in delta.items() if n} == made  # each pod's own count of requests

    metrics = _proxy(cluster, "/metrics")
    for ep in ips:
        series = f'nanokube_proxy_endpoint_connections_total{{service="default/echo",port="http",endpoint="{ep}"}}'
        assert f"{series} {after[ep]}\n" in metrics, metrics

    # the UI's live feed (what the page turns into shares) carries the same counts
    url = cluster.run(sys.executable, "-m", "nanokube", "ui", "--print-url", "--kubeconfig",
                      str(cluster.kubeconfig)).stdout.strip()
    base = url.split("/ui/", 1)[0]
    jar, ca = str(cluster.data_dir.parent / "ui-cookies"), str(cluster.data_dir / "pki" / "ca.crt")
    cluster.run("curl", "-sS", "--max-time", "5", "--cacert", ca, "-c", jar, "-o", "/dev/null", url)
    feed = cluster.run("curl", "-sSN", "--max-time", "4", "--cacert", ca, "-b", jar,
                       f"{base}/ui/api/stream?namespace=default", check=False).stdout
    traffic = [json.loads(event.split("\ndata: ", 1)[1]) for event in feed.split("\n\n")
               if event.startswith("event: traffic\ndata: ")]
    shown = [t["services"].get("default/echo") for t in traffic]
    assert shown and shown[-1] is not None, feed[:2000]
    assert {ep: c["connections"] for ep, c in shown[-1].items()} == {ep: after[ep] for ep in ips}


def test_scale_to_five_then_to_zero(cluster: NetnsCluster, echo: dict[str, Any]) -> None:
    cluster.kubectl("scale", "deployment/echo", "--replicas=5")
    cluster.kubectl("rollout", "status", "deployment/echo", "--timeout=30s")
    five = cluster.pod_names("app=echo")
    assert len(five) == 5 and set(echo["pods"]) <= set(five)
    seen = cluster.client("until", echo["cluster_ip"], 80, 10, 5)
    assert seen["pods"] == five, seen

    # While the pods terminate, connections go to those still serving (as in Kubernetes); a connection is never
    # left hanging on a vanished pod, and once the last one is gone every connection is refused at once.
    cluster.kubectl("scale", "deployment/echo", "--replicas=0")
    out = cluster.client("settle", echo["cluster_ip"], 80, 15, 50)
    assert out["settled"] and "timeout" not in out["counts"], out
    assert out["slowest_failure"] < 0.5 and out["refused_from"] < 10, out
    cluster.kubectl("wait", "--for=delete", "pod", "-l", "app=echo", "--timeout=20s")
    for _ in range(3):
        again = cluster.client("tcp", echo["cluster_ip"], 80, 2)
        assert again["result"] == "refused" and again["elapsed"] < 0.5, again
