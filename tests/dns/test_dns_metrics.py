"""CoreDNS-compatible metrics: real queries (dnspython, UDP and TCP) to a running DNS server, then a real HTTP GET
of /metrics; the counters moved under CoreDNS's names and labels (plugin/metrics, plugin/cache)."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request

import dns.rcode
import pytest

from conftest import cluster_objects, running_dns
from nanokube.dns import DnsSettings

LINE = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
COREDNS_LE = ["0.00025", "0.0005", "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256",
              "0.512", "1.024", "2.048", "4.096", "8.192", "+Inf"]


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        m = LINE.match(line)
        assert m, f"not Prometheus text: {line!r}"
        out.setdefault(m.group(1), []).append((dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    out["__types__"] = [(types, 0.0)]
    return out


def value(metrics: dict, metric: str, /, **labels: str) -> float:
    return sum(v for got, v in metrics.get(metric, []) if all(got.get(k) == want for k, want in labels.items()))


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(resp.read().decode())


@pytest.fixture
async def served(upstream):  # type: ignore[no-untyped-def]
    settings = DnsSettings(listen=[("127.0.0.1", 0)], upstreams=[f"{upstream.address[0]}:{upstream.address[1]}"],
                           metrics_port=0)
    async with running_dns(settings, cluster_objects()) as running:
        await running.parts.metrics_started.wait()
        assert running.parts.metrics_server is not None
        yield running, running.parts.metrics_server.addresses[0][1]


async def test_queries_move_coredns_counters_with_coredns_labels(served, dnsq) -> None:  # type: ignore[no-untyped-def]
    running, port = served
    address = running.address
    server = f"dns://:{address[1]}"
    before = await asyncio.to_thread(scrape, port)
    assert value(before, "coredns_dns_requests_total") == 0
    for _ in range(3):  # the first is resolved, the others are memo hits: all counted
        r = await dnsq.ask(address, "svc1.testns.svc.cluster.local", "A")
        assert r.answer
    assert (await dnsq.ask(address, "svc1.testns.svc.cluster.local", "AAAA", tcp=True)).rcode() == dns.rcode.NOERROR
    assert (await dnsq.ask(address, "nope.testns.svc.cluster.local", "A")).rcode() == dns.rcode.NXDOMAIN
    assert (await dnsq.ask(address, "nope.testns.svc.cluster.local", "A")).rcode() == dns.rcode.NXDOMAIN
    await dnsq.ask(address, "svc1.testns.svc.cluster.local", "NAPTR")  # a type CoreDNS lumps into "other"
    for _ in range(2):  # upstream once, then the forwarder's cache
        assert (await dnsq.ask(address, "example.org", "A")).answer
    assert (await dnsq.ask(address, "nothing.example.org", "A")).rcode() == dns.rcode.NXDOMAIN

    m = await asyncio.to_thread(scrape, port)
    types = m["__types__"][0][0]
    assert types["coredns_dns_requests_total"] == "counter"
    assert types["coredns_dns_responses_total"] == "counter"
    assert types["coredns_dns_request_duration_seconds"] == "histogram"
    assert types["coredns_cache_entries"] == "gauge"
    common = {"server": server, "zone": ".", "view": ""}
    requests = {tuple(sorted(labels.items())): v for labels, v in m["coredns_dns_requests_total"]}
    assert requests == {
        tuple(sorted({**common, "proto": "udp", "family": "1", "type": "A"}.items())): 3 + 2 + 2 + 1,
        tuple(sorted({**common, "proto": "tcp", "family": "1", "type": "AAAA"}.items())): 1,
        tuple(sorted({**common, "proto": "udp", "family": "1", "type": "other"}.items())): 1,
    }
    assert value(m, "coredns_dns_responses_total", rcode="NOERROR", plugin="kubernetes", **common) == 3 + 1 + 1
    assert value(m, "coredns_dns_responses_total", rcode="NXDOMAIN", plugin="kubernetes", **common) == 2
    assert value(m, "coredns_dns_responses_total", rcode="NOERROR", plugin="forward", **common) == 1
    assert value(m, "coredns_dns_responses_total", rcode="NOERROR", plugin="cache", **common) == 1
    assert value(m, "coredns_dns_responses_total", rcode="NXDOMAIN", plugin="forward", **common) == 1

    buckets = [(labels["le"], v) for labels, v in m["coredns_dns_request_duration_seconds_bucket"]
               if labels["server"] == server]
    assert [le for le, _ in buckets] == COREDNS_LE
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == 10  # cumulative; every request observed once
    assert value(m, "coredns_dns_request_duration_seconds_count", server=server) == 10
    assert 0 < value(m, "coredns_dns_request_duration_seconds_sum", server=server) < 10

    assert value(m, "coredns_cache_entries", type="success") == 1  # example.org
    assert value(m, "coredns_cache_entries", type="denial") == 1  # nothing.example.org
    assert value(m, "coredns_cache_hits_total", type="success") == 1
    assert value(m, "coredns_cache_misses_total") == 2
    assert value(m, "coredns_cache_requests_total") == 3
    (info,) = m["coredns_build_info"]
    assert info[1] == 1 and set(info[0]) == {"version", "revision", "goversion"}
    assert value(m, "coredns_plugin_enabled", name="kubernetes", server=server) == 1


async def test_only_metrics_is_served(served) -> None:  # type: ignore[no-untyped-def]
    _, port = served
    with pytest.raises(urllib.error.HTTPError) as err:
        await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/", timeout=5)
    assert err.value.code == 404
