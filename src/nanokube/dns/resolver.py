"""Authoritative answers for the cluster zone (and PTRs for cluster addresses), computed from the cache.

An answer is rendered once into wire-format parts that work for every spelling of the question: owner names
are compression pointers into the question, so the query's case comes back unchanged.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from nanokube.dns import wire
from nanokube.dns.cache import DnsCache
from nanokube.dns.names import ZoneName, parse_zone_name, pod_label_ip, reverse_ip
from nanokube.dns.records import ServiceKey, ServiceRecord, SliceRecord, pack_ip

DNS_SCHEMA_VERSION = b"1.1.0"
VERSION_TTL = 28800
MAX_CNAME_CHAIN = 8


@dataclass(slots=True)
class Answer:
    """A precomputed answer for one (case-folded name, type). `parts` holds None where the zone must be
    written out as the query spelled it (SRV targets, which may not be compressed)."""

    rcode: int
    an: int
    ns: int
    ar: int
    parts: list[bytes | None]
    body: bytes = b""
    zone_parts: bool = False
    volatile: bool = True
    deps: ServiceKey | None = None
    upstream: tuple[str, int] | None = None  # out-of-zone CNAME target to look up per query (name, type)
    memo_keys: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class Node:
    """What exists at a name. `None` from a lookup means the name does not exist (NXDOMAIN)."""

    addrs: list[bytes] = field(default_factory=list)
    srv: list[tuple[int, int, list[str]]] = field(default_factory=list)  # (weight, port, target labels)
    srv_extra: list[tuple[list[str], bytes]] = field(default_factory=list)
    cname: str = ""
    txt: bytes = b""
    apex: bool = False
    glue: bool = False
    deps: ServiceKey | None = None
    volatile: bool = False


class _Sections:
    def __init__(self, zone_ptr: bytes | None, zone_wire: bytes) -> None:
        self.zone_ptr = zone_ptr
        self.zone_wire = zone_wire
        self.answer: list[bytes | None] = []
        self.authority: list[bytes | None] = []
        self.additional: list[bytes | None] = []
        self.counts = [0, 0, 0]
        self.zone_parts = False

    def owner(self, labels: list[str]) -> bytes:
        """A name inside the zone as an owner: literal labels + pointer to the zone in the question."""
        prefix = b"".join(bytes((len(b),)) + b for b in (s.encode() for s in labels))
        return prefix + (self.zone_ptr if self.zone_ptr is not None else self.zone_wire)

    def add(self, section: int, owner: bytes, rtype: int, ttl: int, rdata: Sequence[bytes | None]) -> None:
        rdlen = sum(len(p) if p is not None else len(self.zone_wire) for p in rdata)
        target = (self.answer, self.authority, self.additional)[section]
        target.append(owner + struct.pack("!HHIH", rtype, wire.CLASS_IN, ttl, rdlen))
        target.extend(rdata)
        if any(p is None for p in rdata):
            self.zone_parts = True
        self.counts[section] += 1

    def in_zone_target(self, labels: list[str]) -> list[bytes | None]:
        """A name in RDATA that must not be compressed: the zone is written as the query spelled it."""
        prefix = b"".join(bytes((len(b),)) + b for b in (s.encode() for s in labels))
        return [prefix, None] if self.zone_ptr is not None else [prefix + self.zone_wire]


class Resolver:
    def __init__(self, cache: DnsCache, *, zone: str, ttl: int, pods_mode: str,
                 dns_service: ServiceKey = ("kube-system", "kube-dns"), ns_addresses: tuple[bytes, ...] = ()) -> None:
        self.cache = cache
        self.zone = zone.strip(".").lower()
        self.zone_labels = self.zone.split(".")
        self.zone_wire = wire.name_from_text(self.zone)
        self.ttl = ttl
        self.pods_mode = pods_mode
        self.dns_service = dns_service
        self.ns_addresses = ns_addresses

    # -- entry points ----------------------------------------------------------------------------------
    def resolve(self, qname: bytes, qtype: int) -> Answer:
        """qname: lower-cased wire name inside the zone."""
        labels = [b.decode("latin-1") for b in wire.labels_of(qname)]
        rel = labels[:len(labels) - len(self.zone_labels)]
        zone_ptr = wire.pointer(12 + len(qname) - len(self.zone_wire))
        out = _Sections(zone_ptr, self.zone_wire)
        if qtype in (wire.AXFR, wire.IXFR):
            return self._finish(out, wire.REFUSED, volatile=True, deps=None)
        rcode, deps, volatile, upstream = self._answer_name(out, rel, qtype, wire.QNAME_POINTER, depth=0)
        if rcode == wire.NXDOMAIN and not self.cache.synced:
            rcode = wire.SERVFAIL
        if rcode in (wire.NXDOMAIN, wire.SERVFAIL) or (rcode == wire.NOERROR and not out.counts[0]
                                                         and upstream is None):
            self._soa(out, 1, zone_ptr)
            volatile = True
        answer = self._finish(out, rcode, volatile=volatile or not self.cache.synced, deps=deps)
        answer.upstream = upstream
        return answer

    def resolve_reverse(self, rel: list[str], suffix: str, qtype: int) -> Answer | None:
        """PTR for a cluster address; None when it is not ours (the query then goes upstream)."""
        ip = reverse_ip(rel, suffix)
        if ip is None or qtype != wire.PTR:
            return None
        targets = self._ptr_targets(ip)
        if not targets:
            return None
        out = _Sections(None, self.zone_wire)
        for labels in targets:
            out.add(0, wire.QNAME_POINTER, wire.PTR, self.ttl, out.in_zone_target(labels))
        return self._finish(out, wire.NOERROR, volatile=True, deps=None)

    def _finish(self, out: _Sections, rcode: int, *, volatile: bool, deps: ServiceKey | None) -> Answer:
        parts = out.answer + out.authority + out.additional
        body = b"".join(p if p is not None else self.zone_wire for p in parts)
        return Answer(rcode, out.counts[0], out.counts[1], out.counts[2], parts, body, out.zone_parts,
                      volatile, deps)

    # -- names -----------------------------------------------------------------------------------------
    def _answer_name(self, out: _Sections, rel: list[str], qtype: int, owner: bytes,
                     depth: int) -> tuple[int, ServiceKey | None, bool, tuple[str, int] | None]:
        node = self._lookup(parse_zone_name(rel))
        if node is None:
            return wire.NXDOMAIN, None, True, None
        ttl = self.ttl
        if node.cname:
            return self._answer_cname(out, node, rel, qtype, owner, depth)
        if node.apex:
            if qtype == wire.SOA:
                self._soa(out, 0, owner)
            elif qtype == wire.NS:
                target = self._ns_target()
                out.add(0, owner, wire.NS, ttl, [out.owner(target)])
                for ip in self._glue():
                    out.add(2, out.owner(target), wire.A if len(ip) == 4 else wire.AAAA, ttl, [ip])
            return wire.NOERROR, None, True, None
        if qtype in (wire.A, wire.AAAA):
            size = 4 if qtype == wire.A else 16
            addrs = self._glue() if node.glue else node.addrs
            for ip in addrs:
                if len(ip) == size:
                    out.add(0, owner, qtype, ttl, [ip])
        elif qtype == wire.SRV:
            for weight, port, target in node.srv:
                out.add(0, owner, wire.SRV, ttl, [struct.pack("!HHH", 0, weight, port), *out.in_zone_target(target)])
            for target, ip in node.srv_extra:
                out.add(2, out.owner(target), wire.A if len(ip) == 4 else wire.AAAA, ttl, [ip])
        elif qtype == wire.TXT and node.txt:
            out.add(0, owner, wire.TXT, VERSION_TTL, [bytes((len(node.txt),)) + node.txt])
        return wire.NOERROR, node.deps, node.volatile or node.glue, None

    def _answer_cname(self, out: _Sections, node: Node, rel: list[str], qtype: int, owner: bytes,
                      depth: int) -> tuple[int, ServiceKey | None, bool, tuple[str, int] | None]:
        target = node.cname
        if qtype == wire.SRV or target == ".".join([*rel, *self.zone_labels]):
            return wire.NOERROR, node.deps, node.volatile, None  # no SRV for ExternalName; x CNAME x is a loop
        out.add(0, owner, wire.CNAME, self.ttl, [wire.name_from_text(target)])
        if qtype not in (wire.A, wire.AAAA):
            return wire.NOERROR, node.deps, node.volatile, None
        target_labels = target.split(".")
        n = len(self.zone_labels)
        if target_labels[-n:] != self.zone_labels:
            return wire.NOERROR, node.deps, True, (target, qtype)
        if depth >= MAX_CNAME_CHAIN:
            return wire.NOERROR, node.deps, True, None
        rcode, _, _, upstream = self._answer_name(out, target_labels[:-n], qtype, wire.name_from_text(target),
                                                  depth + 1)
        return rcode, node.deps, True, upstream

    def _lookup(self, zn: ZoneName) -> Node | None:
        kind = zn.kind
        if kind == "apex":
            return Node(apex=True)
        if kind == "dns-version":
            return Node(txt=DNS_SCHEMA_VERSION)
        if kind == "ns-dns":
            return Node(glue=True)
        if kind == "type-only":
            return Node()
        if kind == "invalid" or not self.cache.has_namespace(zn.namespace):
            return None
        if kind == "namespace":
            return Node()
        if zn.is_pod:
            return self._pod(zn)
        svc = self.cache.service(zn.namespace, zn.name)
        if svc is None:
            return None
        if svc.external_name:
            if kind != "service":
                return None  # nothing lives below an ExternalName service
            ip = pack_ip(svc.external_name)
            if ip is not None:  # an IP-valued externalName answers as an address, as kube-dns did
                return Node(addrs=[ip], deps=svc.key)
            return Node(cname=svc.external_name, deps=svc.key)
        if kind == "endpoint":
            return self._endpoint(svc, zn.endpoint)
        if svc.headless:
            return self._headless(svc, zn)
        return self._cluster_ip(svc, zn)

    def _cluster_ip(self, svc: ServiceRecord, zn: ZoneName) -> Node | None:
        ports = svc.ports or (("", "", -1),)
        if zn.kind == "srv":
            ports = tuple(p for p in ports if p[0] and p[0] == zn.port and p[1].lower() == zn.protocol)
            if not ports:
                return None
        target = [svc.name, svc.namespace, "svc"]
        weight = _weight(len(ports) * max(1, len(svc.cluster_ips)))
        node = Node(addrs=list(svc.cluster_ips), deps=svc.key)
        seen = set()
        for _, _, port in ports:
            if port >= 0 and port not in seen:
                seen.add(port)
                node.srv.append((weight, port, target))
        if node.srv:
            node.srv_extra = [(target, ip) for ip in svc.cluster_ips]
        return node

    def _ready(self, svc: ServiceRecord) -> Iterator[tuple[SliceRecord, tuple[bytes, ...]]]:
        for sl in self.cache.service_slices(svc.key):
            yield sl, (sl.ready + sl.not_ready) if svc.publish_not_ready else sl.ready

    def _headless(self, svc: ServiceRecord, zn: ZoneName) -> Node | None:
        candidates: list[tuple[str, bytes, int]] = []
        for sl, addrs in self._ready(svc):
            ports = sl.ports or (("", "", -1),)
            if zn.kind == "srv":
                ports = tuple(p for p in ports if p[0] and p[0] == zn.port and p[1].lower() == zn.protocol)
            for ip in addrs:
                host = sl.hostname(ip)
                candidates.extend((host, ip, p[2]) for p in ports)
        if not candidates:
            return None
        weight = _weight(len(candidates))
        node = Node(deps=svc.key)
        seen_ip: set[bytes] = set()
        seen_srv: set[tuple[str, int]] = set()
        seen_extra: set[tuple[str, bytes]] = set()
        base = [svc.name, svc.namespace, "svc"]
        for host, ip, port in candidates:
            if ip not in seen_ip:
                seen_ip.add(ip)
                node.addrs.append(ip)
            if port < 0:
                continue
            if (host, port) not in seen_srv:
                seen_srv.add((host, port))
                node.srv.append((weight, port, [host, *base]))
            if (host, ip) not in seen_extra:
                seen_extra.add((host, ip))
                node.srv_extra.append(([host, *base], ip))
        return node

    def _endpoint(self, svc: ServiceRecord, label: str) -> Node | None:
        addrs: list[bytes] = []
        for sl, ready in self._ready(svc):
            for ip in ready:
                if sl.hostname(ip) == label and ip not in addrs:
                    addrs.append(ip)
        return Node(addrs=addrs, deps=svc.key) if addrs else None

    def _pod(self, zn: ZoneName) -> Node | None:
        if self.pods_mode == "disabled":
            return None
        ip = pod_label_ip(zn.name)
        if ip is None:
            return None
        if self.pods_mode == "verified" and not self.cache.has_pod_ip(zn.namespace, ip):
            return None
        return Node(addrs=[ip], volatile=True)

    # -- reverse, SOA, NS ------------------------------------------------------------------------------
    def _ptr_targets(self, ip: bytes) -> list[list[str]]:
        for key in self.cache.cluster_ip_index.get(ip, ()):
            return [[key[1], key[0], "svc"]]
        targets: list[list[str]] = []
        for sl in self.cache.endpoint_ip_index.get(ip, ()):
            svc = self.cache.services.get((sl.namespace, sl.service))
            if svc is None or not (ip in sl.ready or svc.publish_not_ready):
                continue
            labels = [sl.hostname(ip), sl.service, sl.namespace, "svc"]
            if labels not in targets:
                targets.append(labels)
        return targets

    def _soa(self, out: _Sections, section: int, owner: bytes) -> None:
        rdata = [out.owner(["ns", "dns"]), out.owner(["hostmaster"]),
                 struct.pack("!IIIII", self.cache.serial, 7200, 1800, 86400, self.ttl)]
        out.add(section, owner if section == 0 else (out.zone_ptr or self.zone_wire), wire.SOA,
                min(self.ttl, 300), rdata)

    def _ns_target(self) -> list[str]:
        svc = self.cache.service(*self.dns_service)
        if svc is not None and svc.cluster_ips:
            return [svc.name, svc.namespace, "svc"]
        return ["ns", "dns"]

    def _glue(self) -> list[bytes]:
        svc = self.cache.service(*self.dns_service)
        if svc is not None and svc.cluster_ips:
            return list(svc.cluster_ips)
        return list(self.ns_addresses)


def _weight(candidates: int) -> int:
    return max(1, 100 // max(1, candidates))
