"""From query bytes to answer bytes: the answer caches, rendering, and the split zone / reverse / upstream.

Three levels, fastest first:
* `memo` / `volatile_memo`: the exact query bytes after the ID -> (the response bytes after the ID, the metrics
  cell of its labels). The UDP protocol answers a hit with one dict lookup and one concatenation, and counts
  it with one increment; nothing is parsed.
* `answers` / `volatile`: case-folded question -> precomputed `Answer`, rendered per query by copying the
  question (so its spelling comes back) and appending precomputed record bytes.
* the resolver, for a question asked for the first time since its objects changed.
Answers derived from one service are kept until that service or its slices change; negative answers, SOA,
NS, PTR and pod answers are "volatile" (they carry the serial or depend on many objects) and are dropped on
every change. Nothing is cached before the informers have synced.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable

from nanokube.dns import wire
from nanokube.dns.cache import DnsCache
from nanokube.dns.forward import Forwarder
from nanokube.dns.metrics import Cell, DnsMetrics
from nanokube.dns.records import ServiceKey
from nanokube.dns.resolver import Answer, Resolver

log = logging.getLogger(__name__)

MAX_MEMO = 200_000  # exact query spellings of positive answers
MAX_VOLATILE = 20_000  # negative answers and their spellings: random names must not grow memory much
MAX_SPELLINGS = 8  # memo entries per answer (case variants, EDNS sizes); more are answered unmemoized
REVERSE_ZONES = (("in-addr", "arpa"), ("ip6", "arpa"))

Result = bytes | None | Awaitable[bytes | None]
Memo = dict[bytes, tuple[bytes, Cell]]
KUBERNETES, FORWARD, CACHE, SERVER = "kubernetes", "forward", "cache", ""  # the `plugin` label: who answered


class DnsEngine:
    def __init__(self, cache: DnsCache, resolver: Resolver, forwarder: Forwarder | None,
                 metrics: DnsMetrics | None = None) -> None:
        self.cache = cache
        self.metrics = metrics or DnsMetrics(())
        self.resolver = resolver
        self.forwarder = forwarder
        self.zone_labels = [z.encode() for z in resolver.zone_labels]
        self.zone_wire = resolver.zone_wire
        self.answers: dict[bytes, Answer] = {}
        self.volatile: dict[bytes, Answer] = {}
        self.memo: Memo = {}
        self.volatile_memo: Memo = {}
        self.by_service: dict[ServiceKey, list[bytes]] = {}
        cache.add_listener(self.invalidate)
        if cache.synced:
            self.prebuild_all()

    # -- invalidation ----------------------------------------------------------------------------------
    def invalidate(self, keys: set[ServiceKey] | None) -> None:
        self.volatile.clear()
        self.volatile_memo.clear()
        if keys is None:
            self.answers.clear()
            self.memo.clear()
            self.by_service.clear()
            self.prebuild_all()
            return
        for key in keys:
            for answer_key in self.by_service.pop(key, ()):
                answer = self.answers.pop(answer_key, None)
                if answer is not None:
                    for memo_key in answer.memo_keys:
                        self.memo.pop(memo_key, None)
            self.prebuild(key)

    def prebuild(self, key: ServiceKey) -> None:
        """Rebuild the service's A answer right away: the name most often asked for."""
        if key in self.cache.services:
            labels = [key[1].encode(), key[0].encode(), b"svc", *self.zone_labels]
            self._answer(wire.encode_name(labels).lower(), wire.A)

    def prebuild_all(self) -> None:
        for key in self.cache.services:
            self.prebuild(key)

    # -- queries ---------------------------------------------------------------------------------------
    def handle(self, data: bytes, *, tcp: bool, slot: int = 0) -> Result:
        """The response for one query: bytes, None (drop), or an awaitable when upstream must be asked.
        Every response is counted in the metrics under the listener `slot`."""
        try:
            q = wire.parse_query(data)
        except (wire.FormatError, IndexError, struct.error):
            self.metrics.count(slot, 0, wire.FORMERR, SERVER)
            return wire.error_response(data, wire.FORMERR)
        if q is None:
            return None
        count = self.metrics.cell
        if q.opcode != 0:
            count(q.qtype, wire.NOTIMP, SERVER)[slot] += 1
            return wire.error_response(data, wire.NOTIMP, q)
        if q.edns and q.edns_version > 0:
            count(q.qtype, wire.BADVERS, SERVER)[slot] += 1
            return wire.error_response(data, wire.BADVERS, q)
        lname = q.qname.lower()
        labels = wire.labels_of(lname)
        n = len(self.zone_labels)
        if labels[len(labels) - n:] == self.zone_labels:
            if q.qclass != wire.CLASS_IN:
                count(q.qtype, wire.REFUSED, KUBERNETES)[slot] += 1
                return wire.error_response(data, wire.REFUSED, q)
            answer = self._answer(lname, q.qtype)
            if answer.upstream is not None:
                return self._with_upstream(data, q, answer, tcp, slot)
            count(q.qtype, answer.rcode, KUBERNETES)[slot] += 1
            return self._respond(data, q, answer, tcp)
        if len(labels) >= 2 and tuple(labels[-2:]) in ((b"in-addr", b"arpa"), (b"ip6", b"arpa")):
            reverse = self._reverse(lname, labels, q.qtype)
            if reverse is not None:
                count(q.qtype, reverse.rcode, KUBERNETES)[slot] += 1
                return self._respond(data, q, reverse, tcp)
        forwarder = self.forwarder
        if forwarder is None or forwarder.saw_query(lname) or not forwarder.upstreams:  # a loop, or nowhere to ask
            count(q.qtype, wire.SERVFAIL, SERVER)[slot] += 1
            return wire.error_response(data, wire.SERVFAIL, q)
        return self._forward(data, q, lname, tcp, slot)

    def _answer(self, lname: bytes, qtype: int) -> Answer:
        key = lname + struct.pack("!H", qtype)
        answer = self.answers.get(key) or self.volatile.get(key)
        if answer is not None:
            return answer
        answer = self.resolver.resolve(lname, qtype)
        self._keep(key, answer)
        return answer

    def _reverse(self, lname: bytes, labels: list[bytes], qtype: int) -> Answer | None:
        key = lname + struct.pack("!H", qtype)
        answer = self.volatile.get(key)
        if answer is None:
            rel = [b.decode("latin-1") for b in labels[:-2]]
            answer = self.resolver.resolve_reverse(rel, labels[-2].decode() + ".arpa", qtype)
            if answer is not None:
                self._keep(key, answer)
        return answer

    def _keep(self, key: bytes, answer: Answer) -> None:
        if not self.cache.synced:
            return
        if answer.volatile or answer.deps is None:
            if len(self.volatile) >= MAX_VOLATILE:
                self.volatile.clear()
            self.volatile[key] = answer
        else:
            self.answers[key] = answer
            self.by_service.setdefault(answer.deps, []).append(key)

    def _render(self, data: bytes, q: wire.Query, answer: Answer, extra: bytes = b"", extra_count: int = 0,
                rcode: int | None = None) -> bytes:
        flags = wire.QR | wire.AA | (q.flags & wire.RD) | (answer.rcode if rcode is None else rcode)
        body = answer.body
        if answer.zone_parts:
            zone_start = q.question_end - 4 - len(self.zone_wire)
            spelled = data[zone_start:q.question_end - 4]
            if spelled != self.zone_wire:
                body = b"".join(p if p is not None else spelled for p in answer.parts)
        tail = wire.opt_record() if q.edns else b""
        head = wire.header(q.id, flags, 1, answer.an + extra_count, answer.ns, answer.ar + (1 if tail else 0))
        return head + data[12:q.question_end] + body + extra + tail

    def _respond(self, data: bytes, q: wire.Query, answer: Answer, tcp: bool) -> bytes:
        out = self._render(data, q, answer)
        if tcp:
            return out
        if len(out) > q.max_udp():
            out = wire.truncated_response(out, q)
        if (not q.edns_options and q.end == len(data) and len(answer.memo_keys) < MAX_SPELLINGS
                and self.cache.synced):
            volatile = answer.volatile or answer.deps is None
            memo = self.volatile_memo if volatile else self.memo
            if len(memo) >= (MAX_VOLATILE if volatile else MAX_MEMO):
                memo.clear()
            memo_key = data[2:]
            memo[memo_key] = (out[2:], self.metrics.cell(q.qtype, answer.rcode, KUBERNETES))
            answer.memo_keys.append(memo_key)
        return out

    async def _with_upstream(self, data: bytes, q: wire.Query, answer: Answer, tcp: bool, slot: int) -> bytes:
        """An ExternalName pointing outside the zone: our CNAME, then the target's records from upstream."""
        assert answer.upstream is not None
        chunks: list[bytes] = []
        count, rcode = 0, wire.NOERROR
        if self.forwarder is not None and self.forwarder.upstreams:
            chunks, count, rcode = await self.forwarder.lookup_records(*answer.upstream)
        rcode = rcode if rcode in (wire.NOERROR, wire.NXDOMAIN) else wire.NOERROR
        out = self._render(data, q, answer, b"".join(chunks), count, rcode)
        self.metrics.count(slot, q.qtype, rcode, KUBERNETES)
        if not tcp and len(out) > q.max_udp():
            out = wire.truncated_response(out, q)
        return out

    async def _forward(self, data: bytes, q: wire.Query, lname: bytes, tcp: bool, slot: int) -> bytes:
        assert self.forwarder is not None
        entry, cached = await self.forwarder.resolve_counted(lname, q.qtype, q.qclass, tcp=tcp)
        if entry is None:
            self.metrics.count(slot, q.qtype, wire.SERVFAIL, SERVER)
            return wire.error_response(data, wire.SERVFAIL, q)
        self.metrics.count(slot, q.qtype, entry.raw[3] & 0x0F, CACHE if cached else FORWARD)
        return self.forwarder.client_response(entry, data, q, tcp=tcp)
