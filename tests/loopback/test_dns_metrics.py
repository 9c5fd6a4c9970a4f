"""Loopback mode: the DNS binds the kube-dns ClusterIP, and serves CoreDNS's metrics on port 9153 of it (the
Service's port `metrics`, listed in the kube-dns EndpointSlice); real queries move the counters."""

from __future__ import annotations

import urllib.request

import dns.message
import dns.query
import dns.rcode
from tests.conftest import Server
from tests.loopback.conftest import dns_address, kubectl_json


def scrape(ip: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:9153/metrics", timeout=5) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return resp.read().decode()


def series(text: str, metric: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        body, _, number = rest.rpartition("} ")
        if name == metric and all(f'{k}="{v}"' in body.split(",") for k, v in labels.items()):
            total += float(number)
    return total


def test_metrics_on_the_dns_listen_address_count_real_queries(cluster: Server) -> None:
    ip, port = dns_address(cluster)
    eps = kubectl_json(cluster, "endpointslice", "-n", "kube-system", "kube-dns")
    assert {(p["name"], p["port"], p["protocol"]) for p in eps["ports"]} >= {("metrics", 9153, "TCP")}
    ep = kubectl_json(cluster, "endpoints", "-n", "kube-system", "kube-dns")
    assert ("metrics", 9153) in {(p["name"], p["port"]) for s in ep["subsets"] for p in s["ports"]}

    server = f"dns://:{port}"
    before = scrape(ip)
    ok = dns.message.make_query("kubernetes.default.svc.cluster.local", "A")
    for _ in range(4):
        assert dns.query.udp(ok, ip, port=port, timeout=3).answer
    assert dns.query.tcp(dns.message.make_query("kubernetes.default.svc.cluster.local", "AAAA"), ip, port=port,
                         timeout=3).rcode() == dns.rcode.NOERROR
    missing = dns.message.make_query("missing.default.svc.cluster.local", "A")
    assert dns.query.udp(missing, ip, port=port, timeout=3).rcode() == dns.rcode.NXDOMAIN
    after = scrape(ip)

    def moved(metric: str, **labels: str) -> float:
        return series(after, metric, **labels) - series(before, metric, **labels)

    assert moved("coredns_dns_requests_total", server=server, zone=".", view="", proto="udp", family="1",
                 type="A") == 5
    assert moved("coredns_dns_requests_total", server=server, proto="tcp", type="AAAA") == 1
    assert moved("coredns_dns_responses_total", server=server, zone=".", view="", rcode="NOERROR",
                 plugin="kubernetes") == 5
    assert moved("coredns_dns_responses_total", server=server, rcode="NXDOMAIN", plugin="kubernetes") == 1
    assert moved("coredns_dns_request_duration_seconds_count", server=server, zone=".") == 6
    assert moved("coredns_dns_request_duration_seconds_bucket", server=server, le="+Inf") == 6
