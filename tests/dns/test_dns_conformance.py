"""Table-driven conformance: the Kubernetes DNS spec 1.1.0 records and rcodes as CoreDNS answers them,
asked with dnspython over real UDP of the running server. Fixtures: conftest.cluster_objects()."""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.flags
import dns.rcode
import pytest

Z = "cluster.local."
T = "testns.svc.cluster.local."
SOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"


@dataclass
class Case:
    qname: str
    qtype: str
    rcode: str = "NOERROR"
    answer: list[str] = field(default_factory=list)
    authority: list[str] = field(default_factory=list)
    additional: list[str] = field(default_factory=list)


def a(owner: str, ip: str, ttl: int = 5) -> str:
    return f"{owner} {ttl} IN {'AAAA' if ':' in ip else 'A'} {ip}"


def srv(owner: str, weight: int, port: int, target: str) -> str:
    return f"{owner} 5 IN SRV 0 {weight} {port} {target}"


def cname(owner: str, target: str) -> str:
    return f"{owner} 5 IN CNAME {target}"


def ptr(owner: str, target: str) -> str:
    return f"{owner} 5 IN PTR {target}"


NODATA = [SOA]
HDLS_SRV_TARGETS = ["10-244-0-2", "10-244-0-3", "dup-name", "fd00-244--1", "fd00-244--2"]
HDLS_EXTRA = [a(f"10-244-0-2.hdls1.{T}", "10.244.0.2"), a(f"10-244-0-3.hdls1.{T}", "10.244.0.3"),
              a(f"dup-name.hdls1.{T}", "10.244.0.4"), a(f"dup-name.hdls1.{T}", "10.244.0.5"),
              a(f"fd00-244--1.hdls1.{T}", "fd00:244::1"), a(f"fd00-244--2.hdls1.{T}", "fd00:244::2")]

