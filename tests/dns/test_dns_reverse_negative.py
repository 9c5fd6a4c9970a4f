"""Negative answers in the reverse zones, as CoreDNS gives them with the Corefile of kubeadm and k3s
(`kubernetes cluster.local in-addr.arpa ip6.arpa { fallthrough in-addr.arpa ip6.arpa }` then `forward .`): a PTR
for an address that is no Service's or endpoint's, inside the cluster's ranges or outside them, falls through to
the upstream, and the client receives the upstream's NXDOMAIN with its SOA in the authority section (so resolvers
can cache it negatively, RFC 2308); without an upstream it is SERVFAIL (CoreDNS: no next plugin / no healthy
upstream). The cluster zone's own NXDOMAIN carries the cluster zone's SOA. The upstream is a dnspython server on
127.0.0.1 answering every name with NXDOMAIN and the SOA of a locally served reverse zone (RFC 6303)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest

from conftest import cluster_objects, running_dns
from nanokube.dns import DnsSettings

T = "testns.svc.cluster.local."
V6_UNKNOWN = "9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa."


def rfc6303_soa(qname: str) -> str:
    """The SOA a resolver serving the RFC 6303 zones puts in its NXDOMAIN: 10.in-addr.arpa, the /24 of other IPv4
    names (2.0.192.in-addr.arpa), d.f.ip6.arpa."""
    labels = qname.rstrip(".").split(".")
    keep = 4 if labels[-2] == "ip6" else 3 if labels[-3] == "10" else 5
    return f"{'.'.join(labels[-keep:])}. 10800 IN SOA localhost. nobody.invalid. 1 3600 1200 604800 10800"


class _NxUpstream(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queries: list[str] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        qname = query.question[0].name.to_text().lower()
        self.queries.append(qname)
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.NXDOMAIN)
        name, ttl, _, rtype, *rdata = rfc6303_soa(qname).split(" ")
        response.authority.append(dns.rrset.from_text(name, int(ttl), "IN", rtype, " ".join(rdata)))
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def nx_upstream() -> AsyncIterator[_NxUpstream]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        _NxUpstream, local_addr=("127.0.0.1", 0))
    protocol.address = transport.get_extra_info("sockname")  # type: ignore[attr-defined]
    yield protocol
    transport.close()


@pytest.fixture
async def with_upstream(nx_upstream: _NxUpstream) -> AsyncIterator[Any]:
    host, port = nx_upstream.address  # type: ignore[attr-defined]
    async with running_dns(DnsSettings(listen=[("127.0.0.1", 0)], upstreams=[f"{host}:{port}"]),
                           cluster_objects()) as running:
        yield running


@pytest.mark.parametrize("qname", [
    "200.0.96.10.in-addr.arpa.",  # in the service CIDR, no Service has it
    "9.9.244.10.in-addr.arpa.",  # in the pod CIDR, no endpoint has it
    "1.2.0.192.in-addr.arpa.",  # outside the cluster's ranges
    V6_UNKNOWN,  # in the IPv6 service range, no Service has it
])
async def test_unknown_ptr_gets_the_upstreams_nxdomain_with_its_soa(with_upstream, nx_upstream, dnsq, qname) -> None:  # type: ignore[no-untyped-def]
    r = await dnsq.ask(with_upstream.address, qname, "PTR")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert r.answer == []
    assert dnsq.lines(r.authority) == [rfc6303_soa(qname)]
    assert nx_upstream.queries == [qname]
    again = await dnsq.ask(with_upstream.address, qname, "PTR")  # from the cache, the SOA still there
    assert again.rcode() == dns.rcode.NXDOMAIN and len(again.authority) == 1
    assert nx_upstream.queries == [qname]


async def test_known_ptr_and_cluster_zone_nxdomain_are_ours(with_upstream, nx_upstream, dnsq) -> None:  # type: ignore[no-untyped-def]
    known = await dnsq.ask(with_upstream.address, "11.0.96.10.in-addr.arpa.", "PTR")
    assert dnsq.lines(known.answer) == [f"11.0.96.10.in-addr.arpa. 5 IN PTR svc1.{T}"]
    missing = await dnsq.ask(with_upstream.address, f"svc0.{T}", "A")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert dnsq.lines(missing.authority) == [dnsq.SOA]
    assert nx_upstream.queries == []


async def test_unknown_ptr_without_an_upstream_is_servfail(dnsq) -> None:  # type: ignore[no-untyped-def]
    async with running_dns(DnsSettings(listen=[("127.0.0.1", 0)], upstreams=[]), cluster_objects()) as running:
        for qname in ("200.0.96.10.in-addr.arpa.", "1.2.0.192.in-addr.arpa."):
            r = await dnsq.ask(running.address, qname, "PTR")
            assert r.rcode() == dns.rcode.SERVFAIL, qname
        known = await dnsq.ask(running.address, "11.0.96.10.in-addr.arpa.", "PTR")
        assert known.rcode() == dns.rcode.NOERROR and len(known.answer) == 1
