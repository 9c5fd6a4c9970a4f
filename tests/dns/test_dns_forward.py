"""Names outside the zone go to the upstream (a dnspython-answering server on 127.0.0.1), with a cache and
loop protection."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import dns.flags
import dns.message
import dns.rcode

from conftest import cluster_objects, running_dns
from nanokube.dns import DnsSettings
from nanokube.testing.ports import free_port


async def test_forwarding_and_cache(cluster_dns, upstream, dnsq) -> None:  # type: ignore[no-untyped-def]
    r = await dnsq.ask(cluster_dns.address, "EXAMPLE.org", "A")
    assert dnsq.lines(r.answer) == ["EXAMPLE.org. 60 IN A 192.0.2.80"]
    assert not r.flags & dns.flags.AA
    asked = list(upstream.queries)
    assert asked == ["example.org. A"]
    again = await dnsq.ask(cluster_dns.address, "example.org", "A")
    assert dnsq.lines(again.answer) == ["example.org. 60 IN A 192.0.2.80"]
    assert upstream.queries == asked  # answered from the cache
    missing = await dnsq.ask(cluster_dns.address, "nothing.example.org", "A")
    assert missing.rcode() == dns.rcode.NXDOMAIN


async def test_big_upstream_answer_truncates_then_tcp(cluster_dns, dnsq) -> None:  # type: ignore[no-untyped-def]
    udp = await dnsq.ask(cluster_dns.address, "big.example.org", "TXT")
    assert udp.flags & dns.flags.TC
    tcp = await dnsq.ask(cluster_dns.address, "big.example.org", "TXT", tcp=True)
    assert not tcp.flags & dns.flags.TC and len(b"".join(tcp.answer[0][0].strings)) == 2000


async def test_reverse_miss_falls_through_to_upstream(cluster_dns, upstream, dnsq) -> None:  # type: ignore[no-untyped-def]
    r = await dnsq.ask(cluster_dns.address, "1.2.0.192.in-addr.arpa", "PTR")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert upstream.queries == ["1.2.0.192.in-addr.arpa. PTR"]


async def test_upstream_that_is_ourselves_is_never_used(dnsq) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    settings = DnsSettings(listen=[("127.0.0.1", port)], upstreams=[f"127.0.0.1:{port}"])
    async with running_dns(settings, cluster_objects()) as running:
        assert running.parts.forwarder.upstreams == []
        r = await dnsq.ask(running.address, "example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL


class _Relay(asyncio.DatagramProtocol):
    """A stub resolver (like systemd-resolved on 127.0.0.53) that forwards everything to one server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.seen = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen += 1
        asyncio.get_running_loop().create_task(self._relay(data, addr))

    async def _relay(self, data: bytes, addr: Any) -> None:
        import dns.asyncquery

        with contextlib.suppress(Exception):
            reply = await dns.asyncquery.udp(dns.message.from_wire(data), self.target[0], port=self.target[1],
                                             timeout=1)
            self.transport.sendto(reply.to_wire(), addr)


async def test_stub_pointing_back_is_detected(dnsq) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    loop = asyncio.get_running_loop()
    relay_transport, relay = await loop.create_datagram_endpoint(lambda: _Relay(("127.0.0.1", port)),
                                                                 local_addr=("127.0.0.1", 0))
    relay_port = relay_transport.get_extra_info("sockname")[1]
    try:
        settings = DnsSettings(listen=[("127.0.0.1", port)], upstreams=[f"127.0.0.1:{relay_port}"])
        async with running_dns(settings, cluster_objects(), check_loops=True) as running:
            await asyncio.wait_for(running.parts.forwarder.loop_checked.wait(), 5)
            assert running.parts.forwarder.upstreams == []
            seen = relay.seen
            r = await dnsq.ask(running.address, "example.org", "A")
            assert r.rcode() == dns.rcode.SERVFAIL
            assert relay.seen == seen  # nothing more went round the loop
            inside = await dnsq.ask(running.address, "svc1.testns.svc.cluster.local", "A")
            assert inside.answer
    finally:
        relay_transport.close()
