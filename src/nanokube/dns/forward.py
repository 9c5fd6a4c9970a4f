"""Forwarding of names outside the cluster zone to the host's resolvers, with a small cache and loop guards.

Loops are caught twice: an upstream that is our own listen address is never used, and at start a probe query
with a random name is sent to each upstream; if that name comes back to our own server (a 127.0.0.53 stub or
any resolver pointing back at us) the upstream is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import logging
import os
import secrets
import socket
import struct
import time
from dataclasses import dataclass

from nanokube.dns import wire

log = logging.getLogger(__name__)

Addr = tuple[str, int]
PROBE_SUFFIX = b"\x13nanokube-loop-probe\x00"


def resolv_conf_upstreams(path: str = "/etc/resolv.conf") -> list[Addr]:
    out: list[Addr] = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    out.append((parts[1].split("%")[0], 53))
    except OSError:
        pass
    return out


def parse_upstream(text: str) -> Addr:
    """`1.2.3.4`, `1.2.3.4:5353`, `[fd00::1]:53` or `fd00::1`."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        return host, int(port.lstrip(":") or 53)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 53


def _is_local_address(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, 0))
            return True
        except OSError:
            return False


def is_own_address(upstream: Addr, listen: list[Addr]) -> bool:
    host, port = upstream
    for lhost, lport in listen:
        if port != lport:
            continue
        if lhost == host or (lhost in ("", "0.0.0.0", "::") and _is_local_address(host)):
            return True
    return False


@dataclass(slots=True)
class _Cached:
    stored: float
    ttl: int
    raw: bytes
    ttl_offsets: list[int]
    opt_span: tuple[int, int] | None

    @property
    def denial(self) -> bool:
        """NXDOMAIN or NODATA: what CoreDNS's cache files under type "denial" (else "success")."""
        return self.raw[3] & 0x0F == wire.NXDOMAIN or self.raw[6:8] == b"\x00\x00"


class _UpstreamProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        if len(data) < 12:
            return
        fut = self.pending.pop(struct.unpack_from("!H", data)[0], None)
        if fut is not None and not fut.done():
            fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("upstream socket error: %s", exc)


