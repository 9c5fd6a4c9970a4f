"""CoreDNS-compatible Prometheus metrics (CoreDNS `plugin/metrics`, `plugin/cache`), the numbers behind :9153/metrics.

Names, types and labels are CoreDNS's, so its dashboards and alerts work unchanged:

    coredns_dns_requests_total{server, zone, view, proto, family, type}     counter
    coredns_dns_responses_total{server, zone, view, rcode, plugin}          counter
    coredns_dns_request_duration_seconds{server, zone, view}                histogram, 0.25 ms .. 8.192 s (x2)
    coredns_cache_entries{server, type, zones, view}                        gauge (type: success | denial)
    coredns_cache_requests_total / _hits_total{type} / _misses_total        counters
    coredns_build_info{version, revision, goversion}, coredns_plugin_enabled, coredns_panics_total

As with kubeadm's Corefile (one server block `.:53`), `server` is `dns://:<port>`, `zone` is "." and `view` is
empty. `plugin` names who wrote the answer: `kubernetes` (cluster and reverse names), `forward` (asked
upstream), `cache` (upstream answer from the forwarder's cache), "" (written by the server: malformed
queries, loops, no upstream). The cache metrics are the forwarder's cache of upstream answers, which is what
kubeadm's `cache 30` holds (it disables caching for the cluster zone).

Hot path: every (type, rcode, plugin) label set has one `cell`, a list of counts indexed by listener slot
(listen address x udp/tcp). The engine's memo stores the cell next to the response bytes, so a memo hit
counts with one in-place increment; labels are joined only when /metrics is scraped.

Durations: every answer that is computed (resolver, forwarder, TCP) is timed and observed. Memo hits (the
pre-rendered answer bytes sent back as they are, ~0.3 us of Python) are counted exactly but timed only one in
64 per label set (SAMPLE_MASK): two clock reads would double their cost. When scraped, the memo hits
of a listener (its requests minus its timed answers) are spread over the buckets in the proportions of their
timed sample, and add count x the sample's mean to the sum; _count therefore always equals the requests.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# plugin.TimeBuckets: prometheus.ExponentialBuckets(0.00025, 2, 16)
TIME_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))
FIRST_BUCKET = TIME_BUCKETS[0]
# plugin/metrics/vars/monitor.go: the query types counted by name; every other one is "other"
MONITORED_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
                   43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3", 64: "SVCB", 65: "HTTPS",
                   251: "IXFR", 252: "AXFR", 255: "ANY"}
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
               7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS"}
PLUGINS = ("cache", "forward", "kubernetes", "prometheus")  # coredns_plugin_enabled: the kubeadm Corefile's analogues
ZONE = "."
VIEW = ""
# the histogram's slots: one per bucket, one for +Inf, then the sum
INF_INDEX = len(TIME_BUCKETS)
SUM_INDEX = INF_INDEX + 1
# a memo hit is timed when its cell's count & SAMPLE_MASK == SAMPLE_AT: one in 64, from the first hit of a label
# set on (its first answer was computed, so its first memo hit makes the count 2); dns/server.py has them inline
SAMPLE_MASK = 63
SAMPLE_AT = 2

Cell = list[int]


@dataclass(frozen=True, slots=True)
class Slot:
    server: str  # dns://:<port>
    proto: str  # udp | tcp
    family: str  # 1 (IPv4) | 2 (IPv6)


def new_histogram() -> list[float]:
    return [0] * (SUM_INDEX + 1)


def observe(hist: list[float], took: float) -> None:
    if took <= FIRST_BUCKET:
        hist[0] += 1
    else:
        hist[bisect_left(TIME_BUCKETS, took)] += 1
    hist[SUM_INDEX] += took


class DnsMetrics:
    def __init__(self, listen: Iterable[tuple[str, int]], *, version: str | None = None) -> None:
        self.slots: list[Slot] = []
        for host, port in listen:
            family = "2" if ":" in host else "1"
            self.slots.extend(Slot(f"dns://:{port}", proto, family) for proto in ("udp", "tcp"))
        if not self.slots:
            self.slots.append(Slot("dns://:53", "udp", "1"))  # an engine without listeners (unit use)
        self.histograms: list[list[float]] = [new_histogram() for _ in self.slots]  # timed answers
        self.samples: list[list[float]] = [new_histogram() for _ in self.slots]  # timed memo hits
        self.cells: dict[tuple[str, int, str], Cell] = {}
        self.panics = 0
        self.version = version  # None: nanokube's, looked up when first scraped (importlib.metadata is not small)
        # (success entries, denial entries), hits by type, misses: the forwarder's cache, read when scraped
        self.cache_stats: Callable[[], tuple[int, int, int, int, int]] | None = None

    def slot(self, host: str, port: int, proto: str) -> int:
        """The slot of a listener (its position: two per listen address, udp then tcp)."""
        server, family = f"dns://:{port}", "2" if ":" in host else "1"
        for i, s in enumerate(self.slots):
            if (s.server, s.proto, s.family) == (server, proto, family):
                return i
        return 0

    def bound(self, slot: int, port: int) -> None:
        """A listener asked for port 0 got `port`: name its server by it."""
        old = self.slots[slot]
        self.slots[slot] = Slot(f"dns://:{port}", old.proto, old.family)

    def cell(self, qtype: int, rcode: int, plugin: str) -> Cell:
        key = (MONITORED_TYPES.get(qtype, "other"), rcode, plugin)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = [0] * len(self.slots)
        return cell

    def count(self, slot: int, qtype: int, rcode: int, plugin: str) -> None:
        self.cell(qtype, rcode, plugin)[slot] += 1

    # -- exposition ------------------------------------------------------------------------------------
    def render(self) -> str:
        """The Prometheus text format (version 0.0.4)."""
        out: list[str] = []
        requests: dict[tuple[str, ...], int] = {}
        responses: dict[tuple[str, ...], int] = {}
        for (qtype, rcode, plugin), cell in self.cells.items():
            rname = RCODE_NAMES.get(rcode, f"RCODE{rcode}")
            for slot, n in zip(self.slots, cell, strict=True):
                if not n:
                    continue
                rk = (slot.server, ZONE, VIEW, slot.proto, slot.family, qtype)
                requests[rk] = requests.get(rk, 0) + n
                sk = (slot.server, ZONE, VIEW, rname, plugin)
                responses[sk] = responses.get(sk, 0) + n
        _family(out, "coredns_dns_requests_total", "counter", "Counter of DNS requests made per zone, protocol "
                "and family.", ("server", "zone", "view", "proto", "family", "type"), requests)
        _family(out, "coredns_dns_responses_total", "counter", "Counter of response status codes.",
                ("server", "zone", "view", "rcode", "plugin"), responses)
        self._render_durations(out)
        self._render_cache(out)
        _family(out, "coredns_build_info", "gauge", "A metric with a constant '1' value labeled by version, "
                "revision, and goversion from which CoreDNS was built.", ("version", "revision", "goversion"),
                {(self._version(), "", "python{}.{}.{}".format(*sys.version_info[:3])): 1})
        servers = sorted({s.server for s in self.slots})
        _family(out, "coredns_plugin_enabled", "gauge", "A metric that indicates whether a plugin is enabled on "
                "per server and zone basis.", ("server", "zone", "view", "name"),
                {(server, ZONE, VIEW, name): 1 for server in servers for name in PLUGINS})
        _family(out, "coredns_panics_total", "counter", "A metrics that counts the number of panics.", (),
                {(): self.panics})
        return "".join(out)

    def _version(self) -> str:
        if self.version is None:
            from importlib.metadata import PackageNotFoundError, version

            try:
                self.version = version("nanokube")
            except PackageNotFoundError:
                self.version = ""
        return self.version

    def _render_durations(self, out: list[str]) -> None:
        name = "coredns_dns_request_duration_seconds"
        merged: dict[str, list[float]] = {}
        for i, slot in enumerate(self.slots):
            into = merged.setdefault(slot.server, new_histogram())
            for part in (self.histograms[i], self._memo_hits(i)):
                for j, v in enumerate(part):
                    into[j] += v
        out.append(f"# HELP {name} Histogram of the time (in seconds) each request took per zone.\n"
                   f"# TYPE {name} histogram\n")
        for server, hist in sorted(merged.items()):
            labels = f'server="{_esc(server)}",view="{VIEW}",zone="{ZONE}"'
            running = 0
            for bound, n in zip(TIME_BUCKETS, hist, strict=False):
                running += int(n)
                out.append(f'{name}_bucket{{{labels},le="{_num(bound)}"}} {running}\n')
            running += int(hist[INF_INDEX])
            out.append(f'{name}_bucket{{{labels},le="+Inf"}} {running}\n')
            out.append(f"{name}_sum{{{labels}}} {_num(hist[SUM_INDEX])}\n")
            out.append(f"{name}_count{{{labels}}} {running}\n")

    def _memo_hits(self, slot: int) -> list[float]:
        """The memo hits of a slot as a histogram: their exact number, spread as their timed sample."""
        hist = self.histograms[slot]
        hits = sum(cell[slot] for cell in self.cells.values()) - int(sum(hist[:SUM_INDEX]))
        out = new_histogram()
        if hits <= 0:
            return out
        sample = self.samples[slot]
        sampled = sum(sample[:SUM_INDEX])
        if not sampled:
            out[0] = hits
            return out
        running = placed = 0.0
        for i in range(SUM_INDEX):
            running += sample[i]
            upto = round(hits * running / sampled)
            out[i] = upto - placed
            placed = upto
        out[SUM_INDEX] = hits * sample[SUM_INDEX] / sampled
        return out

    def _render_cache(self, out: list[str]) -> None:
        if self.cache_stats is None:
            return
        success, denial, hit_success, hit_denial, misses = self.cache_stats()
        servers = sorted({s.server for s in self.slots})
        _family(out, "coredns_cache_entries", "gauge", "The number of elements in the cache.",
                ("server", "type", "zones", "view"),
                {k: v for server in servers for k, v in (((server, "success", ZONE, VIEW), success),
                                                         ((server, "denial", ZONE, VIEW), denial))})
        # one cache for all listeners: its counters are reported under the first server, as one process
        first = servers[0]
        _family(out, "coredns_cache_requests_total", "counter", "The count of cache requests.",
                ("server", "zones", "view"), {(first, ZONE, VIEW): hit_success + hit_denial + misses})
        _family(out, "coredns_cache_hits_total", "counter", "The count of cache hits.",
                ("server", "type", "zones", "view"),
                {(first, "success", ZONE, VIEW): hit_success, (first, "denial", ZONE, VIEW): hit_denial})
        _family(out, "coredns_cache_misses_total", "counter", "The count of cache misses. Deprecated, derive "
                "misses from cache hits/requests counters.", ("server", "zones", "view"), {(first, ZONE, VIEW): misses})


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    return repr(float(value))  # shortest round-trip form, as Go's FormatFloat(v, 'g', -1, 64) for these values


def _family(out: list[str], name: str, kind: str, help_text: str, label_names: tuple[str, ...],
            series: dict[tuple[str, ...], int]) -> None:
    out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
    for values, n in sorted(series.items()):
        if label_names:
            labels = ",".join(f'{k}="{_esc(v)}"' for k, v in sorted(zip(label_names, values, strict=True)))
            out.append(f"{name}{{{labels}}} {n}\n")
        else:
            out.append(f"{name} {n}\n")

