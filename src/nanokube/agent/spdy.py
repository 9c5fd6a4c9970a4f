"""SPDY/3.1 frames, the subset a port-forward server needs (kubectl speaks it inside its WebSocket tunnel).

Control frame: ``1|version(15) type(16) flags(8) length(24) payload``; data frame: ``0|stream(31) flags(8)
length(24) data``. Header blocks are zlib streams with the SPDY dictionary, one compression context per
direction for the whole connection (each block ends with a sync flush).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from nanokube.agent.spdy_dictionary import HEADER_DICTIONARY

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_REFUSED_STREAM, RST_CANCEL = 1, 3, 5
MAX_DATA = (1 << 24) - 1


class ProtocolError(Exception):
    pass


@dataclass(slots=True)
class Frame:
    control: bool
    kind: int  # control frame type; 0 for data
    flags: int
    stream_id: int = 0
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    value: int = 0  # RST/GOAWAY status, PING id, WINDOW_UPDATE delta

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class Codec:
    """Parses a byte stream cut at arbitrary places into frames, and builds frames to send."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=HEADER_DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)

    # -- reading ---------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Frame]:
        if self._buf:  # a frame cut by the previous message: join once, then parse from immutable bytes
            self._buf += data
            data = bytes(self._buf)
            self._buf.clear()
        frames = []
        pos, size = 0, len(data)
        while size - pos >= 8:
            end = pos + 8 + int.from_bytes(data[pos + 5:pos + 8], "big")
            if end > size:
                break
            frames.append(self._parse(data[pos:pos + 8], data[pos + 8:end]))
            pos = end
        if pos < size:
            self._buf += data[pos:]
        return frames

    def _parse(self, head: bytes, payload: bytes) -> Frame:
        first, flags = int.from_bytes(head[:4], "big"), head[4]
        if not first & 0x80000000:
            return Frame(False, 0, flags, first & 0x7FFFFFFF, payload)
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}")
        if kind == SYN_STREAM:
            stream_id = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            return Frame(True, kind, flags, stream_id, headers=self._headers(payload[10:]))
        if kind in (SYN_REPLY, HEADERS):
            stream_id = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            return Frame(True, kind, flags, stream_id, headers=self._headers(payload[4:]))
        if kind in (RST_STREAM, WINDOW_UPDATE, GOAWAY):
            stream_id, value = struct.unpack(">II", payload[:8])
            return Frame(True, kind, flags, stream_id & 0x7FFFFFFF, value=value)
        if kind == PING:
            return Frame(True, kind, flags, value=int.from_bytes(payload[:4], "big"))
        return Frame(True, kind, flags, data=payload)  # SETTINGS and anything newer: ignored by the caller

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as err:
            raise ProtocolError(f"bad header block: {err}") from err
        out: dict[str, str] = {}
        count = int.from_bytes(raw[:4], "big")
        pos = 4
        for _ in range(count):
            n = int.from_bytes(raw[pos:pos + 4], "big")
            name = raw[pos + 4:pos + 4 + n].decode("latin-1")
            pos += 4 + n
            n = int.from_bytes(raw[pos:pos + 4], "big")
            out[name] = raw[pos + 4:pos + 4 + n].decode("latin-1").split("\0")[0]
            pos += 4 + n
        return out

    # -- writing ---------------------------------------------------------------------------------------
    def _control(self, kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def _block(self, headers: dict[str, str]) -> bytes:
        raw = bytearray(struct.pack(">I", len(headers)))
        for name, value in headers.items():
            for part in (name.lower().encode(), value.encode()):
                raw += struct.pack(">I", len(part)) + part
        return self._deflate.compress(bytes(raw)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None, fin: bool = False) -> bytes:
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0,
                             struct.pack(">I", stream_id) + self._block(headers or {}))

    def rst_stream(self, stream_id: int, status: int) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_stream: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_stream, status))

    @staticmethod
    def data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
        return struct.pack(">II", stream_id, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data
