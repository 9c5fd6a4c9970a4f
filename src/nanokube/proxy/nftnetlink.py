"""The elements of the counter set and their counts, dumped straight from the kernel over nfnetlink.

`nft -j list set` takes 4-6 s for the 30,000 elements of 10,000 Services x 3 endpoints (nft builds and
prints an expression tree per element); the kernel's own dump (NFT_MSG_GETSETELEM) of the same set, parsed
here, takes a few tens of ms. Only this one message is spoken, only for set endpoint-connections, whose key
layout is fixed by nftrules.py: ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service, each field in
its own 4-byte register (so 20 bytes: addr, proto + 3 pad, port (big-endian) + 2 pad, addr, port + 2 pad).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM = 12, 13
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFPROTO_IPV4 = 2
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
# attribute numbers (linux/netfilter/nf_tables.h)
LIST_TABLE, LIST_SET, LIST_ELEMENTS = 1, 2, 3  # nft_set_elem_list_attributes
LIST_ELEM = 1  # nft_list_attributes
ELEM_KEY, ELEM_EXPR, ELEM_EXPRESSIONS = 1, 7, 11  # nft_set_elem_attributes
DATA_VALUE = 1  # nft_data_attributes
EXPR_NAME, EXPR_DATA = 1, 2  # nft_expr_attributes
COUNTER_PACKETS = 2  # nft_counter_attributes
PROTOCOLS = {6: "TCP", 17: "UDP", 132: "SCTP"}

_HDR = struct.Struct("=IHHII")
_ATTR = struct.Struct("=HH")
_U64 = struct.Struct(">Q")

Counts = dict[tuple[str, str, int], dict[tuple[str, int], int]]


class NetlinkError(OSError):
    pass


def _attrs(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int]]:
    """(type, value start, value end) of each attribute in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 4 <= end:
        length, kind = _ATTR.unpack_from(data, pos)
        if length < 4:
            return
        yield kind & NLA_TYPE_MASK, pos + 4, pos + length
        pos += (length + 3) & ~3


def _attr(data: bytes | memoryview, start: int, end: int, wanted: int) -> tuple[int, int] | None:
    for kind, s, e in _attrs(data, start, end):
        if kind == wanted:
            return s, e
    return None


def _packets(data: bytes | memoryview, start: int, end: int) -> int | None:
    """The packet count of a counter expression (nft_expr_attributes), None for another expression."""
    name = body = None
    for kind, s, e in _attrs(data, start, end):
        if kind == EXPR_NAME:
            name = bytes(data[s:e]).rstrip(b"\0")
        elif kind == EXPR_DATA:
            body = (s, e)
    if name != b"counter" or body is None:
        return None
    for kind, s, _e in _attrs(data, *body):
        if kind == COUNTER_PACKETS:
            return int(_U64.unpack_from(data, s)[0])
    return None


def parse_elements(data: bytes | memoryview, start: int, end: int, out: Counts) -> None:
    """One NFTA_SET_ELEM_LIST_ELEMENTS payload into `out`."""
    ntoa, unpack_attr = socket.inet_ntoa, _ATTR.unpack_from
    for kind, s, e in _attrs(data, start, end):
        if kind != LIST_ELEM:
            continue
        key = packets = None
        for akind, a, b in _attrs(data, s, e):
            if akind == ELEM_KEY:
                length, vkind = unpack_attr(data, a)
                if length == 24 and vkind & NLA_TYPE_MASK == DATA_VALUE:  # the only shape this set's key has
                    key = bytes(data[a + 4:a + 24])
            elif akind == ELEM_EXPR:
                packets = _packets(data, a, b)
            elif akind == ELEM_EXPRESSIONS:
                for lkind, x, y in _attrs(data, a, b):
                    if lkind == LIST_ELEM and (n := _packets(data, x, y)) is not None:
                        packets = n
        if key is None or packets is None:
            continue
        frontend = (ntoa(key[0:4]), PROTOCOLS.get(key[4], str(key[4])), (key[8] << 8) | key[9])
        per = out.get(frontend)
        if per is None:
            per = out[frontend] = {}
        per[(ntoa(key[12:16]), (key[16] << 8) | key[17])] = packets


def parse_dump(chunks: list[bytes]) -> tuple[Counts, bool]:
    """Received datagrams -> (counts, whether NLMSG_DONE was seen). Raises NetlinkError for an error reply."""
    out: Counts = {}
    for chunk in chunks:
        pos = 0
        while pos + _HDR.size <= len(chunk):
            length, kind, _flags, _seq, _pid = _HDR.unpack_from(chunk, pos)
            if length < _HDR.size:
                break
            if kind == NLMSG_DONE:
                return out, True
            if kind == NLMSG_ERROR:
                errno = -struct.unpack_from("=i", chunk, pos + _HDR.size)[0]
                if errno:
                    raise NetlinkError(errno, os.strerror(errno))
            elif kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM:
                body = pos + _HDR.size + 4  # after struct nfgenmsg
                elements = _attr(chunk, body, pos + length, LIST_ELEMENTS)
                if elements:
                    parse_elements(chunk, *elements, out)
            pos += (length + 3) & ~3
    return out, False


def _string_attr(kind: int, value: str) -> bytes:
    raw = value.encode() + b"\0"
    return _ATTR.pack(4 + len(raw), kind) + raw + b"\0" * (-len(raw) % 4)


def dump_request(table: str, set_name: str, seq: int) -> bytes:
    payload = struct.pack("=BBH", NFPROTO_IPV4, 0, 0) + _string_attr(LIST_TABLE, table) + _string_attr(LIST_SET, set_name)
    return _HDR.pack(_HDR.size + len(payload), (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
                     NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + payload


class SetCounterDump:
    """A netfilter netlink socket (opened in the proxy's network namespace) that dumps one counter set.
    Blocking: call `read` from a worker thread."""

    def __init__(self, enter_netns: Callable[[], None] | None = None) -> None:
        self._enter_netns = enter_netns
        self._sock: socket.socket | None = None
        self._seq = 0
        self._lock = threading.Lock()

    def _open(self) -> socket.socket:
        box: list[socket.socket | BaseException] = []

        def make() -> None:  # setns in a throwaway thread: the socket stays in that namespace
            try:
                if self._enter_netns is not None:
                    self._enter_netns()
                s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
                s.bind((0, 0))
                s.settimeout(5)
                box.append(s)
            except BaseException as err:
                box.append(err)

        t = threading.Thread(target=make, name="nft counters: netns socket")
        t.start()
        t.join()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def read(self, table: str, set_name: str) -> Counts:
        with self._lock:
            if self._sock is None:
                self._sock = self._open()
            self._seq += 1
            try:
                self._sock.sendall(dump_request(table, set_name, self._seq))
                chunks: list[bytes] = []
                while True:
                    chunks.append(self._sock.recv(1 << 20))
                    # messages never straddle datagrams: parse once the last one ends the dump
                    if _ends_dump(chunks[-1]):
                        break
                counts, _ = parse_dump(chunks)
                return counts
            except OSError:
                self._close()  # a half-read dump would poison the next read
                raise

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        with self._lock:
            self._close()


def _ends_dump(chunk: bytes) -> bool:
    pos = 0
    while pos + _HDR.size <= len(chunk):
        length, kind = _HDR.unpack_from(chunk, pos)[:2]
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return True
        if length < _HDR.size:
            return True
        pos += (length + 3) & ~3
    return False
