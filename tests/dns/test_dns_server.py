"""Transport behaviour (truncation, TCP, EDNS, malformed input), live changes, sync state and pod modes."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import struct
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from conftest import cluster_objects, endpoint, endpointslice, namespace, running_dns, service
from nanokube.dns import DnsSettings

HDLS_SRV = "_http._tcp.hdls1.testns.svc.cluster.local."


async def test_truncation_then_tcp_retry(cluster_dns, dnsq) -> None:  # type: ignore[no-untyped-def]
    small = await dnsq.ask(cluster_dns.address, HDLS_SRV, "SRV")
    assert small.flags & dns.flags.TC and not small.answer
    edns = await dnsq.ask(cluster_dns.address, HDLS_SRV, "SRV", use_edns=0, payload=1232)
    assert not edns.flags & dns.flags.TC and len(edns.answer[0]) == 5 and edns.edns == 0
    tcp = await dnsq.ask(cluster_dns.address, HDLS_SRV, "SRV", tcp=True)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 5
    assert dnsq.lines(tcp.additional) == dnsq.lines(edns.additional)


async def test_edns_answers_carry_opt_and_badvers(cluster_dns, dnsq) -> None:  # type: ignore[no-untyped-def]
    plain = await dnsq.ask(cluster_dns.address, "svc1.testns.svc.cluster.local", "A")
    assert plain.edns == -1
    edns = await dnsq.ask(cluster_dns.address, "svc1.testns.svc.cluster.local", "A", use_edns=0)
    assert edns.edns == 0 and edns.answer
    bad = await dnsq.ask(cluster_dns.address, "svc1.testns.svc.cluster.local", "A", use_edns=1)
    assert bad.rcode() == dns.rcode.BADVERS and not bad.answer


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig (dnsutils) not installed")
async def test_dig(cluster_dns) -> None:  # type: ignore[no-untyped-def]
    host, port = cluster_dns.address
    proc = await asyncio.create_subprocess_exec(
        "dig", f"@{host}", "-p", str(port), "+tries=1", "+time=2", "mariadb-service.default.svc.cluster.local", "A",
        stdout=asyncio.subprocess.PIPE)
    out = (await proc.communicate())[0].decode()
    assert "status: NOERROR" in out and "flags: qr aa rd" in out
    assert "mariadb-service.default.svc.cluster.local. 5 IN A 10.96.0.20" in " ".join(out.split())


async def test_changes_are_answered_on_the_next_query(cluster_dns, dnsq) -> None:  # type: ignore[no-untyped-def]
    cache, addr = cluster_dns.cache, cluster_dns.address
    name = "newsvc.testns.svc.cluster.local"
    for _ in range(2):  # the negative answer is memoized by now
        gone = await dnsq.ask(addr, name, "A")
        assert gone.rcode() == dns.rcode.NXDOMAIN
    serial = gone.authority[0][0].serial
    cache.add(service("testns", "newsvc", ["10.96.0.77"], [("http", "TCP", 80)], rv="100"))
    found = await dnsq.ask(addr, name, "A")
    assert dnsq.lines(found.answer) == [f"{name}. 5 IN A 10.96.0.77"]
    nodata = await dnsq.ask(addr, name, "AAAA")
    assert nodata.authority[0][0].serial > serial

    # a ClusterIP change replaces the memoized positive answer at once
    await dnsq.ask(addr, name, "A")
    cache.on_service_update({}, service("testns", "newsvc", ["10.96.0.78"], [("http", "TCP", 80)], rv="101"))
    assert dnsq.lines((await dnsq.ask(addr, name, "A")).answer) == [f"{name}. 5 IN A 10.96.0.78"]

    # a pod becoming ready shows up in the headless answer
    hd = "hdls1.testns.svc.cluster.local"
    before = dnsq.lines((await dnsq.ask(addr, hd, "A")).answer)
    cache.add(endpointslice("testns", "hdls1", "v4", [endpoint("10.244.0.2"), endpoint("10.244.0.9")],
                            [("http", "TCP", 80)], rv="102"))
    after = dnsq.lines((await dnsq.ask(addr, hd, "A")).answer)
    assert after == [f"{hd}. 5 IN A 10.244.0.2", f"{hd}. 5 IN A 10.244.0.9"] and after != before

    cache.on_service_delete(service("testns", "newsvc", ["10.96.0.78"], [], rv="103"))
    assert (await dnsq.ask(addr, name, "A")).rcode() == dns.rcode.NXDOMAIN


async def test_unchanged_update_keeps_serial(cluster_dns, dnsq) -> None:  # type: ignore[no-untyped-def]
    cache = cluster_dns.cache
    serial = cache.serial
    cache.on_service_update({}, service("testns", "svc1", ["10.96.0.11"], [("http", "TCP", 80), ("https", "TCP", 443)],
                                        rv="999"))
    assert cache.serial == serial


async def test_servfail_until_synced(upstream, dnsq) -> None:  # type: ignore[no-untyped-def]
    settings = DnsSettings(listen=[("127.0.0.1", 0)], upstreams=[])
    async with running_dns(settings, cluster_objects(), synced=False) as running:
        missing = await dnsq.ask(running.address, "nope.testns.svc.cluster.local", "A")
        assert missing.rcode() == dns.rcode.SERVFAIL
        known = await dnsq.ask(running.address, "svc1.testns.svc.cluster.local", "A")
        assert known.answer
        running.cache.mark_synced()
        missing = await dnsq.ask(running.address, "nope.testns.svc.cluster.local", "A")
        assert missing.rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize(("mode", "rcode", "answer"), [
    ("insecure", "NOERROR", ["10-1-2-3.testns.pod.cluster.local. 5 IN A 10.1.2.3"]),
    ("disabled", "NXDOMAIN", []),
])
async def test_pod_modes(dnsq, mode: str, rcode: str, answer: list[str]) -> None:  # type: ignore[no-untyped-def]
    settings = DnsSettings(listen=[("127.0.0.1", 0)], upstreams=[], pods_mode=mode)
    async with running_dns(settings, [namespace("testns")]) as running:
        r = await dnsq.ask(running.address, "10-1-2-3.testns.pod.cluster.local", "A")
        assert dns.rcode.to_text(r.rcode()) == rcode and dnsq.lines(r.answer) == answer
        bad = await dnsq.ask(running.address, "not-an-ip.testns.pod.cluster.local", "A")
        assert bad.rcode() == dns.rcode.NXDOMAIN
        other_ns = await dnsq.ask(running.address, "10-1-2-3.nons.pod.cluster.local", "A")
        assert other_ns.rcode() == dns.rcode.NXDOMAIN


async def test_custom_domain_and_ttl(dnsq) -> None:  # type: ignore[no-untyped-def]
    settings = DnsSettings(listen=[("127.0.0.1", 0)], upstreams=[], cluster_domain="kube.example", ttl=30)
    async with running_dns(settings, cluster_objects()) as running:
        r = await dnsq.ask(running.address, "svc1.testns.svc.kube.example", "A")
        assert dnsq.lines(r.answer) == ["svc1.testns.svc.kube.example. 30 IN A 10.96.0.11"]
        neg = await dnsq.ask(running.address, "nope.testns.svc.kube.example", "A")
        assert dnsq.lines(neg.authority) == ["kube.example. 30 IN SOA ns.dns.kube.example. hostmaster.kube.example. "
                                             "SERIAL 7200 1800 86400 30"]


# -- malformed input ---------------------------------------------------------------------------------------
def _query(qid: int, name: bytes = b"\x04svc1\x06testns\x03svc\x07cluster\x05local\x00") -> bytes:
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"


def _exchange(sock: socket.socket, packet: bytes) -> bytes | None:
    sock.send(packet)
    try:
        return sock.recv(65535)
    except TimeoutError:
        return None


async def test_malformed_packets_get_formerr_or_nothing(cluster_dns) -> None:  # type: ignore[no-untyped-def]
    def run() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(cluster_dns.address)
            s.settimeout(0.3)
            assert _exchange(s, b"\x12\x34\x01") is None  # shorter than a header
            response = struct.pack("!HHHHHH", 7, 0x8180, 1, 0, 0, 0)
            assert _exchange(s, response + b"\x00\x00\x01\x00\x01") is None  # responses are never answered
            for bad in (struct.pack("!HHHHHH", 9, 0x0100, 2, 0, 0, 0) + b"\x00\x00\x01\x00\x01" * 2,  # qdcount 2
                        struct.pack("!HHHHHH", 9, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",  # pointer loop
                        struct.pack("!HHHHHH", 9, 0x0100, 65535, 0, 0, 0) + b"\x00",  # huge qdcount
                        _query(9)[:-3]):  # truncated question
                reply = _exchange(s, bad)
                assert reply is not None and reply[:2] == b"\x00\x09" and reply[3] & 0xF == dns.rcode.FORMERR
            status = bytearray(_query(10))
            status[2] = 0x10  # opcode 2 (STATUS)
            reply = _exchange(s, bytes(status))
            assert reply is not None and reply[3] & 0xF == dns.rcode.NOTIMP

    await asyncio.to_thread(run)


async def test_fuzz_keeps_answering(cluster_dns, caplog) -> None:  # type: ignore[no-untyped-def]
    """A bounded few seconds of random, truncated and mangled packets; `bench/dns_bench.py --fuzz 60` runs
    the long version."""
    rng = random.Random(6)
    good = _query(0)

    def packet() -> bytes:
        kind = rng.randrange(5)
        if kind == 0:
            return rng.randbytes(rng.randrange(0, 300))
        if kind == 1:
            return good[:rng.randrange(len(good))]
        if kind == 2:
            mangled = bytearray(good)
            for _ in range(rng.randrange(1, 5)):
                mangled[rng.randrange(len(mangled))] = rng.randrange(256)
            return bytes(mangled)
        if kind == 3:
            return struct.pack("!HHHHHH", 1, 0x0100, rng.randrange(65536), rng.randrange(65536), 0,
                               rng.randrange(65536)) + good[12:]
        return good + rng.randbytes(rng.randrange(1, 40))

    def run() -> int:
        sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as check:
            s.setblocking(False)
            check.connect(cluster_dns.address)
            check.settimeout(2)
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                for _ in range(200):
                    s.sendto(packet(), cluster_dns.address)
                    sent += 1
                with_answer = dns.message.from_wire(_exchange(check, _query(77)) or b"")
                assert with_answer.id == 77 and with_answer.answer
                try:
                    while s.recv(65535):
                        pass
                except BlockingIOError:
                    pass
        return sent

    sent = await asyncio.to_thread(run)
    assert sent > 1000
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
