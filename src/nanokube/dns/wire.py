"""DNS wire format: the small subset a server needs, written for speed (RFC 1035, RFC 6891)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

A, NS, CNAME, SOA, PTR, HINFO, TXT, AAAA, SRV, OPT, IXFR, AXFR, ANY = 1, 2, 5, 6, 12, 13, 16, 28, 33, 41, 251, 252, 255
CLASS_IN = 1

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16

QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080

OUR_UDP_SIZE = 1232  # the EDNS payload size we advertise (DNS flag day 2020)
MAX_UDP_SIZE = 4096

QNAME_POINTER = b"\xc0\x0c"  # the question name always starts at offset 12

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_U16 = struct.Struct("!H")


class FormatError(Exception):
    """The packet has a header but its question or EDNS record is malformed."""


@dataclass(slots=True)
class Query:
    id: int
    flags: int
    qname: bytes  # wire form exactly as received (case kept)
    qtype: int
    qclass: int
    question_end: int  # offset just past QTYPE/QCLASS
    edns: bool = False
    udp_size: int = 512
    edns_version: int = 0
    edns_options: bool = False
    end: int = 0  # offset just past the last record parsed; bytes after it are trailing garbage

    @property
    def key(self) -> bytes:
        """Case-folded question: lower-cased name + type (class is always IN for cached answers)."""
        return self.qname.lower() + _U16.pack(self.qtype)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    def max_udp(self) -> int:
        return min(max(self.udp_size, 512), MAX_UDP_SIZE) if self.edns else 512


def labels_of(qname: bytes) -> list[bytes]:
    """Labels of a wire-format name without compression pointers."""
    out = []
    i = 0
    while qname[i]:
        n = qname[i]
        out.append(qname[i + 1:i + 1 + n])
        i += 1 + n
    return out


def encode_name(labels: list[bytes] | tuple[bytes, ...]) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


def name_from_text(text: str) -> bytes:
    text = text.rstrip(".")
    return encode_name([p.encode("ascii", "replace") for p in text.split(".")] if text else [])


def pointer(offset: int) -> bytes:
    return _U16.pack(0xC000 | offset)


def parse_query(data: bytes) -> Query | None:
    """Parse a query. None: not worth an answer (too short, or a response); FormatError: answer FORMERR."""
    if len(data) < 12:
        return None
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & QR:
        return None  # never answer responses: that is how reflection loops start
    if qdcount != 1 or ancount or nscount or arcount > 1:
        raise FormatError
    i = 12
    end = len(data)
    total = 0
    while True:
        if i >= end:
            raise FormatError
        n = data[i]
        if n == 0:
            i += 1
            break
        if n > 63:  # compression pointers and extended label types have no place in a question
            raise FormatError
        total += n + 1
        if total > 254:
            raise FormatError
        i += 1 + n
    if i + 4 > end:
        raise FormatError
    qname = data[12:i]
    qtype, qclass = struct.unpack_from("!HH", data, i)
    q = Query(qid, flags, qname, qtype, qclass, i + 4, end=i + 4)
    if arcount:
        _parse_opt(data, q)
    return q


def _parse_opt(data: bytes, q: Query) -> None:
    i = q.question_end
    if i + 11 > len(data) or data[i] != 0:
        raise FormatError
    rtype, size, ttl, rdlen = _RR_FIXED.unpack_from(data, i + 1)
    if rtype != OPT or i + 11 + rdlen > len(data):
        raise FormatError
    q.edns = True
    q.udp_size = size
    q.edns_version = (ttl >> 16) & 0xFF
    q.edns_options = rdlen > 0
    q.end = i + 11 + rdlen


def opt_record(rcode_high: int = 0) -> bytes:
    return b"\x00" + _RR_FIXED.pack(OPT, OUR_UDP_SIZE, rcode_high << 24, 0)


def header(qid: int, flags: int, qd: int, an: int, ns: int, ar: int) -> bytes:
    return _HEADER.pack(qid, flags, qd, an, ns, ar)


def rr(owner: bytes, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return owner + _RR_FIXED.pack(rtype, CLASS_IN, ttl, len(rdata)) + rdata


def error_response(data: bytes, rcode: int, q: Query | None = None) -> bytes:
    """A bare answer with rcode; echoes the question (and an OPT record) when the query parsed."""
    qid, flags = struct.unpack_from("!HH", data)
    out_flags = QR | (flags & 0x7800) | (flags & RD) | (rcode & 0xF)
    if q is None:
        return header(qid, out_flags, 0, 0, 0, 0)
    tail = opt_record(rcode >> 4) if q.edns else b""
    return header(qid, out_flags, 1, 0, 0, 1 if tail else 0) + data[12:q.question_end] + tail


def truncated_response(response: bytes, q: Query) -> bytes:
    """Header + question with TC set, for a UDP answer that does not fit."""
    qid, flags = struct.unpack_from("!HH", response)
    tail = opt_record() if q.edns else b""
    return header(qid, flags | TC, 1, 0, 0, 1 if tail else 0) + response[12:q.question_end] + tail


def skip_name(data: bytes, i: int) -> int:
    """Offset just past a (possibly compressed) name; raises IndexError/FormatError on garbage."""
    hops = 0
    while True:
        n = data[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        if n > 63:
            raise FormatError
        i += 1 + n
        hops += 1
        if hops > 128:
            raise FormatError


def walk_records(data: bytes) -> tuple[list[int], tuple[int, int] | None, int]:
    """For a response: TTL field offsets of all records except OPT, the (start, end) span of the OPT record
    and the answer count. Used to age cached upstream answers and strip EDNS for non-EDNS clients."""
    _, _, qd, an, ns, ar = _HEADER.unpack_from(data)
    i = 12
    for _ in range(qd):
        i = skip_name(data, i) + 4
    ttls: list[int] = []
    opt_span = None
    for _ in range(an + ns + ar):
        start = i
        i = skip_name(data, i)
        rtype, _, _, rdlen = _RR_FIXED.unpack_from(data, i)
        if rtype == OPT:
            opt_span = (start, i + 10 + rdlen)
        else:
            ttls.append(i + 4)
        i += 10 + rdlen
        if i > len(data):
            raise FormatError
    return ttls, opt_span, an
