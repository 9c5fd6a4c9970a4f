"""Cluster DNS in netns mode: kube-dns is a proxied Service whose endpoint is the DNS server on the node IP
(written by the DNS server itself); the kube-dns ClusterIP answers pods (through their resolv.conf and search
list) and node processes (dig, over UDP and TCP) through the proxy's DNAT."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.netns.cluster import NetnsCluster
from tests.netns.manifests import echo_deployment, namespace, service

KUBE_DNS = "10.96.0.10"


@pytest.fixture(scope="module")
def dns(cluster: NetnsCluster) -> dict[str, Any]:
    cluster.apply([namespace("other"), echo_deployment("web", 1), service("web", "web"),
                   echo_deployment("client", 1, namespace="other")])
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    cluster.kubectl("rollout", "status", "deployment/client", "-n", "other", "--timeout=30s")
    return {"web_ip": cluster.get("svc", "web")["spec"]["clusterIP"], "web_pod": cluster.pod_names("app=web")[0],
            "other_pod": cluster.pod_names("app=client", "other")[0]}


def getent(cluster: NetnsCluster, pod: str, name: str, namespace: str = "default") -> tuple[int, str]:
    out = cluster.in_pod(pod, "getent", "hosts", name, namespace=namespace, check=False)
    return out.returncode, out.stdout


def test_kube_dns_is_a_proxied_service_with_the_dns_server_as_endpoint(cluster: NetnsCluster,
                                                                       dns: dict[str, Any]) -> None:
    svc = cluster.get("svc", "kube-dns", "-n", "kube-system")
    assert svc["spec"]["clusterIP"] == KUBE_DNS
    labels = svc["metadata"]["labels"]
    assert "service.kubernetes.io/service-proxy-name" not in labels
    assert (labels["k8s-app"], labels["kubernetes.io/name"]) == ("kube-dns", "CoreDNS")
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    node_ip = cluster.get("node", cluster.get("nodes")["items"][0]["metadata"]["name"])["status"]["addresses"]
    node_ip = next(a["address"] for a in node_ip if a["type"] == "InternalIP")
    slices = cluster.get("endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns")["items"]
    assert len(slices) == 1, slices
    assert slices[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "nanokube-dns"
    assert [e["addresses"] for e in slices[0]["endpoints"]] == [[node_ip]]
    assert {(p["name"], p["port"], p["protocol"]) for p in slices[0]["ports"]} == {
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")}
    addrs = json.loads(cluster.run("ip", "-j", "addr", "show", "dev", "lo").stdout)[0]["addr_info"]
    assert KUBE_DNS not in {a["local"] for a in addrs}  # not local: DNATed like any ClusterIP
    assert KUBE_DNS in cluster.run("nft", "list", "map", "ip", "nanokube", "service-ips").stdout


def test_pod_resolv_conf_names_kube_dns_with_the_search_list(cluster: NetnsCluster, dns: dict[str, Any]) -> None:
    conf = cluster.in_pod(dns["web_pod"], "cat", "/etc/resolv.conf").stdout.splitlines()
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in conf
    assert f"nameserver {KUBE_DNS}" in conf and "options ndots:5" in conf
    other = cluster.in_pod(dns["other_pod"], "cat", "/etc/resolv.conf", namespace="other").stdout.splitlines()
    assert "search other.svc.cluster.local svc.cluster.local cluster.local" in other


def test_short_name_name_namespace_and_fqdn_from_a_pod(cluster: NetnsCluster, dns: dict[str, Any]) -> None:
    for name in ("web", "web.default", "web.default.svc", "web.default.svc.cluster.local"):
        code, out = getent(cluster, dns["web_pod"], name)
        assert code == 0 and out.split()[0] == dns["web_ip"], (name, out)
    # from another namespace the short name is not ours, name.namespace is
    assert getent(cluster, dns["other_pod"], "web", "other")[0] == 2
    code, out = getent(cluster, dns["other_pod"], "web.default", "other")
    assert code == 0 and out.split()[0] == dns["web_ip"]
    code, out = getent(cluster, dns["web_pod"], "kubernetes.default")
    assert code == 0 and out.split()[0] == "10.96.0.1"


def test_pod_connects_to_a_service_by_name(cluster: NetnsCluster, dns: dict[str, Any]) -> None:
    out = cluster.in_pod(dns["other_pod"], "curl", "-sS", "--max-time", "3", "http://web.default/", namespace="other")
    answer = json.loads(out.stdout)
    assert answer["pod"] == dns["web_pod"]
    assert answer["clientIP"] == cluster.get("pod", dns["other_pod"], "-n", "other")["status"]["podIP"]


def test_dig_from_the_node_over_udp_and_tcp(cluster: NetnsCluster, dns: dict[str, Any]) -> None:
    for transport in ("+notcp", "+tcp"):
        out = cluster.run("dig", "+short", transport, f"@{KUBE_DNS}", "web.default.svc.cluster.local")
        assert out.stdout.split() == [dns["web_ip"]], (transport, out.stdout)
    srv = cluster.run("dig", "+short", f"@{KUBE_DNS}", "SRV", "_http._tcp.web.default.svc.cluster.local").stdout
    assert srv.split()[2:] == ["80", "web.default.svc.cluster.local."], srv


def test_a_new_service_resolves_on_the_next_query(cluster: NetnsCluster, dns: dict[str, Any]) -> None:
    cluster.apply([service("fresh", "web")])
    ip = cluster.get("svc", "fresh")["spec"]["clusterIP"]
    code, out = getent(cluster, dns["web_pod"], "fresh")
    assert code == 0 and out.split()[0] == ip


def test_names_outside_the_cluster_fail_fast_without_an_uplink(cluster: NetnsCluster, dns: dict[str, Any]) -> None:
    began = time.monotonic()
    out = cluster.run("dig", f"@{KUBE_DNS}", "+tries=1", "+time=2", "example.com", check=False)
    assert "status: SERVFAIL" in out.stdout, out.stdout
    assert time.monotonic() - began < 1.5


def _counter(text: str, metric: str, **labels: str) -> float:
    """Sum of a Prometheus text series over the lines carrying all `labels`."""
    total = 0.0
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name != metric:
            continue
        body, _, number = rest.rpartition("} ")
        if all(f'{k}="{v}"' in body.split(",") for k, v in labels.items()):
            total += float(number)
    return total


def test_coredns_metrics_through_the_kube_dns_cluster_ip(cluster: NetnsCluster, dns: dict[str, Any]) -> None:
    """Port `metrics` (9153) of kube-dns is served by the DNS on the node IP, DNATed from the ClusterIP like port 53;
    queries from the node (dig, UDP and TCP) and from a pod show up in CoreDNS's counters."""
    url = f"http://{KUBE_DNS}:9153/metrics"
    before = cluster.run("curl", "-sS", "--max-time", "5", url).stdout
    udp = {"server": "dns://:53", "zone": ".", "proto": "udp", "family": "1"}
    a_before = _counter(before, "coredns_dns_requests_total", type="A", **udp)
    srv_before = _counter(before, "coredns_dns_requests_total", type="SRV", **udp)
    tcp_before = _counter(before, "coredns_dns_requests_total", type="A", proto="tcp")
    nx_before = _counter(before, "coredns_dns_responses_total", rcode="NXDOMAIN", plugin="kubernetes")
    for _ in range(3):
        cluster.run("dig", "+short", "+notcp", f"@{KUBE_DNS}", "web.default.svc.cluster.local")
    cluster.run("dig", "+short", "+tcp", f"@{KUBE_DNS}", "web.default.svc.cluster.local")
    cluster.run("dig", "+short", f"@{KUBE_DNS}", "SRV", "_http._tcp.web.default.svc.cluster.local")
    cluster.run("dig", "+short", f"@{KUBE_DNS}", "nope.default.svc.cluster.local")
    assert getent(cluster, dns["web_pod"], "web")[0] == 0  # a pod's resolver, through its resolv.conf
    out = cluster.in_pod(dns["web_pod"], "curl", "-sS", "--max-time", "5", "-i", url)
    assert out.stdout.startswith("HTTP/1.1 200") and "text/plain; version=0.0.4" in out.stdout
    after = out.stdout
    assert _counter(after, "coredns_dns_requests_total", type="A", **udp) >= a_before + 3 + 1 + 1
    assert _counter(after, "coredns_dns_requests_total", type="SRV", **udp) == srv_before + 1
    assert _counter(after, "coredns_dns_requests_total", type="A", proto="tcp") == tcp_before + 1
    assert _counter(after, "coredns_dns_responses_total", rcode="NXDOMAIN", plugin="kubernetes") >= nx_before + 1
    assert _counter(after, "coredns_dns_request_duration_seconds_count", server="dns://:53") > 0
    assert "coredns_build_info{" in after
