"""Cluster DNS through the real server: objects created with kubectl, answered by dnspython and dig at the
server's DNS address (issue 6: the article's names, a newly ready pod on the next query, SRV for named ports)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from tests.conftest import Server
from tests.loopback.conftest import dns_address, echo_deployment, manifest, ready_pod_ips, service
from tests.polling import eventually

Z = "default.svc.cluster.local"


def ask(srv: Server, name: str, rdtype: str = "A") -> dns.message.Message:
    host, port = dns_address(srv)
    return dns.query.udp(dns.message.make_query(name, rdtype), host, port=port, timeout=2)


def answers(msg: dns.message.Message, rdtype: str = "A") -> list[str]:
    want = dns.rdatatype.from_text(rdtype)
    return sorted(rd.to_text() for rrset in msg.answer if rrset.rdtype == want for rd in rrset)


@pytest.fixture(scope="module")
def article(cluster: Server) -> Server:
    """The article's objects: a ClusterIP Service, an ExternalName, a headless Service with pods, one of them
    with hostname + subdomain."""
    pod_1 = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod-1", "labels": {"app": "headless"}},
             "spec": {"hostname": "pod-1", "subdomain": "headless-svc",
                      "containers": [{"name": "echo", "image": "nanokube/echo"}]}}
    cluster.apply(manifest(
        service("mariadb-service", {"app": "mariadb"}, [{"name": "mysql", "port": 3306, "targetPort": 3306}]),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "training-aurora-svc"},
         "spec": {"type": "ExternalName", "externalName": "training-aurora.cluster-abc.us-east-1.rds.amazonaws.com"}},
        service("headless-svc", {"app": "headless"}, [{"name": "http", "port": 80, "targetPort": 8080}],
                clusterIP="None"),
        echo_deployment("headless", 2, labels={"app": "headless", "tier": "web"}), pod_1))
    eventually(lambda: len(ready_pod_ips(cluster, "app=headless")) == 3, what="3 ready headless pods")
    return cluster


def test_cluster_ip_service_resolves_to_its_cluster_ip(article: Server) -> None:
    cluster_ip = article.kubectl("get", "svc", "mariadb-service", "-o", "jsonpath={.spec.clusterIP}").stdout
    reply = ask(article, f"mariadb-service.{Z}")
    assert reply.rcode() == dns.rcode.NOERROR and answers(reply) == [cluster_ip]
    assert reply.flags & dns.flags.AA


def test_external_name_is_a_cname(article: Server) -> None:
    # (type CNAME: an A query would also chase the external target upstream, which these tests keep offline)
    reply = ask(article, f"training-aurora-svc.{Z}", "CNAME")
    assert answers(reply, "CNAME") == ["training-aurora.cluster-abc.us-east-1.rds.amazonaws.com."]


def test_headless_service_lists_ready_pods_and_hostname_records(article: Server) -> None:
    pods = ready_pod_ips(article, "app=headless")
    eventually(lambda: answers(ask(article, f"headless-svc.{Z}")) == sorted(pods.values()),
               what="headless A records = the ready pod IPs")
    reply = ask(article, f"pod-1.headless-svc.{Z}")
    assert answers(reply) == [pods["pod-1"]]


def test_srv_for_named_ports(article: Server) -> None:
    reply = ask(article, f"_mysql._tcp.mariadb-service.{Z}", "SRV")
    assert answers(reply, "SRV") == [f"0 100 3306 mariadb-service.{Z}."]
    reply = ask(article, f"_http._tcp.headless-svc.{Z}", "SRV")
    records = answers(reply, "SRV")
    assert len(records) == 3 and all(r.split()[:3] == ["0", "33", "8080"] for r in records)  # endpoint port
    assert any(r.endswith(f" pod-1.headless-svc.{Z}.") for r in records)
    assert ask(article, f"_nope._tcp.mariadb-service.{Z}", "SRV").rcode() == dns.rcode.NXDOMAIN


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig not installed")
def test_dig_works_too(article: Server) -> None:
    host, port = dns_address(article)
    out = subprocess.run(["dig", f"@{host}", "-p", str(port), "+short", f"mariadb-service.{Z}"],
                         capture_output=True, text=True, timeout=10, check=True).stdout.split()
    assert out == [article.kubectl("get", "svc", "mariadb-service", "-o", "jsonpath={.spec.clusterIP}").stdout]


def test_newly_ready_pod_resolves_on_the_next_query(cluster: Server, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    late = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late", "labels": {"app": "late"}},
            "spec": {"containers": [{"name": "echo", "image": "nanokube/echo",
                                     "readinessProbe": {"exec": {"command": ["cat", str(flag)]},
                                                        "periodSeconds": 1, "failureThreshold": 1}}]}}
    cluster.apply(manifest(service("late-svc", {"app": "late"}, [{"name": "http", "port": 80}], clusterIP="None"),
                           late))
    name = f"late-svc.{Z}"
    eventually(lambda: cluster.kubectl("get", "pod", "late", "-o", "jsonpath={.status.podIP}").stdout,
               what="late pod IP")
    reply = ask(cluster, name)
    assert reply.rcode() == dns.rcode.NXDOMAIN  # headless, no ready endpoint

    flag.write_text("ok\n")
    ip = eventually(lambda: ready_pod_ips(cluster, "app=late").get("late"), interval=0.02, what="late ready")

    def slice_ready() -> bool:
        out = cluster.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=late-svc", "-o",
                              "jsonpath={.items[*].endpoints[*].conditions.ready}").stdout
        return out.strip() == "true"

    eventually(slice_ready, interval=0.02, what="the EndpointSlice showing it ready")
    # The DNS cache is fed by the same watch: no negative-cache lag (Kubernetes users report 30 s). The first
    # query after the API shows it ready answers it; a 0.3 s allowance covers the DNS's own watch delivery.
    answered = eventually(lambda: answers(ask(cluster, name)), timeout=0.3, interval=0.01, what="late-svc A")
    assert answered == [ip]


def test_ptr_of_an_endpoint_of_two_services_names_both(cluster: Server) -> None:
    """CoreDNS answers one PTR per Service an address is an endpoint of."""
    cluster.apply(manifest(echo_deployment("twice", 1), service("twice-a", {"app": "twice"}, [{"port": 80}]),
                           service("twice-b", {"app": "twice"}, [{"port": 81, "targetPort": 8080}])))
    ip = eventually(lambda: next(iter(ready_pod_ips(cluster, "app=twice").values()), ""), what="the pod's address")
    reverse = ".".join(reversed(ip.split("."))) + ".in-addr.arpa"

    def both() -> list[str]:
        try:
            names = sorted(answers(ask(cluster, reverse, "PTR"), "PTR"))
        except dns.exception.Timeout:  # not a cluster address yet: forwarded upstream, which this machine lacks
            return []
        return names if len(names) == 2 else []
    names = eventually(both, what="two PTR records")
    dashed = ip.replace(".", "-")
    assert names == [f"{dashed}.twice-a.default.svc.cluster.local.", f"{dashed}.twice-b.default.svc.cluster.local."]
