"""netns mode with `--dns-listen 127.0.0.1:PORT`: a pod cannot be DNATed to its own loopback, so the DNS also
listens on the node IP at that port, which is the kube-dns Service's endpoint; pods still resolve through the
ClusterIP in their resolv.conf, and the host reaches the DNS where it asked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.netns.cluster import NetnsCluster
from tests.netns.conftest import netns_cluster
from tests.netns.manifests import echo_deployment

PORT = 5353
NODE_IP = "10.244.0.1"  # the netns server's default node IP: its pod gateway


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[NetnsCluster]:
    with netns_cluster("--dns-listen", f"127.0.0.1:{PORT}", "--dns-upstream", "127.0.0.1:9") as c:
        yield c


def test_pods_resolve_through_the_cluster_ip_when_dns_listens_on_127_0_0_1(elsewhere: NetnsCluster) -> None:
    (eps,) = elsewhere.get("endpointslices", "-n", "kube-system", "-l",
                           "kubernetes.io/service-name=kube-dns")["items"]
    assert [e["addresses"] for e in eps["endpoints"]] == [[NODE_IP]]
    assert {(p["name"], p["port"]) for p in eps["ports"]} == {("dns", PORT), ("dns-tcp", PORT), ("metrics", 9153)}
    elsewhere.apply([echo_deployment("web", 1)])
    elsewhere.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    pod = elsewhere.pod_names("app=web")[0]
    out = elsewhere.in_pod(pod, "getent", "hosts", "kubernetes.default")
    assert out.stdout.split()[0] == "10.96.0.1", out.stdout
    for host in ("127.0.0.1", NODE_IP):  # where the user asked, and the endpoint
        got = elsewhere.run("dig", "+short", "+tries=1", "+time=3", f"@{host}", "-p", str(PORT),
                            "kubernetes.default.svc.cluster.local").stdout
        assert got.split() == ["10.96.0.1"], (host, got)
    for url in ("http://127.0.0.1:9153/metrics", "http://10.96.0.10:9153/metrics"):  # beside each listener
        metrics = elsewhere.run("curl", "-sS", "--max-time", "5", url).stdout
        assert f'coredns_dns_requests_total{{family="1",proto="udp",server="dns://:{PORT}"' in metrics, url
