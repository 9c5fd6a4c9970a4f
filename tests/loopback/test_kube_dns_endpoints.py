"""The kube-dns endpoints are written by the DNS server (managed-by nanokube-dns, skip-mirror), restored when
deleted, and follow the DNS's listen address across restarts: loopback mode binds the ClusterIP itself (the
Service carries the proxy opt-out label), a --dns-listen elsewhere makes kube-dns an ordinary proxied Service
(the label goes, also from a data dir made with it)."""

from __future__ import annotations

import json
import shutil

import dns.exception
import dns.message
import dns.query
import dns.rcode
from tests.conftest import Server, start_server
from tests.loopback.conftest import _free_octets
from tests.polling import eventually

from nanokube.testing.ports import free_port

PROXY_NAME = "service.kubernetes.io/service-proxy-name"


def get(srv: Server, *args: str) -> dict:
    return json.loads(srv.kubectl("get", "-n", "kube-system", *args, "-o", "json").stdout)


def endpoints_of(srv: Server) -> tuple[list[list[str]], set[tuple[str, int, str]]]:
    eps = get(srv, "endpointslice", "kube-dns")
    return ([e["addresses"] for e in eps["endpoints"]],
            {(p["name"], p["port"], p["protocol"]) for p in eps["ports"]})


def answers(address: str, port: int) -> bool:
    query = dns.message.make_query("kubernetes.default.svc.cluster.local", "A")
    try:
        answer = dns.query.udp(query, address, port=port, timeout=1)
    except dns.exception.Timeout:
        return False
    return answer.rcode() == dns.rcode.NOERROR and bool(answer.answer)


def test_kube_dns_endpoints_are_the_dns_servers_own_and_follow_its_address() -> None:
    svc_octet, pod, lb = _free_octets(3)
    ranges = ["--network", "loopback", "--service-cidr", f"127.{svc_octet}.0.0/16", "--pod-cidr",
              f"127.{pod}.0.0/16", "--lb-pool", f"127.{lb}.0.0/24", "--dns-upstream", "127.0.0.1:9"]
    srv = start_server(*ranges)
    data_dir = srv.data_dir
    try:
        svc = get(srv, "svc", "kube-dns")
        cluster_ip = svc["spec"]["clusterIP"]
        assert svc["metadata"]["labels"][PROXY_NAME] == "nanokube-dns"  # bound by the DNS: not the proxy's
        eps = get(srv, "endpointslice", "kube-dns")
        assert eps["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "nanokube-dns"
        addresses, ports = endpoints_of(srv)
        assert addresses == [[cluster_ip]]
        dns_port = next(port for name, port, _ in ports if name == "dns")
        assert ports == {("dns", dns_port, "UDP"), ("dns-tcp", dns_port, "TCP"), ("metrics", 9153, "TCP")}
        ep = get(srv, "endpoints", "kube-dns")
        assert ep["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
        # no controller owns it: the DNS server puts it back
        srv.kubectl("delete", "endpointslice", "-n", "kube-system", "kube-dns")
        eventually(lambda: endpoints_of(srv)[0] == [[cluster_ip]], timeout=20, what="the slice restored")
        assert srv.stop() == 0

        elsewhere = free_port()
        srv = start_server(*ranges, "--dns-listen", f"127.0.0.1:{elsewhere}", data_dir=data_dir)
        assert PROXY_NAME not in get(srv, "svc", "kube-dns")["metadata"]["labels"]
        # (metrics on 127.0.0.1:9153 only when nothing else on the machine holds that port)
        eventually(lambda: endpoints_of(srv)[0] == [["127.0.0.1"]] and endpoints_of(srv)[1] - {
            ("metrics", 9153, "TCP")} == {("dns", elsewhere, "UDP"), ("dns-tcp", elsewhere, "TCP")}, timeout=20)
        # the userspace proxy now carries the ClusterIP to the DNS; nothing else binds it
        eventually(lambda: answers(cluster_ip, 53), timeout=30, what=f"an answer from {cluster_ip}:53")
        assert answers("127.0.0.1", elsewhere)
    finally:
        srv.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