class Forwarder:
    def __init__(self, upstreams: list[Addr], *, listen: list[Addr], timeout: float = 2.0,
                 cache_size: int = 10000, max_ttl: int = 30, max_inflight: int = 1000) -> None:
        self.upstreams = [u for u in upstreams if not is_own_address(u, listen)]
        for u in upstreams:
            if u not in self.upstreams:
                log.warning("dns: upstream %s:%d is this server itself; not forwarding there", *u)
        self.timeout = timeout
        self.cache: dict[bytes, _Cached] = {}
        self.cache_size = cache_size
        self.max_ttl = max_ttl
        self.max_inflight = max_inflight
        self.loop_checked = asyncio.Event()
        self._probes: dict[bytes, Addr] = {}
        self._sockets: dict[Addr, _UpstreamProtocol] = {}
        self._inflight: dict[bytes, asyncio.Future[_Cached | None]] = {}
        self.hits_success = self.hits_denial = self.misses = 0  # coredns_cache_hits_total / misses_total

    async def start(self) -> None:
        for u in self.upstreams:
            await self._connect(u, quiet=False)

    async def _connect(self, u: Addr, *, quiet: bool = True) -> _UpstreamProtocol | None:
        """A connected socket to upstream `u`; None while it has no route (an offline machine, or a network
        namespace without an uplink): cluster names are still answered and the next forward tries again."""
        family = socket.AF_INET6 if ":" in u[0] else socket.AF_INET
        try:
            _, proto = await asyncio.get_running_loop().create_datagram_endpoint(
                _UpstreamProtocol, remote_addr=u, family=family)
        except OSError as err:
            log.log(logging.DEBUG if quiet else logging.WARNING, "dns: upstream %s:%d unreachable for now: %s",
                    u[0], u[1], err.strerror or err)
            return None
        self._sockets[u] = proto
        return proto

    def close(self) -> None:
        for proto in self._sockets.values():
            if proto.transport is not None:
                proto.transport.close()
            for fut in proto.pending.values():
                fut.cancel()
        self._sockets.clear()

    # -- loop detection --------------------------------------------------------------------------------
    async def check_loops(self) -> None:
        """Send one probe per upstream; `saw_query` drops an upstream whose probe comes back to us."""
        try:
            probes = []
            for u in list(self.upstreams):
                label = secrets.token_hex(8).encode()
                name = bytes((len(label),)) + label + PROBE_SUFFIX
                self._probes[name] = u
                probes.append(self._exchange(u, name, wire.HINFO, wire.CLASS_IN))
            await asyncio.gather(*probes, return_exceptions=True)
        finally:
            self.loop_checked.set()

    def saw_query(self, qname_lower: bytes) -> bool:
        """True when an incoming query is one of our own probes: the upstream loops back to us."""
        if not qname_lower.endswith(PROBE_SUFFIX):
            return False
        upstream = self._probes.pop(qname_lower, None)
        if upstream is not None and upstream in self.upstreams:
            log.error("dns: forwarding loop detected through upstream %s:%d; not forwarding there", *upstream)
            self.upstreams.remove(upstream)
        return True

    def cache_stats(self) -> tuple[int, int, int, int, int]:
        """(success entries, denial entries, success hits, denial hits, misses), for the metrics."""
        denial = sum(1 for entry in self.cache.values() if entry.denial)
        return len(self.cache) - denial, denial, self.hits_success, self.hits_denial, self.misses

    # -- queries ---------------------------------------------------------------------------------------
    async def resolve(self, qname_lower: bytes, qtype: int, qclass: int, *, tcp: bool = False) -> _Cached | None:
        return (await self.resolve_counted(qname_lower, qtype, qclass, tcp=tcp))[0]

    async def resolve_counted(self, qname_lower: bytes, qtype: int, qclass: int, *,
                              tcp: bool = False) -> tuple[_Cached | None, bool]:
        """(the upstream answer or None, whether it came from the cache)."""
        key = qname_lower + struct.pack("!HH", qtype, qclass)
        hit = self.cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit.stored < hit.ttl and not (tcp and hit.raw[2] & 0x02):
            if hit.denial:
                self.hits_denial += 1
            else:
                self.hits_success += 1
            return hit, True
        self.misses += 1
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending), False
        if len(self._inflight) >= self.max_inflight:
            return None, False
        fut: asyncio.Future[_Cached | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        entry = None
        try:
            raw = await self._ask_upstreams(qname_lower, qtype, qclass, tcp)
            if raw is not None:
                entry = self._store(key, raw, now)
        finally:
            self._inflight.pop(key, None)
            fut.set_result(entry)
        return entry, False

    def _store(self, key: bytes, raw: bytes, now: float) -> _Cached | None:
        try:
            offsets, opt_span, _ = wire.walk_records(raw)
        except (wire.FormatError, IndexError, struct.error):
            return None
        ttls = [struct.unpack_from("!I", raw, o)[0] for o in offsets]
        rcode = raw[3] & 0xF
        cacheable = rcode in (wire.NOERROR, wire.NXDOMAIN) and not raw[2] & 0x02  # never keep truncated answers
        ttl = min([self.max_ttl, *ttls]) if cacheable else 0
        entry = _Cached(now, ttl, raw, offsets, opt_span)
        if ttl > 0:
            if len(self.cache) >= self.cache_size:
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = entry
        return entry

    async def _ask_upstreams(self, qname: bytes, qtype: int, qclass: int, tcp: bool) -> bytes | None:
        for u in list(self.upstreams):
            try:
                raw = await self._exchange(u, qname, qtype, qclass)
                if raw is not None and tcp and raw[2] & 0x02:
                    raw = await self._exchange_tcp(u, qname, qtype, qclass)
            except (TimeoutError, OSError) as err:
                log.debug("dns: upstream %s:%d failed: %s", u[0], u[1], err)
                continue
            if raw is not None:
                return raw
        return None

    def _query_bytes(self, qid: int, qname: bytes, qtype: int, qclass: int) -> bytes:
        return (wire.header(qid, wire.RD, 1, 0, 0, 1) + qname + struct.pack("!HH", qtype, qclass)
                + wire.opt_record())

    async def _exchange(self, u: Addr, qname: bytes, qtype: int, qclass: int) -> bytes | None:
        proto = self._sockets.get(u) or await self._connect(u)
        if proto is None or proto.transport is None:
            return None
        qid = int.from_bytes(os.urandom(2), "big")
        while qid in proto.pending:
            qid = (qid + 1) & 0xFFFF
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        proto.pending[qid] = fut
        proto.transport.sendto(self._query_bytes(qid, qname, qtype, qclass))
        try:
            raw = await asyncio.wait_for(fut, self.timeout)
        finally:
            proto.pending.pop(qid, None)
        end = 12 + len(qname) + 4
        if raw[12:end].lower() != qname + struct.pack("!HH", qtype, qclass):
            return None  # not the answer to our question
        return raw

    async def _exchange_tcp(self, u: Addr, qname: bytes, qtype: int, qclass: int) -> bytes | None:
        qid = int.from_bytes(os.urandom(2), "big")
        msg = self._query_bytes(qid, qname, qtype, qclass)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*u), self.timeout)
        try:
            writer.write(struct.pack("!H", len(msg)) + msg)
            size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), self.timeout))[0]
            raw = await asyncio.wait_for(reader.readexactly(size), self.timeout)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return raw if raw[:2] == msg[:2] else None

    # -- answers for clients ---------------------------------------------------------------------------
    def client_response(self, entry: _Cached, data: bytes, q: wire.Query, *, tcp: bool) -> bytes:
        """The cached upstream answer re-addressed to this client: its ID, RD bit, question spelling and EDNS
        state, TTLs aged by the time spent in the cache, truncated when it does not fit."""
        buf = bytearray(entry.raw)
        buf[0:2] = data[0:2]
        buf[2] = (buf[2] & ~0x01) | (data[2] & 0x01)  # RD as the client asked
        buf[12:q.question_end] = data[12:q.question_end]
        age = int(time.monotonic() - entry.stored)
        if age > 0:
            for off in entry.ttl_offsets:
                ttl = struct.unpack_from("!I", buf, off)[0]
                struct.pack_into("!I", buf, off, max(0, ttl - age))
        if entry.opt_span is not None and not q.edns and entry.opt_span[1] == len(buf):
            del buf[entry.opt_span[0]:]
            arcount = struct.unpack_from("!H", buf, 10)[0]
            struct.pack_into("!H", buf, 10, arcount - 1)
        out = bytes(buf)
        if not tcp and len(out) > q.max_udp():
            return wire.truncated_response(out, q)
        return out

    async def lookup_records(self, name: str, qtype: int) -> tuple[list[bytes], int, int]:
        """Answer records for `name` from upstream, uncompressed, for appending after our CNAME.
        Returns (record chunks, record count, rcode)."""
        entry = await self.resolve(wire.name_from_text(name).lower(), qtype, wire.CLASS_IN)
        if entry is None:
            return [], 0, wire.SERVFAIL
        # dnspython (~3 MB of RSS) is loaded by the first ExternalName answer, not by every idle server
        import dns.message
        import dns.rrset

        try:
            msg = dns.message.from_wire(entry.raw, ignore_trailing=True)
        except Exception:
            return [], 0, wire.SERVFAIL
        chunks: list[bytes] = []
        count = 0
        for rrset in msg.answer:
            assert isinstance(rrset, dns.rrset.RRset)
            out = io.BytesIO()
            rrset.to_wire(out)
            chunks.append(out.getvalue())
            count += len(rrset)
        return chunks, count, msg.rcode()