CASES = [
    # ClusterIP services (2.3.1)
    Case(f"svc1.{T}", "A", answer=[a(f"svc1.{T}", "10.96.0.11")]),
    Case(f"svcempty.{T}", "A", answer=[a(f"svcempty.{T}", "10.96.0.12")]),
    Case(f"svc1.{T}", "AAAA", authority=NODATA),
    Case(f"svc6.{T}", "AAAA", answer=[a(f"svc6.{T}", "fd00:96::6")]),
    Case(f"svc6.{T}", "A", authority=NODATA),
    Case(f"dual.{T}", "A", answer=[a(f"dual.{T}", "10.96.0.13")]),
    Case(f"dual.{T}", "AAAA", answer=[a(f"dual.{T}", "fd00:96::13")]),
    Case(f"kube-dns.kube-system.svc.{Z}", "A", answer=[a(f"kube-dns.kube-system.svc.{Z}", "10.96.0.10")]),
    # SRV on ClusterIP services (2.3.2) and the bare-name SRV extension
    Case(f"svc1.{T}", "SRV", answer=[srv(f"svc1.{T}", 50, 80, f"svc1.{T}"), srv(f"svc1.{T}", 50, 443, f"svc1.{T}")],
         additional=[a(f"svc1.{T}", "10.96.0.11")]),
    Case(f"_http._tcp.svc1.{T}", "SRV", answer=[srv(f"_http._tcp.svc1.{T}", 100, 80, f"svc1.{T}")],
         additional=[a(f"svc1.{T}", "10.96.0.11")]),
    Case(f"_https._tcp.svc1.{T}", "SRV", answer=[srv(f"_https._tcp.svc1.{T}", 100, 443, f"svc1.{T}")],
         additional=[a(f"svc1.{T}", "10.96.0.11")]),
    Case(f"_HTTP._TCP.svc1.{T}", "SRV", answer=[srv(f"_HTTP._TCP.svc1.{T}", 100, 80, f"svc1.{T}")],
         additional=[a(f"svc1.{T}", "10.96.0.11")]),
    Case(f"_http._udp.svc1.{T}", "SRV", "NXDOMAIN", authority=[SOA]),
    Case(f"_nope._tcp.svc1.{T}", "SRV", "NXDOMAIN", authority=[SOA]),
    Case(f"_http._tcp.svc1.{T}", "A", answer=[a(f"_http._tcp.svc1.{T}", "10.96.0.11")]),
    Case(f"dual.{T}", "SRV", answer=[srv(f"dual.{T}", 50, 80, f"dual.{T}")],
         additional=[a(f"dual.{T}", "10.96.0.13"), a(f"dual.{T}", "fd00:96::13")]),
    Case(f"_http._tcp.svc6.{T}", "SRV", answer=[srv(f"_http._tcp.svc6.{T}", 100, 80, f"svc6.{T}")],
         additional=[a(f"svc6.{T}", "fd00:96::6")]),
    Case(f"unnamed.{T}", "SRV", answer=[srv(f"unnamed.{T}", 100, 8000, f"unnamed.{T}")],
         additional=[a(f"unnamed.{T}", "10.96.0.14")]),
    Case(f"__tcp.unnamed.{T}", "SRV", "NXDOMAIN", authority=[SOA]),
    Case(f"_dns._udp.kube-dns.kube-system.svc.{Z}", "SRV",
         answer=[srv(f"_dns._udp.kube-dns.kube-system.svc.{Z}", 100, 53, f"kube-dns.kube-system.svc.{Z}")],
         additional=[a(f"kube-dns.kube-system.svc.{Z}", "10.96.0.10")]),
    # endpoint names under a ClusterIP service
    Case(f"10-244-0-11.svc1.{T}", "A", answer=[a(f"10-244-0-11.svc1.{T}", "10.244.0.11")]),
    # headless services (2.4.1, 2.4.2)
    Case(f"hdls1.{T}", "A", answer=[a(f"hdls1.{T}", ip) for ip in
                                    ("10.244.0.2", "10.244.0.3", "10.244.0.4", "10.244.0.5")]),
    Case(f"hdls1.{T}", "AAAA", answer=[a(f"hdls1.{T}", "fd00:244::1"), a(f"hdls1.{T}", "fd00:244::2")]),
    Case(f"10-244-0-2.hdls1.{T}", "A", answer=[a(f"10-244-0-2.hdls1.{T}", "10.244.0.2")]),
    Case(f"10-244-0-2.hdls1.{T}", "AAAA", authority=NODATA),
    Case(f"dup-name.hdls1.{T}", "A", answer=[a(f"dup-name.hdls1.{T}", "10.244.0.4"),
                                             a(f"dup-name.hdls1.{T}", "10.244.0.5")]),
    Case(f"10-244-0-9.hdls1.{T}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"bogus.hdls1.{T}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"fd00-244--1.hdls1.{T}", "AAAA", answer=[a(f"fd00-244--1.hdls1.{T}", "fd00:244::1")]),
    Case(f"_http._tcp.hdls1.{T}", "SRV",
         answer=[srv(f"_http._tcp.hdls1.{T}", 16, 80, f"{h}.hdls1.{T}") for h in HDLS_SRV_TARGETS],
         additional=HDLS_EXTRA),
    Case(f"hdls1.{T}", "SRV", answer=[srv(f"hdls1.{T}", 16, 80, f"{h}.hdls1.{T}") for h in HDLS_SRV_TARGETS],
         additional=HDLS_EXTRA),
    Case(f"hdlsprtls.{T}", "A", answer=[a(f"hdlsprtls.{T}", "10.244.0.20")]),
    Case(f"hdlsprtls.{T}", "SRV", authority=NODATA),
    Case(f"10-244-0-20.hdlsprtls.{T}", "A", answer=[a(f"10-244-0-20.hdlsprtls.{T}", "10.244.0.20")]),
    Case(f"hdlsempty.{T}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"notready.{T}", "A", answer=[a(f"notready.{T}", "10.244.0.30")]),
    Case(f"peer-0.notready.{T}", "A", answer=[a(f"peer-0.notready.{T}", "10.244.0.30")]),
    # ExternalName (2.5)
    Case(f"external.{T}", "CNAME", answer=[cname(f"external.{T}", "ext.interwebs.test.")]),
    Case(f"external.{T}", "A", answer=[cname(f"external.{T}", "ext.interwebs.test."),
                                       a("ext.interwebs.test.", "192.0.2.1", 60)]),
    Case(f"external.{T}", "TXT", answer=[cname(f"external.{T}", "ext.interwebs.test.")]),
    Case(f"external.{T}", "SRV", authority=NODATA),
    Case(f"ext-to-svc.{T}", "A", answer=[cname(f"ext-to-svc.{T}", f"svc1.{T}"), a(f"svc1.{T}", "10.96.0.11")]),
    Case(f"ext-ip.{T}", "A", answer=[a(f"ext-ip.{T}", "192.0.2.10")]),
    Case(f"ext-ip.{T}", "AAAA", authority=NODATA),
    Case(f"ext-missing.{T}", "A", "NXDOMAIN", answer=[cname(f"ext-missing.{T}", f"missing.{T}")], authority=[SOA]),
    Case(f"x.external.{T}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"_http._tcp.external.{T}", "SRV", "NXDOMAIN", authority=[SOA]),
    # names that do not exist, and empty non-terminals
    Case(f"svc0.{T}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"svc0.{T}", "AAAA", "NXDOMAIN", authority=[SOA]),
    Case(f"svc0.{T}", "MX", "NXDOMAIN", authority=[SOA]),
    Case(f"svc1.nonexistns.svc.{Z}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"svc-ghost.ghostns.svc.{Z}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"{T}", "A", authority=NODATA),
    Case(f"nonexistns.svc.{Z}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"svc.{Z}", "A", authority=NODATA),
    Case(f"pod.{Z}", "A", authority=NODATA),
    Case(f"foo.{Z}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"a.b.c.svc1.{T}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"svc1.{T}", "TXT", authority=NODATA),
    Case(f"svc1.{T}", "MX", authority=NODATA),
    Case(f"svc1.{T}", "PTR", authority=NODATA),
    # zone apex, schema version, name server
    Case(Z, "A", authority=NODATA),
    Case(Z, "SOA", answer=[SOA]),
    Case(Z, "NS", answer=[f"{Z} 5 IN NS kube-dns.kube-system.svc.{Z}"],
         additional=[a(f"kube-dns.kube-system.svc.{Z}", "10.96.0.10")]),
    Case(f"ns.dns.{Z}", "A", answer=[a(f"ns.dns.{Z}", "10.96.0.10")]),
    Case(f"dns-version.{Z}", "TXT", answer=[f"dns-version.{Z} 28800 IN TXT \"1.1.0\""]),
    # PTR (2.3.3, 2.4.3)
    Case("11.0.96.10.in-addr.arpa.", "PTR", answer=[ptr("11.0.96.10.in-addr.arpa.", f"svc1.{T}")]),
    Case("2.0.244.10.in-addr.arpa.", "PTR", answer=[ptr("2.0.244.10.in-addr.arpa.", f"10-244-0-2.hdls1.{T}")]),
    Case("4.0.244.10.in-addr.arpa.", "PTR", answer=[ptr("4.0.244.10.in-addr.arpa.", f"dup-name.hdls1.{T}")]),
    Case("1.1.244.10.in-addr.arpa.", "PTR",
         answer=[ptr("1.1.244.10.in-addr.arpa.", f"pod-1.headless-svc.default.svc.{Z}")]),
    Case("6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa.", "PTR",
         answer=[ptr("6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa.", f"svc6.{T}")]),
    # pod records, pods verified (the default)
    Case(f"10-244-0-11.testns.pod.{Z}", "A", answer=[a(f"10-244-0-11.testns.pod.{Z}", "10.244.0.11")]),
    Case(f"10-244-0-12.testns.pod.{Z}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"10-244-1-1.testns.pod.{Z}", "A", "NXDOMAIN", authority=[SOA]),
    Case(f"10-244-0-11.testns.pod.{Z}", "AAAA", authority=NODATA),
    Case(f"testns.pod.{Z}", "A", authority=NODATA),
    Case(f"nonexistns.pod.{Z}", "A", "NXDOMAIN", authority=[SOA]),
    # the query's spelling comes back in owners and in the zone part of SRV targets
    Case("SVC1.TestNS.svc.Cluster.Local.", "A", answer=[a("SVC1.TestNS.svc.Cluster.Local.", "10.96.0.11")]),
    Case("_http._tcp.HDLS1.testns.svc.CLUSTER.local.", "SRV",
         answer=[srv("_http._tcp.HDLS1.testns.svc.CLUSTER.local.", 16, 80, f"{h}.hdls1.testns.svc.CLUSTER.local.")
                 for h in HDLS_SRV_TARGETS],
         additional=[line.replace("cluster.local.", "CLUSTER.local.") for line in HDLS_EXTRA]),
    Case("NOPE.testns.svc.Cluster.local.", "A", "NXDOMAIN",
         authority=[SOA.replace("cluster.local.", "Cluster.local.")]),
    # the names from the article
    Case(f"mariadb-service.default.svc.{Z}", "A", answer=[a(f"mariadb-service.default.svc.{Z}", "10.96.0.20")]),
    Case(f"training-aurora-svc.default.svc.{Z}", "A",
         answer=[cname(f"training-aurora-svc.default.svc.{Z}",
                       "training-aurora.cluster-abc.us-east-1.rds.amazonaws.com."),
                 a("training-aurora.cluster-abc.us-east-1.rds.amazonaws.com.", "192.0.2.50", 60)]),
    Case(f"headless-svc.default.svc.{Z}", "A", answer=[a(f"headless-svc.default.svc.{Z}", "10.244.1.1"),
                                                       a(f"headless-svc.default.svc.{Z}", "10.244.1.2")]),
    Case(f"pod-1.headless-svc.default.svc.{Z}", "A", answer=[a(f"pod-1.headless-svc.default.svc.{Z}", "10.244.1.1")]),
]


def test_enough_cases() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[f"{c.qname}/{c.qtype}" for c in CASES])
async def test_conformance(cluster_dns, dnsq, case: Case) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2):  # the second answer comes from the precomputed caches
        response = await dnsq.ask(cluster_dns.address, case.qname, case.qtype)
        if response.flags & dns.flags.TC:  # too big for 512 bytes: retry over TCP as a stub resolver does
            response = await dnsq.ask(cluster_dns.address, case.qname, case.qtype, tcp=True)
        assert dns.rcode.to_text(response.rcode()) == case.rcode
        assert response.flags & dns.flags.AA
        assert response.question[0].name.to_text() == case.qname
        assert dnsq.lines(response.answer) == sorted(case.answer)
        assert dnsq.lines(response.authority) == sorted(case.authority)
        assert dnsq.lines(response.additional) == sorted(case.additional)
        if case.answer and "CNAME" in case.answer[0]:
            assert response.answer[0].rdtype == dns.rdatatype.CNAME  # a CNAME precedes its target
