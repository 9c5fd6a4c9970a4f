"""With --dns-listen on an address other than the kube-dns ClusterIP, the ClusterIP (what pods' resolv.conf
names) still answers: the proxy carries it to the listen address."""

from __future__ import annotations

import dns.exception
import dns.message
import dns.query
import dns.rcode
from tests.conftest import Server, start_server
from tests.loopback.conftest import _free_octets
from tests.polling import eventually

from nanokube.testing.ports import free_port


def test_kube_dns_cluster_ip_answers_when_dns_listens_elsewhere() -> None:
    svc, pod, lb = _free_octets(3)
    srv: Server = start_server("--network", "loopback", "--service-cidr", f"127.{svc}.0.0/16",
                               "--pod-cidr", f"127.{pod}.0.0/16", "--lb-pool", f"127.{lb}.0.0/24",
                               "--dns-upstream", "127.0.0.1:9", "--dns-listen", f"127.0.0.1:{free_port()}")
    try:
        cluster_ip = srv.kubectl("get", "svc", "-n", "kube-system", "kube-dns",
                                 "-o", "jsonpath={.spec.clusterIP}").stdout.strip()

        def resolved() -> bool:
            query = dns.message.make_query("kubernetes.default.svc.cluster.local", "A")
            try:
                answer = dns.query.udp(query, cluster_ip, port=53, timeout=1)
            except dns.exception.Timeout:
                return False
            return answer.rcode() == dns.rcode.NOERROR and bool(answer.answer)
        eventually(resolved, 30, what=f"an answer from the kube-dns ClusterIP {cluster_ip}:53")
    finally:
        srv.stop()
